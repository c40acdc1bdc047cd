//! The model folder's manifest: which weight files Ongi uses, with their pinned SHA-256 and
//! size, licence, download source and I/O contract; checking a folder against it
//! ([`verify`]) and installing the files into a folder ([`fetch_with`], behind
//! `ongi models fetch`).
//!
//! - The production manifest is `production.toml` beside this file, embedded in every binary
//!   ([`Manifest::production`]). A model folder may carry its own `manifest.toml`
//!   ([`Manifest::load`]); the test models in `shared/tests/fixtures/models/` do.
//! - A file is hashed while it is streamed, never read whole (the CLIP graphs are 350 MB).
//! - A download goes to `DIR/.<file>.part` and is renamed to its final name only after its
//!   size and SHA-256 match the manifest, so a file under its final name is never a partial
//!   or unchecked download; a download that fails leaves no `.part` behind. A file whose hash
//!   is not pinned yet (`sha256 = ""`) is downloaded, its hash printed, and then refused: a
//!   maintainer pins it after checking the bytes.
//! - A file already in the folder is never deleted or overwritten by anything but a verified
//!   download, and even then it is kept aside (`<file>.replaced`), never lost: it may be a
//!   user's own model. [`Mismatched`] says whether `fetch` replaces such a file at all
//!   (`ongi models fetch` does; `ongi serve`'s start-up leaves it where it is).
//! - Every error is one line that names the file; no network access is needed to parse,
//!   verify or test any of this.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// The manifest's file name inside a model folder.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// Where [`Manifest::production`] comes from, as error messages name it.
pub const PRODUCTION_ORIGIN: &str = "the embedded production manifest";

const PRODUCTION_TOML: &str = include_str!("production.toml");

/// The most `fetch` downloads for a file whose size is not pinned (the largest production
/// file is about 350 MB).
const MAX_UNPINNED_BYTES: u64 = 4 << 30;

const HASH_BUFFER: usize = 1 << 20;

/// Element type of a tensor in an I/O contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    F32,
    F16,
    I64,
    I32,
    U8,
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::I64 => "i64",
            Self::I32 => "i32",
            Self::U8 => "u8",
        })
    }
}

/// One dimension of a tensor shape: a fixed size, or a symbolic one such as the batch `"N"`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Dim {
    Fixed(u64),
    Symbolic(String),
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fixed(n) => write!(f, "{n}"),
            Self::Symbolic(s) => f.write_str(s),
        }
    }
}

/// A named tensor of an I/O contract: `pixel_values f32 [N,3,224,224]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: DType,
    pub shape: Vec<Dim>,
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} [", self.name, self.dtype)?;
        for (i, dim) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{dim}")?;
        }
        f.write_str("]")
    }
}

/// One `[[model]]` table: one file of the model folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// What the file is for (`clip-visual`, `face-detect-yunet`, …); unique in a manifest.
    pub role: String,
    /// File name inside the model folder (no directories).
    pub file: String,
    /// SHA-256, 64 lowercase hex digits; empty when not pinned yet.
    pub sha256: String,
    /// Size in bytes, when known.
    #[serde(default)]
    pub bytes: Option<u64>,
    pub licence: String,
    /// The `http(s)` URL `fetch` downloads from; empty when the file is installed by hand.
    pub source: String,
    /// Whether `verify` fails when the file is missing.
    pub required: bool,
    /// How to obtain the file when `fetch` cannot.
    #[serde(default)]
    pub note: Option<String>,
    /// Inputs of an ONNX graph.
    #[serde(default)]
    pub inputs: Vec<TensorSpec>,
    /// Outputs of an ONNX graph that Ongi reads (the graph may have more).
    #[serde(default)]
    pub outputs: Vec<TensorSpec>,
    /// Named tensors of a safetensors file.
    #[serde(default)]
    pub tensors: Vec<TensorSpec>,
}

impl ModelEntry {
    /// Whether the manifest pins this file's SHA-256.
    pub fn is_pinned(&self) -> bool {
        !self.sha256.is_empty()
    }

    /// The host `fetch` downloads this file from (`huggingface.co`), when it has a source.
    pub fn source_host(&self) -> Option<String> {
        reqwest::Url::parse(&self.source)
            .ok()
            .and_then(|url| url.host_str().map(str::to_owned))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestToml {
    #[serde(default)]
    model: Vec<ModelEntry>,
}

/// A validated manifest, with the TOML text it was read from (written into the model folder
/// as is, comments included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    models: Vec<ModelEntry>,
    text: String,
    origin: String,
}

/// A manifest that cannot be read or is not valid. `Display` is one line naming it.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read the model manifest {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("the model manifest {origin} is malformed{}: {reason}", line.map(|l| format!(" at line {l}")).unwrap_or_default())]
    Malformed {
        origin: String,
        line: Option<usize>,
        reason: String,
    },
    #[error("the model manifest {origin} is invalid: {problem}")]
    Invalid { origin: String, problem: String },
}

impl Manifest {
    /// The production manifest embedded in the binary (`production.toml`).
    pub fn production() -> Self {
        // The embedded text is a constant of the build, checked by the tests below.
        Self::parse(PRODUCTION_TOML, PRODUCTION_ORIGIN.to_owned())
            .unwrap_or_else(|e| panic!("the embedded production manifest must be valid: {e}"))
    }

    /// Parses and validates a manifest given as TOML text.
    pub fn from_toml_str(text: &str) -> Result<Self, ManifestError> {
        Self::parse(text, "(TOML text)".to_owned())
    }

    /// Reads and validates the manifest file at `path`.
    pub fn from_file(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        Self::parse(&text, path.display().to_string())
    }

    /// The manifest of the model folder `dir`: its `manifest.toml` when it has one, else the
    /// production manifest.
    pub fn load(dir: &Path) -> Result<Self, ManifestError> {
        let path = dir.join(MANIFEST_FILE);
        match std::fs::metadata(&path) {
            Ok(_) => Self::from_file(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::production()),
            Err(e) => Err(ManifestError::Read {
                path,
                reason: e.to_string(),
            }),
        }
    }

    /// The files, in manifest order.
    pub fn models(&self) -> &[ModelEntry] {
        &self.models
    }

