//! Routes, one file per group. [`router`] mounts the ones the process's modules serve.

pub mod albums;
pub mod analyses;
pub mod batch;
pub mod events;
pub mod health;
pub mod people;
pub mod per_photo;
pub mod style;

use axum::Router;
use axum::routing::{get, post};

use super::state::AppState;
use crate::modules::Module;

pub fn router(state: &AppState) -> Router<AppState> {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(health::openapi))
        .route("/batch/reprocess", post(batch::reprocess));
    for module in state.modules.iter() {
        router = match module {
            Module::Embedding => router
                .route("/api/albums/embedding", post(albums::embedding))
                .route("/events/storage", post(events::storage)),
            Module::Category => router.route("/api/albums/categories", post(analyses::categories)),
            Module::Duplicate => router.route("/api/albums/duplicates", post(analyses::duplicates)),
            Module::Quality => router.route("/api/albums/quality", post(analyses::quality)),
            Module::Score => router.route("/api/albums/score", post(analyses::score)),
            Module::People => router.route("/api/albums/people", post(people::people)),
            Module::Style => router
                .route("/api/albums/style", post(style::submit))
                .route("/api/albums/style/{job_id}", get(style::status)),
        };
    }
    if state.modules.iter().any(Module::has_per_photo_step) {
        router = router.route("/events/features", post(per_photo::features));
    }
    router
}
