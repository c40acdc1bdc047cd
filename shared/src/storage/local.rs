//! A local folder as the buckets: `<root>/<bucket>/<object>`.
//!
//! Every path is resolved and checked to lie inside `<root>/<bucket>` after symlinks are
//! followed, so neither `..` nor a symlink planted in the folder can read or write outside it.
//!
//! Listing walks the bucket folder in GCS's order (bytes of the whole name), page by page:
//! siblings are sorted with a `/` after each folder's name, so a depth-first walk meets names
//! in the same order as a sort of the full names would, and folders wholly before the start
//! or outside the prefix are never opened. A symlink is listed only when it resolves to a
//! file inside the bucket (what `get` would read); symlinked folders are not followed (their
//! files are listed under their real names, and a loop cannot form).

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{ListQuery, ObjectInfo, ObjectPage, ObjectStore, StorageError, StoredObject};
use crate::domain::BucketName;

#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Creates the root if it does not exist yet (a fresh machine has no `./data`).
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, StorageError> {
        let root = root.into();
        std::fs::create_dir_all(&root)
            .map_err(|e| StorageError::Other(format!("cannot create the data folder {}: {e}", root.display())))?;
        let root = root
            .canonicalize()
            .map_err(|e| StorageError::Other(format!("cannot resolve the data folder {}: {e}", root.display())))?;
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn bucket_dir(&self, bucket: &BucketName) -> PathBuf {
        self.root.join(bucket.as_str())
    }

    /// The lexical path of an object, refusing anything but plain relative segments.
    fn lexical_path(&self, bucket: &BucketName, object: &str) -> Result<PathBuf, StorageError> {
        let relative = Path::new(object);
        let plain = !object.is_empty() && relative.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain || object.ends_with('/') {
            return Err(StorageError::Refused(format!(
                "{object:?} is not a plain object name inside bucket {bucket}"
            )));
        }
        Ok(self.bucket_dir(bucket).join(relative))
    }

    /// Resolves symlinks and checks the result is still inside the bucket folder.
    fn contained(&self, bucket: &BucketName, object: &str, resolved: &Path) -> Result<(), StorageError> {
        let bucket_dir = self
            .bucket_dir(bucket)
            .canonicalize()
            .map_err(|_| not_found(bucket, object))?;
        if resolved.starts_with(&bucket_dir) {
            Ok(())
        } else {
            Err(StorageError::Refused(format!(
                "{object:?} resolves outside bucket {bucket} (symlink)"
            )))
        }
    }
}

fn not_found(bucket: &BucketName, object: &str) -> StorageError {
    StorageError::NotFound {
        bucket: bucket.to_string(),
        object: object.to_owned(),
    }
}

fn io_error(e: std::io::Error) -> StorageError {
    StorageError::Other(e.to_string())
}

/// Whether an I/O error may go away on its own (a retry may succeed): the process or the
/// machine is short of something for a moment. Everything else about one file (no such
/// name, a name too long, a path through a file, a symlink loop, no permission, not a
/// regular file, a failing disk) stays true on every retry.
fn is_transient_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::Interrupted | K::WouldBlock | K::TimedOut | K::ResourceBusy | K::OutOfMemory | K::StaleNetworkFileHandle
    ) || matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::EAGAIN)
    )
}

/// An I/O error reading one object, as a per-object answer: not found, unreadable for good,
/// or (rarely) worth a retry.
fn object_io_error(bucket: &BucketName, object: &str, e: std::io::Error) -> StorageError {
    use std::io::ErrorKind as K;
    match e.kind() {
        // No such object: the name is missing, runs through a file (`a.jpg/x.jpg`), has a
        // segment longer than the file system allows, or is a folder.
        K::NotFound | K::NotADirectory | K::InvalidFilename | K::IsADirectory => not_found(bucket, object),
        _ if is_transient_io(&e) => StorageError::Unavailable(format!("{bucket}/{object}: {e}")),
        _ if e.raw_os_error() == Some(libc::ELOOP) => {
            StorageError::Unreadable(format!("{bucket}/{object}: a symlink loop"))
        }
        _ => StorageError::Unreadable(format!("{bucket}/{object}: {e}")),
    }
}

/// Opens a file for reading without blocking on what is not a regular file: a named pipe
/// (FIFO) would otherwise block `open` until a writer appears, holding a compute slot forever.
async fn open_regular(path: &Path) -> std::io::Result<(tokio::fs::File, std::fs::Metadata)> {
    let file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .await?;
    let meta = file.metadata().await?;
    Ok((file, meta))
}

/// Microseconds since the epoch of the last write: changes on every overwrite, like a GCS generation.
fn generation_of(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// The temporary file `put` writes beside its target before the rename: not an object yet.
fn is_partial_write(file_name: &str) -> bool {
    file_name.starts_with('.') && file_name.contains(".tmp-")
}

/// A listing in progress: what to keep and what has been kept.
struct Walk<'a> {
    bucket_dir: &'a Path,
    query: &'a ListQuery,
    /// Names must sort strictly after this (the cursor or the previous page's last name).
    after: Option<String>,
    /// One more than a page, to learn whether another page follows.
    want: usize,
    found: Vec<ObjectInfo>,
}

