//! Request bodies of the album routes and their validation. A handler receives only
//! validated [`ImageRef`]s: every reference rule of docs/api.md is applied here, once, and a
//! bad reference is a 400 that names it.

use serde::Deserialize;
use utoipa::ToSchema;

use super::MAX_REFS_PER_CALL;
use super::error::ApiError;
use crate::domain::{BucketName, ImageRef};

/// The bucket in [`ImageReference`]'s pattern until [`crate::http::openapi::document`] puts
/// the served one there.
pub(crate) const SERVED_BUCKET: &str = "SERVED-BUCKET";

/// An image reference, as the API document states the rules [`ImageRef::parse`] and
/// [`validate_ref`] apply: an object name of the uploads bucket, or `gs://<that
/// bucket>/<object>`; path segments split by `/`, none empty, `.` or `..`; no backslash and
/// no control character; at most 1024 bytes of UTF-8 (JSON Schema counts characters, so
/// `maxLength` says 1024 and a name of many-byte characters may still be refused).
pub(crate) struct ImageReference;

/// [`ImageReference`]'s pattern; see there.
const REFERENCE_PATTERN: &str = r"^(?:gs://SERVED-BUCKET/)?(?:[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.\.[^/\\\u0000-\u001f\u007f-\u009f]+)(?:/(?:[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.\.[^/\\\u0000-\u001f\u007f-\u009f]+))*$";

impl utoipa::PartialSchema for ImageReference {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(1024))
            .pattern(Some(REFERENCE_PATTERN))
            .description(Some(
                "An object name of the uploads bucket or gs://<that bucket>/<object>: segments split by '/', \
                 none empty, '.' or '..'; no backslash, no control character; at most 1024 bytes of UTF-8.",
            ))
            .into()
    }
}

impl ToSchema for ImageReference {}

/// A caller's text (a concept, a text to embed, a search query) as the document states the
/// handlers' rule: something besides white space, no control character (NUL, a line break,
/// …). White space is Unicode's, as `str::trim` takes it.
pub(crate) const VISIBLE_TEXT_PATTERN: &str = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$";

/// The schema of a caller's text of 1 to `max_chars` characters (see [`VISIBLE_TEXT_PATTERN`]).
pub(crate) fn visible_text(max_chars: usize) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(VISIBLE_TEXT_PATTERN))
        .into()
}

/// A style request's `style`, in the document: 1 to 200 characters, not blank, no control
/// character (see [`crate::style::preset::StyleChoice::parse`]).
pub(crate) struct StyleText;

impl utoipa::PartialSchema for StyleText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        visible_text(crate::style::preset::MAX_STYLE_CHARS)
    }
}

impl ToSchema for StyleText {}

/// One of a categories call's concepts, in the document (see [`validate_concepts`]).
pub(crate) struct ConceptText;

impl utoipa::PartialSchema for ConceptText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        visible_text(MAX_CONCEPT_CHARS)
    }
}

impl ToSchema for ConceptText {}

/// `{"images": [ref, …]}`: embedding, duplicates, quality, people.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImagesRequest {
    /// Object names in the uploads bucket, or `gs://bucket/object`.
    #[schema(value_type = Vec<ImageReference>, min_items = 1, max_items = 1000)]
    pub images: Vec<String>,
}

/// `{"images": [ref, …], "concepts": [str, …]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoriesRequest {
    #[schema(value_type = Vec<ImageReference>, min_items = 1, max_items = 1000)]
    pub images: Vec<String>,
    /// The album's concepts (tags chosen in the app), optional: at most 100, each of 1 to 100
    /// characters, not blank, no control character.
    #[serde(default)]
    #[schema(value_type = Vec<ConceptText>, max_items = 100)]
    pub concepts: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreCategory {
    pub category: String,
    /// At most 1000 images over every category of the call.
    #[schema(value_type = Vec<ImageReference>, min_items = 1, max_items = 1000)]
    pub images: Vec<String>,
}

