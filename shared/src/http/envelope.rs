//! The response envelope of every album route (docs/api.md):
//! `{"message": "success", "data": …}` plus optional fields beside them, such as
//! `invalid_images` for photos that could not be read.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

pub use crate::album::InvalidImage;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T: Serialize> {
    pub message: &'static str,
    pub data: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_images: Vec<InvalidImage>,
}

/// A 201 `success` answer.
pub fn success<T: Serialize>(data: T, invalid_images: Vec<InvalidImage>) -> Response {
    (
        StatusCode::CREATED,
        Json(Envelope {
            message: "success",
            data,
            invalid_images,
        }),
    )
        .into_response()
}
