//! The OpenAPI document served at `/openapi.json`, generated from the handlers' annotations.

use utoipa::OpenApi;

use super::error::ErrorBody;
use super::request::{
    CategoriesRequest, ImageReference, ImagesRequest, SERVED_BUCKET, ScoreCategory, ScoreRequest, StyleRequest,
};
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
        ImageReference,
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

/// The document, with the bucket this process serves in the image references' pattern.
pub fn document(served: &crate::domain::BucketName) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    let pattern = &mut doc["components"]["schemas"]["ImageReference"]["pattern"];
    if let Some(p) = pattern.as_str() {
        // Bucket names hold letters, digits, `-`, `_` and `.`: only `.` means something in a pattern.
        *pattern = p.replace(SERVED_BUCKET, &served.as_str().replace('.', "\\.")).into();
    }
    // Answers the layers in front of every handler may give: a body over the limit or too
    // slow, and load shed.
    let error = serde_json::json!({"description": "", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}});
    if let Some(paths) = doc["paths"].as_object_mut() {
        for operation in paths
            .values_mut()
            .filter_map(|p| p.as_object_mut())
            .flat_map(|p| p.values_mut())
        {
            let has_body = operation.get("requestBody").is_some();
            let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            let mut add = |status: &str, why: &str| {
                responses.entry(status).or_insert_with(|| {
                    let mut answer = error.clone();
                    answer["description"] = why.into();
                    answer
                });
            };
            if has_body {
                add("408", "The body did not arrive in time");
                add("413", "The body is larger than the limit");
            }
            add("503", "Shedding load, or a dependency is down: retry after Retry-After");
        }
    }
    // A walk is of the served bucket only.
    let bucket = &mut doc["components"]["schemas"]["ReprocessBody"]["properties"]["bucket"];
    if bucket.is_object() {
        bucket["enum"] = serde_json::json!([served.as_str()]);
    }
    doc
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::document;
    use crate::domain::BucketName;
    use crate::http::MAX_REFS_PER_CALL;
    use crate::http::request::MAX_CONCEPTS;
    use crate::http::routes::search::{MAX_QUERY_CHARS, MAX_TEXTS};
    use crate::http::routes::style::MAX_STEPS;
    use crate::reprocess::MAX_BUDGET;
    use crate::storage::MAX_PAGE_SIZE;

    /// Asserts that `pattern` admits exactly the `cases` that `accepts` (the handlers' own
    /// check) accepts.
    fn agrees(pattern: &str, cases: &[&str], accepts: impl Fn(&str) -> bool) {
        let rx = regex::Regex::new(pattern).unwrap();
        for case in cases {
            assert_eq!(
                rx.is_match(case),
                accepts(case),
                "{case:?}: the document's pattern and the handlers disagree"
            );
        }
    }

    fn uploads() -> BucketName {
        BucketName::parse("up.loads").unwrap()
    }

    /// The references the document's pattern admits are the ones the handlers accept.
    #[test]
    fn the_reference_pattern_is_the_handlers_rule() {
        let doc = document(&uploads());
        let pattern = doc["components"]["schemas"]["ImageReference"]["pattern"]
            .as_str()
            .unwrap();
        let cases = [
            "a.jpg",
            "gs://up.loads/a.jpg",
            "gs://upXloads/a.jpg",
            "gs://other/a.jpg",
            "gs://up.loads",
            "gs://up.loads/",
            "../a",
            "a/./b",
            "a//b",
            "/a",
            "a\\b",
            ".a",
            "..a",
            "...",
            "a/..",
            "http://x/y",
            "gs:/x",
            "x://y",
            "a b/c d.jpg",
            "반려묘.jpg",
            "a\u{0}b",
            "a\u{85}b",
            ".",
            "..",
            "a/",
            "gs://up.loads//x",
            "gs://up.loads/gs://up.loads/x",
            "",
        ];
        agrees(pattern, &cases, |raw| {
            crate::http::request::validate_ref("image", raw, &uploads()).is_ok()
        });
    }

    /// The prefixes the document's pattern admits are the ones a walk accepts.
    #[test]
    fn the_prefix_pattern_is_the_walks_rule() {
        let doc = document(&uploads());
        let prefix = &doc["components"]["schemas"]["ReprocessBody"]["properties"]["prefix"];
        let cases = [
            "", "a", "a/", "a/b", "a/b/", "/a", "a//b", "a/./", "a/..", ".", "..", ".a/", "a\\b", "a\u{7}", "반려/",
        ];
        agrees(prefix["pattern"].as_str().unwrap(), &cases, |raw| {
            crate::reprocess::validate_prefix(raw).is_ok()
        });
        assert_eq!(
            doc["components"]["schemas"]["ReprocessBody"]["properties"]["bucket"]["enum"],
            json!(["up.loads"])
        );
    }

    /// The texts the document's pattern admits are the ones the handlers accept.
    #[test]
    fn the_text_pattern_is_the_handlers_rule() {
        let cases = [
            "여행",
            "a cat",
            " x ",
            "",
            " ",
            "\u{3000}",
            "\u{a0}x",
            "a\u{0}b",
            "two\nlines",
            "tab\there",
            "\u{85}next",
            "\u{feff}",
            "\u{200b}",
            "\u{2028}",
            "x\u{2029}",
            "é",
        ];
        agrees(crate::http::request::VISIBLE_TEXT_PATTERN, &cases, |text| {
            crate::http::request::validate_concepts(&[text.to_owned()]).is_ok()
        });
        let doc = document(&uploads());
        let query = &doc["components"]["schemas"]["QueryText"];
        assert_eq!(query["maxLength"], json!(MAX_QUERY_CHARS), "{query}");
    }

    /// The limits the handlers enforce, as the document states them: a client generated from
    /// it must not send what the server refuses for a count, a length or a range.
    #[test]
    fn the_document_states_the_limits_the_server_enforces() {
        let doc = document(&uploads());
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
        let doc = document(&uploads());
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