/// `{"categories": [{"category", "images": [ref, …]}, …]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScoreRequest {
    #[schema(min_items = 1)]
    pub categories: Vec<ScoreCategory>,
}

/// `{"image": ref, "style": str, …}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StyleRequest {
    #[schema(value_type = ImageReference)]
    pub image: String,
    /// A preset (`ghibli`, `watercolor`, `oil_painting`, `3d_animation`, `pencil_sketch`,
    /// `anime`) or a free-text style of at most 200 characters.
    #[schema(value_type = StyleText)]
    pub style: String,
    /// How far from the photo the result may go, (0, 1]; default 0.6.
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub strength: Option<f64>,
    /// Denoising steps, 1–50; default 20.
    #[serde(default, deserialize_with = "crate::http::extract::optional_integer")]
    #[schema(minimum = 1, maximum = 50)]
    pub steps: Option<u32>,
    /// Classifier-free guidance scale, 1–20; default 7.5.
    #[schema(minimum = 1.0, maximum = 20.0)]
    pub guidance_scale: Option<f64>,
    /// The noise seed; random by default (the job records the one used).
    #[serde(default, deserialize_with = "crate::http::extract::optional_integer")]
    pub seed: Option<u64>,
    /// A repeated request with the same key returns the same job (the `Idempotency-Key`
    /// header does the same; if both are sent they must agree): 1 to 256 visible ASCII
    /// characters.
    #[schema(pattern = "^[!-~]{1,256}$")]
    pub idempotency_key: Option<String>,
}

/// Validates a list of references against the rules and the served bucket. Each is placed
/// in the served bucket ([`ImageRef::within`]), so a photo listed under two spellings is one
/// [`ImageRef`] to every analysis.
/// `field` names the list in error messages (`images`, `categories[2].images`).
pub fn validate_refs(field: &str, raw: &[String], bucket: &BucketName) -> Result<Vec<ImageRef>, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::InvalidRequest(format!(
            "{field} is empty: send at least one image"
        )));
    }
    if raw.len() > MAX_REFS_PER_CALL {
        return Err(ApiError::InvalidRequest(format!(
            "{field} has {} images; at most {MAX_REFS_PER_CALL} are accepted per call",
            raw.len()
        )));
    }
    raw.iter()
        .enumerate()
        .map(|(i, r)| validate_ref(&format!("{field}[{i}]"), r, bucket))
        .collect()
}

pub fn validate_ref(field: &str, raw: &str, bucket: &BucketName) -> Result<ImageRef, ApiError> {
    let shown = || raw.chars().take(120).collect::<String>();
    let parsed = ImageRef::parse(raw).map_err(|e| ApiError::InvalidRequest(format!("{field} {:?}: {e}", shown())))?;
    if let Some(other) = parsed.bucket()
        && other != bucket
    {
        return Err(ApiError::InvalidRequest(format!(
            "{field} {:?}: bucket {other} is not served here; photos are read from bucket {bucket}",
            shown()
        )));
    }
    Ok(parsed.within(bucket))
}

