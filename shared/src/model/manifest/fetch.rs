//! Installing a manifest's files into a folder ([`fetch_with`]): what is already there is
//! checked first, a file that does not match its pin is kept or replaced as
//! [`Mismatched`] says, and each event is reported to a callback ([`FetchEvent`]).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::convert::download_and_convert;
use super::download::{Failure, download, error_chain, free_aside_name, install};
use super::schema::{MANIFEST_FILE, Manifest, ModelEntry};
use super::stamp;
use super::verify::{Hashing, ModelStatus, check_file};

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

/// What [`fetch_with`] reports while it works (a progress bar in the CLI), one event per
/// call of its callback; a callback ignores the events it has no use for.
#[derive(Debug, Clone, Copy)]
pub enum FetchEvent<'a> {
    /// A download began; `total` is the expected size when known.
    DownloadStarted { model: &'a ModelEntry, total: Option<u64> },
    /// `received` bytes of the current download have arrived.
    DownloadProgress { model: &'a ModelEntry, received: u64 },
    /// The current download ended (whatever the outcome); sent before any other event.
    DownloadFinished { model: &'a ModelEntry },
    /// The file was left as it is (already valid, present but unpinned, optional without source).
    Skipped { model: &'a ModelEntry, why: &'a str },
    /// A file that does not match its pin was left where it is ([`Mismatched::Keep`]); `why`
    /// says what is wrong with it and how to replace it.
    Kept { model: &'a ModelEntry, why: &'a str },
    /// A file that did not match its pin was moved to `aside` to make room for the verified
    /// download (installed next).
    MovedAside {
        model: &'a ModelEntry,
        why: &'a str,
        aside: &'a Path,
    },
    /// The file was downloaded, checked and installed.
    Installed { model: &'a ModelEntry },
    /// The file could not be installed; `fetch_with` goes on with the next one.
    Failed { model: &'a ModelEntry, why: &'a str },
}

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
    /// Some files could not be installed (each is also reported to the callback).
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

/// Installs every file of `manifest` into the folder `dir` (created if needed, and the folder
/// of a file such as `sd15/unet.safetensors`) and writes the manifest there as
/// `manifest.toml`. Files already present and valid are left alone; files present but not
/// matching their pin are handled as `options.mismatched` says. Each download goes to
/// `.<file>.part` beside the file and takes its final name only once its size and SHA-256
/// match the manifest; a file whose hash is not pinned is downloaded, its hash reported, and
/// refused. A file with `[model.convert]` is downloaded to `.<file>.source.part`, checked
/// against the conversion's pins, converted, and installed only when the result matches the
/// file's own pins (see `convert`); the download is deleted either way. A host that cannot be
/// reached stops everything with [`FetchError::Unreachable`]; other per-file problems are
/// collected into [`FetchError::Incomplete`] after the remaining files have been tried.
/// `on_event` hears what happens to each file as it happens ([`FetchEvent`]); `|_| {}` hears
/// nothing.
pub async fn fetch_with(
    manifest: &Manifest,
    dir: &Path,
    options: &FetchOptions,
    mut on_event: impl FnMut(FetchEvent<'_>) + Send,
) -> Result<FetchReport, FetchError> {
    std::fs::create_dir_all(dir).map_err(|e| FetchError::Folder {
        dir: dir.to_owned(),
        reason: e.to_string(),
    })?;
    write_manifest(manifest, dir, options.mismatched)?;
    let client = http_client(options)?;

    let mut report = FetchReport::default();
    let mut failures = Vec::new();
    for entry in manifest.models() {
        let path = entry.path_in(dir);
        let how = entry.note.as_deref().map(|n| format!(": {n}")).unwrap_or_default();
        // The present file that does not match its pin, and what is wrong with it.
        let mut mismatched = None;
        match check_in_background(entry, &path).await {
            ModelStatus::Missing => {}
            ModelStatus::Ok => {
                on_event(FetchEvent::Skipped {
                    model: entry,
                    why: "already present and valid",
                });
                report.present.push(entry.file.clone());
                continue;
            }
            ModelStatus::Unpinned { sha256 } => {
                let why = format!("present but not pinned (sha256 {sha256}): left as it is");
                on_event(FetchEvent::Skipped {
                    model: entry,
                    why: &why,
                });
                report.present.push(entry.file.clone());
                continue;
            }
            bad if entry.source.is_empty() => {
                // Installed by hand: not deleted, since nothing could replace it.
                let why = format!("present but {bad}; the manifest has no download source to replace it{how}");
                on_event(FetchEvent::Failed {
                    model: entry,
                    why: &why,
                });
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
                on_event(FetchEvent::Kept {
                    model: entry,
                    why: &why,
                });
                report.kept.push(entry.file.clone());
                continue;
            }
            bad => mismatched = Some(bad),
        }
        if entry.source.is_empty() {
            if entry.required {
                let why = format!("the manifest has no download source for it{how}");
                on_event(FetchEvent::Failed {
                    model: entry,
                    why: &why,
                });
                failures.push((entry.file.clone(), why));
            } else {
                on_event(FetchEvent::Skipped {
                    model: entry,
                    why: &format!("optional, no download source{how}"),
                });
                report.skipped.push(entry.file.clone());
            }
            continue;
        }
        // A file inside a folder of the model folder (sd15/unet.safetensors): the folder first.
        if let Some(folder) = path.parent()
            && let Err(e) = std::fs::create_dir_all(folder)
        {
            return Err(FetchError::Folder {
                dir: folder.to_owned(),
                reason: e.to_string(),
            });
        }
        let outcome = match &entry.convert {
            Some(conversion) => download_and_convert(&client, entry, conversion, dir, &mut on_event).await,
            None => download(&client, entry, dir, &mut on_event).await,
        };
        on_event(FetchEvent::DownloadFinished { model: entry });
        let outcome = match outcome {
            Ok(part) => install(part, &path, mismatched.is_some()).await,
            Err(failure) => Err(failure),
        };
        match outcome {
            Ok(aside) => {
                // The download was checked against the pin byte by byte before its rename.
                stamp::record(&path, &entry.sha256);
                if let (Some(aside), Some(bad)) = (aside, &mismatched) {
                    on_event(FetchEvent::MovedAside {
                        model: entry,
                        why: &bad.to_string(),
                        aside: &aside,
                    });
                    report.moved_aside.push(aside);
                }
                on_event(FetchEvent::Installed { model: entry });
                report.installed.push(entry.file.clone());
            }
            Err(Failure::Stop(e)) => return Err(e),
            Err(Failure::File(why)) => {
                on_event(FetchEvent::Failed {
                    model: entry,
                    why: &why,
                });
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

/// The HTTP client of every download, with `options`' timeouts.
pub(in crate::model) fn http_client(options: &FetchOptions) -> Result<reqwest::Client, FetchError> {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .read_timeout(options.read_timeout)
        .user_agent(concat!("ongi/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| FetchError::Client {
            reason: error_chain(&e),
        })
}

/// [`check_file`] on a blocking thread: hashing a 350 MB file must not stall the runtime. A
/// file whose stamp says it is unchanged is not read again.
async fn check_in_background(entry: &ModelEntry, path: &Path) -> ModelStatus {
    let (entry, path) = (entry.clone(), path.to_owned());
    tokio::task::spawn_blocking(move || check_file(&entry, &path, Hashing::Stamped).1)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::super::schema::UsedBy;
    use super::super::test_support::{assert_one_line, listing, one_model_manifest, serve, sha256_hex};
    use super::super::verify::verify;
    use super::*;

    #[tokio::test]
    async fn fetch_from_an_unreachable_host_fails_in_one_line_and_installs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = one_model_manifest("m.onnx", &sha256_hex(b"model"), Some(5), "http://127.0.0.1:9/x", true);
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
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
        let report = fetch_with(&manifest, &folder, &FetchOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(report.installed, ["m.onnx"]);
        assert_eq!(std::fs::read(folder.join("m.onnx")).unwrap(), body);
        assert_eq!(listing(&folder), ["m.onnx", MANIFEST_FILE]);
        assert_eq!(
            std::fs::read_to_string(folder.join(MANIFEST_FILE)).unwrap(),
            manifest.as_toml()
        );
        // The verified download is stamped: a start-up will not read it again.
        let stamps = std::fs::read_to_string(folder.join(super::super::STAMP_FILE)).unwrap();
        assert!(
            stamps.starts_with(&sha256_hex(&body)) && stamps.ends_with(" m.onnx\n"),
            "{stamps}"
        );
        assert!(verify(&folder).unwrap().is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1);

        let again = fetch_with(&manifest, &folder, &FetchOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(again.present, ["m.onnx"]);
        assert!(again.installed.is_empty());
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");
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
        let e = fetch_with(&manifest, dir.path(), &replace, |_| {}).await.unwrap_err();
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
        let mut record: Vec<String> = Vec::new();
        let on_event = |event: FetchEvent<'_>| {
            if let FetchEvent::Kept { model, why } = event {
                record.push(format!("{}: {why}", model.file));
            }
        };
        let report = fetch_with(&manifest, dir.path(), &FetchOptions::default(), on_event)
            .await
            .unwrap();
        assert_eq!(report.kept, ["a.onnx"]);
        assert!(report.installed.is_empty() && report.moved_aside.is_empty());
        assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was downloaded");
        assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), b"the user's own");
        assert_eq!(listing(dir.path()), ["a.onnx", MANIFEST_FILE]);
        assert_eq!(record.len(), 1);
        assert_one_line(&record[0]);
        assert!(
            record[0].contains("wrong size") && record[0].contains("ongi models fetch"),
            "{}",
            record[0]
        );
    }

    #[tokio::test]
    async fn a_file_in_a_folder_is_installed_there_and_only_when_its_deployable_is_asked_for() {
        let unet = b"unet weights".to_vec();
        let clip = b"clip weights".to_vec();
        let (base, hits) = serve(vec![("unet", unet.clone()), ("clip", clip.clone())]).await;
        let text = format!(
            "[[model]]\nrole = \"clip\"\nfile = \"clip.onnx\"\nsha256 = \"{}\"\nbytes = {}\nlicence = \"MIT\"\n\
             source = \"{base}/clip\"\nrequired = true\n\n\
             [[model]]\nrole = \"unet\"\nfile = \"sd15/unet.safetensors\"\nused_by = \"gpu-job\"\nsha256 = \"{}\"\n\
             bytes = {}\nlicence = \"MIT\"\nsource = \"{base}/unet\"\nrequired = true\n",
            sha256_hex(&clip),
            clip.len(),
            sha256_hex(&unet),
            unet.len()
        );
        let manifest = Manifest::from_toml_str(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();

        let report = fetch_with(
            &manifest.only_used_by(UsedBy::Functions),
            dir.path(),
            &FetchOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(report.installed, ["clip.onnx"]);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(listing(dir.path()), ["clip.onnx", MANIFEST_FILE], "no sd15/ yet");
        // The whole manifest is written, whatever was selected.
        assert_eq!(std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap(), text);

        let report = fetch_with(
            &manifest.only_used_by(UsedBy::GpuJob),
            dir.path(),
            &FetchOptions::default(),
            |_| {},
        )
        .await
        .unwrap();
        assert_eq!(report.installed, ["sd15/unet.safetensors"]);
        assert_eq!(hits.load(Ordering::SeqCst), 2);
        assert_eq!(std::fs::read(dir.path().join("sd15/unet.safetensors")).unwrap(), unet);
        // No partial download left in the folder, and the stamp is the folder's own.
        assert_eq!(listing(&dir.path().join("sd15")), ["unet.safetensors"]);
        assert!(dir.path().join("sd15").join(super::super::STAMP_FILE).is_file());
        assert!(verify(dir.path()).unwrap().is_ok());

        let again = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(again.present, ["clip.onnx", "sd15/unet.safetensors"]);
        assert_eq!(hits.load(Ordering::SeqCst), 2, "nothing downloaded again");
    }

    /// A manifest of one converted file, the aesthetic head's contract, downloaded from `url`.
    fn converted_manifest(url: &str, source: &[u8], installed: Option<&[u8]>) -> Manifest {
        let pins = installed
            .map(|b| format!("sha256 = \"{}\"\nbytes = {}\n", sha256_hex(b), b.len()))
            .unwrap_or_else(|| "sha256 = \"\"\n".to_owned());
        Manifest::from_toml_str(&format!(
            "[[model]]\nrole = \"aesthetic-head\"\nfile = \"head.safetensors\"\n{pins}licence = \"MIT\"\n\
             source = \"{url}\"\nrequired = true\n\n\
             [model.convert]\nfrom = \"pytorch-state-dict\"\nsource_sha256 = \"{}\"\nsource_bytes = {}\n\n\
             [[model.tensors]]\nname = \"weight\"\ndtype = \"f32\"\nshape = [1, 512]\n\n\
             [[model.tensors]]\nname = \"bias\"\ndtype = \"f32\"\nshape = [1]\n",
            sha256_hex(source),
            source.len()
        ))
        .unwrap()
    }

    fn pth(name: &str) -> Vec<u8> {
        std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/pth")
                .join(name),
        )
        .unwrap()
    }

    /// What the conversion of `head.pth` gives (checked value by value in `convert`'s tests).
    fn converted_head() -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.pth");
        std::fs::write(&path, pth("head.pth")).unwrap();
        let tensors = Manifest::production()
            .by_role("aesthetic-head")
            .unwrap()
            .tensors
            .clone();
        super::super::convert::convert(super::super::ConvertFrom::PytorchStateDict, &path, &tensors).unwrap()
    }

    #[tokio::test]
    async fn a_converted_file_is_downloaded_checked_converted_checked_and_installed_once() {
        let source = pth("head.pth");
        let (base, hits) = serve(vec![("head.pth", source.clone())]).await;
        let installed = converted_head();
        let manifest = converted_manifest(&format!("{base}/head.pth"), &source, Some(&installed));
        let dir = tempfile::tempdir().unwrap();
        let mut events: Vec<String> = Vec::new();
        let report = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |event| {
            if let FetchEvent::DownloadStarted { total, .. } = event {
                events.push(format!("started {total:?}"));
            }
        })
        .await
        .unwrap();
        assert_eq!(report.installed, ["head.safetensors"]);
        assert_eq!(events, [format!("started Some({})", source.len())], "the .pth's size");
        assert_eq!(std::fs::read(dir.path().join("head.safetensors")).unwrap(), installed);
        // Neither the download nor a partial conversion is left.
        assert_eq!(listing(dir.path()), ["head.safetensors", MANIFEST_FILE]);
        assert!(verify(dir.path()).unwrap().is_ok());
        crate::model::aesthetic::AestheticHead::load(&dir.path().join("head.safetensors")).unwrap();

        let again = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(again.present, ["head.safetensors"]);
        assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");
    }

    #[tokio::test]
    async fn a_converted_file_is_refused_when_the_download_or_the_conversion_does_not_match() {
        let good = pth("head.pth");
        let wrong_shape = pth("wrong-shape.pth");
        let (base, hits) = serve(vec![
            ("head.pth", good.clone()),
            ("wrong-shape.pth", wrong_shape.clone()),
        ])
        .await;
        let installed = converted_head();
        let fetch = |manifest: Manifest| async move {
            let dir = tempfile::tempdir().unwrap();
            let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
                .await
                .unwrap_err();
            assert_eq!(listing(dir.path()), [MANIFEST_FILE], "nothing installed, nothing left");
            let message = e.to_string();
            assert_one_line(&message);
            message
        };

        // The server's .pth is not the pinned one: refused before it is read (by its size, before
        // the body is downloaded; by its hash, before it is converted).
        let message = fetch(converted_manifest(
            &format!("{base}/head.pth"),
            b"another .pth",
            Some(&installed),
        ))
        .await;
        assert!(message.contains("offers"), "{message}");
        let mut same_size = good.clone();
        same_size[100] ^= 1;
        let message = fetch(converted_manifest(
            &format!("{base}/head.pth"),
            &same_size,
            Some(&installed),
        ))
        .await;
        assert!(
            message.contains(&format!(
                "the manifest pins {} for the download",
                sha256_hex(&same_size)
            )),
            "{message}"
        );

        // Pinned, but not the head's layout: the conversion refuses it.
        let message = fetch(converted_manifest(
            &format!("{base}/wrong-shape.pth"),
            &wrong_shape,
            Some(&installed),
        ))
        .await;
        assert!(
            message.starts_with("cannot install head.safetensors: cannot convert the downloaded wrong-shape.pth: ")
                && message.contains("weight")
                && message.contains("nothing installed"),
            "{message}"
        );

        // Converted, but the result is not the pinned file.
        let mut other = installed.clone();
        other[installed.len() - 1] ^= 1;
        let message = fetch(converted_manifest(&format!("{base}/head.pth"), &good, Some(&other))).await;
        assert!(
            message.contains(&format!("converted to a file with sha256 {}", sha256_hex(&installed))),
            "{message}"
        );

        // The installed file is not pinned yet: its hash is said, and it is refused.
        let message = fetch(converted_manifest(&format!("{base}/head.pth"), &good, None)).await;
        assert!(
            message.contains(&format!(
                "pin sha256 = \"{}\" and bytes = {}",
                sha256_hex(&installed),
                installed.len()
            )),
            "{message}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 5, "one request per fetch");
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