    /// The file with this role (`clip-visual`, …).
    pub fn by_role(&self, role: &str) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.role == role)
    }

    /// The TOML text this manifest was read from.
    pub fn as_toml(&self) -> &str {
        &self.text
    }

    /// Where this manifest was read from (a path, or [`PRODUCTION_ORIGIN`]).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Checks every file of the manifest in the folder `dir`: presence, size, SHA-256.
    pub fn verify(&self, dir: &Path) -> VerifyReport {
        let checks = self
            .models
            .iter()
            .map(|entry| {
                let path = dir.join(&entry.file);
                let (size, status) = check_file(entry, &path);
                ModelCheck {
                    role: entry.role.clone(),
                    file: entry.file.clone(),
                    path,
                    required: entry.required,
                    licence: entry.licence.clone(),
                    size,
                    status,
                }
            })
            .collect();
        VerifyReport {
            manifest: self.origin.clone(),
            checks,
        }
    }

    fn parse(text: &str, origin: String) -> Result<Self, ManifestError> {
        let parsed: ManifestToml = toml::from_str(text).map_err(|e| ManifestError::Malformed {
            line: e.span().map(|span| line_of(text, span.start)),
            reason: e.message().trim().replace('\n', " "),
            origin: origin.clone(),
        })?;
        validate(&parsed.model).map_err(|problem| ManifestError::Invalid {
            origin: origin.clone(),
            problem,
        })?;
        Ok(Self {
            models: parsed.model,
            text: text.to_owned(),
            origin,
        })
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(0, |before| before.matches('\n').count()) + 1
}

fn validate(models: &[ModelEntry]) -> Result<(), String> {
    if models.is_empty() {
        return Err("it lists no [[model]]".to_owned());
    }
    for (i, m) in models.iter().enumerate() {
        let which = if m.file.is_empty() {
            format!("model #{}", i + 1)
        } else {
            m.file.clone()
        };
        if !is_plain_file_name(&m.file) {
            return Err(format!(
                "{which}: file must be a plain file name inside the model folder, got {:?}",
                m.file
            ));
        }
        if m.role.trim().is_empty() {
            return Err(format!("{which}: role is empty"));
        }
        if m.licence.trim().is_empty() {
            return Err(format!("{which}: licence is empty"));
        }
        if !m.sha256.is_empty() && !is_sha256_hex(&m.sha256) {
            return Err(format!(
                "{which}: sha256 must be 64 lowercase hex digits, or \"\" while unpinned, got {:?}",
                m.sha256
            ));
        }
        if m.bytes == Some(0) {
            return Err(format!("{which}: bytes must be positive (leave it out while unknown)"));
        }
        if !m.source.is_empty() {
            let ok = reqwest::Url::parse(&m.source)
                .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.host_str().is_some());
            if !ok {
                return Err(format!(
                    "{which}: source must be an http(s) URL, or \"\" when installed by hand, got {:?}",
                    m.source
                ));
            }
        }
        if models[..i].iter().any(|other| other.file == m.file) {
            return Err(format!("{which} is listed twice"));
        }
        if models[..i].iter().any(|other| other.role == m.role) {
            return Err(format!("{which}: role {:?} is listed twice", m.role));
        }
    }
    Ok(())
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name != MANIFEST_FILE
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What `verify` found for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Present, with the pinned size and hash.
    Ok,
    Missing,
    WrongSize {
        expected: u64,
        actual: u64,
    },
    WrongHash {
        expected: String,
        actual: String,
    },
    /// Present (with the pinned size, if any), but the manifest pins no hash to check it against.
    Unpinned {
        sha256: String,
    },
    /// Present but cannot be read (permissions, a folder, …).
    Unreadable {
        reason: String,
    },
}

impl ModelStatus {
    /// A short label: `ok`, `missing`, `wrong-size`, `wrong-hash`, `unpinned`, `unreadable`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Missing => "missing",
            Self::WrongSize { .. } => "wrong-size",
            Self::WrongHash { .. } => "wrong-hash",
            Self::Unpinned { .. } => "unpinned",
            Self::Unreadable { .. } => "unreadable",
        }
    }
}

impl fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Missing => f.write_str("missing"),
            Self::WrongSize { expected, actual } => {
                write!(f, "wrong size: {actual} bytes, the manifest pins {expected}")
            }
            Self::WrongHash { expected, actual } => {
                write!(f, "wrong hash: sha256 {actual}, the manifest pins {expected}")
            }
            Self::Unpinned { sha256 } => write!(f, "unpinned: sha256 {sha256} (the manifest pins no hash)"),
            Self::Unreadable { reason } => write!(f, "unreadable: {reason}"),
        }
    }
}

/// One file of a [`VerifyReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelCheck {
    pub role: String,
    pub file: String,
    pub path: PathBuf,
    pub required: bool,
    pub licence: String,
    /// The size found on disk, when the file is there.
    pub size: Option<u64>,
    pub status: ModelStatus,
}

impl ModelCheck {
    /// Whether this file makes the folder unusable: a required file missing, or any file
    /// present but wrong or unreadable. An unpinned file is a warning, not a failure.
    pub fn is_failure(&self) -> bool {
        match self.status {
            ModelStatus::Ok | ModelStatus::Unpinned { .. } => false,
            ModelStatus::Missing => self.required,
            ModelStatus::WrongSize { .. } | ModelStatus::WrongHash { .. } | ModelStatus::Unreadable { .. } => true,
        }
    }
}

/// The result of checking a model folder against its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Where the manifest came from.
    pub manifest: String,
    /// One entry per file, in manifest order.
    pub checks: Vec<ModelCheck>,
}

impl VerifyReport {
    /// No file fails (see [`ModelCheck::is_failure`]).
    pub fn is_ok(&self) -> bool {
        !self.checks.iter().any(ModelCheck::is_failure)
    }

    /// The files that fail.
    pub fn failures(&self) -> impl Iterator<Item = &ModelCheck> {
        self.checks.iter().filter(|c| c.is_failure())
    }

    /// The check of one file, by file name.
    pub fn check(&self, file: &str) -> Option<&ModelCheck> {
        self.checks.iter().find(|c| c.file == file)
    }
}

/// Checks the model folder `dir` against its manifest ([`Manifest::load`]).
pub fn verify(dir: &Path) -> Result<VerifyReport, ManifestError> {
    Ok(Manifest::load(dir)?.verify(dir))
}

