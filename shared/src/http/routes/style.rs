//! `POST /api/albums/style` and `GET /api/albums/style/{job_id}` (docs/style.md).
//!
//! Submission: validate → (idempotency key already used? that job if the request is the same,
//! 409 if it differs) → queue depth check →
//! read the photo once → Gemini writes the prompt from a thumbnail (the template when it
//! cannot) → one atomic submit script (key, depth limit, hash, stream entry) → 202.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{BucketName, ImageRef};
use crate::http::envelope::{Envelope, InvalidImage};
use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::{ApiJson, ApiPath};
use crate::http::request::{StyleRequest, validate_ref};
use crate::http::state::AppState;
use crate::pipeline::PhotoError;
use crate::pipeline::hashing::content_hash;
use crate::queue::{JobRecord, JobSpec, QueueError, StyleQueue, Submitted};
use crate::storage::MAX_SIGNED_URL_TTL;
use crate::style::StyleChoice;
use crate::style::thumbnail::{THUMBNAIL_DECODE, thumbnail_png};

type ApiResult = Result<Response, ApiError>;

pub const DEFAULT_STRENGTH: f64 = 0.6;
pub const DEFAULT_STEPS: u32 = 20;
pub const DEFAULT_GUIDANCE: f64 = 7.5;
pub const MAX_STEPS: u32 = 50;
const MAX_IDEMPOTENCY_KEY: usize = 256;
/// What a full queue tells the client to wait: roughly one job's time on a T4.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(30);

/// `data` of a submission.
#[derive(Debug, Serialize, ToSchema)]
pub struct StyleSubmitted {
    pub job_id: String,
    /// `queued` for a new job; a repeated idempotency key answers the job's current status.
    pub status: String,
}

/// `data` of `GET /api/albums/style/{job_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StyleJobView {
    pub job_id: String,
    /// `queued`, `running`, `done` or `failed`.
    pub status: String,
    pub image: String,
    pub style: String,
    pub prompt: String,
    pub negative_prompt: String,
    /// `gemini` or `template`.
    pub prompt_source: String,
    pub strength: f64,
    pub steps: u32,
    pub guidance_scale: f64,
    pub seed: u64,
    pub attempts: u32,
    /// Milliseconds since 1970.
    pub created_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_ms: Option<u64>,
    /// The result's object in the results bucket, once done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_object: Option<String>,
    /// A signed GET URL of the result (15 minutes), where the store can sign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    /// The last attempt's error (a failed job's reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Unavailable(_) => Self::Unavailable {
                message: e.to_string(),
                retry_after: Duration::from_secs(5),
            },
            other => Self::Internal(other.to_string()),
        }
    }
}

fn queue(state: &AppState) -> Result<&StyleQueue, ApiError> {
    state.style_queue.as_ref().ok_or_else(|| ApiError::Unavailable {
        message: "style jobs need the Redis queue that the GPU worker reads: set REDIS_URL (and run gpu-job)".into(),
        retry_after: Duration::from_secs(60),
    })
}

fn accepted(job_id: String, status: String) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(Envelope {
            message: "success",
            data: StyleSubmitted { job_id, status },
            invalid_images: Vec::new(),
        }),
    )
        .into_response()
}

/// The request's numbers, within their bounds.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub strength: f64,
    pub steps: u32,
    pub guidance_scale: f64,
    pub seed: u64,
}

/// Checks the request's numbers (and fills in the defaults), naming the one out of bounds.
pub fn params(req: &StyleRequest) -> Result<Params, ApiError> {
    let strength = req.strength.unwrap_or(DEFAULT_STRENGTH);
    if !(strength > 0.0 && strength <= 1.0) {
        return Err(ApiError::InvalidRequest(format!(
            "strength {strength} is outside (0, 1]"
        )));
    }
    let steps = req.steps.unwrap_or(DEFAULT_STEPS);
    if !(1..=MAX_STEPS).contains(&steps) {
        return Err(ApiError::InvalidRequest(format!(
            "steps {steps} is outside 1..={MAX_STEPS}"
        )));
    }
    let guidance_scale = req.guidance_scale.unwrap_or(DEFAULT_GUIDANCE);
    if !(1.0..=20.0).contains(&guidance_scale) {
        return Err(ApiError::InvalidRequest(format!(
            "guidance_scale {guidance_scale} is outside 1..=20"
        )));
    }
    let seed = req.seed.unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0 >> 1);
    Ok(Params {
        strength,
        steps,
        guidance_scale,
        seed,
    })
}

/// The header and the body field may both carry the key; if both do, they must agree.
fn idempotency_key(headers: &HeaderMap, req: &StyleRequest) -> Result<Option<String>, ApiError> {
    let header = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::InvalidRequest("the Idempotency-Key header is not visible ASCII".into()))?
                .to_owned(),
        ),
        None => None,
    };
    let key = match (header, req.idempotency_key.clone()) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::InvalidRequest(
                "the Idempotency-Key header and idempotency_key differ".into(),
            ));
        }
        (h, b) => h.or(b),
    };
    match key {
        Some(k) if k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ApiError::InvalidRequest(format!(
                "the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
            )))
        }
        other => Ok(other),
    }
}

