//! The manifest itself: the `[[model]]` tables ([`ModelEntry`], with their I/O contracts),
//! parsing and validating a manifest's TOML, and the production manifest embedded in the
//! binary.

mod validation;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use validation::validate;

/// The manifest's file name inside a model folder.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// Where [`Manifest::production`] comes from, as error messages name it.
pub const PRODUCTION_ORIGIN: &str = "the embedded production manifest";

const PRODUCTION_TOML: &str = include_str!("../production.toml");

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

/// Which deployable loads a file (`used_by`). `ongi models fetch` and `ongi models verify`
/// work on the functions' files unless asked for others (`--for`): a local `ongi serve` must
/// never download the GPU worker's gigabytes of Stable Diffusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UsedBy {
    /// The Cloud Run functions and `ongi serve` (CLIP, the aesthetic head, the face models).
    #[default]
    Functions,
    /// The GPU worker (Stable Diffusion 1.5).
    GpuJob,
}

impl fmt::Display for UsedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Functions => "functions",
            Self::GpuJob => "gpu-job",
        })
    }
}

/// What a download is converted from (`[model.convert] from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConvertFrom {
    /// A `torch.save` of a state dict, in the zip format of torch 1.6 and later, holding
    /// exactly the entry's `[[model.tensors]]` (f32, fixed shapes, finite values); written as
    /// a safetensors file of those tensors. The pickle is read without being run (see
    /// `convert`).
    PytorchStateDict,
}

impl fmt::Display for ConvertFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::PytorchStateDict => "pytorch-state-dict",
        })
    }
}

/// `[model.convert]`: the publisher's file is not the one Ongi loads. `fetch` downloads the
/// `source`, checks it against these pins, converts it, and installs the result only when it
/// matches the entry's own `sha256` and `bytes` (the pins of the installed file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conversion {
    pub from: ConvertFrom,
    /// SHA-256 of the downloaded file, 64 lowercase hex digits (required).
    #[serde(default)]
    pub source_sha256: String,
    /// Size of the downloaded file (required).
    #[serde(default)]
    pub source_bytes: Option<u64>,
}

/// One `[[model]]` table: one file of the model folder.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// What the file is for (`clip-visual`, `face-detect-yunet`, …); unique in a manifest.
    pub role: String,
    /// The file's name inside the model folder, or inside one folder of it
    /// (`sd15/unet.safetensors`).
    pub file: String,
    /// SHA-256 of the installed file, 64 lowercase hex digits; empty when not pinned yet.
    pub sha256: String,
    /// Size in bytes of the installed file, when known.
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
    /// Which deployable loads the file (`functions` when absent).
    #[serde(default)]
    pub used_by: UsedBy,
    /// How the download becomes the file; absent when the download is the file.
    #[serde(default)]
    pub convert: Option<Conversion>,
}

impl ModelEntry {
    /// Whether the manifest pins this file's SHA-256.
    pub fn is_pinned(&self) -> bool {
        !self.sha256.is_empty()
    }

    /// Where the file is in the model folder `dir`.
    pub fn path_in(&self, dir: &Path) -> PathBuf {
        dir.join(&self.file)
    }

    /// The last part of the source URL's path (`sa_0_4_vit_b_32_linear.pth`), when it has one.
    pub fn source_name(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.source).ok()?;
        let name = url.path_segments()?.next_back()?;
        (!name.is_empty()).then(|| name.to_owned())
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
        // The embedded text is a constant of the build, checked by the tests (`schema/tests.rs`).
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

    /// This manifest with only the files `who` loads (possibly none); its text and origin are
    /// the whole manifest's, so `fetch` still writes the whole manifest into the folder.
    pub fn only_used_by(&self, who: UsedBy) -> Self {
        Self {
            models: self.models.iter().filter(|m| m.used_by == who).cloned().collect(),
            text: self.text.clone(),
            origin: self.origin.clone(),
        }
    }

    /// The TOML text this manifest was read from.
    pub fn as_toml(&self) -> &str {
        &self.text
    }

    /// Where this manifest was read from (a path, or [`PRODUCTION_ORIGIN`]).
    pub fn origin(&self) -> &str {
        &self.origin
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

#[cfg(test)]
mod tests;