impl Walk<'_> {
    /// Whether nothing in the folder whose names all start with `folder` (ending in `/`)
    /// can be listed: outside the prefix, or wholly before the start.
    fn skips_folder(&self, folder: &str) -> bool {
        let outside_prefix = !(folder.starts_with(&self.query.prefix) || self.query.prefix.starts_with(folder));
        // Names under `folder` are `folder` + more. When `folder` sorts before `after` and is
        // not a prefix of it, they first differ inside `folder`, so all of them sort before.
        let before_start = self
            .after
            .as_deref()
            .is_some_and(|after| folder < after && !after.starts_with(folder));
        outside_prefix || before_start
    }

    fn wants(&self, name: &str) -> bool {
        name.starts_with(&self.query.prefix) && self.after.as_deref().is_none_or(|after| name > after)
    }

    /// Depth first, siblings in listing order. Returns once a page and one more are found.
    fn visit(&mut self, dir: &Path, names_start: &str) -> Result<(), StorageError> {
        let mut entries: Vec<(String, bool, PathBuf)> = Vec::new();
        let listing = match std::fs::read_dir(dir) {
            Ok(listing) => listing,
            // A folder inside the bucket that cannot be read holds no object anyone can read:
            // the walk goes on past it rather than stopping before it on every call.
            Err(e) if dir != self.bucket_dir && !is_transient_io(&e) => {
                tracing::warn!(folder = %names_start, error = %e, "listing skips a folder it cannot read");
                return Ok(());
            }
            Err(e) => return Err(io_error(e)),
        };
        for entry in listing {
            let entry = entry.map_err(io_error)?;
            // Object names are UTF-8; a file whose name is not cannot be an object.
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            // `file_type` does not follow symlinks: a symlinked folder is not a folder here.
            let is_dir = entry.file_type().map_err(io_error)?.is_dir();
            let key = if is_dir { format!("{name}/") } else { name };
            entries.push((key, is_dir, entry.path()));
        }
        entries.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (key, is_dir, path) in entries {
            if self.found.len() >= self.want {
                return Ok(());
            }
            let name = format!("{names_start}{key}");
            if is_dir {
                if !self.skips_folder(&name) {
                    self.visit(&path, &name)?;
                }
                continue;
            }
            if is_partial_write(&key) || !self.wants(&name) {
                continue;
            }
            if let Some(info) = self.object_info(&path, name)? {
                self.found.push(info);
            }
        }
        Ok(())
    }

    /// The object at `path`, or `None` for what `get` would refuse or not find (a symlink
    /// leading outside the bucket or to a folder, a dangling one, something not a file).
    fn object_info(&self, path: &Path, name: String) -> Result<Option<ObjectInfo>, StorageError> {
        let link = match std::fs::symlink_metadata(path) {
            Ok(link) => link,
            Err(e) if !is_transient_io(&e) => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        let meta = if link.file_type().is_symlink() {
            let Ok(target) = std::fs::canonicalize(path) else {
                return Ok(None);
            };
            if !target.starts_with(self.bucket_dir) {
                return Ok(None);
            }
            std::fs::metadata(&target).map_err(io_error)?
        } else {
            link
        };
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(ObjectInfo {
            name,
            generation: generation_of(&meta),
            size: meta.len(),
            updated: meta.modified().unwrap_or(UNIX_EPOCH),
            content_type: None,
        }))
    }
}

