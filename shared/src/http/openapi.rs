//! The OpenAPI document served at `/openapi.json`, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::error::ErrorBody;
use super::request::{CategoriesRequest, ImagesRequest, ScoreCategory, ScoreRequest, StyleRequest};
use super::routes::{albums, analyses, batch, events, health, people, search, style};
use crate::album;
use crate::album::InvalidImage;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ongi", description = "The AI back end of a photo-album app"),
    paths(
        albums::embedding,
        search::text_embedding,
        search::search,
        analyses::categories,
        analyses::duplicates,
        analyses::quality,
        analyses::score,
        people::people,
        style::submit,
        style::status,
        events::storage,
        events::features,
        batch::reprocess,
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
        albums::EmbeddingSummary,
        albums::PhotoEmbedding,
        albums::Include,
        search::VectorEncoding,
        search::Vector,
        search::TextEmbeddingRequest,
        search::TextEmbedding,
        search::TextEmbeddings,
        search::SearchRequest,
        search::SearchQuery,
        search::Translation,
        search::SearchHit,
        search::SearchAnswer,
        style::StyleSubmitted,
        style::StyleJobView,
        events::EventOutcome,
        batch::ReprocessBody,
        batch::ReprocessAnswer,
        crate::reprocess::ReprocessReport,
        crate::reprocess::ReprocessFailure,
        album::Person,
        album::RepresentativeFace,
        album::FaceDetail,
        album::CategoryGroup,
        album::QualityDetail,
        album::DuplicateGroup,
        album::DuplicateMember,
        album::ScoredImage,
        album::ScoredCategory,
        crate::analysis::quality::QualityMetrics,
        crate::analysis::duplicate::Tier,
    ))
)]
struct ApiDoc;

pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}