/// Size on disk (when present) and status of one file.
fn check_file(entry: &ModelEntry, path: &Path) -> (Option<u64>, ModelStatus) {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return (None, ModelStatus::Missing),
        Err(e) => return (None, ModelStatus::Unreadable { reason: e.to_string() }),
    };
    if !metadata.is_file() {
        let reason = "not a regular file".to_owned();
        return (None, ModelStatus::Unreadable { reason });
    }
    let size = metadata.len();
    if let Some(expected) = entry.bytes
        && expected != size
    {
        return (Some(size), ModelStatus::WrongSize { expected, actual: size });
    }
    let actual = match sha256_file(path) {
        Ok(hash) => hash,
        Err(e) => return (Some(size), ModelStatus::Unreadable { reason: e.to_string() }),
    };
    let status = if !entry.is_pinned() {
        ModelStatus::Unpinned { sha256: actual }
    } else if actual == entry.sha256 {
        ModelStatus::Ok
    } else {
        ModelStatus::WrongHash {
            expected: entry.sha256.clone(),
            actual,
        }
    };
    (Some(size), status)
}

/// SHA-256 of a file, lowercase hex, read in 1 MiB blocks.
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; HASH_BUFFER];
    loop {
        match file.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buffer[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What [`fetch_with`] does with a file that is present but does not match its pin (wrong
/// size, wrong hash, unreadable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mismatched {
    /// Leave it where it is and say so (`ongi serve`'s start-up: a first run must never touch
    /// what a user put in the folder).
    #[default]
    Keep,
    /// Download the pinned file; once it is verified, move the present file aside to
    /// `<file>.replaced` (`.replaced.2`, … when taken) and put the download in its place
    /// (`ongi models fetch`, which the user asked for).
    ReplaceKeepingAside,
}

/// Network settings of [`fetch_with`], and what it does with a file that does not match.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Longest wait for a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    pub mismatched: Mismatched,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            mismatched: Mismatched::default(),
        }
    }
}

/// What [`fetch_with`] reports while it works (a progress bar in the CLI). Every method has
/// an empty default.
pub trait FetchObserver: Send {
    /// A download began; `total` is the expected size when known.
    fn download_started(&mut self, _model: &ModelEntry, _total: Option<u64>) {}
    /// `received` bytes of the current download have arrived.
    fn download_progress(&mut self, _model: &ModelEntry, _received: u64) {}
    /// The current download ended (whatever the outcome); called before any other event.
    fn download_finished(&mut self, _model: &ModelEntry) {}
    /// The file was left as it is (already valid, present but unpinned, optional without source).
    fn skipped(&mut self, _model: &ModelEntry, _why: &str) {}
    /// A file that does not match its pin was left where it is ([`Mismatched::Keep`]); `why`
    /// says what is wrong with it and how to replace it.
    fn kept(&mut self, _model: &ModelEntry, _why: &str) {}
    /// A file that did not match its pin was moved to `aside` to make room for the verified
    /// download (installed next).
    fn moved_aside(&mut self, _model: &ModelEntry, _why: &str, _aside: &Path) {}
    /// The file was downloaded, checked and installed.
    fn installed(&mut self, _model: &ModelEntry) {}
    /// The file could not be installed; `fetch_with` goes on with the next one.
    fn failed(&mut self, _model: &ModelEntry, _why: &str) {}
}

/// A [`FetchObserver`] that reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl FetchObserver for Quiet {}

/// What [`fetch_with`] did, by file name.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FetchReport {
    /// Downloaded, checked and installed.
    pub installed: Vec<String>,
    /// Already present and valid (or present and unpinned): left as they are.
    pub present: Vec<String>,
    /// Optional files without a download source, not installed.
    pub skipped: Vec<String>,
    /// Present but not matching their pin, left as they are ([`Mismatched::Keep`]).
    pub kept: Vec<String>,
    /// Where files that did not match their pin went before their verified download took
    /// their place ([`Mismatched::ReplaceKeepingAside`]).
    pub moved_aside: Vec<PathBuf>,
}

/// Why [`fetch_with`] stopped or did not install everything. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot create the model folder {}: {reason}", dir.display())]
    Folder { dir: PathBuf, reason: String },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {reason}")]
    Client { reason: String },
    /// The host could not be reached (DNS, connection, TLS, timeout). Nothing more is tried.
    #[error(
        "cannot download {file} from {host}: {reason}; no model hub is reachable from this machine — copy the files into {} by hand and run 'ongi models verify'",
        dir.display()
    )]
    Unreachable {
        file: String,
        host: String,
        reason: String,
        dir: PathBuf,
    },
    /// The connection broke during a download. Nothing more is tried.
    #[error(
        "the download of {file} from {host} broke off after {received} bytes: {reason}; run 'ongi models fetch' again, or copy the files into {} by hand and run 'ongi models verify'",
        dir.display()
    )]
    Interrupted {
        file: String,
        host: String,
        received: u64,
        reason: String,
        dir: PathBuf,
    },
    /// Some files could not be installed (each is also reported to the observer).
    #[error("{}", incomplete(*total, failures))]
    Incomplete {
        total: usize,
        /// `(file, why)`, in manifest order.
        failures: Vec<(String, String)>,
    },
}

fn incomplete(total: usize, failures: &[(String, String)]) -> String {
    let list = failures
        .iter()
        .map(|(file, why)| format!("{file}: {why}"))
        .collect::<Vec<_>>()
        .join("; ");
    match failures.len() {
        1 => format!("cannot install {list}"),
        n => format!("{n} of {total} model files were not installed: {list}"),
    }
}

