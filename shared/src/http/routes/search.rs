//! Search by text and the vectors themselves: `POST /api/text/embedding` (CLIP text
//! embeddings of a caller's texts) and `POST /api/albums/search` (an album's photos ranked by
//! CLIP similarity to a query; Korean through the taxonomy's names, see
//! [`crate::analysis::search`]). The photos' own vectors come from
//! `POST /api/albums/embedding?include=embedding` (`albums`).

use axum::extract::State;
use axum::response::Response;
use base64::Engine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::analyses::{model_unavailable, with_embeddings};
use crate::analysis::search;
use crate::analysis::taxonomy::Taxonomy;
use crate::http::album::split;
use crate::http::envelope::{Envelope, success};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiQuery};
use crate::http::request::{ImageReference, validate_refs, visible_text};
use crate::http::state::AppState;

type ApiResult = Result<Response, ApiError>;

/// At most this many texts per text-embedding call.
pub const MAX_TEXTS: usize = 64;
/// At most this many characters per text (CLIP reads its first 75 tokens, about 300
/// characters of English; the rest is cut).
pub const MAX_TEXT_CHARS: usize = 1000;
/// At most this many characters per search query.
pub const MAX_QUERY_CHARS: usize = 200;
/// Results of a search when the call does not say.
pub const DEFAULT_LIMIT: usize = 20;

/// A text to embed, in the document: 1 to [`MAX_TEXT_CHARS`] characters, not blank, no
/// control character.
pub(crate) struct CallerText;

impl utoipa::PartialSchema for CallerText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        visible_text(MAX_TEXT_CHARS)
    }
}

impl ToSchema for CallerText {}

/// A search query, in the document: 1 to [`MAX_QUERY_CHARS`] characters, not blank, no
/// control character. Which Korean it may hold (the taxonomy's names) is beyond a pattern.
pub(crate) struct QueryText;

impl utoipa::PartialSchema for QueryText {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        visible_text(MAX_QUERY_CHARS)
    }
}

impl ToSchema for QueryText {}

/// How vectors are written in an answer.
#[derive(Debug, Default, Clone, Copy, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VectorEncoding {
    /// A JSON array of numbers.
    #[default]
    Json,
    /// Base64 of the 512 little-endian `f32`s (2 KiB a vector, a third of the JSON).
    Base64,
}

/// `?encoding=json|base64` (default json).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EncodingQuery {
    #[serde(default)]
    #[param(value_type = Option<VectorEncoding>)]
    pub encoding: VectorEncoding,
}

/// One vector, as [`VectorEncoding`] asks.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Vector {
    Floats(Vec<f32>),
    Base64(String),
}

impl Vector {
    pub fn encode(values: &[f32], encoding: VectorEncoding) -> Self {
        match encoding {
            VectorEncoding::Json => Self::Floats(values.to_vec()),
            VectorEncoding::Base64 => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                Self::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
        }
    }
}

/// `{"texts": [str, …]}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextEmbeddingRequest {
    /// 1 to 64 texts of 1 to 1000 characters. CLIP's text encoder is English-only.
    #[schema(value_type = Vec<CallerText>, min_items = 1, max_items = 64)]
    pub texts: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TextEmbedding {
    pub text: String,
    /// Unit length: its dot product with a photo's embedding is their cosine similarity.
    pub embedding: Vector,
}

/// What `POST /api/text/embedding` answers in `data`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TextEmbeddings {
    /// The CLIP model the vectors belong to (compare only vectors of one model).
    pub model: String,
    pub embeddings: Vec<TextEmbedding>,
}

/// `{"images": [ref, …], "query": str, "limit": n}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    #[schema(value_type = Vec<ImageReference>, min_items = 1, max_items = 1000)]
    pub images: Vec<String>,
    /// English, or Korean names of the taxonomy (tags and app concepts), up to 200 characters.
    #[schema(value_type = QueryText)]
    pub query: String,
    /// At most this many photos, 1–1000; default 20.
    #[serde(default, deserialize_with = "crate::http::extract::optional_integer")]
    #[schema(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Translation {
    pub korean: String,
    pub english: String,
}

/// How the query was understood.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchQuery {
    pub text: String,
    /// What CLIP was asked (Korean names of the taxonomy replaced by their English names).
    pub english: String,
    pub translated: Vec<Translation>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SearchHit {
    pub image: String,
    /// Cosine similarity of the photo and the query, −1 to 1 (CLIP's are mostly 0.1–0.35).
    pub similarity: f32,
}

