//! Settings, read once from the environment at start-up (DESIGN.md "Settings").
//!
//! Every setting has an embedded default that works on a laptop (`ongi serve` needs none).
//! A setting that is present but malformed stops the process with one line naming it:
//! a typo in `REDIS_URL` must not silently fall back to the in-process cache.
//! Parsing takes a lookup function rather than reading `std::env` directly, so tests
//! never mutate the process environment.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::analysis::AnalysisSettings;
use crate::analysis::quality::QualityThresholds;
use crate::domain::BucketName;

/// One malformed or missing setting. `Display` is the one line printed at start-up.
#[derive(Debug, thiserror::Error)]
#[error("setting {name} {problem}")]
pub struct SettingsError {
    pub name: &'static str,
    pub problem: String,
}

impl SettingsError {
    fn malformed(name: &'static str, value: &str, expected: &str) -> Self {
        let shown: String = value.chars().take(80).collect();
        Self {
            name,
            problem: format!("is malformed: {shown:?} (expected {expected})"),
        }
    }

    fn missing(name: &'static str, why: &str) -> Self {
        Self {
            name,
            problem: format!("is missing: {why}"),
        }
    }
}

/// A secret string whose `Debug` never shows the value, so `Settings` can be logged whole.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line in Cloud Logging's format (Cloud Run).
    Json,
    /// Readable lines for a terminal.
    Text,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaceDetector {
    Yunet,
    Mtcnn,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageBackend {
    /// `$ONGI_DATA_DIR/<bucket>/<object>`, as fake-gcs-server lays buckets out.
    Local,
    /// Google Cloud Storage (or its emulator when `STORAGE_EMULATOR_HOST` is set).
    Gcs,
}

/// Limits checked on every photo before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GeminiSettings {
    pub api_key: Option<Secret>,
    pub endpoint: String,
    pub model: String,
}

/// The style queue and its worker (flow C).
#[derive(Debug, Clone, PartialEq)]
pub struct StyleSettings {
    /// `ONGI_STYLE_MAX_QUEUE` (50): jobs queued or running beyond which a submission gets 429.
    pub max_queue: u64,
    /// `ONGI_STYLE_MAX_ATTEMPTS` (3): failed or abandoned attempts before the dead-letter stream.
    pub max_attempts: u32,
    /// `ONGI_STYLE_RECLAIM_SECS` (120): a claimed job without a heartbeat for this long is
    /// taken over by another worker (its worker is presumed dead).
    pub reclaim_after: Duration,
    /// `ONGI_STYLE_JOB_TTL_SECS` (7 days): how long a finished job (and its idempotency key) is kept.
    pub job_ttl: Duration,
    /// `ONGI_STYLE_DEVICE`: `auto` (CUDA when built with it and a GPU answers), `cpu` or `cuda`.
    pub device: StyleDevice,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StyleDevice {
    Auto,
    Cpu,
    Cuda,
}

impl Default for StyleSettings {
    fn default() -> Self {
        Self {
            max_queue: 50,
            max_attempts: 3,
            reclaim_after: Duration::from_secs(120),
            job_ttl: Duration::from_secs(7 * 24 * 3600),
            device: StyleDevice::Auto,
        }
    }
}

/// Batch reprocessing (`POST /batch/reprocess`, `ongi reprocess`; flow D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReprocessSettings {
    /// `ONGI_REPROCESS_BUDGET_SECS` (50): a call stops starting photos after this long and
    /// saves its cursor, inside Cloud Scheduler's and Cloud Run's deadlines.
    pub budget: Duration,
    /// `ONGI_REPROCESS_CONCURRENCY` (8): photos processed at once by one call.
    pub concurrency: usize,
}

