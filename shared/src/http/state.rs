//! What every handler can reach: the process's [`Services`](crate::services::Services).

/// The HTTP handlers' state is the process's services; `axum` clones it per request.
pub type AppState = crate::services::Services;
