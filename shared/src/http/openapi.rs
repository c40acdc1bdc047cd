//! The OpenAPI document served at `/openapi.json`, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::envelope::InvalidImage;
use super::error::ErrorBody;
use super::request::{CategoriesRequest, ImagesRequest, ScoreCategory, ScoreRequest, StyleRequest};
use super::routes::{albums, events, health};

#[derive(OpenApi)]
#[openapi(
    info(title = "Ongi", description = "The AI back end of a photo-album app"),
    paths(
        albums::embedding,
        albums::categories,
        albums::duplicates,
        albums::quality,
        albums::score,
        albums::people,
        albums::style_submit,
        albums::style_status,
        events::storage,
        events::features,
        events::batch_reprocess,
        health::healthz,
        health::readyz,
        health::metrics,
        health::openapi,
    ),
    components(schemas(
        ImagesRequest,
        CategoriesRequest,
        ScoreRequest,
        ScoreCategory,
        StyleRequest,
        ErrorBody,
        InvalidImage,
        health::Health,
        health::Readiness,
        health::Check,
        health::ModelsStatus,
    ))
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
