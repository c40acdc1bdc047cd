//! Building and running the server. [`Application::build`] is the only way to start one, so
//! tests run exactly what production runs (zero2prod's shape): bind first (port 0 works),
//! read the real port back, then [`Application::run_until_stopped`].

use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use tokio::net::TcpListener;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use super::observe::{make_span, record_metrics};
use super::shutdown::DRAIN_TIMEOUT;
use super::state::AppState;
use super::{MAX_BODY_BYTES, routes};
use crate::config::Settings;
use crate::functions::Functions;
use crate::pipeline::decode_lanes::in_own_lane;
use crate::services::ServicesError;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    State(#[from] ServicesError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    address: SocketAddr,
    state: AppState,
}

impl Application {
    pub async fn build(settings: Settings, functions: Functions) -> Result<Self, BuildError> {
        // The recorder must exist before the first metric is recorded.
        let _ = crate::telemetry::metrics_handle();
        let addr = SocketAddr::new(settings.host, settings.port);
        let state = AppState::from_settings(settings, functions).await?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BuildError::Bind { addr, source })?;
        let address = listener
            .local_addr()
            .map_err(|source| BuildError::Bind { addr, source })?;
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            address,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish for at most
    /// [`DRAIN_TIMEOUT`]. Each request head and body must arrive within `ONGI_READ_TIMEOUT_SECS`.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), std::io::Error> {
        tracing::info!(
            address = %self.address,
            service = %self.state.functions.service_name(),
            storage = self.state.store.kind(),
            cache = self.state.cache.kind(),
            "ready"
        );
        super::serve::serve(
            self.listener,
            self.router,
            self.state.settings.read_timeout,
            self.state.settings.max_connections,
            DRAIN_TIMEOUT,
            shutdown,
        )
        .await
    }
}

fn router(state: AppState) -> Router {
    // Inner to outer, as a request meets them from the bottom up: the body is read whole
    // (within the read deadline) before a work slot is taken, and a request without a valid
    // token never reads its body or takes a slot. All of it inside the metrics layer, so
    // refused and shed requests are counted and timed like the others.
    let admission = super::admission::Admission::new(state.settings.max_in_flight);
    let mut router = routes::router(&state)
        // Each request is one caller in the decode queues: calls take turns (`decode_lanes`).
        .layer(middleware::from_fn(decode_in_own_lane))
        .layer(middleware::from_fn_with_state(
            admission,
            super::admission::shed_when_full,
        ))
        .layer(middleware::from_fn_with_state(
            super::body::BodyReading::new(state.settings.read_timeout, state.settings.body_memory_bytes),
            super::body::read_body_in_time,
        ));
    if let Some(token) = state.settings.api_token.clone() {
        router = router.layer(middleware::from_fn_with_state(token, super::auth::require_bearer));
    }
    router
        .layer(middleware::from_fn(record_metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // Outermost first on the way in: set the id, trace with it, propagate it out.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(make_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(middleware::from_fn(super::observe::drop_unusable_request_id))
        .with_state(state)
}

async fn decode_in_own_lane(request: axum::extract::Request, next: middleware::Next) -> axum::response::Response {
    in_own_lane(next.run(request)).await
}

/// Why a process could not start or stopped with an error. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Settings(#[from] crate::config::SettingsError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// The whole start-up of one process: settings, logs, build, serve until SIGTERM.
/// Each function's `main` is this call with its module.
pub async fn serve_from_env(functions: Functions) -> Result<(), ServeError> {
    let settings = Settings::from_env()?;
    crate::telemetry::init_logging_for(settings.log_format, settings.google_cloud_project.clone());
    tracing::info!(settings = ?settings, "starting");
    let app = Application::build(settings, functions).await?;
    Ok(app.run_until_stopped(super::shutdown::signal()).await?)
}