impl Default for ReprocessSettings {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(50),
            concurrency: 8,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT` (Cloud Run sets it), default 8080.
    pub port: u16,
    /// `ONGI_HOST`: the address to bind, default 0.0.0.0 (a container); `ongi serve` defaults to loopback.
    pub host: IpAddr,
    /// `ONGI_MODEL_DIR`, default `./models`.
    pub model_dir: PathBuf,
    /// `ORT_DYLIB_PATH`: the ONNX Runtime shared library.
    pub ort_dylib_path: Option<PathBuf>,
    /// `REDIS_URL`: the shared feature cache and the style queue; in-process when absent.
    pub redis_url: Option<String>,
    /// `ONGI_CACHE_TTL_SECS`, default 30 days.
    pub cache_ttl: Duration,
    /// `ONGI_CACHE_PREFIX`: prepended to every Redis key (tests use one per test).
    pub cache_prefix: String,
    /// `ONGI_STORAGE`: `local` or `gcs`; default `gcs` when `STORAGE_EMULATOR_HOST` is set, else `local`.
    pub storage: StorageBackend,
    /// `ONGI_BUCKET`, default `uploads`.
    pub bucket: BucketName,
    /// `ONGI_RESULTS_BUCKET`, default `results`.
    pub results_bucket: BucketName,
    /// `ONGI_DATA_DIR`, default `./data`: the local buckets.
    pub data_dir: PathBuf,
    /// `STORAGE_EMULATOR_HOST`, e.g. `http://127.0.0.1:4443`.
    pub storage_emulator_host: Option<String>,
    /// `PUBSUB_EMULATOR_HOST`, e.g. `127.0.0.1:8085`.
    pub pubsub_emulator_host: Option<String>,
    /// `GOOGLE_CLOUD_PROJECT`.
    pub google_cloud_project: Option<String>,
    /// `ONGI_FEATURES_TOPIC`, default `ongi-features`: published once a photo's features are cached.
    pub features_topic: String,
    /// `ONGI_RESULTS_TOPIC`, default `ongi-results`: per-photo results of the analyses.
    pub results_topic: String,
    /// Whether to publish to Pub/Sub. `ONGI_PUBLISH` (`true`/`false`); by default on Cloud Run
    /// (`K_SERVICE`) or with `PUBSUB_EMULATOR_HOST` (the GPU worker's VM sets it explicitly).
    pub publish: bool,
    /// `EMBEDDING_URL`: where the non-embedding functions compute missing features on Cloud Run.
    pub embedding_url: Option<String>,
    pub gemini: GeminiSettings,
    /// `ONGI_API_TOKEN`: when set, every route but `/healthz` needs `Authorization: Bearer
    /// <token>`. `ongi serve` bound beyond loopback refuses to start without it (on Cloud
    /// Run, IAM authenticates the callers instead).
    pub api_token: Option<Secret>,
    /// `ONGI_MAX_IN_FLIGHT` (64): requests to the API, event and batch routes handled at
    /// once; one more is shed at once with 503 and `Retry-After` instead of queueing without
    /// bound (Cloud Run's own concurrency setting does this in front of a function).
    pub max_in_flight: usize,
    /// `ONGI_FACE_DETECTOR`: `yunet` (default) or `mtcnn`.
    pub face_detector: FaceDetector,
    /// `ONGI_LOG_FORMAT`: `json` or `text`; default `json` on Cloud Run (`K_SERVICE` set), else `text`.
    pub log_format: LogFormat,
    /// `K_SERVICE` is set: running on Cloud Run, where a missing model is a deployment error.
    pub on_cloud_run: bool,
    /// Thresholds of the analyses: `ONGI_CATEGORY_FLOOR` (0.2), `ONGI_DUPLICATE_COSINE` (0.95),
    /// `ONGI_QUALITY_BLUR` (80), `ONGI_QUALITY_DARK_FRACTION` (0.5), `ONGI_QUALITY_BRIGHT_FRACTION`
    /// (0.4), `ONGI_QUALITY_CLIP_PROBABILITY` (0.1; 0 turns the CLIP tests off), `ONGI_HIGHLIGHTS` (3).
    pub analysis: AnalysisSettings,
    /// `ONGI_MAX_IMAGE_BYTES` (default 50 MiB) and `ONGI_MAX_IMAGE_PIXELS` (default 100 MP).
    pub limits: IngestLimits,
    pub style: StyleSettings,
    pub reprocess: ReprocessSettings,
}

impl Settings {
    /// Reads the process environment. The only place that does.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Settings with every default, as `ongi serve` gets on a fresh machine.
    pub fn defaults() -> Self {
        Self::from_lookup(|_| None).expect("the embedded defaults are valid; this is a bug")
    }

