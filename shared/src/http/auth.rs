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
        .and_then(bearer_token);
    match given {
        Some(t) if same(t.trim().as_bytes(), token.expose().as_bytes()) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("the bearer token is not the one this server expects").into_response(),
        None => ApiError::Unauthorized("this server needs Authorization: Bearer <ONGI_API_TOKEN>").into_response(),
    }
}

/// The token of `Bearer <token>`. The scheme is case-insensitive (RFC 9110 §11.1), so
/// `bearer` and `BEARER` are the same scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token)
}

/// Compares the SHA-256 digests of the two, in time independent of where they differ: the
/// digests have one length whatever the token's, so neither the position of the first
/// wrong byte nor the token's length shows in response times. (A few lines; not worth a
/// crate.)
fn same(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_scheme_is_case_insensitive_and_required() {
        for ok in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR t0k"] {
            assert_eq!(super::bearer_token(ok), Some("t0k"), "{ok}");
        }
        for bad in ["Basic t0k", "Bearert0k", "t0k", "", "Bearer"] {
            assert_eq!(super::bearer_token(bad), None, "{bad}");
        }
    }

    #[test]
    fn comparison_is_exact() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
        assert!(!super::same(b"", b"abc"));
        assert!(super::same(b"", b""));
    }
}
