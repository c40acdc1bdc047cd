//! The OpenAPI document served at `/openapi.json`, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::error::ErrorBody;
use super::request::{CategoriesRequest, ImagesRequest, ScoreCategory, ScoreRequest, StyleRequest};
use super::routes::{albums, analyses, batch, events, health, people, search, similar, style};
use crate::album;
use crate::album::InvalidImage;

#[derive(OpenApi)]
#[openapi(
    info(title = "Ongi", description = "The AI back end of a photo-album app"),
    paths(
        albums::embedding,
        search::text_embedding,
        search::search,
        similar::similar,
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
        similar::SimilarRequest,
        similar::SimilarHit,
        similar::SimilarAnswer,
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

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::document;
    use crate::http::MAX_REFS_PER_CALL;
    use crate::http::request::MAX_CONCEPTS;
    use crate::http::routes::search::{MAX_QUERY_CHARS, MAX_TEXTS};
    use crate::http::routes::style::MAX_STEPS;
    use crate::reprocess::MAX_BUDGET;
    use crate::storage::MAX_PAGE_SIZE;

    /// The limits the handlers enforce, as the document states them: a client generated from
    /// it must not send what the server refuses for a count, a length or a range.
    #[test]
    fn the_document_states_the_limits_the_server_enforces() {
        let doc: Value = serde_json::to_value(document()).unwrap();
        let field = |schema: &str, name: &str| doc["components"]["schemas"][schema]["properties"][name].clone();
        for schema in [
            "ImagesRequest",
            "CategoriesRequest",
            "SearchRequest",
            "SimilarRequest",
            "ScoreCategory",
        ] {
            let images = field(schema, "images");
            assert_eq!(
                (&images["minItems"], &images["maxItems"]),
                (&json!(1), &json!(MAX_REFS_PER_CALL)),
                "{schema}.images: {images}"
            );
        }
        assert_eq!(field("CategoriesRequest", "concepts")["maxItems"], json!(MAX_CONCEPTS));
        assert_eq!(field("ScoreRequest", "categories")["minItems"], json!(1));
        let texts = field("TextEmbeddingRequest", "texts");
        assert_eq!((&texts["minItems"], &texts["maxItems"]), (&json!(1), &json!(MAX_TEXTS)));
        assert_eq!(field("SearchRequest", "query")["maxLength"], json!(MAX_QUERY_CHARS));
        for schema in ["SearchRequest", "SimilarRequest"] {
            let limit = field(schema, "limit");
            assert_eq!(
                (&limit["minimum"], &limit["maximum"]),
                (&json!(1), &json!(MAX_REFS_PER_CALL)),
                "{schema}.limit: {limit}"
            );
        }
        assert_eq!(field("StyleRequest", "steps")["maximum"], json!(MAX_STEPS));
        assert_eq!(field("ReprocessBody", "page_size")["maximum"], json!(MAX_PAGE_SIZE));
        assert_eq!(
            field("ReprocessBody", "budget_secs")["maximum"].as_f64(),
            Some(MAX_BUDGET.as_secs_f64())
        );
    }

    /// Every parameter is where the server reads it: a path parameter is named by its path,
    /// and the switches (`detail`, `include`, `encoding`) are optional query parameters.
    #[test]
    fn parameters_are_where_the_server_reads_them() {
        let doc: Value = serde_json::to_value(document()).unwrap();
        let mut switches = 0;
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, op) in operations.as_object().unwrap() {
                for p in op["parameters"].as_array().into_iter().flatten() {
                    let name = p["name"].as_str().unwrap();
                    match p["in"].as_str() {
                        Some("path") => assert!(path.contains(&format!("{{{name}}}")), "{method} {path}: {p}"),
                        Some("query") => {
                            assert!(
                                ["detail", "include", "encoding"].contains(&name),
                                "{method} {path}: {p}"
                            );
                            assert_ne!(p["required"], json!(true), "{method} {path}: {p}");
                            switches += 1;
                        }
                        _ => {}
                    }
                }
            }
        }
        // detail on duplicates, quality, score and people; include and encoding on
        // embedding; encoding on the text route.
        assert_eq!(switches, 7);
    }
}
