//! Installing the official ONNX Runtime release archive into the model folder: downloaded
//! like a model file (`.part`, SHA-256 checked against the pin below, progress events), its
//! library files unpacked into a temporary folder beside the final one, which is then
//! renamed into place: `<model_dir>/onnxruntime/lib/libonnxruntime.so*`.

use std::path::{Path, PathBuf};

use super::locate::MODEL_FOLDER_RUNTIME;
use super::unpack::{UnpackError, unpack_library};
use crate::model::manifest::{self, FetchError, FetchEvent, FetchOptions, ModelEntry, UsedBy};

/// One release archive of ONNX Runtime for this machine, and its pinned digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrtRelease {
    /// `1.31.0`: the release tag is `v<version>`.
    pub version: String,
    /// `onnxruntime-linux-x64-1.31.0`: the archive is `<stem>.tgz` and its files are under `<stem>/`.
    pub stem: String,
    /// SHA-256 of the archive, 64 lowercase hex digits.
    pub sha256: String,
}

/// The version fetched. 1.31.0 is the newest release whose archive digests are published
/// where they could be checked when this was pinned (several projects' pins of the same
/// GitHub release assets agree); the PyPI wheel CI tests with is 1.32.0. Both are above the
/// 1.24 that `ort` rc.15 (`api-24`) needs.
const PINNED_VERSION: &str = "1.31.0";

/// `(architecture in the archive name, SHA-256 of onnxruntime-linux-<arch>-1.31.0.tgz)`.
#[cfg(target_arch = "x86_64")]
const PINNED_ARCHIVE: Option<(&str, &str)> = Some((
    "x64",
    "cc5c72baf5ae5c8238a6841f0897227be2d02826b9cf98eaf02fdefaeeb03a57",
));
#[cfg(target_arch = "aarch64")]
const PINNED_ARCHIVE: Option<(&str, &str)> = Some((
    "aarch64",
    "c5b8b3cca31f3d643a3b313b8f42e2d0f16a4fcefd02cda343d97bd5306afaab",
));
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const PINNED_ARCHIVE: Option<(&str, &str)> = None;

impl OrtRelease {
    /// The pinned release for this machine; `None` where no official Linux archive is pinned.
    pub fn pinned() -> Option<Self> {
        let (arch, sha256) = PINNED_ARCHIVE?;
        (std::env::consts::OS == "linux").then(|| Self {
            version: PINNED_VERSION.to_owned(),
            stem: format!("onnxruntime-linux-{arch}-{PINNED_VERSION}"),
            sha256: sha256.to_owned(),
        })
    }

    pub fn archive(&self) -> String {
        format!("{}.tgz", self.stem)
    }

    /// `<base>/v<version>/<stem>.tgz`, as GitHub lays release assets out.
    pub fn url(&self, base: &str) -> String {
        format!("{}/v{}/{}", base.trim_end_matches('/'), self.version, self.archive())
    }

    /// The archive as a manifest entry, so that it downloads like a model file.
    fn entry(&self, base: &str) -> ModelEntry {
        ModelEntry {
            role: "onnxruntime".into(),
            file: self.archive(),
            sha256: self.sha256.clone(),
            bytes: None,
            licence: "MIT".into(),
            source: self.url(base),
            required: false,
            note: None,
            inputs: Vec::new(),
            outputs: Vec::new(),
            tensors: Vec::new(),
            used_by: UsedBy::Functions,
            convert: None,
        }
    }
}

