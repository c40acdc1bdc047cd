//! Checking a model folder against its manifest: presence, size and SHA-256 of every file
//! ([`verify`], [`Manifest::verify`]), hashing each file while it is streamed, or reading its
//! hash from a stamp while the file is unchanged ([`Hashing::Stamped`], see `stamp`).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::schema::{Manifest, ManifestError, ModelEntry};
use super::stamp;

const HASH_BUFFER: usize = 1 << 20;

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

/// How a check learns a file's SHA-256.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hashing {
    /// Reads every byte (`ongi models verify`: the full check), and stamps the result.
    Full,
    /// Trusts the file's stamp while its size and modification time are unchanged, else reads
    /// it in full (a process's start-up).
    Stamped,
}

impl Manifest {
    /// Checks every file of the manifest in the folder `dir`: presence, size, SHA-256 (every byte).
    pub fn verify(&self, dir: &Path) -> VerifyReport {
        self.verify_with(dir, Hashing::Full)
    }

    /// [`Manifest::verify`], with the hashes learnt as `hashing` says.
    pub fn verify_with(&self, dir: &Path, hashing: Hashing) -> VerifyReport {
        let checks = self
            .models()
            .iter()
            .map(|entry| {
                let path = dir.join(&entry.file);
                let (size, status) = check_file(entry, &path, hashing);
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
            manifest: self.origin().to_owned(),
            checks,
        }
    }
}

/// Checks the model folder `dir` against its manifest ([`Manifest::load`]), every byte.
pub fn verify(dir: &Path) -> Result<VerifyReport, ManifestError> {
    verify_with(dir, Hashing::Full)
}

/// [`verify`], with the hashes learnt as `hashing` says.
pub fn verify_with(dir: &Path, hashing: Hashing) -> Result<VerifyReport, ManifestError> {
    Ok(Manifest::load(dir)?.verify_with(dir, hashing))
}

/// Size on disk (when present) and status of one file.
pub(super) fn check_file(entry: &ModelEntry, path: &Path, hashing: Hashing) -> (Option<u64>, ModelStatus) {
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
    let hashed = match hashing {
        Hashing::Full => sha256_file(path).inspect(|hash| stamp::record(path, hash)),
        Hashing::Stamped => stamp::sha256_stamped(path),
    };
    let actual = match hashed {
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

#[cfg(test)]
mod tests {
    use super::super::STAMP_FILE;
    use super::super::schema::{MANIFEST_FILE, UsedBy};
    use super::super::test_support::{fixture_copy, fixtures, sha256_hex};
    use super::*;

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
        // Optional files (MTCNN) missing are not failures: CLIP visual and textual, the
        // aesthetic head, YuNet and SFace are, and the GPU worker's three Stable Diffusion files.
        assert_eq!(report.failures().count(), 8);
        let functions = m.only_used_by(UsedBy::Functions).verify(dir.path());
        let failing: Vec<&str> = functions.failures().map(|c| c.file.as_str()).collect();
        assert_eq!(
            failing,
            [
                "clip-vit-b32-visual.onnx",
                "clip-vit-b32-textual.onnx",
                "aesthetic-vit-b32-linear.safetensors",
                "face-detect-yunet.onnx",
                "face-embed-sface.onnx",
            ]
        );
        let gpu_job = m.only_used_by(UsedBy::GpuJob).verify(dir.path());
        let failing: Vec<&Path> = gpu_job.failures().map(|c| c.path.as_path()).collect();
        assert_eq!(
            failing,
            ["unet", "vae", "text_encoder"].map(|n| dir.path().join(format!("sd15/{n}.safetensors")))
        );
    }

    #[test]
    fn a_file_in_a_folder_is_checked_and_stamped_in_that_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sd15")).unwrap();
        std::fs::write(dir.path().join("sd15/unet.safetensors"), b"unet").unwrap();
        let m = Manifest::from_toml_str(&format!(
            "[[model]]\nrole = \"u\"\nfile = \"sd15/unet.safetensors\"\nused_by = \"gpu-job\"\nsha256 = \"{}\"\n\
             bytes = 4\nlicence = \"MIT\"\nsource = \"\"\nrequired = true\n",
            sha256_hex(b"unet")
        ))
        .unwrap();
        let report = m.verify(dir.path());
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.check("sd15/unet.safetensors").unwrap().status, ModelStatus::Ok);
        // Stamped beside the file, under its name in that folder; a start-up reads it back.
        let stamps = std::fs::read_to_string(dir.path().join("sd15").join(STAMP_FILE)).unwrap();
        assert!(
            stamps.starts_with(&sha256_hex(b"unet")) && stamps.ends_with(" unet.safetensors\n"),
            "{stamps}"
        );
        assert!(!dir.path().join(STAMP_FILE).exists());
        assert!(m.verify_with(dir.path(), Hashing::Stamped).is_ok());

        // Another file of the same size, and a time the stamp does not have.
        let path = dir.path().join("sd15/unet.safetensors");
        std::fs::write(&path, b"UNET").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        let report = m.verify_with(dir.path(), Hashing::Stamped);
        assert_eq!(
            report.check("sd15/unet.safetensors").unwrap().status.label(),
            "wrong-hash"
        );
    }
}