/// What `POST /api/albums/search` answers in `data`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchAnswer {
    pub model: String,
    pub query: SearchQuery,
    /// The album's photos, most similar first.
    pub results: Vec<SearchHit>,
}

/// How many photos a ranking answers: `limit`, 1 to [`MAX_REFS_PER_CALL`](crate::http::MAX_REFS_PER_CALL),
/// or [`DEFAULT_LIMIT`].
pub(super) fn result_limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=crate::http::MAX_REFS_PER_CALL).contains(&limit) {
        return Err(ApiError::InvalidRequest(format!(
            "limit is {limit}: send 1 to {}",
            crate::http::MAX_REFS_PER_CALL
        )));
    }
    Ok(limit)
}

/// Checks one caller text: not blank, no control character, not too long.
fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    let problem = if text.trim().is_empty() {
        "is empty or only white space".to_owned()
    } else if text.chars().any(char::is_control) {
        "contains a control character (NUL, a line break, …)".to_owned()
    } else if text.chars().count() > max_chars {
        format!("is longer than {max_chars} characters")
    } else {
        return Ok(());
    };
    let shown: String = text.chars().take(40).collect();
    Err(ApiError::InvalidRequest(format!("{field} {shown:?} {problem}")))
}

/// CLIP text embeddings of the caller's texts, normalised.
#[utoipa::path(post, path = "/api/text/embedding", tag = "search", request_body = TextEmbeddingRequest, params(EncodingQuery),
    responses((status = 201, body = Envelope<TextEmbeddings>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn text_embedding(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<EncodingQuery>,
    ApiJson(req): ApiJson<TextEmbeddingRequest>,
) -> ApiResult {
    if req.texts.is_empty() || req.texts.len() > MAX_TEXTS {
        return Err(ApiError::InvalidRequest(format!(
            "texts has {} entries: send 1 to {MAX_TEXTS}",
            req.texts.len()
        )));
    }
    for (i, text) in req.texts.iter().enumerate() {
        check_text(&format!("texts[{i}]"), text, MAX_TEXT_CHARS)?;
    }
    let vectors = state
        .analysis_models
        .caller_text_embeddings(&req.texts)
        .await
        .map_err(|e| model_unavailable("text embedding", e))?;
    let embeddings = req
        .texts
        .into_iter()
        .zip(vectors)
        .map(|(text, v)| TextEmbedding {
            text,
            embedding: Vector::encode(&v, q.encoding),
        })
        .collect();
    let data = TextEmbeddings {
        model: state.features.model_id().to_owned(),
        embeddings,
    };
    Ok(success(data, Vec::new()))
}

/// The album's photos ranked by CLIP similarity to a text query.
#[utoipa::path(post, path = "/api/albums/search", tag = "search", request_body = SearchRequest,
    responses((status = 201, body = Envelope<SearchAnswer>, description = "photos without a CLIP embedding go to invalid_images"),
              (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn search(State(state): State<AppState>, ApiJson(req): ApiJson<SearchRequest>) -> ApiResult {
    let refs = validate_refs("images", &req.images, &state.settings.bucket)?;
    check_text("query", &req.query, MAX_QUERY_CHARS)?;
    let limit = result_limit(req.limit)?;
    let taxonomy = Taxonomy::builtin();
    let english =
        search::to_english(taxonomy, &req.query).map_err(|e| ApiError::InvalidRequest(format!("query: {e}")))?;
    // The query first: without the text encoder no photo need be read.
    let prompt_vectors = state
        .analysis_models
        .caller_text_embeddings(&search::prompts(taxonomy, &english))
        .await
        .map_err(|e| model_unavailable("search", e))?;
    let prompt_slices: Vec<&[f32]> = prompt_vectors.iter().map(|v| v.as_slice()).collect();
    let query = search::query_vector(&prompt_slices);

    let album = with_embeddings(split(&refs, state.features.album(&refs).await)?);
    // Every photo left has an embedding (`with_embeddings`); indices follow `album.photos`.
    let embeddings: Vec<&[f32]> = album
        .photos
        .iter()
        .map(|(_, f)| f.record.embedding.as_deref().unwrap_or_default())
        .collect();
    let results = search::rank(&embeddings, &query, limit)
        .into_iter()
        .map(|(i, similarity)| SearchHit {
            image: album.photos[i].0.to_string(),
            similarity,
        })
        .collect();
    let data = SearchAnswer {
        model: state.features.model_id().to_owned(),
        query: SearchQuery {
            text: req.query,
            english: english.english,
            translated: english
                .translated
                .into_iter()
                .map(|(korean, english)| Translation { korean, english })
                .collect(),
        },
        results,
    };
    Ok(success(data, album.invalid))
}