/// Why [`fetch_library`] did not install the library. `Display` is one line.
#[derive(Debug, thiserror::Error)]
pub enum OrtFetchError {
    #[error("no ONNX Runtime release archive is pinned for {0}: install the library yourself and set ORT_DYLIB_PATH")]
    NoPinnedRelease(String),
    #[error("{} is already there but holds no loadable library: move it away to fetch the library again", .0.display())]
    Occupied(PathBuf),
    #[error("cannot download {archive} from {host}: {reason}")]
    Unreachable {
        archive: String,
        host: String,
        reason: String,
    },
    #[error("the download of {archive} from {host} broke off after {received} bytes: {reason}")]
    Interrupted {
        archive: String,
        host: String,
        received: u64,
        reason: String,
    },
    #[error("{0}")]
    Download(FetchError),
    #[error("cannot install {archive}: {why}")]
    Refused { archive: String, why: String },
    #[error("cannot unpack {archive}: {source}")]
    Unpack { archive: String, source: UnpackError },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
}

/// Downloads `release` from `base` (`<base>/v<version>/<archive>`) into `model_dir`, checks
/// its SHA-256 before anything is unpacked, and installs its `lib/libonnxruntime.so*` files
/// as `<model_dir>/onnxruntime/lib/`: unpacked into a temporary folder there, renamed into
/// place once complete. Returns the library's path. Nothing is left behind on failure, and
/// an `onnxruntime` folder already there is never touched.
pub async fn fetch_library(
    release: &OrtRelease,
    base: &str,
    model_dir: &Path,
    options: &FetchOptions,
    mut on_event: impl FnMut(FetchEvent<'_>) + Send,
) -> Result<PathBuf, OrtFetchError> {
    let target = model_dir.join(MODEL_FOLDER_RUNTIME);
    if target.symlink_metadata().is_ok() {
        return Err(OrtFetchError::Occupied(target));
    }
    let write_error = |path: &Path, e: std::io::Error| OrtFetchError::Write {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    std::fs::create_dir_all(model_dir).map_err(|e| write_error(model_dir, e))?;
    let client = manifest::http_client(options).map_err(OrtFetchError::Download)?;
    let entry = release.entry(base);
    let downloaded = manifest::download(&client, &entry, model_dir, &mut on_event).await;
    on_event(FetchEvent::DownloadFinished { model: &entry });
    let part = match downloaded {
        Ok(part) => part,
        Err(manifest::Failure::Stop(e)) => return Err(stopped(e)),
        Err(manifest::Failure::File(why)) => {
            on_event(FetchEvent::Failed {
                model: &entry,
                why: &why,
            });
            return Err(OrtFetchError::Refused {
                archive: entry.file,
                why,
            });
        }
    };

    // Unpacked beside its final place, so the rename below is atomic; removed on any failure.
    let staging = tempfile::Builder::new()
        .prefix(".onnxruntime.")
        .tempdir_in(model_dir)
        .map_err(|e| write_error(model_dir, e))?;
    let (archive_path, stem, into) = (part.path().to_owned(), release.stem.clone(), staging.path().to_owned());
    let names = tokio::task::spawn_blocking(move || unpack_library(&archive_path, &stem, &into))
        .await
        .map_err(|e| OrtFetchError::Unpack {
            archive: entry.file.clone(),
            source: UnpackError::Read(format!("the unpacking failed: {e}")),
        })?
        .map_err(|source| OrtFetchError::Unpack {
            archive: entry.file.clone(),
            source,
        })?;
    std::fs::rename(staging.path(), &target).map_err(|e| write_error(&target, e))?;
    // Renamed: nothing left for the guard to remove.
    let _ = staging.keep();
    drop(part);
    on_event(FetchEvent::Installed { model: &entry });
    // The real file (`libonnxruntime.so.1.31.0`) rather than a link to it: the longest name.
    let best = names.iter().max_by_key(|n| n.len()).cloned().unwrap_or_default();
    Ok(target.join("lib").join(best))
}

/// A download that stopped, said for the archive (the model downloader's own message points
/// at the model folder's manifest).
fn stopped(e: FetchError) -> OrtFetchError {
    match e {
        FetchError::Unreachable { file, host, reason, .. } => OrtFetchError::Unreachable {
            archive: file,
            host,
            reason,
        },
        FetchError::Interrupted {
            file,
            host,
            received,
            reason,
            ..
        } => OrtFetchError::Interrupted {
            archive: file,
            host,
            received,
            reason,
        },
        other => OrtFetchError::Download(other),
    }
}

#[cfg(test)]
mod tests {
    use super::super::unpack::tests::{Item, tgz};
    use super::*;
    use crate::model::manifest::test_support::{assert_one_line, listing, serve, sha256_hex};

    fn release(sha256: &str) -> OrtRelease {
        OrtRelease {
            version: "1.32.0".into(),
            stem: "onnxruntime-linux-x64-1.32.0".into(),
            sha256: sha256.into(),
        }
    }

    fn route(release: &OrtRelease) -> &'static str {
        format!("v{}/{}", release.version, release.archive()).leak()
    }

    #[test]
    fn the_pinned_release_is_a_github_release_asset_with_a_full_digest() {
        let Some(pinned) = OrtRelease::pinned() else { return };
        assert_eq!(pinned.sha256.len(), 64);
        assert!(
            pinned
                .sha256
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        let url = pinned.url(crate::config::DEFAULT_ORT_DOWNLOAD_URL);
        assert!(
            url.starts_with("https://github.com/microsoft/onnxruntime/releases/download/v1.31.0/onnxruntime-linux-"),
            "{url}"
        );
        assert!(url.ends_with("-1.31.0.tgz"), "{url}");
    }

    #[tokio::test]
    async fn an_archive_with_the_wrong_digest_is_refused_and_leaves_nothing_behind() {
        let archive = tgz(&[(
            "onnxruntime-linux-x64-1.32.0/lib/libonnxruntime.so.1.32.0",
            Item::File(b"a library"),
        )]);
        let pinned = release(&sha256_hex(b"some other archive"));
        let (base, hits) = serve(vec![(route(&pinned), archive.clone())]).await;
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_library(&pinned, &base, dir.path(), &FetchOptions::default(), |_| {})
            .await
            .unwrap_err();
        assert_one_line(&e.to_string());
        assert!(e.to_string().contains(&sha256_hex(&archive)), "{e}");
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert!(listing(dir.path()).is_empty(), "{:?}", listing(dir.path()));
    }

    #[tokio::test]
    async fn an_archive_that_climbs_out_is_refused_and_leaves_nothing_behind() {
        let archive = tgz(&[
            (
                "onnxruntime-linux-x64-1.32.0/lib/libonnxruntime.so.1.32.0",
                Item::File(b"a library"),
            ),
            ("../evil", Item::File(b"evil")),
        ]);
        let pinned = release(&sha256_hex(&archive));
        let (base, _) = serve(vec![(route(&pinned), archive)]).await;
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        let e = fetch_library(&pinned, &base, &models, &FetchOptions::default(), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(e, OrtFetchError::Unpack { .. }), "{e:?}");
        assert!(e.to_string().contains("../evil"), "{e}");
        assert!(listing(&models).is_empty(), "{:?}", listing(&models));
        assert_eq!(
            listing(dir.path()),
            ["models"],
            "nothing written beside the model folder"
        );
    }

    #[tokio::test]
    async fn an_onnxruntime_folder_already_there_is_never_touched() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("onnxruntime/mine")).unwrap();
        let e = fetch_library(
            &release(&sha256_hex(b"x")),
            "http://127.0.0.1:9",
            dir.path(),
            &FetchOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OrtFetchError::Occupied(_)), "{e:?}");
        assert!(dir.path().join("onnxruntime/mine").is_dir());
    }

    #[tokio::test]
    async fn an_unreachable_host_fails_in_one_line_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_library(
            &release(&sha256_hex(b"x")),
            "http://127.0.0.1:9",
            dir.path(),
            &FetchOptions::default(),
            |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(e, OrtFetchError::Unreachable { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("cannot download onnxruntime-linux-x64-1.32.0.tgz from 127.0.0.1: "),
            "{e}"
        );
        assert_one_line(&e.to_string());
        assert!(listing(dir.path()).is_empty());
    }
}
