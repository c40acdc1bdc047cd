//! The worker process: settings → model, queue, storage, publisher → the worker loop, plus
//! `/healthz` and `/metrics` on `PORT` (the managed instance group's autohealing probe and
//! Prometheus). `/healthz` fails (503) once the job loop has stalled ([`Liveness`]), so
//! autohealing replaces a worker that still answers HTTP but no longer works. SIGTERM stops
//! claiming, lets the current job finish within the grace, or releases it, then exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use ongi_shared::config::{Settings, StyleDevice};
use ongi_shared::queue::StyleQueue;
use tokio::sync::watch;

use crate::diffusion::{DeviceChoice, StyleModel};
use crate::liveness::Liveness;
use crate::render::Renderer;
use crate::worker::{Worker, WorkerConfig};

/// How long the current job may still run after SIGTERM. Compute Engine gives a stopping
/// VM 90 s; a 512 px job at 20 steps on a T4 takes a fraction of that.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(60);
/// How long one blocking read waits for a job before the loop comes round again.
const BLOCK: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("gpu-job needs REDIS_URL: the style jobs arrive on a Redis stream")]
    NoRedis,
    #[error("{0}")]
    Model(#[from] crate::diffusion::DiffusionError),
    #[error("{0}")]
    Queue(#[from] ongi_shared::queue::QueueError),
    #[error("storage: {0}")]
    Storage(#[from] ongi_shared::storage::StorageError),
    #[error("{0}")]
    Publish(#[from] ongi_shared::events::publish::PublishError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the model thread stopped: {0}")]
    Join(String),
}

/// What `/healthz` reports.
#[derive(Clone)]
pub struct Health {
    pub device: String,
    pub queue: StyleQueue,
    pub liveness: Arc<Liveness>,
}

/// Everything `gpu-job run` does, until SIGTERM.
pub async fn run_from_settings(settings: Settings) -> Result<(), ServiceError> {
    let _ = ongi_shared::telemetry::metrics_handle();
    let url = settings
        .redis_url
        .as_ref()
        .map(|u| u.expose().to_owned())
        .ok_or(ServiceError::NoRedis)?;
    let sd_dir = settings.model_dir.join("sd15");
    let device = match settings.style.device {
        StyleDevice::Auto => DeviceChoice::Auto,
        StyleDevice::Cpu => DeviceChoice::Cpu,
        StyleDevice::Cuda => DeviceChoice::Cuda,
    };
    let model = tokio::task::spawn_blocking(move || StyleModel::load(&sd_dir, device))
        .await
        .map_err(|e| ServiceError::Join(e.to_string()))??;
    let renderer: Arc<dyn Renderer> = Arc::new(model);
    let queue = StyleQueue::new(
        &url,
        &settings.cache_prefix,
        settings.style.max_attempts,
        settings.style.job_ttl,
    )?;
    let consumer = consumer_name();
    let worker_queue = queue.worker(&consumer, BLOCK).await?;
    let store = ongi_shared::storage::from_settings(&settings).await?;
    let publisher = ongi_shared::events::publish::for_topic(&settings, &settings.results_topic, true).await?;
    let config = WorkerConfig {
        results_bucket: settings.results_bucket.clone(),
        reclaim_after: settings.style.reclaim_after,
        heartbeat_every: WorkerConfig::heartbeat_for(settings.style.reclaim_after),
        shutdown_grace: SHUTDOWN_GRACE,
        limits: settings.limits,
        stall_after: settings.style.stall_after,
    };
    let device = renderer.device();
    let worker = Worker::new(worker_queue, store, publisher, renderer, config);
    let health = Health {
        device,
        queue: queue.clone(),
        liveness: worker.liveness(),
    };

    let addr = SocketAddr::new(settings.host, settings.port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind { addr, source })?;
    let router = router(health.clone());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut http_stop = stop_rx.clone();
    let http = tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = http_stop.wait_for(|s| *s).await;
            })
            .await;
    });
    tokio::spawn(async move {
        ongi_shared::http::shutdown::signal().await;
        tracing::info!("SIGTERM: no new jobs; finishing or releasing the current one");
        let _ = stop_tx.send(true);
    });
    tracing::info!(consumer = %consumer, device = %health.device, address = %addr, "gpu-job ready");
    worker.run(stop_rx).await;
    let _ = http.await;
    Ok(())
}

/// Unique per process: the host name (the VM) plus the pid, so a restarted container never
/// shares a consumer name with the one that died (whose entries must be reclaimed, not read).
fn consumer_name() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    )
}

/// The worker's HTTP routes: `/healthz` and `/metrics`.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(health)
}

/// 200 with the device and the queue depth while the job loop moves; 503 once it has made no
/// progress for the stall time (`ONGI_STYLE_STALL_SECS`), which makes autohealing replace the
/// VM. A Redis outage is reported in the body but keeps the 200: the loop keeps turning while
/// it waits, and recreating the VM would not bring Redis back.
async fn healthz(State(h): State<Health>) -> impl IntoResponse {
    let queue = match h.queue.depth().await {
        Ok(depth) => serde_json::json!({"reachable": true, "depth": depth}),
        Err(e) => serde_json::json!({"reachable": false, "error": e.to_string()}),
    };
    let silent_s = h.liveness.silent_for().as_secs_f64();
    let (code, status) = match h.liveness.stalled() {
        None => (StatusCode::OK, "ok"),
        Some(_) => (StatusCode::SERVICE_UNAVAILABLE, "stalled"),
    };
    (
        code,
        axum::Json(serde_json::json!({
            "status": status, "service": "gpu-job", "device": h.device, "queue": queue,
            "loop": {"silent_s": silent_s, "stall_after_s": h.liveness.stall_after().as_secs_f64()},
        })),
    )
}

async fn metrics() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        ongi_shared::telemetry::metrics_handle().render(),
    )
}