    /// Parses settings from any lookup (the environment, or a map in tests).
    /// An empty value counts as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let port = parse_or(&get, "PORT", 8080u16, "a TCP port number, 0-65535")?;
        let host = parse_or(
            &get,
            "ONGI_HOST",
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "an IP address such as 0.0.0.0 or 127.0.0.1",
        )?;
        let model_dir = get("ONGI_MODEL_DIR").map_or_else(|| PathBuf::from("models"), PathBuf::from);
        let ort_dylib_path = get("ORT_DYLIB_PATH").map(PathBuf::from);

        let redis_url = match get("REDIS_URL") {
            Some(url) => {
                if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) {
                    return Err(SettingsError::malformed(
                        "REDIS_URL",
                        &url,
                        "redis://host:port[/db] or rediss://…",
                    ));
                }
                redis::Client::open(url.as_str())
                    .map_err(|e| SettingsError::malformed("REDIS_URL", &url, &format!("a Redis URL ({e})")))?;
                Some(url)
            }
            None => None,
        };
        let cache_ttl = Duration::from_secs(parse_or(
            &get,
            "ONGI_CACHE_TTL_SECS",
            30 * 24 * 3600u64,
            "a number of seconds",
        )?);
        if cache_ttl.is_zero() {
            return Err(SettingsError::malformed(
                "ONGI_CACHE_TTL_SECS",
                "0",
                "at least 1 second",
            ));
        }
        let cache_prefix = get("ONGI_CACHE_PREFIX").unwrap_or_else(|| "ongi:".to_owned());

        let storage_emulator_host = match get("STORAGE_EMULATOR_HOST") {
            Some(h) => Some(parse_http_base("STORAGE_EMULATOR_HOST", &h)?),
            None => None,
        };
        let storage = match get("ONGI_STORAGE").as_deref() {
            None if storage_emulator_host.is_some() => StorageBackend::Gcs,
            None => StorageBackend::Local,
            Some("local") => StorageBackend::Local,
            Some("gcs") => StorageBackend::Gcs,
            Some(other) => return Err(SettingsError::malformed("ONGI_STORAGE", other, "local or gcs")),
        };
        let bucket = parse_bucket(&get, "ONGI_BUCKET", "uploads")?;
        let results_bucket = parse_bucket(&get, "ONGI_RESULTS_BUCKET", "results")?;
        let data_dir = get("ONGI_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from);

        let pubsub_emulator_host = get("PUBSUB_EMULATOR_HOST");
        if let Some(h) = &pubsub_emulator_host
            && !h.contains(':')
        {
            return Err(SettingsError::malformed("PUBSUB_EMULATOR_HOST", h, "host:port"));
        }
        let google_cloud_project = get("GOOGLE_CLOUD_PROJECT");
        let features_topic = get("ONGI_FEATURES_TOPIC").unwrap_or_else(|| "ongi-features".to_owned());
        if !features_topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
        {
            return Err(SettingsError::malformed(
                "ONGI_FEATURES_TOPIC",
                &features_topic,
                "a Pub/Sub topic id",
            ));
        }
        let results_topic = get("ONGI_RESULTS_TOPIC").unwrap_or_else(|| "ongi-results".to_owned());
        if !results_topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
        {
            return Err(SettingsError::malformed(
                "ONGI_RESULTS_TOPIC",
                &results_topic,
                "a Pub/Sub topic id",
            ));
        }
        let publish = match get("ONGI_PUBLISH").as_deref() {
            None => pubsub_emulator_host.is_some() || get("K_SERVICE").is_some(),
            Some("true") => true,
            Some("false") => false,
            Some(other) => return Err(SettingsError::malformed("ONGI_PUBLISH", other, "true or false")),
        };
        if publish && google_cloud_project.is_none() {
            return Err(SettingsError::missing(
                "GOOGLE_CLOUD_PROJECT",
                "publishing to Pub/Sub (Cloud Run or PUBSUB_EMULATOR_HOST) needs the project",
            ));
        }
        let embedding_url = match get("EMBEDDING_URL") {
            Some(u) => Some(parse_http_base("EMBEDDING_URL", &u)?),
            None => None,
        };

        let gemini = GeminiSettings {
            api_key: get("GEMINI_API_KEY").map(Secret),
            endpoint: match get("GEMINI_ENDPOINT") {
                Some(u) => parse_http_base("GEMINI_ENDPOINT", &u)?,
                None => "https://generativelanguage.googleapis.com".to_owned(),
            },
            model: get("GEMINI_MODEL").unwrap_or_else(|| "gemini-2.5-flash".to_owned()),
        };
        let api_token = match get("ONGI_API_TOKEN") {
            Some(t) if t.trim().len() < 16 => {
                return Err(SettingsError::malformed(
                    "ONGI_API_TOKEN",
                    "[redacted]",
                    "a secret of at least 16 characters",
                ));
            }
            Some(t) => Some(Secret(t.trim().to_owned())),
            None => None,
        };
        let max_in_flight = parse_or(&get, "ONGI_MAX_IN_FLIGHT", 64usize, "a number of requests, at least 1")?;
        if max_in_flight == 0 {
            return Err(SettingsError::malformed(
                "ONGI_MAX_IN_FLIGHT",
                "0",
                "a number of requests, at least 1",
            ));
        }
        let face_detector = match get("ONGI_FACE_DETECTOR").as_deref() {
            None | Some("yunet") => FaceDetector::Yunet,
            Some("mtcnn") => FaceDetector::Mtcnn,
            Some(other) => return Err(SettingsError::malformed("ONGI_FACE_DETECTOR", other, "yunet or mtcnn")),
        };
        let on_cloud_run = get("K_SERVICE").is_some();
        let log_format = match get("ONGI_LOG_FORMAT").as_deref() {
            None if on_cloud_run => LogFormat::Json,
            None => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(other) => return Err(SettingsError::malformed("ONGI_LOG_FORMAT", other, "json or text")),
        };
        let defaults = IngestLimits::default();
        let limits = IngestLimits {
            max_bytes: parse_or(&get, "ONGI_MAX_IMAGE_BYTES", defaults.max_bytes, "a number of bytes")?,
            max_pixels: parse_or(&get, "ONGI_MAX_IMAGE_PIXELS", defaults.max_pixels, "a number of pixels")?,
        };
        if limits.max_bytes == 0 || limits.max_pixels == 0 {
            return Err(SettingsError::malformed(
                "ONGI_MAX_IMAGE_BYTES/ONGI_MAX_IMAGE_PIXELS",
                "0",
                "a positive limit",
            ));
        }
        let d = AnalysisSettings::default();
        let fraction = "a number between 0 and 1";
        let analysis = AnalysisSettings {
            category_floor: parse_or(
                &get,
                "ONGI_CATEGORY_FLOOR",
                d.category_floor,
                "a cosine between -1 and 1",
            )?,
            similar_cosine: parse_or(
                &get,
                "ONGI_DUPLICATE_COSINE",
                d.similar_cosine,
                "a cosine (above 1 turns the tier off)",
            )?,
            quality: QualityThresholds {
                blur_variance: parse_or(
                    &get,
                    "ONGI_QUALITY_BLUR",
                    d.quality.blur_variance,
                    "a Laplacian variance",
                )?,
                dark_fraction: parse_or(&get, "ONGI_QUALITY_DARK_FRACTION", d.quality.dark_fraction, fraction)?,
                bright_fraction: parse_or(
                    &get,
                    "ONGI_QUALITY_BRIGHT_FRACTION",
                    d.quality.bright_fraction,
                    fraction,
                )?,
                clip_probability: parse_or(
                    &get,
                    "ONGI_QUALITY_CLIP_PROBABILITY",
                    d.quality.clip_probability,
                    fraction,
                )?,
            },
            highlights: parse_or(&get, "ONGI_HIGHLIGHTS", d.highlights, "a count")?,
        };
        let ds = StyleSettings::default();
        let style = StyleSettings {
            max_queue: parse_or(&get, "ONGI_STYLE_MAX_QUEUE", ds.max_queue, "a number of jobs")?,
            max_attempts: parse_or(&get, "ONGI_STYLE_MAX_ATTEMPTS", ds.max_attempts, "a number of attempts")?,
            reclaim_after: Duration::from_secs(parse_or(
                &get,
                "ONGI_STYLE_RECLAIM_SECS",
                ds.reclaim_after.as_secs(),
                "a number of seconds",
            )?),
            job_ttl: Duration::from_secs(parse_or(
                &get,
                "ONGI_STYLE_JOB_TTL_SECS",
                ds.job_ttl.as_secs(),
                "a number of seconds",
            )?),
            device: match get("ONGI_STYLE_DEVICE").as_deref() {
                None | Some("auto") => StyleDevice::Auto,
                Some("cpu") => StyleDevice::Cpu,
                Some("cuda") => StyleDevice::Cuda,
                Some(other) => {
                    return Err(SettingsError::malformed(
                        "ONGI_STYLE_DEVICE",
                        other,
                        "auto, cpu or cuda",
                    ));
                }
            },
        };
        for (name, zero) in [
            ("ONGI_STYLE_MAX_ATTEMPTS", style.max_attempts == 0),
            ("ONGI_STYLE_RECLAIM_SECS", style.reclaim_after.is_zero()),
            ("ONGI_STYLE_JOB_TTL_SECS", style.job_ttl.is_zero()),
        ] {
            if zero {
                return Err(SettingsError::malformed(name, "0", "at least 1"));
            }
        }
        let dr = ReprocessSettings::default();
        let reprocess = ReprocessSettings {
            budget: Duration::from_secs(parse_or(
                &get,
                "ONGI_REPROCESS_BUDGET_SECS",
                dr.budget.as_secs(),
                "a number of seconds",
            )?),
            concurrency: parse_or(&get, "ONGI_REPROCESS_CONCURRENCY", dr.concurrency, "a number of photos")?,
        };
        for (name, zero) in [
            ("ONGI_REPROCESS_BUDGET_SECS", reprocess.budget.is_zero()),
            ("ONGI_REPROCESS_CONCURRENCY", reprocess.concurrency == 0),
        ] {
            if zero {
                return Err(SettingsError::malformed(name, "0", "at least 1"));
            }
        }
        if storage == StorageBackend::Gcs
            && storage_emulator_host.is_none()
            && !on_cloud_run
            && google_cloud_project.is_none()
        {
            return Err(SettingsError::missing(
                "GOOGLE_CLOUD_PROJECT",
                "ONGI_STORAGE=gcs outside Cloud Run needs the project (or STORAGE_EMULATOR_HOST for the emulator)",
            ));
        }

        Ok(Self {
            port,
            host,
            model_dir,
            ort_dylib_path,
            redis_url,
            cache_ttl,
            cache_prefix,
            storage,
            bucket,
            results_bucket,
            data_dir,
            storage_emulator_host,
            pubsub_emulator_host,
            google_cloud_project,
            features_topic,
            results_topic,
            publish,
            embedding_url,
            gemini,
            api_token,
            max_in_flight,
            face_detector,
            log_format,
            on_cloud_run,
            analysis,
            limits,
            style,
            reprocess,
        })
    }
}