/// The photo's thumbnail for Gemini. It is decoded even without Gemini: a photo the worker
/// could not read is refused now, by name, instead of failing on the GPU minutes later. The
/// download and the decode take the process's compute slot and decode budget, as every
/// other photo does.
async fn read_thumbnail(state: &AppState, bucket: &BucketName, image: &ImageRef) -> Result<Vec<u8>, PhotoError> {
    let features = &state.features;
    let _slot = features.compute_slot().await;
    let photo = state
        .store
        .get(bucket, image.object(), state.settings.limits.max_bytes)
        .await?;
    let hash = content_hash(features.decoder(), &photo.bytes).await;
    features
        .decode_then(&hash, photo.bytes, THUMBNAIL_DECODE, |_| 0, thumbnail_png)
        .await?
        .map_err(|e| PhotoError::permanent(e.reason(), e.to_string()))
}

/// Queues a restyled copy of a photo.
#[utoipa::path(post, path = "/api/albums/style", tag = "style", request_body = StyleRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "A repeated request with the same key returns the same job; 1 to 256 visible ASCII characters, the same as idempotency_key if both are sent",
            pattern = "^[!-~]{1,256}$")),
    responses((status = 202, body = Envelope<StyleSubmitted>, description = "Queued (or the job the idempotency key names)"),
              (status = 400, body = ErrorBody, description = "Bad request, or the photo cannot be read (invalid_images)"),
              (status = 409, body = ErrorBody, description = "The idempotency key names a job of a different request (conflict)"),
              (status = 429, body = ErrorBody, description = "The queue is full; Retry-After says when to come back"),
              (status = 503, body = ErrorBody, description = "Redis or storage unavailable")))]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<StyleRequest>,
) -> ApiResult {
    let image = validate_ref("image", &req.image, &state.settings.bucket)?;
    let style = StyleChoice::parse(&req.style).map_err(ApiError::InvalidRequest)?;
    let params = params(&req)?;
    let key = idempotency_key(&headers, &req)?;
    let queue = queue(&state)?;
    let bucket = image.bucket().unwrap_or(&state.settings.bucket).clone();
    let asked = Asked {
        bucket: bucket.as_str(),
        object: image.object(),
        style: style.label(),
        params: &params,
        seed_given: req.seed.is_some(),
    };

    if let Some(key) = &key
        && let Some(existing) = queue.find_idempotent(key).await?
    {
        return same_job(queue, existing, key, &asked).await;
    }
    let style_settings = &state.settings.style;
    let depth = queue.depth().await?;
    metrics::gauge!("ongi_style_queue_depth").set(depth as f64);
    if depth >= style_settings.max_queue {
        return Err(full(depth));
    }

    let thumbnail = read_thumbnail(&state, &bucket, &image)
        .await
        .map_err(|e| unreadable(&image.to_string(), e))?;
    let prompt = state.prompt_writer.write(Some(&thumbnail), &style).await;

    let job_id = uuid::Uuid::new_v4().to_string();
    let spec = JobSpec {
        bucket: bucket.to_string(),
        object: image.object().to_owned(),
        style: style.label().to_owned(),
        prompt: prompt.positive,
        negative_prompt: prompt.negative,
        prompt_source: prompt.source.as_str().to_owned(),
        strength: params.strength,
        steps: params.steps,
        guidance_scale: params.guidance_scale,
        seed: params.seed,
    };
    match queue
        .submit(&job_id, &spec, key.as_deref(), style_settings.max_queue)
        .await?
    {
        Submitted::Queued(id) => {
            tracing::info!(job_id = %id, image = %image, style = %spec.style, prompt_source = %spec.prompt_source, "style job queued");
            Ok(accepted(id, "queued".into()))
        }
        // Another call with the same key got in first, between our look-up and the submit.
        Submitted::Existing(id) => match &key {
            Some(key) => same_job(queue, id, key, &asked).await,
            None => Err(ApiError::Internal(format!(
                "the queue named job {id} for a request without a key"
            ))),
        },
        Submitted::Full { depth } => Err(full(depth)),
    }
}

/// What a submission asks for, as compared with the job an idempotency key already names.
struct Asked<'a> {
    bucket: &'a str,
    object: &'a str,
    style: &'a str,
    params: &'a Params,
    /// A seed left out is drawn at random, so it cannot differ from the job's.
    seed_given: bool,
}

