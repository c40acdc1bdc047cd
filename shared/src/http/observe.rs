//! Per-request observability: a request id on every request and response (`x-request-id`,
//! kept when the caller sends one), a tracing span carrying it, and per-route metrics.
//!
//! Every metric label comes from a closed set, never from what a caller sends: each new label
//! value is a new series that the process keeps (and `/metrics` prints) for its whole life,
//! so a caller inventing methods or paths could otherwise grow memory without bound. Routes
//! are labelled by their template (`unmatched` for any path no route serves), methods by
//! their standard name (`other` for any other token), statuses by the code the server chose.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The longest request id a caller may send and have kept.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Whether a caller's request id is kept: 1 to [`MAX_REQUEST_ID_BYTES`] of letters, digits,
/// `.`, `_`, `:` and `-` (UUIDs, trace ids, most proxies' ids).
pub fn usable_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_BYTES).contains(&value.len())
        && value.iter().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b))
}

/// Drops a caller's `x-request-id` that is not [`usable_request_id`], so that the request-id
/// layer gives the request a fresh one: the id is echoed in the response and written on
/// every log line of the request, and a caller's 10 KB of it must not be.
pub async fn drop_unusable_request_id(mut request: Request, next: Next) -> Response {
    let usable = request
        .headers()
        .get_all(REQUEST_ID_HEADER)
        .iter()
        .all(|v| usable_request_id(v.as_bytes()));
    if !usable {
        request.headers_mut().remove(REQUEST_ID_HEADER);
    }
    next.run(request).await
}

/// The `method` label: the standard methods by name, any other token as `other`.
pub fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

/// Records `ongi_http_requests_total` and `ongi_http_request_duration_seconds`.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    // Route templates are the process's own strings (a fixed set); the raw path is not.
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::histogram!("ongi_http_request_duration_seconds", "route" => route.clone(), "method" => method)
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("ongi_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    response
}

/// The span of one request: method, route, request id (set by the request-id layer, which
/// runs before this one) and the caller's trace id, which the JSON log writer turns into
/// Cloud Logging's `logging.googleapis.com/trace` (see `telemetry`).
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
    let (trace_id, span_id) = trace_context(request.headers()).unwrap_or_default();
    tracing::info_span!("request", method = %request.method(), route = %route, request_id = %request_id,
        trace_id = %trace_id, parent_span_id = %span_id)
}

/// The trace and span ids of a request: W3C `traceparent`
/// (`00-<32 hex>-<16 hex>-<flags>`) or Google's `X-Cloud-Trace-Context`
/// (`<32 hex>/<decimal span>;o=1`, which Cloud Run's front end adds). Anything malformed is
/// ignored: a bad header must not cost the request.
pub fn trace_context(headers: &http::HeaderMap) -> Option<(String, String)> {
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit()) && s.bytes().any(|b| b != b'0')
    };
    if let Some(v) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        let parts: Vec<&str> = v.trim().split('-').collect();
        if let [_, trace, span, _] = parts.as_slice()
            && hex(trace, 32)
            && hex(span, 16)
        {
            return Some((trace.to_ascii_lowercase(), span.to_ascii_lowercase()));
        }
    }
    let v = headers.get("x-cloud-trace-context").and_then(|v| v.to_str().ok())?;
    let (trace, rest) = v.trim().split_once('/').unwrap_or((v.trim(), ""));
    let span = rest.split(';').next().unwrap_or("");
    if !hex(trace, 32) {
        return None;
    }
    let span = span.parse::<u64>().map(|s| format!("{s:016x}")).unwrap_or_default();
    Some((trace.to_ascii_lowercase(), span))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn methods_outside_the_standard_set_share_one_label() {
        assert_eq!(method_label(&http::Method::GET), "GET");
        assert_eq!(method_label(&http::Method::PATCH), "PATCH");
        for made_up in ["QXZRTPLA", "get", "PROPFIND", "X"] {
            let m = http::Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&m), "other", "{made_up}");
        }
    }

    #[test]
    fn trace_ids_come_from_either_header_and_junk_is_ignored() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            trace_context(&headers("traceparent", &format!("00-{t}-00f067aa0ba902b7-01"))),
            Some((t.to_owned(), "00f067aa0ba902b7".to_owned()))
        );
        assert_eq!(
            trace_context(&headers("x-cloud-trace-context", &format!("{t}/1;o=1"))),
            Some((t.to_owned(), "0000000000000001".to_owned()))
        );
        assert_eq!(
            trace_context(&headers("x-cloud-trace-context", t)).map(|p| p.0),
            Some(t.to_owned())
        );
        for junk in [
            "00-xyz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(trace_context(&headers("traceparent", junk)), None, "{junk}");
        }
        assert_eq!(trace_context(&headers("x-cloud-trace-context", "short/1")), None);
        assert_eq!(trace_context(&http::HeaderMap::new()), None);
    }
}
