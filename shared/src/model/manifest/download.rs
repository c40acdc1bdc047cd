//! One download: streamed to `.<file>.part` beside the file (`DIR/sd15/.unet.safetensors.part`
//! for `sd15/unet.safetensors`) while it is hashed, checked against the pinned size and
//! SHA-256, and only then renamed into place, a file already there being kept aside as
//! `<file>.replaced`; a `.part` that is not installed is deleted.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::fetch::{FetchError, FetchEvent};
use super::schema::ModelEntry;

/// The most `fetch` downloads for a file whose size is not pinned (the largest production
/// file, the Stable Diffusion UNet, is 1.7 GB).
const MAX_UNPINNED_BYTES: u64 = 4 << 30;

/// `<path>.replaced`, or `<path>.replaced.2`, `.3`, … : the first name not taken.
pub(super) fn free_aside_name(path: &Path) -> PathBuf {
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
pub(super) async fn install(part: PartFile, path: &Path, replacing: bool) -> Result<Option<PathBuf>, Failure> {
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

pub(in crate::model) enum Failure {
    /// Stop fetching.
    Stop(FetchError),
    /// This file could not be installed; go on with the next.
    File(String),
}

/// Deletes the `.part` file when dropped, unless it was renamed into place.
pub(in crate::model) struct PartFile {
    path: PathBuf,
    armed: bool,
}

impl PartFile {
    /// Where the verified download is, until it is installed or dropped.
    pub(in crate::model) fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` (already checked against their pins) to `path`, armed.
    pub(super) async fn write(path: PathBuf, bytes: &[u8]) -> Result<Self, Failure> {
        let part = Self { path, armed: true };
        let write_error = |e: io::Error| {
            Failure::Stop(FetchError::Write {
                path: part.path.clone(),
                reason: e.to_string(),
            })
        };
        let mut file = tokio::fs::File::create(&part.path).await.map_err(write_error)?;
        file.write_all(bytes).await.map_err(write_error)?;
        file.sync_all().await.map_err(write_error)?;
        Ok(part)
    }
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// The `.part`-style name of a file of the model folder: `.<name>.<suffix>` in the folder the
/// file is in (`sd15/.unet.safetensors.part`), so its rename into place never crosses folders.
pub(super) fn part_path(dir: &Path, file: &str, suffix: &str) -> PathBuf {
    match file.rsplit_once('/') {
        Some((folder, name)) => dir.join(folder).join(format!(".{name}.{suffix}")),
        None => dir.join(format!(".{file}.{suffix}")),
    }
}

/// What a download is checked against.
pub(super) struct Pins<'a> {
    /// SHA-256, lowercase hex; empty when not pinned.
    pub sha256: &'a str,
    pub bytes: Option<u64>,
    /// The pins are `[model.convert]`'s, of the file that is converted (the messages say so).
    pub of_source: bool,
}

impl Pins<'_> {
    /// "the manifest pins 42", or for a converted file's download "the manifest pins 42 for
    /// the download".
    fn pinned(&self, value: impl std::fmt::Display) -> String {
        let what = if self.of_source { " for the download" } else { "" };
        format!("the manifest pins {value}{what}")
    }
}

/// Downloads `entry` to `DIR/.<file>.part` and checks its size and SHA-256; the verified
/// file is returned still armed, so it is deleted unless [`install`] puts it in place.
pub(in crate::model) async fn download(
    client: &reqwest::Client,
    entry: &ModelEntry,
    dir: &Path,
    on_event: &mut (dyn FnMut(FetchEvent<'_>) + Send),
) -> Result<PartFile, Failure> {
    let pins = Pins {
        sha256: &entry.sha256,
        bytes: entry.bytes,
        of_source: false,
    };
    download_to(client, entry, dir, part_path(dir, &entry.file, "part"), pins, on_event).await
}

/// Downloads `entry`'s source to `part` (a file of the model folder `dir`) and checks it
/// against `pins`.
pub(super) async fn download_to(
    client: &reqwest::Client,
    entry: &ModelEntry,
    dir: &Path,
    part: PathBuf,
    pins: Pins<'_>,
    on_event: &mut (dyn FnMut(FetchEvent<'_>) + Send),
) -> Result<PartFile, Failure> {
    let source_host = entry.source_host().unwrap_or_else(|| entry.source.clone());
    let host_of = |e: &reqwest::Error| {
        e.url()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| source_host.clone())
    };
    let part = PartFile {
        path: part,
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
    if let (Some(expected), Some(offered)) = (pins.bytes, offered)
        && expected != offered
    {
        return Err(Failure::File(format!(
            "{source_host} offers {offered} bytes, {}: not downloaded",
            pins.pinned(expected)
        )));
    }
    let limit = pins.bytes.unwrap_or(MAX_UNPINNED_BYTES);

    on_event(FetchEvent::DownloadStarted {
        model: entry,
        total: pins.bytes.or(offered),
    });
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
        on_event(FetchEvent::DownloadProgress { model: entry, received });
    }
    file.sync_all().await.map_err(write_error)?;
    drop(file);

    let actual = hex::encode(hasher.finalize());
    if let Some(expected) = pins.bytes
        && expected != received
    {
        return Err(Failure::File(format!(
            "downloaded {received} bytes, {}: not installed",
            pins.pinned(expected)
        )));
    }
    if pins.sha256.is_empty() {
        return Err(Failure::File(format!(
            "the manifest has no pinned hash for it: downloaded {received} bytes with sha256 {actual}, not installed; \
             check the file, then pin sha256 = \"{actual}\" and bytes = {received} in the manifest"
        )));
    }
    if actual != pins.sha256 {
        return Err(Failure::File(format!(
            "downloaded file has sha256 {actual}, {}: not installed",
            pins.pinned(pins.sha256)
        )));
    }
    Ok(part)
}

/// An error and its causes on one line, without the URL that reqwest puts in front (the
/// caller names the file and host).
pub(super) fn error_chain(err: &reqwest::Error) -> String {
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
    use super::super::fetch::{FetchOptions, Mismatched, fetch_with};
    use super::super::schema::MANIFEST_FILE;
    use super::super::test_support::{assert_one_line, listing, one_model_manifest, serve, serve_claiming, sha256_hex};
    use super::*;

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
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
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
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
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
        let message = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
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

        let mut record: Vec<String> = Vec::new();
        let on_event = |event: FetchEvent<'_>| {
            if let FetchEvent::Failed { model, why } = event {
                record.push(format!("{}: {why}", model.file));
            }
        };
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), on_event)
            .await
            .unwrap_err();
        let message = e.to_string();
        assert_one_line(&message);
        assert!(message.contains("no pinned hash"), "{message}");
        assert!(message.contains(&sha256_hex(&body)), "{message}");
        assert_eq!(record.len(), 1);
        assert!(record[0].contains(&sha256_hex(&body)));
        assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
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
        let e = fetch_with(&manifest, dir.path(), &replace, |_| {}).await.unwrap_err();
        assert!(e.to_string().contains(&sha256_hex(b"evil")), "{e}");
        assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), b"the user's own");
        assert_eq!(listing(dir.path()), ["a.onnx", MANIFEST_FILE]);
    }
}
