//! `POST /batch/reprocess` (flow D), called by Cloud Scheduler (OIDC; on Cloud Run IAM
//! checks the caller before the request reaches this process). The walk is
//! [`Reprocessor`](crate::reprocess::Reprocessor); this route validates the body and
//! turns the outcome into an answer.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::error::{ApiError, ErrorBody};
use crate::http::extract::ApiJson;
use crate::http::state::AppState;
use crate::reprocess::{RawRequest, ReprocessError, ReprocessReport, RequestError};

/// The body of `POST /batch/reprocess`. Unknown fields are refused.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReprocessBody {
    /// The photos bucket; must be the one this process serves (`ONGI_BUCKET`).
    pub bucket: String,
    /// Only objects whose names start with this; `""` for the whole bucket. The rules of an
    /// object name's beginning: no empty, `.` or `..` segment, no leading `/`, no backslash,
    /// no control character, at most 1024 bytes.
    #[schema(
        max_length = 1024,
        pattern = r"^(?:(?:[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.\.[^/\\\u0000-\u001f\u007f-\u009f]+)(?:/(?:[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.[^/\\\u0000-\u001f\u007f-\u009f.][^/\\\u0000-\u001f\u007f-\u009f]*|\.\.[^/\\\u0000-\u001f\u007f-\u009f]+))*/?)?$"
    )]
    pub prefix: String,
    /// Only objects updated at or after this RFC 3339 time, e.g. `2026-11-25T00:00:00Z`.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub since: Option<String>,
    /// Any of `embedding`, `category`, `quality`, `score`; default: every one this process
    /// serves and has the models for.
    #[serde(default)]
    #[schema(value_type = Option<Vec<StepName>>, min_items = 1)]
    pub steps: Option<Vec<String>>,
    /// Count what would be processed; process nothing and leave the cursor where it is.
    #[serde(default)]
    pub dry_run: bool,
    /// Seconds after which no new photo is started (default `ONGI_REPROCESS_BUDGET_SECS`, 50; at most 3600).
    #[serde(default)]
    #[schema(exclusive_minimum = 0.0, maximum = 3600.0)]
    pub budget_secs: Option<f64>,
    /// Objects per listed page, 1–1000 (default 1000).
    #[serde(default, deserialize_with = "crate::http::extract::optional_integer")]
    #[schema(minimum = 1, maximum = 1000)]
    pub page_size: Option<u32>,
    /// Stop after this many pages (the next call resumes).
    #[serde(default, deserialize_with = "crate::http::extract::optional_integer")]
    #[schema(minimum = 1, maximum = 4294967295_u64, format = Int64)]
    pub max_pages: Option<u32>,
}

/// A step's name, as the document states [`Step::parse`](crate::reprocess::Step)'s.
#[derive(ToSchema)]
#[allow(dead_code)] // only names the schema: the handler reads the names as strings
#[schema(rename_all = "lowercase")]
pub(crate) enum StepName {
    Embedding,
    Category,
    Quality,
    Score,
}

/// `{"message": "success", "data": <report>}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReprocessAnswer {
    pub message: &'static str,
    pub data: ReprocessReport,
}

impl From<RequestError> for ApiError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(why) => ApiError::InvalidRequest(why),
            RequestError::Unavailable(why) => ApiError::Unavailable {
                message: why,
                retry_after: Duration::from_secs(60),
            },
        }
    }
}

impl From<ReprocessError> for ApiError {
    fn from(e: ReprocessError) -> Self {
        match &e {
            ReprocessError::Busy { retry_after, .. } => ApiError::TooManyRequests {
                message: e.to_string(),
                retry_after: *retry_after,
            },
            ReprocessError::NoBucket(_) => ApiError::NotFound(e.to_string()),
            ReprocessError::Cache(_) => ApiError::Unavailable {
                message: e.to_string(),
                retry_after: Duration::from_secs(10),
            },
            ReprocessError::Stopped { .. } => ApiError::Unavailable {
                message: e.to_string(),
                retry_after: Duration::from_secs(30),
            },
        }
    }
}

/// Walks the bucket from the run's cursor, skipping current photos and processing the rest,
/// until the end, the time budget or the page limit. 200 with the counts (`complete: false`
/// and the cursor when cut off: call again to resume); 400 naming a bad field; 429 while
/// another call walks the same run; 503 when a dependency failed (the cursor is kept).
#[utoipa::path(post, path = "/batch/reprocess", tag = "batch", request_body = ReprocessBody,
    responses((status = 200, body = ReprocessAnswer), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody, description = "The bucket does not exist"),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn reprocess(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReprocessBody>,
) -> Result<Response, ApiError> {
    let request = RawRequest {
        bucket: &body.bucket,
        prefix: &body.prefix,
        since: body.since.as_deref(),
        steps: body.steps.as_deref(),
        dry_run: body.dry_run,
        budget_secs: body.budget_secs,
        page_size: body.page_size,
        max_pages: body.max_pages,
    }
    .validate(
        &state.settings.bucket,
        &state.functions,
        &state.models,
        state.settings.reprocess.budget,
    )?;
    let reprocessor = state.reprocessor();
    // Its own task: a caller that gives up (a scheduler deadline) must not cancel the walk
    // between a photo and its cursor; the budget bounds it anyway.
    let report = tokio::spawn(async move { reprocessor.run(&request, None).await })
        .await
        .map_err(|e| ApiError::Internal(format!("the reprocessing task failed: {e}")))??;
    Ok((
        StatusCode::OK,
        Json(ReprocessAnswer {
            message: "success",
            data: report,
        }),
    )
        .into_response())
}
