//! Bearer-token authentication for a process exposed beyond loopback without IAM in front
//! (`ongi serve --host 0.0.0.0`). With `ONGI_API_TOKEN` set, every route but `/healthz`
//! (liveness probes carry no credentials) needs `Authorization: Bearer <token>`; on Cloud Run
//! the setting is absent and IAM authenticates the callers.

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::config::Secret;

pub async fn require_bearer(State(token): State<Secret>, request: Request, next: Next) -> Response {
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.trim().as_bytes(), token.expose().as_bytes()) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the bearer token is not the one this server expects").into_response(),
        None => ApiError::Unauthorized("this server needs Authorization: Bearer <ONGI_API_TOKEN>").into_response(),
    }
}

/// Compares in time independent of where the bytes differ, so the token cannot be guessed
/// byte by byte from response times. (Five lines; not worth a crate.)
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn comparison_is_exact() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
    }
}