/// Installs every file of `manifest` into the folder `dir` (created if needed) and writes the
/// manifest there as `manifest.toml`. Files already present and valid are left alone; files
/// present but not matching their pin are handled as `options.mismatched` says. Each
/// download goes to `DIR/.<file>.part` and takes its final name only once its size and
/// SHA-256 match the manifest; a file whose hash is not pinned is downloaded, its hash
/// reported, and refused. A host that cannot be reached stops everything with
/// [`FetchError::Unreachable`]; other per-file problems are collected into
/// [`FetchError::Incomplete`] after the remaining files have been tried.
pub async fn fetch_with(
    manifest: &Manifest,
    dir: &Path,
    options: &FetchOptions,
    observer: &mut dyn FetchObserver,
) -> Result<FetchReport, FetchError> {
    std::fs::create_dir_all(dir).map_err(|e| FetchError::Folder {
        dir: dir.to_owned(),
        reason: e.to_string(),
    })?;
    write_manifest(manifest, dir, options.mismatched)?;
    let client = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .user_agent(concat!("ongi/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Client {
            reason: error_chain(&e),
        })?;

    let mut report = FetchReport::default();
    let mut failures = Vec::new();
    for entry in manifest.models() {
        let path = dir.join(&entry.file);
        let how = entry.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
        // The present file that does not match its pin, and what is wrong with it.
        let mut mismatched = None;
        match check_in_background(entry, &path).await {
            ModelStatus::Missing => {}
            ModelStatus::Ok => {
                observer.skipped(entry, "already present and valid");
                report.present.push(entry.file.clone());
                continue;
            }
            ModelStatus::Unpinned { sha256 } => {
                let why = format!("present but not pinned (sha256 {sha256}): left as it is");
                observer.skipped(entry, &why);
                report.present.push(entry.file.clone());
                continue;
            }
            bad if entry.source.is_empty() => {
                // Installed by hand: not deleted, since nothing could replace it.
                let why = format!("present but {bad}; the manifest has no download source to replace it{how}");
                observer.failed(entry, &why);
                failures.push((entry.file.clone(), why));
                continue;
            }
            bad if options.mismatched == Mismatched::Keep => {
                // It may be the user's own model: left as it is, and said in one line.
                let why = format!(
                    "present but not the pinned file ({bad}): left as it is, and loaded as it is if it fits the \
                     model's contract; to get the pinned file run 'ongi models fetch' (yours is then kept as {}.replaced)",
                    entry.file
                );
                observer.kept(entry, &why);
                report.kept.push(entry.file.clone());
                continue;
            }
            bad => mismatched = Some(bad),
        }
        if entry.source.is_empty() {
            if entry.required {
                let why = format!("the manifest has no download source for it{how}");
                observer.failed(entry, &why);
                failures.push((entry.file.clone(), why));
            } else {
                observer.skipped(entry, &format!("optional, no download source{how}"));
                report.skipped.push(entry.file.clone());
            }
            continue;
        }
        let outcome = download(&client, entry, dir, observer).await;
        observer.download_finished(entry);
        let outcome = match outcome {
            Ok(part) => install(part, &path, mismatched.is_some()).await,
            Err(failure) => Err(failure),
        };
        match outcome {
            Ok(aside) => {
                if let (Some(aside), Some(bad)) = (aside, &mismatched) {
                    observer.moved_aside(entry, &bad.to_string(), &aside);
                    report.moved_aside.push(aside);
                }
                observer.installed(entry);
                report.installed.push(entry.file.clone());
            }
            Err(Failure::Stop(e)) => return Err(e),
            Err(Failure::File(why)) => {
                observer.failed(entry, &why);
                failures.push((entry.file.clone(), why));
            }
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(FetchError::Incomplete {
            total: manifest.models().len(),
            failures,
        })
    }
}

/// [`check_file`] on a blocking thread: hashing a 350 MB file must not stall the runtime.
async fn check_in_background(entry: &ModelEntry, path: &Path) -> ModelStatus {
    let (entry, path) = (entry.clone(), path.to_owned());
    tokio::task::spawn_blocking(move || check_file(&entry, &path).1)
        .await
        .unwrap_or_else(|e| ModelStatus::Unreadable {
            reason: format!("the check failed: {e}"),
        })
}

/// Writes the manifest's text to `DIR/manifest.toml` (through a temporary file), unless the
/// folder already has exactly that text. A different `manifest.toml` already there is left as
/// it is with [`Mismatched::Keep`], and kept aside (`manifest.toml.replaced`) otherwise.
fn write_manifest(manifest: &Manifest, dir: &Path, mismatched: Mismatched) -> Result<(), FetchError> {
    let path = dir.join(MANIFEST_FILE);
    let present = match std::fs::read_to_string(&path) {
        Ok(current) if current == manifest.as_toml() => return Ok(()),
        Ok(_) => true,
        Err(e) => e.kind() != io::ErrorKind::NotFound,
    };
    if present && mismatched == Mismatched::Keep {
        return Ok(());
    }
    let part = dir.join(format!(".{MANIFEST_FILE}.part"));
    let write_error = |e: io::Error| FetchError::Write {
        path: path.clone(),
        reason: e.to_string(),
    };
    std::fs::write(&part, manifest.as_toml()).map_err(write_error)?;
    if present && let Err(e) = std::fs::rename(&path, free_aside_name(&path)) {
        let _ = std::fs::remove_file(&part);
        return Err(write_error(e));
    }
    std::fs::rename(&part, &path).map_err(|e| {
        let _ = std::fs::remove_file(&part);
        write_error(e)
    })
}

/// `<path>.replaced`, or `<path>.replaced.2`, `.3`, … : the first name not taken.
fn free_aside_name(path: &Path) -> PathBuf {
    let base = format!("{}.replaced", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 2u32;
    while candidate.symlink_metadata().is_ok() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

/// Puts a verified download in place. A file already there (`replacing`) is first moved
/// aside, never deleted; returns where it went. If the download cannot take its place, the
/// moved file is put back.
async fn install(part: PartFile, path: &Path, replacing: bool) -> Result<Option<PathBuf>, Failure> {
    let write_error = |path: &Path, e: io::Error| {
        Failure::Stop(FetchError::Write {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    let aside = if replacing {
        let aside = free_aside_name(path);
        tokio::fs::rename(path, &aside)
            .await
            .map_err(|e| write_error(path, e))?;
        Some(aside)
    } else {
        None
    };
    if let Err(e) = tokio::fs::rename(&part.path, path).await {
        if let Some(aside) = &aside {
            let _ = tokio::fs::rename(aside, path).await;
        }
        return Err(write_error(path, e));
    }
    let mut part = part;
    part.armed = false;
    Ok(aside)
}

enum Failure {
    /// Stop fetching.
    Stop(FetchError),
    /// This file could not be installed; go on with the next.
    File(String),
}

/// Deletes the `.part` file when dropped, unless it was renamed into place.
struct PartFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Downloads `entry` to `DIR/.<file>.part` and checks its size and SHA-256; the verified
/// file is returned still armed, so it is deleted unless [`install`] puts it in place.
async fn download(
    client: &reqwest::Client,
    entry: &ModelEntry,
    dir: &Path,
    observer: &mut dyn FetchObserver,
) -> Result<PartFile, Failure> {
    let source_host = entry.source_host().unwrap_or_else(|| entry.source.clone());
    let host_of = |e: &reqwest::Error| {
        e.url()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| source_host.clone())
    };
    let part = PartFile {
        path: dir.join(format!(".{}.part", entry.file)),
        armed: true,
    };
    let write_error = |e: io::Error| {
        Failure::Stop(FetchError::Write {
            path: part.path.clone(),
            reason: e.to_string(),
        })
    };

    let mut response = client.get(&entry.source).send().await.map_err(|e| {
        Failure::Stop(FetchError::Unreachable {
            file: entry.file.clone(),
            host: host_of(&e),
            reason: error_chain(&e),
            dir: dir.to_owned(),
        })
    })?;
    let status = response.status();
    if !status.is_success() {
        let host = response.url().host_str().unwrap_or(&source_host).to_owned();
        return Err(Failure::File(format!("{host} answered HTTP {status}")));
    }
    let offered = response.content_length();
    if let (Some(expected), Some(offered)) = (entry.bytes, offered)
        && expected != offered
    {
        return Err(Failure::File(format!(
            "{source_host} offers {offered} bytes, the manifest pins {expected}: not downloaded"
        )));
    }
    let limit = entry.bytes.unwrap_or(MAX_UNPINNED_BYTES);

    observer.download_started(entry, entry.bytes.or(offered));
    let mut file = tokio::fs::File::create(&part.path).await.map_err(write_error)?;
    let mut hasher = Sha256::new();
    let mut received: u64 = 0;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(e) => {
                return Err(Failure::Stop(FetchError::Interrupted {
                    file: entry.file.clone(),
                    host: host_of(&e),
                    received,
                    reason: error_chain(&e),
                    dir: dir.to_owned(),
                }));
            }
        };
        received = received.saturating_add(chunk.len() as u64);
        if received > limit {
            return Err(Failure::File(format!(
                "{source_host} sent more than {limit} bytes: download stopped"
            )));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_error)?;
        observer.download_progress(entry, received);
    }
    file.sync_all().await.map_err(write_error)?;
    drop(file);

    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = entry.bytes
        && expected != received
    {
        return Err(Failure::File(format!(
            "downloaded {received} bytes, the manifest pins {expected}: not installed"
        )));
    }
    if !entry.is_pinned() {
        return Err(Failure::File(format!(
            "the manifest has no pinned hash for it: downloaded {received} bytes with sha256 {actual}, not installed; \
             check the file, then pin sha256 = \"{actual}\" and bytes = {received} in the manifest"
        )));
    }
    if actual != entry.sha256 {
        return Err(Failure::File(format!(
            "downloaded file has sha256 {actual}, the manifest pins {}: not installed",
            entry.sha256
        )));
    }
    Ok(part)
}

/// An error and its causes on one line, without the URL that reqwest puts in front (the
/// caller names the file and host).
fn error_chain(err: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        let text = e.to_string();
        // hyper's "client error (Connect)" only restates the kind given below.
        let restates_kind = text.starts_with("client error (");
        if !text.is_empty() && !restates_kind && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = e.source();
    }
    let kind = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_redirect() {
        "too many redirects"
    } else if err.is_body() || err.is_decode() {
        "the response broke off"
    } else {
        "request failed"
    };
    if parts.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind} ({})", parts.join(": "))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
    }

    /// A copy of the fixture folder (manifest and models) in a temporary folder.
    fn fixture_copy() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            MANIFEST_FILE,
            "clip-vit-b32-visual.onnx",
            "clip-vit-b32-textual.onnx",
            "aesthetic-vit-b32-linear.safetensors",
        ] {
            std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
        }
        dir
    }

    fn sha256_hex(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn one_model_manifest(file: &str, sha256: &str, bytes: Option<u64>, source: &str, required: bool) -> Manifest {
        let bytes = bytes.map(|b| format!("bytes = {b}\n")).unwrap_or_default();
        Manifest::from_toml_str(&format!(
            "[[model]]\nrole = \"test\"\nfile = \"{file}\"\nsha256 = \"{sha256}\"\n{bytes}licence = \"MIT\"\n\
             source = \"{source}\"\nrequired = {required}\n"
        ))
        .unwrap()
    }

    fn assert_one_line(message: &str) {
        assert!(!message.contains('\n'), "one line: {message:?}");
        assert!(!message.is_empty());
    }

    /// A tiny HTTP/1.1 server: `GET /<name>` answers the body served under that name, or 404.
    /// Counts the requests it answered.
    async fn serve(routes: Vec<(&'static str, Vec<u8>)>) -> (String, Arc<AtomicUsize>) {
        serve_claiming(routes, 0).await
    }

    /// [`serve`], announcing `extra` more bytes than it sends (a connection that breaks off).
    async fn serve_claiming(routes: Vec<(&'static str, Vec<u8>)>, extra: usize) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let routes = Arc::new(routes);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let routes = routes.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let text = String::from_utf8_lossy(&request);
                    let path = text.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let found = routes.iter().find(|(name, _)| path == format!("/{name}"));
                    let (status, body) = match found {
                        Some((_, body)) => ("200 OK", body.clone()),
                        None => ("404 Not Found", b"not found".to_vec()),
                    };
                    let head = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len() + extra
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket.write_all(&body).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        (base, hits)
    }

    /// Names of the files in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn production_manifest_lists_every_production_file_with_its_contract() {
        let m = Manifest::production();
        assert_eq!(m.origin(), PRODUCTION_ORIGIN);
        let files: Vec<&str> = m.models().iter().map(|e| e.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "clip-vit-b32-visual.onnx",
                "clip-vit-b32-textual.onnx",
                "aesthetic-vit-b32-linear.safetensors",
                "face-detect-yunet.onnx",
                "face-detect-mtcnn-pnet.onnx",
                "face-detect-mtcnn-rnet.onnx",
                "face-detect-mtcnn-onet.onnx",
                "face-embed-sface.onnx",
            ]
        );
        let visual = m.by_role("clip-visual").unwrap();
        assert_eq!(visual.inputs[0].to_string(), "pixel_values f32 [N,3,224,224]");
        assert_eq!(visual.outputs[0].to_string(), "image_embeds f32 [N,512]");
        let textual = m.by_role("clip-textual").unwrap();
        assert_eq!(textual.inputs[0].to_string(), "input_ids i64 [N,77]");
        assert_eq!(textual.outputs[0].to_string(), "text_embeds f32 [N,512]");
        let head = m.by_role("aesthetic-head").unwrap();
        let tensors: Vec<String> = head.tensors.iter().map(ToString::to_string).collect();
        assert_eq!(tensors, ["weight f32 [1,512]", "bias f32 [1]"]);
        assert_eq!(
            m.by_role("face-embed-sface").unwrap().outputs[0].to_string(),
            "fc1 f32 [1,128]"
        );

        for e in m.models() {
            assert!(!e.licence.is_empty(), "{}", e.file);
            // A pinned file has its size pinned too; an unpinned one says how to obtain it.
            assert_eq!(e.is_pinned(), e.bytes.is_some(), "{}", e.file);
            if !e.is_pinned() || e.source.is_empty() {
                assert!(e.note.is_some(), "{} needs a note", e.file);
            }
            if !e.source.is_empty() {
                assert!(e.source.starts_with("https://"), "{}", e.source);
            }
        }
        // The aesthetic head is Ongi's own conversion, not published yet: unpinned, and so
        // optional, since `verify` (run by every image build) fails on a required file it
        // cannot check.
        assert!(!head.is_pinned());
        assert!(!head.required, "an unpinned file cannot be required");
        for e in m.models().iter().filter(|e| e.required) {
            assert!(
                e.is_pinned() && !e.source.is_empty(),
                "{} is required: pin it and give its source",
                e.file
            );
        }
        assert_eq!(visual.source_host().as_deref(), Some("huggingface.co"));
    }

    #[test]
    fn fixture_manifest_lists_exactly_the_model_files_of_the_fixture_folder() {
        let m = Manifest::load(&fixtures()).unwrap();
        assert!(m.origin().ends_with("manifest.toml"), "{}", m.origin());
        let mut listed: Vec<String> = m.models().iter().map(|e| e.file.clone()).collect();
        listed.sort();
        let on_disk: Vec<String> = listing(&fixtures())
            .into_iter()
            .filter(|n| n.ends_with(".onnx") || n.ends_with(".safetensors"))
            .collect();
        assert_eq!(
            listed, on_disk,
            "add every model file of the fixture folder to its manifest.toml"
        );
        for e in m.models() {
            assert!(e.source.is_empty() && e.is_pinned() && e.bytes.is_some(), "{}", e.file);
        }
    }

    #[test]
    fn verify_passes_on_the_fixture_folder() {
        let report = verify(&fixtures()).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.checks.len(), Manifest::load(&fixtures()).unwrap().models().len());
        for check in &report.checks {
            assert_eq!(check.status, ModelStatus::Ok, "{}", check.file);
            assert_eq!(check.size, std::fs::metadata(&check.path).ok().map(|m| m.len()));
        }
    }

    #[test]
    fn verify_reports_a_missing_file() {
        let dir = fixture_copy();
        std::fs::remove_file(dir.path().join("clip-vit-b32-textual.onnx")).unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(!report.is_ok());
        assert_eq!(
            report.check("clip-vit-b32-textual.onnx").unwrap().status,
            ModelStatus::Missing
        );
        assert_eq!(
            report.check("clip-vit-b32-visual.onnx").unwrap().status,
            ModelStatus::Ok
        );
        let failing: Vec<&str> = report.failures().map(|c| c.file.as_str()).collect();
        assert_eq!(failing, ["clip-vit-b32-textual.onnx"]);
    }

    #[test]
    fn verify_reports_a_corrupted_byte_as_a_wrong_hash() {
        let dir = fixture_copy();
        let path = dir.path().join("clip-vit-b32-visual.onnx");
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(!report.is_ok());
        let check = report.check("clip-vit-b32-visual.onnx").unwrap();
        assert_eq!(
            check.status,
            ModelStatus::WrongHash {
                expected: "90c92e5453bf5c1193bd67b8f8754385880eb487883ed352157e1d21a5800228".to_owned(),
                actual: sha256_hex(&bytes),
            }
        );
        assert_eq!(check.status.label(), "wrong-hash");
    }

    #[test]
    fn verify_reports_a_wrong_size() {
        let dir = fixture_copy();
        let path = dir.path().join("clip-vit-b32-textual.onnx");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.push(0);
        std::fs::write(&path, &bytes).unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(!report.is_ok());
        assert_eq!(
            report.check("clip-vit-b32-textual.onnx").unwrap().status,
            ModelStatus::WrongSize {
                expected: 325432,
                actual: 325433
            }
        );
    }

    #[test]
    fn verify_warns_about_an_unpinned_file_and_ignores_a_missing_optional_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.onnx"), b"abc").unwrap();
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"\"\nlicence = \"MIT\"\nsource = \"\"\nrequired = true\n\n\
             [[model]]\nrole = \"b\"\nfile = \"b.onnx\"\nsha256 = \"\"\nlicence = \"MIT\"\nsource = \"\"\nrequired = false\n",
        )
        .unwrap();
        let report = verify(dir.path()).unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(
            report.check("a.onnx").unwrap().status,
            ModelStatus::Unpinned {
                sha256: sha256_hex(b"abc")
            }
        );
        assert_eq!(report.check("b.onnx").unwrap().status, ModelStatus::Missing);
    }

    #[test]
    fn a_folder_without_manifest_is_checked_against_the_production_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let m = Manifest::load(dir.path()).unwrap();
        assert_eq!(m, Manifest::production());
        let report = m.verify(dir.path());
        assert!(!report.is_ok());
        assert!(report.checks.iter().all(|c| c.status == ModelStatus::Missing));
        // Optional files (MTCNN, the aesthetic head) missing are not failures: CLIP visual and
        // textual, YuNet and SFace are.
        assert_eq!(report.failures().count(), 4);
    }

    #[test]
    fn malformed_or_invalid_manifests_are_one_line_errors_naming_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        std::fs::write(&path, "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"\"\n").unwrap();
        let e = Manifest::load(dir.path()).unwrap_err();
        let message = e.to_string();
        assert_one_line(&message);
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains("licence"), "{message}");

        std::fs::write(&path, "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"\"\nlicence = \"MIT\"\nsource = \"\"\nrequired = true\nweights = 1\n").unwrap();
        let message = Manifest::load(dir.path()).unwrap_err().to_string();
        assert_one_line(&message);
        assert!(message.contains("line 8") && message.contains("weights"), "{message}");

        std::fs::write(&path, "this is not toml").unwrap();
        let message = Manifest::load(dir.path()).unwrap_err().to_string();
        assert_one_line(&message);
        assert!(message.contains("line 1"), "{message}");

        let entry = |file: &str, sha256: &str, source: &str| {
            format!(
                "[[model]]\nrole = \"{file}\"\nfile = \"{file}\"\nsha256 = \"{sha256}\"\nlicence = \"MIT\"\nsource = \"{source}\"\nrequired = true\n"
            )
        };
        let pinned = sha256_hex(b"x");
        let cases = [
            ("".to_owned(), "lists no [[model]]"),
            (entry("../evil.onnx", "", ""), "plain file name"),
            (entry("sub/a.onnx", "", ""), "plain file name"),
            (entry(".hidden", "", ""), "plain file name"),
            (entry("manifest.toml", "", ""), "plain file name"),
            (entry("a.onnx", "ABC", ""), "64 lowercase hex"),
            (entry("a.onnx", &pinned.to_uppercase(), ""), "64 lowercase hex"),
            (entry("a.onnx", "", "ftp://example.org/a"), "http(s) URL"),
            (entry("a.onnx", "", "not a url"), "http(s) URL"),
            (
                format!("{}{}", entry("a.onnx", "", ""), entry("a.onnx", "", "")),
                "listed twice",
            ),
        ];
        for (text, expected) in cases {
            let message = Manifest::from_toml_str(&text).unwrap_err().to_string();
            assert_one_line(&message);
            assert!(message.contains(expected), "{message} (expected {expected:?})");
        }
        assert!(Manifest::from_toml_str(&entry("a.onnx", &pinned, "https://example.org/a.onnx")).is_ok());
    }

    #[tokio::test]
    async fn fetch_from_an_unreachable_host_fails_in_one_line_and_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = one_model_manifest("m.onnx", &sha256_hex(b"model"), Some(5), "http://127.0.0.1:9/x", true);
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), &mut Quiet)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Unreachable { .. }), "{e:?}");
        let message = e.to_string();
        assert_one_line(&message);
        assert!(
            message.starts_with("cannot download m.onnx from 127.0.0.1: "),
            "{message}"
        );
        assert!(message.contains("ongi models verify"), "{message}");
        // Only the manifest was written: no model file, no partial download.
        assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
    }

    #[tokio::test]
    async fn fetch_installs_a_file_whose_hash_matches_and_skips_it_the_second_time() {
        let body = b"tiny model bytes".to_vec();
        let (base, hits) = serve(vec![("m.onnx", body.clone())]).await;
        let manifest = one_model_manifest(
            "m.onnx",
            &sha256_hex(&body),
            Some(body.len() as u64),
            &format!("{base}/m.onnx"),
            true,
        );
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("models");
        let report = fetch_with(&manifest, &folder, &FetchOptions::default(), &mut Quiet)
            .await
            .unwrap();
        assert_eq!(report.installed, ["m.onnx"]);
        assert_eq!(std::fs::read(folder.join("m.onnx")).unwrap(), body);
        assert_eq!(listing(&folder), ["m.onnx", MANIFEST_FILE]);
        assert_eq!(
            std::fs::read_to_string(folder.join(MANIFEST_FILE)).unwrap(),
            manifest.as_toml()
        );
        assert!(verify(&folder).unwrap().is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        let again = fetch_with(&manifest, &folder, &FetchOptions::default(), &mut Quiet)
            .await
            .unwrap();
        assert_eq!(again.present, ["m.onnx"]);
        assert!(again.installed.is_empty());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");
    }

    #[tokio::test]
    async fn fetch_refuses_bytes_with_the_wrong_hash_and_leaves_nothing_installed() {
        let (base, _) = serve(vec![("m.onnx", b"evil bytes!".to_vec())]).await;
        let manifest = one_model_manifest(
            "m.onnx",
            &sha256_hex(b"good bytes!"),
            Some(11),
            &format!("{base}/m.onnx"),
            true,
        );
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), &mut Quiet)
            .await
            .unwrap_err();
        let message = e.to_string();
        assert_one_line(&message);
        assert!(message.starts_with("cannot install m.onnx: "), "{message}");
        assert!(message.contains(&sha256_hex(b"evil bytes!")), "{message}");
        assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
    }

    #[tokio::test]
    async fn a_download_that_breaks_off_stops_the_fetch_and_leaves_no_partial_file() {
        let body = b"only the first half".to_vec();
        let (base, _) = serve_claiming(vec![("m.onnx", body.clone())], 19).await;
        let manifest = one_model_manifest("m.onnx", &sha256_hex(b"x"), Some(38), &format!("{base}/m.onnx"), true);
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), &mut Quiet)
            .await
            .unwrap_err();
        assert!(matches!(e, FetchError::Interrupted { received: 19, .. }), "{e:?}");
        assert_one_line(&e.to_string());
        assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
    }

    #[tokio::test]
    async fn fetch_refuses_a_wrong_size_before_downloading() {
        let (base, _) = serve(vec![("m.onnx", b"0123456789".to_vec())]).await;
        let manifest = one_model_manifest("m.onnx", &sha256_hex(b"012"), Some(3), &format!("{base}/m.onnx"), true);
        let dir = tempfile::tempdir().unwrap();
        let message = fetch_with(&manifest, dir.path(), &FetchOptions::default(), &mut Quiet)
            .await
            .unwrap_err()
            .to_string();
        assert!(message.contains("offers 10 bytes, the manifest pins 3"), "{message}");
        assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
    }

    #[tokio::test]
    async fn fetch_downloads_an_unpinned_file_prints_its_hash_and_refuses_it() {
        let body = b"unpinned weights".to_vec();
        let (base, _) = serve(vec![("m.safetensors", body.clone())]).await;
        let manifest = one_model_manifest("m.safetensors", "", None, &format!("{base}/m.safetensors"), true);
        let dir = tempfile::tempdir().unwrap();

        struct Record(Vec<String>);
        impl FetchObserver for Record {
            fn failed(&mut self, model: &ModelEntry, why: &str) {
                self.0.push(format!("{}: {why}", model.file));
            }
        }
        let mut record = Record(Vec::new());
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), &mut record)
            .await
            .unwrap_err();
        let message = e.to_string();
        assert_one_line(&message);
        assert!(message.contains("no pinned hash"), "{message}");
        assert!(message.contains(&sha256_hex(&body)), "{message}");
        assert_eq!(record.0.len(), 1);
        assert!(record.0[0].contains(&sha256_hex(&body)));
        assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
    }

    #[tokio::test]
    async fn fetch_replaces_a_corrupt_file_and_reports_http_errors_per_file() {
        let good = b"good".to_vec();
        let (base, _) = serve(vec![("a.onnx", good.clone())]).await;
        let text = format!(
            "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"{}\"\nbytes = 4\nlicence = \"MIT\"\n\
             source = \"{base}/a.onnx\"\nrequired = true\n\n\
             [[model]]\nrole = \"b\"\nfile = \"b.onnx\"\nsha256 = \"{}\"\nbytes = 4\nlicence = \"MIT\"\n\
             source = \"{base}/b.onnx\"\nrequired = true\n\n\
             [[model]]\nrole = \"c\"\nfile = \"c.onnx\"\nsha256 = \"\"\nlicence = \"MIT\"\nsource = \"\"\n\
             required = false\nnote = \"copy it by hand\"\n\n\
             [[model]]\nrole = \"d\"\nfile = \"d.onnx\"\nsha256 = \"{}\"\nlicence = \"MIT\"\nsource = \"\"\n\
             required = false\n",
            sha256_hex(&good),
            sha256_hex(b"gone"),
            sha256_hex(b"hand-made"),
        );
        let manifest = Manifest::from_toml_str(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.onnx"), b"bad!").unwrap();
        std::fs::write(dir.path().join("d.onnx"), b"hand-made, but wrong").unwrap();
        let replace = FetchOptions {
            mismatched: Mismatched::ReplaceKeepingAside,
            ..FetchOptions::default()
        };
        let e = fetch_with(&manifest, dir.path(), &replace, &mut Quiet)
            .await
            .unwrap_err();
        let FetchError::Incomplete { total, failures } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(*total, 4);
        let failed: Vec<&str> = failures.iter().map(|(file, _)| file.as_str()).collect();
        assert_eq!(failed, ["b.onnx", "d.onnx"]);
        assert!(failures[0].1.contains("HTTP 404"), "{}", failures[0].1);
        assert!(failures[1].1.contains("wrong hash"), "{}", failures[1].1);
        // The corrupt a.onnx was replaced by the verified download and kept aside; the
        // hand-installed d.onnx, with no source, was left as it is.
        assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), good);
        assert_eq!(std::fs::read(dir.path().join("a.onnx.replaced")).unwrap(), b"bad!");
        assert_eq!(
            listing(dir.path()),
            ["a.onnx", "a.onnx.replaced", "d.onnx", MANIFEST_FILE]
        );
        assert_one_line(&e.to_string());
    }

    #[tokio::test]
    async fn by_default_a_file_that_does_not_match_is_left_as_it_is_and_reported() {
        let good = b"good".to_vec();
        let (base, hits) = serve(vec![("a.onnx", good.clone())]).await;
        let manifest = one_model_manifest("a.onnx", &sha256_hex(&good), Some(4), &format!("{base}/a.onnx"), true);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.onnx"), b"the user's own").unwrap();
        struct Record(Vec<String>);
        impl FetchObserver for Record {
            fn kept(&mut self, model: &ModelEntry, why: &str) {
                self.0.push(format!("{}: {why}", model.file));
            }
        }
        let mut record = Record(Vec::new());
        let report = fetch_with(&manifest, dir.path(), &FetchOptions::default(), &mut record)
            .await
            .unwrap();
        assert_eq!(report.kept, ["a.onnx"]);
        assert!(report.installed.is_empty() && report.moved_aside.is_empty());
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was downloaded");
        assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), b"the user's own");
        assert_eq!(listing(dir.path()), ["a.onnx", MANIFEST_FILE]);
        assert_eq!(record.0.len(), 1);
        assert_one_line(&record.0[0]);
        assert!(
            record.0[0].contains("wrong size") && record.0[0].contains("ongi models fetch"),
            "{}",
            record.0[0]
        );
    }

    #[tokio::test]
    async fn a_replacing_download_that_fails_leaves_the_present_file_and_no_part() {
        let (base, _) = serve(vec![("a.onnx", b"evil".to_vec())]).await;
        let manifest = one_model_manifest("a.onnx", &sha256_hex(b"good"), Some(4), &format!("{base}/a.onnx"), true);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.onnx"), b"the user's own").unwrap();
        let replace = FetchOptions {
            mismatched: Mismatched::ReplaceKeepingAside,
            ..FetchOptions::default()
        };
        let e = fetch_with(&manifest, dir.path(), &replace, &mut Quiet)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(&sha256_hex(b"evil")), "{e}");
        assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), b"the user's own");
        assert_eq!(listing(dir.path()), ["a.onnx", MANIFEST_FILE]);
    }

    #[test]
    fn a_different_manifest_is_kept_aside_or_left_never_lost() {
        let manifest = one_model_manifest("a.onnx", &sha256_hex(b"x"), Some(1), "", false);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MANIFEST_FILE);
        std::fs::write(&path, "# the user's own manifest\n").unwrap();
        write_manifest(&manifest, dir.path(), Mismatched::Keep).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# the user's own manifest\n");
        write_manifest(&manifest, dir.path(), Mismatched::ReplaceKeepingAside).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), manifest.as_toml());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("manifest.toml.replaced")).unwrap(),
            "# the user's own manifest\n"
        );
    }
}
