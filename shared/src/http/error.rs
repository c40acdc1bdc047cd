//! The one place where request errors become status codes and envelopes.
//!
//! Clients get the envelope's `message` and a sentence in `error`; the logs get the cause
//! chain. Internal errors never leak their detail to the client.

use std::time::Duration;

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong: malformed JSON, a bad reference, too many images.
    #[error("{0}")]
    InvalidRequest(String),
    /// The body is over the JSON limit.
    #[error("the request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The body did not arrive in time.
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    RequestTimeout(Duration),
    /// Load is being shed or a dependency is down; the client may retry after a while.
    #[error("{message}")]
    Unavailable { message: String, retry_after: Duration },
    /// A queue is full: the client should come back after `retry_after`.
    #[error("{message}")]
    TooManyRequests { message: String, retry_after: Duration },
    /// The request is well formed but its photo cannot be used; the body names it in
    /// `invalid_images`, as the album routes do.
    #[error("{message}")]
    InvalidImages {
        message: String,
        invalid: Vec<super::envelope::InvalidImage>,
    },
    /// No valid bearer token (only where `ONGI_API_TOKEN` is set).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The thing named in the path does not exist (or has expired), or no route serves the path.
    #[error("{0}")]
    NotFound(String),
    /// The path is served, but not with this method; `allow` lists the methods it takes
    /// (also sent as the `Allow` header).
    #[error("{method} is not allowed on {path}; it takes {allow}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
    /// The request contradicts an earlier one, such as an idempotency key reused for a
    /// different request.
    #[error("{0}")]
    Conflict(String),
    /// A bug or an unexpected failure: logged with its cause, opaque to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::events::publish::PublishError> for ApiError {
    /// Pub/Sub unavailable: retry later (an event route's delivery is redelivered).
    fn from(e: crate::events::publish::PublishError) -> Self {
        Self::Unavailable {
            message: e.to_string(),
            retry_after: Duration::from_secs(10),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `invalid_request`, `unauthorized`, `not_found`, `method_not_allowed`, `conflict`,
    /// `too_many_requests`, `service_unavailable` or `internal_server_error`.
    pub message: &'static str,
    /// Always `null` on errors.
    #[schema(value_type = Option<Object>)]
    pub data: Option<()>,
    /// What went wrong, in a sentence.
    pub error: String,
    /// The photos that could not be used, when that is what went wrong.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_images: Vec<super::envelope::InvalidImage>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidRequest(_) | Self::InvalidImages { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn message(&self) -> &'static str {
        match self {
            Self::InvalidRequest(_)
            | Self::InvalidImages { .. }
            | Self::PayloadTooLarge(_)
            | Self::RequestTimeout(_) => "invalid_request",
            Self::Unavailable { .. } => "service_unavailable",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Conflict(_) => "conflict",
            Self::Unauthorized(_) => "unauthorized",
            Self::Internal(_) => "internal_server_error",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let error = match &self {
            Self::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                "an internal error occurred; it has been logged".to_owned()
            }
            other => other.to_string(),
        };
        let invalid_images = match &self {
            Self::InvalidImages { invalid, .. } => invalid.clone(),
            _ => Vec::new(),
        };
        let mut response = (
            status,
            Json(ErrorBody {
                message: self.message(),
                data: None,
                error,
                invalid_images,
            }),
        )
            .into_response();
        if let Self::Unavailable { retry_after, .. } | Self::TooManyRequests { retry_after, .. } = &self
            && let Ok(v) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if let Self::MethodNotAllowed { allow, .. } = &self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            response.headers_mut().insert(header::ALLOW, v);
        }
        if let Self::Unauthorized(_) = &self {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
