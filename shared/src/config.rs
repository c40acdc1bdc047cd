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

/// A URL that may carry credentials: a user and password before its host
/// (`redis://:AUTH@host:6379`, which is how Terraform hands Memorystore's AUTH string to
/// `REDIS_URL`) or a secret in its query (`?key=…`). `Debug` and `Display` show it with
/// those parts replaced by `[redacted]`, so `Settings` can be logged whole and an error can
/// name the server; [`SecretUrl::expose`] gives the real URL to the client that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The real URL, credentials included: only for the client that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL as logs and errors may show it.
    pub fn redacted(&self) -> String {
        redact_url(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` with its user information (everything before the last `@` ahead of the query), every
/// query value and any fragment replaced by `[redacted]`; scheme, host, port and path stay, so
/// a log still says which server. Every query value goes, not only `key=` or `token=`: a
/// parameter's name is no promise about what its value holds.
pub fn redact_url(url: &str) -> String {
    const HIDDEN: &str = "[redacted]";
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (rest, None),
    };
    let (location, query) = match rest.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (rest, None),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    // The last '@': a password may itself hold '@' or '/' when it was not percent-encoded.
    match location.rfind('@') {
        Some(at) => {
            out.push_str(HIDDEN);
            out.push_str(&location[at..]);
        }
        None => out.push_str(location),
    }
    if let Some(query) = query {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) => format!("{name}={HIDDEN}"),
                None if pair.is_empty() => String::new(),
                None => HIDDEN.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment.is_some() {
        out.push('#');
        out.push_str(HIDDEN);
    }
    out
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
    /// The memory that decoding photos may take at once in the whole process, in bytes
    /// (`ONGI_DECODE_MEMORY_MB`); a photo whose decode alone would need more is refused
    /// from its header as `too_large`, before any pixel is decoded.
    pub max_decode_bytes: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_decode_bytes: 512 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct GeminiSettings {
    pub api_key: Option<Secret>,
    pub endpoint: SecretUrl,
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
    pub redis_url: Option<SecretUrl>,
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
    pub storage_emulator_host: Option<SecretUrl>,
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
    pub embedding_url: Option<SecretUrl>,
    pub gemini: GeminiSettings,
    /// `ONGI_API_TOKEN`: when set, every route but `/healthz` needs `Authorization: Bearer
    /// <token>`. `ongi serve` bound beyond loopback refuses to start without it (on Cloud
    /// Run, IAM authenticates the callers instead).
    pub api_token: Option<Secret>,
    /// `ONGI_MAX_IN_FLIGHT` (64): requests to the API, event and batch routes handled at
    /// once; one more is shed at once with 503 and `Retry-After` instead of queueing without
    /// bound (Cloud Run's own concurrency setting does this in front of a function).
    pub max_in_flight: usize,
    /// `ONGI_READ_TIMEOUT_SECS` (30): how long a client may take to send a request's head,
    /// and then its body; a connection past it is closed (408 for a late body), so slow
    /// clients hold no work slot and no connection for long.
    pub read_timeout: Duration,
    /// `ONGI_FACE_DETECTOR`: `yunet` (default) or `mtcnn`.
    pub face_detector: FaceDetector,
    /// `ONGI_LOG_FORMAT`: `json` or `text`; default `json` on Cloud Run (`K_SERVICE` set), else `text`.
    pub log_format: LogFormat,
    /// `K_SERVICE` is set: running on Cloud Run, where a missing model is a deployment error.
    pub on_cloud_run: bool,
    /// Thresholds of the analyses: `ONGI_CATEGORY_FLOOR` (0.2), `ONGI_DUPLICATE_COSINE` (0.95),
    /// `ONGI_QUALITY_BLUR` (80), `ONGI_QUALITY_DARK_FRACTION` (0.5), `ONGI_QUALITY_BRIGHT_FRACTION`
    /// (0.4), `ONGI_QUALITY_CLIP_PROBABILITY` (0.1; 0 turns the CLIP tests off), `ONGI_HIGHLIGHTS` (3),
    /// and `ONGI_TEXT_CACHE_TTL_SECS` (1 day), the cache lifetime of callers' concept embeddings.
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
    /// An empty value counts as unset, except for `ONGI_CACHE_PREFIX` (see below).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());

        let port = setting(&get, "PORT", 8080u16, parse::port)?;
        let host = setting(&get, "ONGI_HOST", IpAddr::V4(Ipv4Addr::UNSPECIFIED), parse::ip)?;
        let model_dir = get("ONGI_MODEL_DIR").map_or_else(|| PathBuf::from("models"), PathBuf::from);
        let ort_dylib_path = get("ORT_DYLIB_PATH").map(PathBuf::from);

        let redis_url = url_setting(&get, "REDIS_URL", parse::redis_url)?;
        let cache_ttl = setting(&get, "ONGI_CACHE_TTL_SECS", DEFAULT_CACHE_TTL, |v| {
            parse::seconds(v, MAX_TTL_SECS)
        })?;
        // An empty prefix is not "the default": it would put Ongi's keys beside everything
        // else in a shared Redis, so a set-but-empty value is refused rather than ignored.
        let cache_prefix = match lookup("ONGI_CACHE_PREFIX") {
            None => "ongi:".to_owned(),
            Some(v) => parse::key_prefix(&v).map_err(|e| SettingsError::malformed("ONGI_CACHE_PREFIX", &v, &e))?,
        };

        let storage_emulator_host = url_setting(&get, "STORAGE_EMULATOR_HOST", parse::http_base)?;
        let default_storage = if storage_emulator_host.is_some() {
            StorageBackend::Gcs
        } else {
            StorageBackend::Local
        };
        let storage = setting(&get, "ONGI_STORAGE", default_storage, |v| {
            parse::one_of(v, &[("local", StorageBackend::Local), ("gcs", StorageBackend::Gcs)])
        })?;
        let bucket = setting(&get, "ONGI_BUCKET", default_bucket("uploads"), parse::bucket)?;
        let results_bucket = setting(&get, "ONGI_RESULTS_BUCKET", default_bucket("results"), parse::bucket)?;
        let data_dir = get("ONGI_DATA_DIR").map_or_else(|| PathBuf::from("data"), PathBuf::from);

        let pubsub_emulator_host = optional(&get, "PUBSUB_EMULATOR_HOST", parse::host_port)?;
        let google_cloud_project = optional(&get, "GOOGLE_CLOUD_PROJECT", parse::project_id)?;
        let features_topic = setting(&get, "ONGI_FEATURES_TOPIC", "ongi-features".to_owned(), parse::topic_id)?;
        let results_topic = setting(&get, "ONGI_RESULTS_TOPIC", "ongi-results".to_owned(), parse::topic_id)?;
        let publish_by_default = pubsub_emulator_host.is_some() || get("K_SERVICE").is_some();
        let publish = setting(&get, "ONGI_PUBLISH", publish_by_default, parse::boolean)?;
        if publish && google_cloud_project.is_none() {
            return Err(SettingsError::missing(
                "GOOGLE_CLOUD_PROJECT",
                "publishing to Pub/Sub (Cloud Run or PUBSUB_EMULATOR_HOST) needs the project",
            ));
        }
        let embedding_url = url_setting(&get, "EMBEDDING_URL", parse::http_base)?;

        let api_key = match get("GEMINI_API_KEY") {
            // The value is a secret: the error never shows it.
            Some(k) => {
                Some(Secret(parse::secret_text(&k).map_err(|e| {
                    SettingsError::malformed("GEMINI_API_KEY", "[redacted]", &e)
                })?))
            }
            None => None,
        };
        let gemini = GeminiSettings {
            api_key,
            endpoint: url_setting(&get, "GEMINI_ENDPOINT", parse::http_base)?
                .unwrap_or_else(|| SecretUrl::new("https://generativelanguage.googleapis.com")),
            model: setting(&get, "GEMINI_MODEL", "gemini-2.5-flash".to_owned(), parse::model_name)?,
        };
        let api_token = match get("ONGI_API_TOKEN") {
            Some(t) => {
                Some(Secret(parse::api_token(&t).map_err(|e| {
                    SettingsError::malformed("ONGI_API_TOKEN", "[redacted]", &e)
                })?))
            }
            None => None,
        };
        let max_in_flight = setting(&get, "ONGI_MAX_IN_FLIGHT", 64usize, |v| parse::count(v, 1..=100_000))?;
        let read_timeout = setting(&get, "ONGI_READ_TIMEOUT_SECS", Duration::from_secs(30), |v| {
            parse::seconds(v, 600)
        })?;
        let face_detector = setting(&get, "ONGI_FACE_DETECTOR", FaceDetector::Yunet, |v| {
            parse::one_of(v, &[("yunet", FaceDetector::Yunet), ("mtcnn", FaceDetector::Mtcnn)])
        })?;
        let on_cloud_run = get("K_SERVICE").is_some();
        let default_format = if on_cloud_run { LogFormat::Json } else { LogFormat::Text };
        let log_format = setting(&get, "ONGI_LOG_FORMAT", default_format, |v| {
            parse::one_of(v, &[("json", LogFormat::Json), ("text", LogFormat::Text)])
        })?;
        let defaults = IngestLimits::default();
        let limits = IngestLimits {
            max_bytes: setting(&get, "ONGI_MAX_IMAGE_BYTES", defaults.max_bytes, parse::positive)?,
            max_pixels: setting(&get, "ONGI_MAX_IMAGE_PIXELS", defaults.max_pixels, parse::positive)?,
            max_decode_bytes: setting(&get, "ONGI_DECODE_MEMORY_MB", defaults.max_decode_bytes, |v| {
                parse::count(v, 16u64..=65536).map(|mib| mib << 20)
            })?,
        };
        let d = AnalysisSettings::default();
        let analysis = AnalysisSettings {
            category_floor: setting(&get, "ONGI_CATEGORY_FLOOR", d.category_floor, parse::cosine)?,
            similar_cosine: setting(&get, "ONGI_DUPLICATE_COSINE", d.similar_cosine, parse::cosine_or_off)?,
            quality: QualityThresholds {
                blur_variance: setting(&get, "ONGI_QUALITY_BLUR", d.quality.blur_variance, parse::non_negative)?,
                dark_fraction: setting(
                    &get,
                    "ONGI_QUALITY_DARK_FRACTION",
                    d.quality.dark_fraction,
                    parse::fraction,
                )?,
                bright_fraction: setting(
                    &get,
                    "ONGI_QUALITY_BRIGHT_FRACTION",
                    d.quality.bright_fraction,
                    parse::fraction,
                )?,
                clip_probability: setting(
                    &get,
                    "ONGI_QUALITY_CLIP_PROBABILITY",
                    d.quality.clip_probability,
                    parse::fraction,
                )?,
            },
            // At most the photos of one call: more highlights than photos mean nothing.
            highlights: setting(&get, "ONGI_HIGHLIGHTS", d.highlights, |v| parse::count(v, 1..=1000))?,
            concept_text_ttl: setting(&get, "ONGI_TEXT_CACHE_TTL_SECS", d.concept_text_ttl, |v| {
                parse::seconds(v, MAX_TTL_SECS)
            })?,
        };
        let ds = StyleSettings::default();
        let style = StyleSettings {
            max_queue: setting(&get, "ONGI_STYLE_MAX_QUEUE", ds.max_queue, |v| {
                parse::count(v, 1..=1_000_000)
            })?,
            max_attempts: setting(&get, "ONGI_STYLE_MAX_ATTEMPTS", ds.max_attempts, |v| {
                parse::count(v, 1..=100)
            })?,
            reclaim_after: setting(&get, "ONGI_STYLE_RECLAIM_SECS", ds.reclaim_after, |v| {
                parse::seconds(v, 7 * 24 * 3600)
            })?,
            job_ttl: setting(&get, "ONGI_STYLE_JOB_TTL_SECS", ds.job_ttl, |v| {
                parse::seconds(v, MAX_TTL_SECS)
            })?,
            device: setting(&get, "ONGI_STYLE_DEVICE", ds.device, |v| {
                parse::one_of(
                    v,
                    &[
                        ("auto", StyleDevice::Auto),
                        ("cpu", StyleDevice::Cpu),
                        ("cuda", StyleDevice::Cuda),
                    ],
                )
            })?,
        };
        let dr = ReprocessSettings::default();
        let reprocess = ReprocessSettings {
            // The same bound as a request's own `budget_secs`.
            budget: setting(&get, "ONGI_REPROCESS_BUDGET_SECS", dr.budget, |v| {
                parse::seconds(v, 3600)
            })?,
            concurrency: setting(&get, "ONGI_REPROCESS_CONCURRENCY", dr.concurrency, |v| {
                parse::count(v, 1..=1024)
            })?,
        };
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
            read_timeout,
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

/// 30 days: cached features.
const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

/// The longest time to live a setting may ask for (10 years). Redis takes it in
/// milliseconds as a signed 64-bit number: a larger value would make every write fail.
pub const MAX_TTL_SECS: u64 = 10 * 365 * 24 * 3600;

fn default_bucket(name: &str) -> BucketName {
    BucketName::parse(name).expect("the default bucket names are valid")
}

/// A setting with a default: unset (or empty) gives `default`, anything else must parse.
fn setting<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, SettingsError> {
    match get(name) {
        None => Ok(default),
        Some(v) => parse(v.trim()).map_err(|expected| SettingsError::malformed(name, &v, &expected)),
    }
}

/// A setting without a default: unset (or empty) is `None`.
fn optional<T>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, SettingsError> {
    match get(name) {
        None => Ok(None),
        Some(v) => parse(v.trim())
            .map(Some)
            .map_err(|expected| SettingsError::malformed(name, &v, &expected)),
    }
}

/// A URL setting without a default. Its value may hold credentials, so an error shows it
/// redacted, as the logs do.
fn url_setting(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<String, String>,
) -> Result<Option<SecretUrl>, SettingsError> {
    match get(name) {
        None => Ok(None),
        Some(v) => parse(v.trim())
            .map(|url| Some(SecretUrl(url)))
            .map_err(|expected| SettingsError::malformed(name, &redact_url(&v), &expected)),
    }
}

/// One parser per kind of setting: text in, the value or what was expected out. They know
/// nothing of where the text comes from (the environment today, command-line arguments
/// tomorrow), so each can be reused as is; [`setting`] adds the name to the error.
pub mod parse {
    use std::net::IpAddr;
    use std::ops::RangeInclusive;
    use std::str::FromStr;
    use std::time::Duration;

    use crate::domain::BucketName;

    pub fn port(v: &str) -> Result<u16, String> {
        v.parse().map_err(|_| "a TCP port number, 0-65535".to_owned())
    }

    pub fn ip(v: &str) -> Result<IpAddr, String> {
        v.parse()
            .map_err(|_| "an IP address such as 0.0.0.0 or 127.0.0.1".to_owned())
    }

    pub fn boolean(v: &str) -> Result<bool, String> {
        one_of(v, &[("true", true), ("false", false)])
    }

    /// One of the names in `options` (exactly as written there).
    pub fn one_of<T: Copy>(v: &str, options: &[(&str, T)]) -> Result<T, String> {
        options
            .iter()
            .find(|(name, _)| *name == v)
            .map(|(_, value)| *value)
            .ok_or_else(|| {
                let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
                match names.split_last() {
                    Some((last, [])) => (*last).to_owned(),
                    Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                    None => "nothing".to_owned(),
                }
            })
    }

    /// A whole number in `range`.
    pub fn count<T>(v: &str, range: RangeInclusive<T>) -> Result<T, String>
    where
        T: FromStr + PartialOrd + std::fmt::Display,
    {
        match v.parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(format!("a whole number from {} to {}", range.start(), range.end())),
        }
    }

    /// A whole number of at least 1.
    pub fn positive(v: &str) -> Result<u64, String> {
        match v.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n),
            _ => Err("a whole number of at least 1".to_owned()),
        }
    }

    /// A whole number of seconds, from 1 to `max`.
    pub fn seconds(v: &str, max: u64) -> Result<Duration, String> {
        count(v, 1..=max)
            .map(Duration::from_secs)
            .map_err(|_| format!("a whole number of seconds from 1 to {max}"))
    }

    /// A finite number: `NaN` and infinities compare false with everything, so a threshold
    /// holding one silently decides nothing.
    fn finite(v: &str, expected: &str) -> Result<f64, String> {
        match v.parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            _ => Err(expected.to_owned()),
        }
    }

    fn finite_f32(v: &str, expected: &str, ok: impl Fn(f32) -> bool) -> Result<f32, String> {
        let x = finite(v, expected)? as f32;
        if x.is_finite() && ok(x) {
            Ok(x)
        } else {
            Err(expected.to_owned())
        }
    }

    /// A finite number from 0 to 1.
    pub fn fraction(v: &str) -> Result<f32, String> {
        finite_f32(v, "a number from 0 to 1", |x| (0.0..=1.0).contains(&x))
    }

    /// A cosine: a finite number from -1 to 1.
    pub fn cosine(v: &str) -> Result<f32, String> {
        finite_f32(v, "a cosine, a number from -1 to 1", |x| (-1.0..=1.0).contains(&x))
    }

    /// A cosine threshold where any value above 1 turns the test off: a finite number of at least -1.
    pub fn cosine_or_off(v: &str) -> Result<f32, String> {
        finite_f32(v, "a cosine from -1 to 1, or above 1 to turn the tier off", |x| {
            x >= -1.0
        })
    }

    /// A finite number of at least 0.
    pub fn non_negative(v: &str) -> Result<f64, String> {
        match finite(v, "a finite number of at least 0")? {
            x if x >= 0.0 => Ok(x),
            _ => Err("a finite number of at least 0".to_owned()),
        }
    }

    pub fn bucket(v: &str) -> Result<BucketName, String> {
        BucketName::parse(v).map_err(|e| e.to_string())
    }

    /// The prefix of every Redis key: visible text without spaces, 1 to 128 bytes.
    pub fn key_prefix(v: &str) -> Result<String, String> {
        let ok = !v.is_empty() && v.len() <= 128 && v.chars().all(|c| !c.is_whitespace() && !c.is_control());
        if ok {
            Ok(v.to_owned())
        } else {
            Err(
                "a key prefix of 1 to 128 visible characters without spaces, such as ongi:; unset it for the default"
                    .into(),
            )
        }
    }

    /// A Pub/Sub topic id: 3 to 255 of letters, digits and `-_.~+%`, starting with a letter.
    pub fn topic_id(v: &str) -> Result<String, String> {
        let ok = (3..=255).contains(&v.len())
            && v.starts_with(|c: char| c.is_ascii_alphabetic())
            && v.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c));
        if ok {
            Ok(v.to_owned())
        } else {
            Err("a Pub/Sub topic id: 3 to 255 letters, digits or -_.~+%, starting with a letter".into())
        }
    }

    /// A Google Cloud project id (`my-project`, or the older `example.com:my-project`).
    pub fn project_id(v: &str) -> Result<String, String> {
        let ok = (1..=100).contains(&v.len())
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c));
        if ok {
            Ok(v.to_owned())
        } else {
            Err("a Google Cloud project id: lowercase letters, digits and hyphens".into())
        }
    }

    /// A model name that goes into a URL path (`gemini-2.5-flash`): letters, digits, `._-`.
    pub fn model_name(v: &str) -> Result<String, String> {
        let ok = (1..=100).contains(&v.len()) && v.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if ok {
            Ok(v.to_owned())
        } else {
            Err("a model name of letters, digits, '.', '_' and '-'".into())
        }
    }

    /// A secret sent in a header: visible ASCII, no spaces.
    pub fn secret_text(v: &str) -> Result<String, String> {
        if !v.is_empty() && v.chars().all(|c| c.is_ascii_graphic()) {
            Ok(v.to_owned())
        } else {
            Err("visible ASCII characters without spaces".into())
        }
    }

    /// The bearer token of `ONGI_API_TOKEN`: a secret of at least 16 characters.
    pub fn api_token(v: &str) -> Result<String, String> {
        match secret_text(v) {
            Ok(t) if t.len() >= 16 => Ok(t),
            _ => Err("a secret of at least 16 visible ASCII characters without spaces".into()),
        }
    }

    /// `host:port`, the emulators' convention.
    pub fn host_port(v: &str) -> Result<String, String> {
        let ok = v.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.chars().any(|c| c.is_whitespace() || c.is_control())
                && port.parse::<u16>().is_ok()
        });
        if ok { Ok(v.to_owned()) } else { Err("host:port".into()) }
    }

    /// `redis://host:port[/db]` (or `rediss://`, `redis+unix://`), as the Redis client reads it.
    pub fn redis_url(v: &str) -> Result<String, String> {
        if !(v.starts_with("redis://") || v.starts_with("rediss://") || v.starts_with("redis+unix://")) {
            return Err("redis://host:port[/db] or rediss://…".into());
        }
        redis::Client::open(v).map_err(|e| format!("a Redis URL ({e})"))?;
        Ok(v.to_owned())
    }

    /// Accepts `http(s)://host[:port][/path]` or a bare `host:port` (the emulator convention),
    /// and returns it with a scheme and without a trailing slash.
    pub fn http_base(v: &str) -> Result<String, String> {
        let with_scheme = if v.starts_with("http://") || v.starts_with("https://") {
            v.to_owned()
        } else if v.contains("://") {
            return Err("an http:// or https:// URL".into());
        } else {
            format!("http://{v}")
        };
        let rest = with_scheme.split_once("://").map(|(_, r)| r).unwrap_or_default();
        let host = rest.split('/').next().unwrap_or_default();
        if host.is_empty() || with_scheme.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("an http:// or https:// URL with a host".into());
        }
        Ok(with_scheme.trim_end_matches('/').to_owned())
    }
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
        assert_eq!(s.analysis, AnalysisSettings::default());
        assert_eq!(s.analysis.concept_text_ttl, Duration::from_secs(86_400));
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
            ("ONGI_DECODE_MEMORY_MB", "15"),
            ("ONGI_DECODE_MEMORY_MB", "65537"),
            ("ONGI_DECODE_MEMORY_MB", "NaN"),
            ("ONGI_READ_TIMEOUT_SECS", "0"),
            ("ONGI_READ_TIMEOUT_SECS", "601"),
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
            ("ONGI_DECODE_MEMORY_MB", "16"),
            ("ONGI_READ_TIMEOUT_SECS", "600"),
        ] {
            settings(&[(name, value)]).unwrap_or_else(|e| panic!("{name}={value:?}: {e}"));
        }
    }

    #[test]
    fn urls_lose_their_credentials_in_logs_and_keep_them_for_the_client() {
        for (url, shown) in [
            ("redis://:s3cret@10.0.0.3:6379/0", "redis://[redacted]@10.0.0.3:6379/0"),
            (
                "redis://default:s3cret@10.0.0.3:6379",
                "redis://[redacted]@10.0.0.3:6379",
            ),
            ("rediss://u:p@ss/w@host:6380", "rediss://[redacted]@host:6380"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=[redacted]&pass=[redacted]",
            ),
            (
                "https://proxy.example/v1?key=s3cret",
                "https://proxy.example/v1?key=[redacted]",
            ),
            (
                "https://u:s3cret@proxy.example/x?s3cret#s3cret",
                "https://[redacted]@proxy.example/x?[redacted]#[redacted]",
            ),
            ("http://127.0.0.1:4443", "http://127.0.0.1:4443"),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
        ] {
            assert_eq!(redact_url(url), shown, "{url}");
            let secret = SecretUrl::new(url);
            assert_eq!(secret.expose(), url);
            assert_eq!(secret.to_string(), shown);
            assert_eq!(format!("{secret:?}"), format!("{shown:?}"));
        }
    }

    #[test]
    fn settings_logged_whole_hold_no_credential() {
        let s = settings(&[
            ("REDIS_URL", "redis://:redis-s3cret@10.0.0.3:6379/0"),
            ("EMBEDDING_URL", "https://user:embed-s3cret@embedding.run.app"),
            ("GEMINI_ENDPOINT", "https://proxy.example/gemini?key=gemini-s3cret"),
            ("STORAGE_EMULATOR_HOST", "http://gcs-user:gcs-s3cret@127.0.0.1:4443"),
            ("GEMINI_API_KEY", "key-s3cret"),
            ("ONGI_API_TOKEN", "token-s3cret-0123456789"),
        ])
        .unwrap();
        let dump = format!("{s:?}");
        assert!(!dump.contains("s3cret"), "{dump}");
        assert!(dump.contains("10.0.0.3:6379") && dump.contains("[redacted]"), "{dump}");
        assert_eq!(
            s.redis_url.as_ref().map(SecretUrl::expose),
            Some("redis://:redis-s3cret@10.0.0.3:6379/0")
        );
        // A malformed URL setting is named without its credentials too.
        let err = settings(&[("REDIS_URL", "http://:redis-s3cret@host")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("REDIS_URL") && !err.contains("redis-s3cret"), "{err}");
        let err = settings(&[("GEMINI_API_KEY", "key s3cret")]).unwrap_err().to_string();
        assert!(err.contains("GEMINI_API_KEY") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn emulator_host_selects_gcs_and_gets_a_scheme() {
        let s = settings(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]).unwrap();
        assert_eq!(s.storage, StorageBackend::Gcs);
        assert_eq!(
            s.storage_emulator_host.as_ref().map(SecretUrl::expose),
            Some("http://127.0.0.1:4443")
        );
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