fn parse_or<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    expected: &str,
) -> Result<T, SettingsError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .map_err(|_| SettingsError::malformed(name, &v, expected)),
    }
}

fn parse_bucket(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: &str,
) -> Result<BucketName, SettingsError> {
    let value = get(name).unwrap_or_else(|| default.to_owned());
    BucketName::parse(&value).map_err(|e| SettingsError::malformed(name, &value, &e.to_string()))
}

/// Accepts `http(s)://host[:port][/path]` or a bare `host:port` (the emulator convention),
/// and returns it with a scheme and without a trailing slash.
fn parse_http_base(name: &'static str, value: &str) -> Result<String, SettingsError> {
    let with_scheme = if value.starts_with("http://") || value.starts_with("https://") {
        value.to_owned()
    } else if value.contains("://") {
        return Err(SettingsError::malformed(name, value, "an http:// or https:// URL"));
    } else {
        format!("http://{value}")
    };
    let rest = with_scheme.split_once("://").map(|(_, r)| r).unwrap_or_default();
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SettingsError::malformed(
            name,
            value,
            "an http:// or https:// URL with a host",
        ));
    }
    Ok(with_scheme.trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Settings::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_need_no_setting() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.port, 8080);
        assert_eq!(s.storage, StorageBackend::Local);
        assert_eq!(s.bucket.as_str(), "uploads");
        assert_eq!(s.results_bucket.as_str(), "results");
        assert_eq!(s.data_dir, PathBuf::from("data"));
        assert_eq!(s.log_format, LogFormat::Text);
        assert!(s.redis_url.is_none());
        assert_eq!(s.limits, IngestLimits::default());
        assert_eq!(s.reprocess, ReprocessSettings::default());
    }

    #[test]
    fn malformed_settings_name_themselves_in_one_line() {
        for (name, value) in [
            ("PORT", "eighty"),
            ("PORT", "70000"),
            ("REDIS_URL", "localhost:6379"),
            ("ONGI_BUCKET", "Bad_Bucket!"),
            ("ONGI_LOG_FORMAT", "xml"),
            ("ONGI_FACE_DETECTOR", "haar"),
            ("ONGI_STORAGE", "s3"),
            ("ONGI_MAX_IMAGE_BYTES", "-1"),
            ("EMBEDDING_URL", "ftp://x"),
            ("ONGI_CACHE_TTL_SECS", "0"),
            ("ONGI_STYLE_MAX_ATTEMPTS", "0"),
            ("ONGI_STYLE_DEVICE", "tpu"),
            ("ONGI_PUBLISH", "yes"),
            ("ONGI_REPROCESS_BUDGET_SECS", "0"),
            ("ONGI_REPROCESS_CONCURRENCY", "many"),
        ] {
            let err = settings(&[(name, value)]).unwrap_err();
            let line = err.to_string();
            assert!(line.contains(name), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    /// Every numeric and string setting against values out of its documented range: each
    /// gives one line naming that setting (and only that one).
    #[test]
    fn every_setting_refuses_values_out_of_its_range() {
        let numbers = ["NaN", "nan", "inf", "-inf", "infinity", "1e999"];
        let mut cases: Vec<(&str, &str)> = Vec::new();
        for name in [
            "ONGI_CATEGORY_FLOOR",
            "ONGI_DUPLICATE_COSINE",
            "ONGI_QUALITY_BLUR",
            "ONGI_QUALITY_DARK_FRACTION",
            "ONGI_QUALITY_BRIGHT_FRACTION",
            "ONGI_QUALITY_CLIP_PROBABILITY",
        ] {
            cases.extend(numbers.iter().map(|v| (name, *v)));
            cases.push((name, "-5"));
            cases.push((name, "abc"));
        }
        cases.extend([
            ("ONGI_CATEGORY_FLOOR", "1.5"),
            ("ONGI_CATEGORY_FLOOR", "-1.01"),
            ("ONGI_DUPLICATE_COSINE", "-2"),
            ("ONGI_QUALITY_BLUR", "-0.5"),
            ("ONGI_QUALITY_DARK_FRACTION", "5"),
            ("ONGI_QUALITY_DARK_FRACTION", "1.0001"),
            ("ONGI_QUALITY_BRIGHT_FRACTION", "-0.1"),
            ("ONGI_QUALITY_CLIP_PROBABILITY", "1.5"),
        ]);
        for name in [
            "ONGI_HIGHLIGHTS",
            "ONGI_STYLE_MAX_QUEUE",
            "ONGI_STYLE_MAX_ATTEMPTS",
            "ONGI_STYLE_RECLAIM_SECS",
            "ONGI_STYLE_JOB_TTL_SECS",
            "ONGI_REPROCESS_BUDGET_SECS",
            "ONGI_REPROCESS_CONCURRENCY",
            "ONGI_MAX_IN_FLIGHT",
            "ONGI_MAX_IMAGE_BYTES",
            "ONGI_MAX_IMAGE_PIXELS",
            "ONGI_CACHE_TTL_SECS",
            "ONGI_TEXT_CACHE_TTL_SECS",
        ] {
            for v in ["0", "-1", "1.5", "NaN", "ten", "18446744073709551616"] {
                cases.push((name, v));
            }
        }
        cases.extend([
            ("ONGI_HIGHLIGHTS", "1001"),
            ("ONGI_MAX_IN_FLIGHT", "18446744073709551615"),
            ("ONGI_REPROCESS_BUDGET_SECS", "3601"),
            ("ONGI_REPROCESS_CONCURRENCY", "100000"),
            ("ONGI_CACHE_TTL_SECS", "18446744073709551615"),
            ("ONGI_STYLE_JOB_TTL_SECS", "18446744073709551615"),
            ("ONGI_STYLE_RECLAIM_SECS", "18446744073709551615"),
            ("ONGI_TEXT_CACHE_TTL_SECS", "18446744073709551615"),
            ("PORT", "-1"),
            ("PORT", "65536"),
            ("ONGI_HOST", "localhost"),
            ("ONGI_CACHE_PREFIX", ""),
            ("ONGI_CACHE_PREFIX", "   "),
            ("ONGI_CACHE_PREFIX", "has space:"),
            ("ONGI_CACHE_PREFIX", "nul\u{0}:"),
            ("ONGI_FEATURES_TOPIC", "a b"),
            ("ONGI_FEATURES_TOPIC", "ab"),
            ("ONGI_FEATURES_TOPIC", "9starts-with-a-digit"),
            ("ONGI_RESULTS_TOPIC", "topic/with/slashes"),
            ("GEMINI_MODEL", "gemini/../../v1"),
            ("GEMINI_MODEL", "a model"),
            ("GEMINI_API_KEY", "key\nwith-a-newline"),
            ("GOOGLE_CLOUD_PROJECT", "Has Spaces"),
            ("PUBSUB_EMULATOR_HOST", "no-port"),
            ("PUBSUB_EMULATOR_HOST", "host:notaport"),
            ("STORAGE_EMULATOR_HOST", "http://"),
            ("EMBEDDING_URL", "https://bad host"),
            ("GEMINI_ENDPOINT", "ftp://x"),
            ("REDIS_URL", "http://localhost"),
        ]);
        for (name, value) in cases {
            let err = match settings(&[(name, value)]) {
                Ok(_) => panic!("{name}={value:?} was accepted"),
                Err(e) => e,
            };
            let line = err.to_string();
            assert_eq!(err.name, name, "{name}={value:?}: {line}");
            assert!(line.contains(name), "{line}");
            assert!(!line.contains('\n'), "one line: {line:?}");
        }
    }

    /// The documented edges are accepted: a duplicate cosine above 1 turns the tier off,
    /// a CLIP probability of 0 turns the CLIP tests off, fractions include 0 and 1.
    #[test]
    fn documented_edge_values_are_accepted() {
        for (name, value) in [
            ("ONGI_DUPLICATE_COSINE", "1.01"),
            ("ONGI_DUPLICATE_COSINE", "2"),
            ("ONGI_DUPLICATE_COSINE", "-1"),
            ("ONGI_CATEGORY_FLOOR", "-1"),
            ("ONGI_CATEGORY_FLOOR", "1"),
            ("ONGI_QUALITY_CLIP_PROBABILITY", "0"),
            ("ONGI_QUALITY_DARK_FRACTION", "0"),
            ("ONGI_QUALITY_BRIGHT_FRACTION", "1"),
            ("ONGI_QUALITY_BLUR", "0"),
            ("ONGI_HIGHLIGHTS", "1"),
            ("ONGI_MAX_IN_FLIGHT", "1"),
            ("ONGI_REPROCESS_BUDGET_SECS", "3600"),
            ("PORT", "0"),
            ("ONGI_CACHE_PREFIX", "tenant-a:"),
            ("ONGI_TEXT_CACHE_TTL_SECS", "60"),
        ] {
            settings(&[(name, value)]).unwrap_or_else(|e| panic!("{name}={value:?}: {e}"));
        }
    }

    #[test]
    fn emulator_host_selects_gcs_and_gets_a_scheme() {
        let s = settings(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]).unwrap();
        assert_eq!(s.storage, StorageBackend::Gcs);
        assert_eq!(s.storage_emulator_host.as_deref(), Some("http://127.0.0.1:4443"));
    }

    #[test]
    fn gcs_without_project_or_emulator_is_missing_a_setting() {
        let err = settings(&[("ONGI_STORAGE", "gcs")]).unwrap_err();
        assert_eq!(err.name, "GOOGLE_CLOUD_PROJECT");
    }

    #[test]
    fn cloud_run_defaults_to_json_logs_and_secrets_are_redacted() {
        let s = settings(&[
            ("K_SERVICE", "quality"),
            ("GOOGLE_CLOUD_PROJECT", "p"),
            ("GEMINI_API_KEY", "sk-very-secret"),
        ])
        .unwrap();
        assert_eq!(s.log_format, LogFormat::Json);
        let dump = format!("{s:?}");
        assert!(!dump.contains("sk-very-secret"), "{dump}");
        assert_eq!(s.gemini.api_key.unwrap().expose(), "sk-very-secret");
    }
}
