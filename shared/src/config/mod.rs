//! Settings, read once from the environment at start-up (each one in docs/settings.md).
//!
//! Every setting has an embedded default that works on a laptop (`ongi serve` needs none).
//! A setting that is present but malformed stops the process with one line naming it:
//! a typo in `REDIS_URL` must not silently fall back to the in-process cache.
//! Parsing takes a lookup function rather than reading `std::env` directly, so tests
//! never mutate the process environment.
//!
//! This module sits at the bottom of the crate beside [`crate::domain`], its only
//! dependency inside the crate. Its parts:
//! - here: [`Settings`] and [`Settings::from_lookup`], which reads every setting;
//! - [`parse`]: one parser per kind of value, with its range;
//! - `read`: one setting from a lookup, its default or a [`SettingsError`] (`error`);
//! - `secret`: [`Secret`] and [`SecretUrl`], which never print credentials;
//! - one file per section: `analysis` ([`AnalysisSettings`]), `limits` ([`IngestLimits`]),
//!   `style` ([`StyleSettings`]), `reprocess` ([`ReprocessSettings`]);
//! - `table`: [`SETTINGS`], every environment variable Ongi reads with its default and
//!   meaning, which `ongi serve --help` prints.

mod analysis;
mod error;
mod limits;
pub mod parse;
mod read;
mod reprocess;
mod secret;
mod style;
mod table;
#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::domain::BucketName;
use read::{DEFAULT_CACHE_TTL, default_bucket, optional, setting, url_setting};

pub use analysis::{AnalysisSettings, QualityThresholds};
pub use error::SettingsError;
pub use limits::IngestLimits;
pub use read::MAX_TTL_SECS;
pub use reprocess::ReprocessSettings;
pub use secret::{Secret, SecretUrl, redact_url};
pub use style::{StyleDevice, StyleSettings};
pub use table::{SETTINGS, SettingDoc, settings_help};

/// Where the official ONNX Runtime release archives are published (GitHub releases).
pub const DEFAULT_ORT_DOWNLOAD_URL: &str = "https://github.com/microsoft/onnxruntime/releases/download";

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

#[derive(Debug, Clone)]
pub struct GeminiSettings {
    pub api_key: Option<Secret>,
    pub endpoint: SecretUrl,
    pub model: String,
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `PORT` (Cloud Run sets it), default 8080.
    pub port: u16,
    /// `ONGI_HOST`: the address to bind, default 0.0.0.0 (a container); `ongi serve` defaults to loopback.
    pub host: IpAddr,
    /// `ONGI_MODEL_DIR`, default `./models`.
    pub model_dir: PathBuf,
    /// `ORT_DYLIB_PATH`: the ONNX Runtime shared library, when the user names it. Unset,
    /// the library is looked for (the model folder, a Python `onnxruntime` package, the
    /// library path) where models are loaded; set, it is the only one tried.
    pub ort_dylib_path: Option<PathBuf>,
    /// `ONGI_ORT_DOWNLOAD_URL`: where the ONNX Runtime release archives are downloaded
    /// from (`<url>/v<version>/<archive>`); the archive's SHA-256 is pinned in the code
    /// whatever the URL.
    pub ort_download_url: String,
    /// `LD_LIBRARY_PATH`: folders searched for the ONNX Runtime library, before the system's.
    pub library_path: Vec<PathBuf>,
    /// `REDIS_URL`: the shared feature cache and the style queue; in-process when absent.
    pub redis_url: Option<SecretUrl>,
    /// `ONGI_CACHE_TTL_SECS`, default 30 days.
    pub cache_ttl: Duration,
    /// `ONGI_CACHE_PREFIX`: prepended to every Redis key (tests use one per test).
    pub cache_prefix: String,
    /// `ONGI_NEAR_CACHE_MB`, default 64: the in-process copy of recent immutable cache
    /// entries kept in front of Redis (0: none). Unused without Redis.
    pub near_cache_bytes: usize,
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
    /// `ONGI_BODY_MEMORY_MB` (64): the bytes of request bodies the process holds at once,
    /// reserved as each body's buffer grows, before its bytes are copied in (what a body has
    /// sent, not what it declared); a body whose next bytes find none left is answered 503
    /// with `Retry-After`.
    pub body_memory_bytes: usize,
    /// `ONGI_MAX_CONNECTIONS` (1024): open connections at once; past it the process stops
    /// accepting, and new ones wait in the kernel's queue until one closes.
    pub max_connections: usize,
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
        let ort_download_url = setting(
            &get,
            "ONGI_ORT_DOWNLOAD_URL",
            DEFAULT_ORT_DOWNLOAD_URL.to_owned(),
            parse::download_base,
        )?;
        let library_path = get("LD_LIBRARY_PATH")
            .map(|v| {
                std::env::split_paths(&v)
                    .filter(|p| !p.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();

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

        let near_cache_mb = setting(&get, "ONGI_NEAR_CACHE_MB", 64usize, |v| parse::count(v, 0..=65_536))?;
        let near_cache_bytes = near_cache_mb << 20;

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
        let body_memory_bytes = setting(&get, "ONGI_BODY_MEMORY_MB", 64usize, |v| parse::count(v, 1..=4096))? << 20;
        let max_connections = setting(&get, "ONGI_MAX_CONNECTIONS", 1024usize, |v| {
            parse::count(v, 1..=100_000)
        })?;
        let face_detector = setting(&get, "ONGI_FACE_DETECTOR", FaceDetector::Yunet, |v| {
            parse::one_of(v, &[("yunet", FaceDetector::Yunet), ("mtcnn", FaceDetector::Mtcnn)])
        })?;
        let on_cloud_run = get("K_SERVICE").is_some();
        let default_format = if on_cloud_run { LogFormat::Json } else { LogFormat::Text };
        let log_format = setting(&get, "ONGI_LOG_FORMAT", default_format, |v| {
            parse::one_of(v, &[("json", LogFormat::Json), ("text", LogFormat::Text)])
        })?;
        let limits = IngestLimits::read(&get)?;
        let analysis = AnalysisSettings::read(&get)?;
        let style = StyleSettings::read(&get)?;
        let reprocess = ReprocessSettings::read(&get)?;
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
            ort_download_url,
            library_path,
            redis_url,
            cache_ttl,
            cache_prefix,
            near_cache_bytes,
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
            body_memory_bytes,
            max_connections,
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
