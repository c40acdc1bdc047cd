//! Logs and metrics, set up once per process.
//!
//! - Logs: JSON in Cloud Logging's format (`tracing-stackdriver`) when `ONGI_LOG_FORMAT=json`
//!   (the default on Cloud Run), readable text otherwise. `RUST_LOG` filters (default `info`).
//! - Metrics: one Prometheus recorder per process, rendered by `GET /metrics`. Histogram
//!   buckets are set here, by name suffix, so every `_seconds` metric shares them.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber. A second call (tests build many apps) is a no-op.
pub fn init_logging(format: LogFormat) {
    init_logging_for(format, None);
}

/// As [`init_logging`]; with JSON logs and a project, every entry logged inside a request
/// that carried a trace id gets Cloud Logging's `logging.googleapis.com/trace`
/// (`projects/P/traces/T`) and `spanId`, so the request's logs group under its trace.
pub fn init_logging_for(format: LogFormat, trace_project: Option<String>) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match format {
        LogFormat::Json => registry
            .with(tracing_stackdriver::layer().with_writer(TraceLines { project: trace_project }))
            .try_init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    .compact(),
            )
            .try_init(),
    };
}

/// Writes each JSON log entry to stdout, first lifting the request span's `trace_id` to the
/// entry's top level as Cloud Logging wants it. Why by hand: tracing-stackdriver sets that
/// field only through its `opentelemetry` feature, which pins opentelemetry 0.22 and a whole
/// tracing pipeline for what is one field of one span.
#[derive(Clone)]
struct TraceLines {
    project: Option<String>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for TraceLines {
    type Writer = TraceLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        TraceLine {
            project: self.project.as_deref(),
            buffer: Vec::new(),
        }
    }
}

/// One entry: buffered while the formatter writes it, rewritten and printed on drop.
struct TraceLine<'a> {
    project: Option<&'a str>,
    buffer: Vec<u8>,
}

impl std::io::Write for TraceLine<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for TraceLine<'_> {
    fn drop(&mut self) {
        use std::io::Write;
        let line = match self.project {
            Some(project) => hoist_trace(&self.buffer, project),
            None => None,
        };
        let mut out = std::io::stdout().lock();
        let _ = match line {
            Some(l) => out.write_all(l.as_bytes()),
            None => out.write_all(&self.buffer),
        };
    }
}

/// The entry with `logging.googleapis.com/trace` (and `spanId`) added from the innermost
/// span that has a `trace_id`; `None` when there is none (the entry is written as it is).
fn hoist_trace(entry: &[u8], project: &str) -> Option<String> {
    let mut value: serde_json::Value = serde_json::from_slice(entry).ok()?;
    let spans = value.get("spans")?.as_array()?;
    let field = |span: &serde_json::Value, names: [&str; 2]| {
        names
            .iter()
            .find_map(|n| span.get(*n).and_then(|v| v.as_str()))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let (trace, span_id) = spans
        .iter()
        .rev()
        .find_map(|s| field(s, ["trace_id", "traceId"]).map(|t| (t, field(s, ["parent_span_id", "parentSpanId"]))))?;
    let map = value.as_object_mut()?;
    map.insert(
        "logging.googleapis.com/trace".into(),
        format!("projects/{project}/traces/{trace}").into(),
    );
    if let Some(span_id) = span_id {
        map.insert("logging.googleapis.com/spanId".into(), span_id.into());
    }
    let mut line = serde_json::to_string(&value).ok()?;
    line.push('\n');
    Some(line)
}

/// Seconds: from 1 ms to 2 min, roughly ×2.5 per step.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Counts (batch sizes, photos per album): powers of two.
const COUNT_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// The process's Prometheus handle, installing the recorder on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_images".into()), COUNT_BUCKETS))
                .expect("the bucket lists are non-empty constants; this is a bug");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); ours still renders
            // what is recorded through it, so this is not fatal.
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics may be empty");
            }
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_spans_trace_id_becomes_cloud_loggings_trace() {
        let entry = br#"{"severity":"INFO","message":"x","spans":[{"name":"request","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","parent_span_id":"00f067aa0ba902b7"},{"name":"inner"}]}"#;
        let line = hoist_trace(entry, "p").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(
            v["logging.googleapis.com/trace"],
            "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(v["logging.googleapis.com/spanId"], "00f067aa0ba902b7");
        assert_eq!(v["message"], "x");
        assert!(line.ends_with('\n'));
        // No trace (or an empty one): the entry stays as it was.
        assert!(hoist_trace(br#"{"spans":[{"trace_id":""}]}"#, "p").is_none());
        assert!(hoist_trace(b"not json", "p").is_none());
    }
}
