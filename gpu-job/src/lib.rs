//! # gpu-job: the style worker
//!
//! Style jobs arrive on the Redis stream ([`ongi_shared::queue`]); this crate runs them.
//!
//! | module | owns |
//! |---|---|
//! | [`diffusion`] | Stable Diffusion 1.5 img2img on candle: architectures, weights, the pipeline, the input size |
//! | [`render`] | the small synchronous [`Renderer`](render::Renderer) trait the worker calls |
//! | [`worker`] | claim → heartbeat → render → store → complete/fail/release, one job at a time |
//! | [`liveness`] | whether the job loop still moves: `/healthz` fails once it has stalled |
//! | [`service`] | the process: settings, `/healthz` and `/metrics`, SIGTERM |
//! | [`gpu`] | GPU memory for the metrics |
#![forbid(unsafe_code)]

pub mod diffusion;
pub mod gpu;
pub mod liveness;
pub mod render;
pub mod service;
pub mod worker;
