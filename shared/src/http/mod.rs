//! The HTTP layer every process shares (axum).
//!
//! - [`app`]: [`Application::build`](app::Application::build), the only way to start a server,
//!   in production and in tests alike (port 0 works; read the real one from `port()`).
//! - [`envelope`] and [`error`]: the `{"message", "data"}` envelope and the one place where
//!   errors become status codes.
//! - [`extract`]: JSON bodies, query strings and path parameters with the envelope's errors
//!   instead of axum's plain-text ones.
//! - [`request`]: request bodies and their validation (reference rules, per-call limits).
//! - [`routes`]: one file per group of routes, and the envelope's 404/405 for the rest;
//!   [`openapi`]: the OpenAPI document.
//! - [`admission`]: load shedding past `ONGI_MAX_IN_FLIGHT` requests (503 + `Retry-After`);
//!   [`body`]: bodies read whole within a deadline before a request takes a slot.
//! - [`auth`]: the bearer token of a process exposed without IAM (`ONGI_API_TOKEN`).
//! - [`observe`]: request ids and per-route latency metrics (labels from a closed set);
//!   [`shutdown`]: SIGTERM handling; [`serve`]: the accept loop, with a deadline for each
//!   request head.

pub(crate) mod admission;
pub(crate) mod album;
pub mod app;
pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod envelope;
pub(crate) mod error;
pub(crate) mod extract;
pub(crate) mod observe;
pub(crate) mod openapi;
pub mod request;
pub mod routes;
pub(crate) mod serve;
pub mod shutdown;
pub(crate) mod state;

pub use app::{Application, BuildError};
pub use state::AppState;

/// JSON bodies larger than this are refused (413) before they are parsed.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// At most this many image references in one call (400 beyond).
pub const MAX_REFS_PER_CALL: usize = 1000;
