//! `/healthz` (alive), `/readyz` (dependencies answer), `/metrics`, `/openapi.json`.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::openapi::document;
use crate::http::state::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub service: String,
    pub version: &'static str,
}

#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub async fn healthz(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        service: state.functions.service_name(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Check {
    /// `redis`, `memory`, `gcs`, `local`.
    pub kind: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: &'static str,
    pub cache: Check,
    pub storage: Check,
    /// The models this process loaded. Missing models do not make it unready: the analyses
    /// that need none still work, and the routes that do say what is missing.
    pub models: ModelsStatus,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsStatus {
    /// The CLIP model id in cache keys (`pixels-only` without CLIP).
    pub clip: String,
    pub missing: Vec<String>,
}

async fn check<E: std::fmt::Display>(kind: &'static str, fut: impl Future<Output = Result<(), E>>) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => Check {
            kind,
            ok: true,
            error: None,
        },
        Ok(Err(e)) => Check {
            kind,
            ok: false,
            error: Some(e.to_string()),
        },
        Err(_) => Check {
            kind,
            ok: false,
            error: Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        },
    }
}

/// 200 when the cache and the store answer (and, on Cloud Run, the embedding function has
/// its CLIP model), 503 otherwise, naming what failed.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, body = Readiness), (status = 503, body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let (cache, storage) = tokio::join!(
        check(state.cache.kind(), state.cache.ping()),
        check(state.store.kind(), state.store.check(&state.settings.bucket)),
    );
    // On Cloud Run the embedding function without CLIP would cache pixels-only records that
    // the other functions cannot use: that is a broken deployment, so it is not ready.
    // Locally (`ongi serve` on first run) it serves what needs no model.
    let models_ok = !(state.settings.on_cloud_run
        && state.functions.contains(crate::functions::Function::Embedding)
        && state.models.clip_visual.is_none());
    let ready = cache.ok && storage.ok && models_ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        cache,
        storage,
        models: ModelsStatus {
            clip: state.models.clip_model_id.clone(),
            missing: state.models.missing.clone(),
        },
    };
    (status, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "health", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        crate::telemetry::metrics_handle().render(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/openapi.json", tag = "health", responses((status = 200, description = "This document")))]
pub async fn openapi(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(document(&state.settings.bucket))
}
