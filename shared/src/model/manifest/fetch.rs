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
mod tests;
