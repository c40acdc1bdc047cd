//! JSON bodies, query strings and path parameters whose rejections speak the envelope:
//! axum's own rejections are plain text with a 400, 415 or 422, which the app backend
//! cannot parse.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::StatusCode;
use http::request::Parts;
use serde::Deserializer;
use serde::de::DeserializeOwned;

use super::MAX_BODY_BYTES;
use super::error::ApiError;

pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(reject(rejection)),
        }
    }
}

fn reject(rejection: JsonRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::PayloadTooLarge(MAX_BODY_BYTES);
    }
    let why = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON with Content-Type: application/json".to_owned()
        }
        JsonRejection::JsonSyntaxError(e) => format!("the body is not valid JSON: {}", e.body_text()),
        JsonRejection::JsonDataError(e) => format!("the body does not match the request schema: {}", e.body_text()),
        other => format!("the body could not be read: {}", other.body_text()),
    };
    ApiError::InvalidRequest(why)
}

/// A query string; a malformed one is a 400 `invalid_request` naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::InvalidRequest(format!(
                "the query string is not valid: {}",
                rejection
                    .body_text()
                    .trim_start_matches("Failed to deserialize query string: ")
            ))),
        }
    }
}

/// Path parameters; one that cannot be read (bad percent-encoding, not UTF-8) is a 400
/// `invalid_request`.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::InvalidRequest(format!(
                "the path is not valid: {}",
                rejection.body_text()
            ))),
        }
    }
}

/// A flag in a query string: `true`, `false`, `1` or `0`, and nothing else (a typo must not
/// silently mean `false`).
pub fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let text = <std::borrow::Cow<'de, str> as serde::Deserialize>::deserialize(deserializer)?;
    match text.as_ref() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "expected true, false, 1 or 0, got {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}