/// One page of `bucket_dir`'s objects. The page token is the last name of the previous
/// page: listing resumes strictly after it.
fn list_folder(bucket: &str, bucket_dir: &Path, query: &ListQuery) -> Result<ObjectPage, StorageError> {
    let bucket_dir = match bucket_dir.canonicalize() {
        Ok(dir) if dir.is_dir() => dir,
        Ok(_) => return Err(StorageError::BucketNotFound(bucket.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StorageError::BucketNotFound(bucket.to_owned()));
        }
        Err(e) => return Err(io_error(e)),
    };
    let after = match (query.start_after.clone(), query.page_token.clone()) {
        (Some(a), Some(t)) => Some(a.max(t)),
        (a, t) => a.or(t),
    };
    let page = query.limit() as usize;
    let mut walk = Walk {
        bucket_dir: &bucket_dir,
        query,
        after,
        want: page + 1,
        found: Vec::with_capacity(page + 1),
    };
    walk.visit(&bucket_dir, "")?;
    let mut objects = walk.found;
    let next_page_token = if objects.len() > page {
        objects.truncate(page);
        objects.last().map(|o| o.name.clone())
    } else {
        None
    };
    Ok(ObjectPage {
        objects,
        next_page_token,
    })
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, bucket: &BucketName, object: &str, max_bytes: u64) -> Result<StoredObject, StorageError> {
        let path = self.lexical_path(bucket, object)?;
        let resolved = tokio::fs::canonicalize(&path)
            .await
            .map_err(|e| object_io_error(bucket, object, e))?;
        self.contained(bucket, object, &resolved)?;
        let (file, meta) = open_regular(&resolved)
            .await
            .map_err(|e| object_io_error(bucket, object, e))?;
        if meta.is_dir() {
            return Err(not_found(bucket, object));
        }
        if !meta.is_file() {
            return Err(StorageError::Unreadable(format!(
                "{bucket}/{object} is not a regular file (a named pipe, socket or device)"
            )));
        }
        if meta.len() > max_bytes {
            return Err(StorageError::TooLarge {
                bucket: bucket.to_string(),
                object: object.to_owned(),
                size: meta.len(),
                limit: max_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        // `take` guards against a file that grows while we read it.
        file.take(max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| object_io_error(bucket, object, e))?;
        if bytes.len() as u64 > max_bytes {
            return Err(StorageError::TooLarge {
                bucket: bucket.to_string(),
                object: object.to_owned(),
                size: bytes.len() as u64,
                limit: max_bytes,
            });
        }
        Ok(StoredObject {
            bytes: Bytes::from(bytes),
            generation: generation_of(&meta),
        })
    }

    async fn put(
        &self,
        bucket: &BucketName,
        object: &str,
        bytes: Bytes,
        _content_type: &str,
    ) -> Result<i64, StorageError> {
        let path = self.lexical_path(bucket, object)?;
        let parent = path
            .parent()
            .ok_or_else(|| StorageError::Refused(format!("{object:?} has no parent folder")))?;
        tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
        let resolved_parent = tokio::fs::canonicalize(parent).await.map_err(io_error)?;
        self.contained(bucket, object, &resolved_parent)?;
        if let Ok(meta) = tokio::fs::symlink_metadata(&path).await
            && meta.file_type().is_symlink()
        {
            return Err(StorageError::Refused(format!("{object:?} is a symlink")));
        }
        // Write beside the target, then rename: readers never see half an object.
        let tmp = resolved_parent.join(format!(".{}.tmp-{}", uuid::Uuid::new_v4(), std::process::id()));
        tokio::fs::write(&tmp, &bytes).await.map_err(io_error)?;
        let target = resolved_parent.join(path.file_name().unwrap_or_default());
        if let Err(e) = tokio::fs::rename(&tmp, &target).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(io_error(e));
        }
        let meta = tokio::fs::metadata(&target).await.map_err(io_error)?;
        Ok(generation_of(&meta))
    }

    async fn unannounced_generations(&self, bucket: &BucketName, objects: &[&str]) -> Option<Vec<Option<i64>>> {
        // The same generation `get` reports: the file's (or its link target's) last write.
        let paths: Vec<Option<PathBuf>> = objects.iter().map(|o| self.lexical_path(bucket, o).ok()).collect();
        tokio::task::spawn_blocking(move || {
            paths
                .iter()
                .map(|p| {
                    p.as_ref()
                        .and_then(|p| std::fs::metadata(p).ok())
                        .map(|m| generation_of(&m))
                })
                .collect()
        })
        .await
        .ok()
    }

    async fn list(&self, bucket: &BucketName, query: &ListQuery) -> Result<ObjectPage, StorageError> {
        let bucket_dir = self.bucket_dir(bucket);
        let (bucket, query) = (bucket.to_string(), query.clone());
        // A walk is many small blocking calls: off the async threads.
        tokio::task::spawn_blocking(move || list_folder(&bucket, &bucket_dir, &query))
            .await
            .map_err(|e| StorageError::Other(format!("the listing task failed: {e}")))?
    }

    async fn signed_url(&self, _bucket: &BucketName, _object: &str, _ttl: Duration) -> Result<String, StorageError> {
        Err(StorageError::Unsupported("signing URLs"))
    }

    async fn check(&self, _bucket: &BucketName) -> Result<(), StorageError> {
        tokio::fs::metadata(&self.root)
            .await
            .map(|_| ())
            .map_err(|e| StorageError::Unavailable(format!("data folder {}: {e}", self.root.display())))
    }

    fn kind(&self) -> &'static str {
        "local"
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Error, ErrorKind};

    use super::*;

    #[test]
    fn io_errors_of_one_object_are_per_object_answers() {
        let bucket = BucketName::parse("uploads").unwrap();
        let answer = |e: Error| object_io_error(&bucket, "a.jpg", e);
        for kind in [
            ErrorKind::NotFound,
            ErrorKind::NotADirectory,
            ErrorKind::InvalidFilename,
            ErrorKind::IsADirectory,
        ] {
            assert!(
                matches!(answer(Error::from(kind)), StorageError::NotFound { .. }),
                "{kind:?}"
            );
        }
        for e in [
            Error::from_raw_os_error(libc::ELOOP),
            Error::from_raw_os_error(libc::EACCES),
            Error::from_raw_os_error(libc::EIO),
            Error::from_raw_os_error(libc::ENXIO),
        ] {
            let shown = e.to_string();
            assert!(matches!(answer(e), StorageError::Unreadable(_)), "{shown}");
        }
        for e in [
            Error::from_raw_os_error(libc::EMFILE),
            Error::from_raw_os_error(libc::EINTR),
            Error::from(ErrorKind::TimedOut),
        ] {
            let shown = e.to_string();
            assert!(answer(e).is_transient(), "{shown}");
        }
    }
}
