//! JSON bodies whose rejections speak the envelope: axum's own rejections are plain text
//! with a 415 or 422, which the app backend cannot parse.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use http::StatusCode;
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
