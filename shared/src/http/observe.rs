//! Per-request observability: a request id on every request and response (`x-request-id`,
//! kept when the caller sends one), a tracing span carrying it, and per-route metrics
//! labelled by the route template (never by the raw path, which would hold image names).

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// Records `ongi_http_requests_total` and `ongi_http_request_duration_seconds`.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("ongi_http_request_duration_seconds", "route" => route.clone(), "method" => method.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("ongi_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// The span of one request: method, route and request id (set by the request-id layer,
/// which runs before this one).
pub fn make_span(request: &http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| request.uri().path(), |p| p.as_str());
    tracing::info_span!("request", method = %request.method(), route = %route, request_id = %request_id)
}
