//! The manifest itself: the `[[model]]` tables ([`ModelEntry`], with their I/O contracts),
//! parsing and validating a manifest's TOML, and the production manifest embedded in the
//! binary.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

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
        if !is_model_path(&m.file) {
            return Err(format!(
                "{which}: file must be a plain file name inside the model folder, or one folder and a plain file \
                 name (sd15/unet.safetensors), got {:?}",
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
        if let Some(convert) = &m.convert {
            validate_conversion(&which, convert, &m.tensors)?;
        }
        if models[..i].iter().any(|other| other.file == m.file) {
            return Err(format!("{which} is listed twice"));
        }
        // A file cannot also be the folder of another one.
        if let Some(other) = models.iter().find(|other| {
            let (a, b) = (&m.file, &other.file);
            a.strip_prefix(b.as_str()).is_some_and(|rest| rest.starts_with('/'))
        }) {
            return Err(format!(
                "{which} is inside {}, which the manifest lists as a file",
                other.file
            ));
        }
        if models[..i].iter().any(|other| other.role == m.role) {
            return Err(format!("{which}: role {:?} is listed twice", m.role));
        }
    }
    Ok(())
}

/// The pins of the download and the tensors it is converted into: what `fetch` needs to
/// check a converted file before and after the conversion.
fn validate_conversion(which: &str, convert: &Conversion, tensors: &[TensorSpec]) -> Result<(), String> {
    let from = convert.from;
    if convert.source_sha256.is_empty() || convert.source_bytes.is_none() {
        return Err(format!(
            "{which}: [model.convert] needs source_sha256 and source_bytes, the pins of the downloaded file"
        ));
    }
    if !is_sha256_hex(&convert.source_sha256) {
        return Err(format!(
            "{which}: [model.convert] source_sha256 must be 64 lowercase hex digits, got {:?}",
            convert.source_sha256
        ));
    }
    if convert.source_bytes == Some(0) {
        return Err(format!("{which}: [model.convert] source_bytes must be positive"));
    }
    match from {
        ConvertFrom::PytorchStateDict => {
            if tensors.is_empty() {
                return Err(format!(
                    "{which}: [model.convert] from = \"{from}\" needs the [[model.tensors]] it writes"
                ));
            }
            let fixed = |spec: &TensorSpec| spec.shape.iter().all(|d| matches!(d, Dim::Fixed(_)));
            if let Some(spec) = tensors.iter().find(|t| t.dtype != DType::F32 || !fixed(t)) {
                return Err(format!(
                    "{which}: [model.convert] from = \"{from}\" writes f32 tensors of fixed shape only, got {spec}"
                ));
            }
        }
    }
    Ok(())
}

/// A file name, or one folder and a file name (`sd15/unet.safetensors`): no absolute path,
/// no `..`, no hidden part, nothing deeper, so a manifest can only name files inside the folder.
fn is_model_path(file: &str) -> bool {
    let parts: Vec<&str> = file.split('/').collect();
    file != MANIFEST_FILE && parts.len() <= 2 && parts.iter().all(|part| is_plain_file_name(part))
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_one_line, fixtures, listing, sha256_hex};
    use super::*;

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
                "sd15/unet.safetensors",
                "sd15/vae.safetensors",
                "sd15/text_encoder.safetensors",
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
        // Every required file can be checked and fetched: `verify` (run by every image build)
        // fails on a required file it cannot check.
        for e in m.models().iter().filter(|e| e.required) {
            assert!(
                e.is_pinned() && !e.source.is_empty(),
                "{} is required: pin it and give its source",
                e.file
            );
        }
        // The aesthetic head is LAION's .pth at a fixed commit, converted by `fetch` and pinned
        // before and after the conversion.
        assert!(head.required && head.is_pinned());
        assert_eq!(head.bytes, Some(2188));
        assert_eq!(
            head.source,
            "https://github.com/LAION-AI/aesthetic-predictor/raw/6d122adad522ab246644d9dc1c6d7a3810ee255f/sa_0_4_vit_b_32_linear.pth"
        );
        assert_eq!(head.source_name().as_deref(), Some("sa_0_4_vit_b_32_linear.pth"));
        assert_eq!(
            head.convert,
            Some(Conversion {
                from: ConvertFrom::PytorchStateDict,
                source_sha256: "c7b14cead230694acc7b9447974d3cad78003c72da032e402a303b6c2429e85f".to_owned(),
                source_bytes: Some(3047),
            })
        );
        assert!(
            m.models()
                .iter()
                .filter(|e| e.role != "aesthetic-head")
                .all(|e| e.convert.is_none())
        );
        assert_eq!(visual.source_host().as_deref(), Some("huggingface.co"));
    }

    #[test]
    fn production_manifest_pins_the_gpu_workers_stable_diffusion_files_for_the_gpu_job_only() {
        let m = Manifest::production();
        let revision = "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/\
                        451f4fe16113bff5a5d2269ed5ad43b0592e9a14/";
        let expected = [
            (
                "sd15/unet.safetensors",
                "unet/diffusion_pytorch_model.fp16.safetensors",
                1719125304,
                "c83908253f9a64d08c25fc90874c9c8aef9a329ce1ca5fb909d73b0c83d1ea21",
            ),
            (
                "sd15/vae.safetensors",
                "vae/diffusion_pytorch_model.fp16.safetensors",
                167335342,
                "4fbcf0ebe55a0984f5a5e00d8c4521d52359af7229bb4d81890039d2aa16dd7c",
            ),
            (
                "sd15/text_encoder.safetensors",
                "text_encoder/model.fp16.safetensors",
                246144864,
                "77795e2023adcf39bc29a884661950380bd093cf0750a966d473d1718dc9ef4e",
            ),
        ];
        let gpu_job = m.only_used_by(UsedBy::GpuJob);
        let files: Vec<&str> = gpu_job.models().iter().map(|e| e.file.as_str()).collect();
        assert_eq!(files, expected.map(|(file, ..)| file));
        for (file, path, bytes, sha256) in expected {
            let e = gpu_job.models().iter().find(|e| e.file == file).unwrap();
            assert_eq!(e.used_by, UsedBy::GpuJob);
            assert_eq!(e.source, format!("{revision}{path}"), "{file}");
            assert_eq!(e.bytes, Some(bytes), "{file}");
            assert_eq!(e.sha256, sha256, "{file}");
            assert_eq!(e.licence, "CreativeML-OpenRAIL-M", "{file}");
            assert!(e.required, "{file}");
            // Where the GPU worker reads them (gpu-job/src/diffusion/weights.rs, in sd15/).
            assert_eq!(e.path_in(Path::new("/m")), Path::new("/m/sd15").join(&file[5..]));
        }
        // Every other file is the functions', which the commands take by default.
        let functions = m.only_used_by(UsedBy::Functions);
        assert_eq!(functions.models().len() + 3, m.models().len());
        assert!(functions.models().iter().all(|e| !e.file.contains('/')));
        assert_eq!(functions.as_toml(), m.as_toml(), "a selection keeps the whole text");
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
        let converted = |convert: &str, tensors: &str| {
            format!(
                "{}used_by = \"functions\"\n\n[model.convert]\n{convert}\n{tensors}",
                entry("h.safetensors", "", "https://example.org/h.pth")
            )
        };
        let weight = "\n[[model.tensors]]\nname = \"weight\"\ndtype = \"f32\"\nshape = [1, 512]\n";
        let source_pins = format!("source_sha256 = \"{pinned}\"\nsource_bytes = 3");
        let cases = [
            ("".to_owned(), "lists no [[model]]"),
            (entry("../evil.onnx", "", ""), "plain file name"),
            (entry("../x", "", ""), "plain file name"),
            (entry("a/b/c", "", ""), "plain file name"),
            (entry("/x", "", ""), "plain file name"),
            (entry("sd15/", "", ""), "plain file name"),
            (entry("sd15//x", "", ""), "plain file name"),
            (entry("sd15/../x", "", ""), "plain file name"),
            (entry("sd15/.x", "", ""), "plain file name"),
            (entry(".sd15/x", "", ""), "plain file name"),
            (entry("sd15\\\\x", "", ""), "plain file name"),
            (entry(".hidden", "", ""), "plain file name"),
            (entry("manifest.toml", "", ""), "plain file name"),
            (
                format!("{}{}", entry("sd15", "", ""), entry("sd15/a.onnx", "", "")),
                "sd15/a.onnx is inside sd15, which the manifest lists as a file",
            ),
            (
                format!("{}used_by = \"laptop\"\n", entry("a.onnx", "", "")),
                "unknown variant `laptop`",
            ),
            (
                converted("from = \"pytorch-state-dict\"\nsource_bytes = 3", weight),
                "needs source_sha256 and source_bytes",
            ),
            (
                converted(
                    &format!("from = \"pytorch-state-dict\"\nsource_sha256 = \"{pinned}\""),
                    weight,
                ),
                "needs source_sha256 and source_bytes",
            ),
            (
                converted(
                    "from = \"pytorch-state-dict\"\nsource_sha256 = \"ABC\"\nsource_bytes = 3",
                    weight,
                ),
                "source_sha256 must be 64 lowercase hex",
            ),
            (
                converted(&format!("from = \"pickle\"\n{source_pins}"), weight),
                "unknown variant `pickle`",
            ),
            (
                converted(&format!("from = \"pytorch-state-dict\"\n{source_pins}"), ""),
                "needs the [[model.tensors]] it writes",
            ),
            (
                converted(
                    &format!("from = \"pytorch-state-dict\"\n{source_pins}"),
                    &weight.replace("[1, 512]", "[\"N\", 512]"),
                ),
                "writes f32 tensors of fixed shape only, got weight f32 [N,512]",
            ),
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
        let nested = Manifest::from_toml_str(&format!(
            "{}used_by = \"gpu-job\"\n",
            entry("sd15/unet.safetensors", &pinned, "https://example.org/u")
        ))
        .unwrap();
        assert_eq!(nested.models()[0].used_by, UsedBy::GpuJob);
        let head = Manifest::from_toml_str(&converted(
            &format!("from = \"pytorch-state-dict\"\n{source_pins}"),
            weight,
        ))
        .unwrap();
        assert_eq!(head.models()[0].used_by, UsedBy::Functions);
        assert_eq!(
            head.models()[0].convert.as_ref().map(|c| (c.from, c.source_bytes)),
            Some((ConvertFrom::PytorchStateDict, Some(3)))
        );
        // Without `used_by`, a file is the functions'.
        let plain = Manifest::from_toml_str(&entry("a.onnx", "", "")).unwrap();
        assert_eq!(plain.models()[0].used_by, UsedBy::Functions);
        assert!(plain.only_used_by(UsedBy::GpuJob).models().is_empty());
    }
}