/// Validates every list of a score request, with the per-call limit over all of them.
pub fn validate_score(req: &ScoreRequest, bucket: &BucketName) -> Result<Vec<(String, Vec<ImageRef>)>, ApiError> {
    if req.categories.is_empty() {
        return Err(ApiError::InvalidRequest("categories is empty".into()));
    }
    let total: usize = req.categories.iter().map(|c| c.images.len()).sum();
    if total > MAX_REFS_PER_CALL {
        return Err(ApiError::InvalidRequest(format!(
            "categories hold {total} images; at most {MAX_REFS_PER_CALL} are accepted per call"
        )));
    }
    req.categories
        .iter()
        .enumerate()
        .map(|(i, c)| {
            Ok((
                c.category.clone(),
                validate_refs(&format!("categories[{i}].images"), &c.images, bucket)?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket() -> BucketName {
        BucketName::parse("uploads").unwrap()
    }

    #[test]
    fn names_the_bad_reference_and_its_position() {
        let refs = vec!["a.jpg".to_owned(), "../etc/passwd".to_owned()];
        let err = validate_refs("images", &refs, &bucket()).unwrap_err().to_string();
        assert!(err.contains("images[1]") && err.contains("../etc/passwd"), "{err}");
    }

    #[test]
    fn limits_count_and_foreign_buckets() {
        let many = vec!["a.jpg".to_owned(); MAX_REFS_PER_CALL + 1];
        assert!(validate_refs("images", &many, &bucket()).is_err());
        let ok = vec!["a.jpg".to_owned(); MAX_REFS_PER_CALL];
        assert_eq!(
            validate_refs("images", &ok, &bucket()).unwrap().len(),
            MAX_REFS_PER_CALL
        );
        let err = validate_refs("images", &["gs://results/x.png".to_owned()], &bucket())
            .unwrap_err()
            .to_string();
        assert!(err.contains("bucket results is not served here"), "{err}");
        assert!(validate_refs("images", &["gs://uploads/x.png".to_owned()], &bucket()).is_ok());
        assert!(validate_refs("images", &[], &bucket()).is_err());
    }
}

/// At most this many concepts per categories call.
pub const MAX_CONCEPTS: usize = 100;
/// At most this many characters per concept.
pub const MAX_CONCEPT_CHARS: usize = 100;

/// Validates an album's concepts: at most [`MAX_CONCEPTS`], each of 1 to
/// [`MAX_CONCEPT_CHARS`] characters with something besides white space and no control
/// character (NUL, a line break, …): a concept becomes a category name the app stores and
/// shows, and prompt text for CLIP. A bad one is a 400 naming its index.
pub fn validate_concepts(concepts: &[String]) -> Result<(), ApiError> {
    if concepts.len() > MAX_CONCEPTS {
        return Err(ApiError::InvalidRequest(format!(
            "concepts: at most {MAX_CONCEPTS} are accepted, got {}",
            concepts.len()
        )));
    }
    for (i, c) in concepts.iter().enumerate() {
        let shown = || c.chars().take(40).collect::<String>();
        let problem = if c.trim().is_empty() {
            "is empty or only white space"
        } else if c.chars().any(char::is_control) {
            "contains a control character (NUL, a line break, …)"
        } else if c.chars().count() > MAX_CONCEPT_CHARS {
            "is longer than 100 characters"
        } else {
            continue;
        };
        return Err(ApiError::InvalidRequest(format!(
            "concepts[{i}] {:?} {problem}",
            shown()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod concept_tests {
    use super::*;

    #[test]
    fn concepts_must_be_visible_text_and_are_named_by_index() {
        assert!(validate_concepts(&[]).is_ok());
        assert!(validate_concepts(&["여행".into(), "a cat".into(), "x".repeat(100)]).is_ok());
        for (bad, why) in [
            ("", "empty"),
            ("  ", "empty"),
            ("\u{3000}", "empty"),
            ("a\u{0}b", "control"),
            ("two\nlines", "control"),
            ("tab\there", "control"),
            ("\u{85}next line", "control"),
            (&"y".repeat(101), "longer than 100"),
        ] {
            let err = validate_concepts(&["ok".into(), bad.into()]).unwrap_err().to_string();
            assert!(err.starts_with("concepts[1] "), "{err}");
            assert!(err.contains(why), "{err}");
            assert!(
                !err.contains('\n') && !err.contains('\u{0}'),
                "the message quotes it escaped: {err:?}"
            );
        }
        let many = vec!["c".to_owned(); MAX_CONCEPTS + 1];
        assert!(
            validate_concepts(&many)
                .unwrap_err()
                .to_string()
                .contains("at most 100")
        );
    }
}