impl Asked<'_> {
    /// The first field in which `job` differs from this request, if any. The prompt is not
    /// compared: Gemini writes it, and may write it differently for the same request.
    fn differs_from(&self, job: &crate::queue::JobSpec) -> Option<String> {
        let p = self.params;
        if (job.bucket.as_str(), job.object.as_str()) != (self.bucket, self.object) {
            Some(format!("image {}/{}", job.bucket, job.object))
        } else if job.style != self.style {
            Some(format!("style {:?}", job.style.chars().take(60).collect::<String>()))
        } else if job.strength != p.strength {
            Some(format!("strength {}", job.strength))
        } else if job.steps != p.steps {
            Some(format!("steps {}", job.steps))
        } else if job.guidance_scale != p.guidance_scale {
            Some(format!("guidance_scale {}", job.guidance_scale))
        } else if self.seed_given && job.seed != p.seed {
            Some(format!("seed {}", job.seed))
        } else {
            None
        }
    }
}

/// The answer for a key that already names a job: that job (202) when this request asks for
/// the same thing, 409 `conflict` when it asks for something else; silently returning the
/// old job would hand the caller a result it did not ask for.
async fn same_job(queue: &StyleQueue, existing: String, key: &str, asked: &Asked<'_>) -> ApiResult {
    let Some(job) = queue.get(&existing).await? else {
        // The job's record has expired while its key has not: nothing left to compare.
        return Ok(accepted(existing, "queued".to_owned()));
    };
    if let Some(field) = asked.differs_from(&job.spec) {
        return Err(ApiError::Conflict(format!(
            "idempotency key {:?} was used for another request (job {existing}, {field}); send a new key for a new request",
            key.chars().take(80).collect::<String>()
        )));
    }
    Ok(accepted(existing, job.status.to_string()))
}

fn full(depth: u64) -> ApiError {
    metrics::counter!("ongi_style_jobs_rejected_total", "why" => "queue_full").increment(1);
    ApiError::TooManyRequests {
        message: format!("the style queue holds {depth} jobs, its limit; retry later"),
        retry_after: FULL_RETRY_AFTER,
    }
}

/// The photo cannot be read: a 400 naming it in `invalid_images`, or a 503 when transient.
fn unreadable(image: &str, e: PhotoError) -> ApiError {
    if e.transient {
        return ApiError::Unavailable {
            message: format!("{image}: {}; retry shortly", e.detail),
            retry_after: Duration::from_secs(5),
        };
    }
    ApiError::InvalidImages {
        message: format!("image {image:?} cannot be restyled: {}", e.detail),
        invalid: vec![InvalidImage {
            image: image.to_owned(),
            reason: e.reason,
            detail: Some(e.detail),
        }],
    }
}

/// A style job's status, prompt and, once done, its result.
#[utoipa::path(get, path = "/api/albums/style/{job_id}", tag = "style",
    params(("job_id" = String, Path, description = "The id returned by POST /api/albums/style",
            pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses((status = 200, body = Envelope<StyleJobView>),
              (status = 400, body = ErrorBody, description = "Not a job id"),
              (status = 404, body = ErrorBody, description = "No such job (or it has expired)"),
              (status = 503, body = ErrorBody)))]
pub async fn status(State(state): State<AppState>, ApiPath(job_id): ApiPath<String>) -> ApiResult {
    // Only the form the submission answers (a lowercase hyphenated UUID), as the document says.
    let id = uuid::Uuid::parse_str(&job_id)
        .ok()
        .map(|id| id.to_string())
        .filter(|id| *id == job_id)
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "{:?} is not a job id (a lowercase UUID, as POST /api/albums/style answered)",
                job_id.chars().take(64).collect::<String>()
            ))
        })?;
    let queue = queue(&state)?;
    let job = queue
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("style job {id} does not exist or has expired")))?;
    let result_url = match &job.result_object {
        Some(object) => match state
            .store
            .signed_url(&state.settings.results_bucket, object, MAX_SIGNED_URL_TTL)
            .await
        {
            Ok(url) => Some(url),
            Err(e) => {
                tracing::debug!(error = %e, "no signed URL for the result");
                None
            }
        },
        None => None,
    };
    Ok((
        StatusCode::OK,
        axum::Json(Envelope {
            message: "success",
            data: view(job, result_url),
            invalid_images: Vec::new(),
        }),
    )
        .into_response())
}

fn view(job: JobRecord, result_url: Option<String>) -> StyleJobView {
    StyleJobView {
        job_id: job.id,
        status: job.status.to_string(),
        image: job.spec.object,
        style: job.spec.style,
        prompt: job.spec.prompt,
        negative_prompt: job.spec.negative_prompt,
        prompt_source: job.spec.prompt_source,
        strength: job.spec.strength,
        steps: job.spec.steps,
        guidance_scale: job.spec.guidance_scale,
        seed: job.spec.seed,
        attempts: job.attempts,
        created_ms: job.created_ms,
        started_ms: job.started_ms,
        finished_ms: job.finished_ms,
        result_object: job.result_object,
        result_url,
        error: job.error,
    }
}
