//! A local folder as the buckets: `<root>/<bucket>/<object>`.
//!
//! Every path is resolved and checked to lie inside `<root>/<bucket>` after symlinks are
//! followed, so neither `..` nor a symlink planted in the folder can read or write outside it.

use std::path::{Component, Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::{ObjectStore, StorageError, StoredObject};
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

/// Microseconds since the epoch of the last write: changes on every overwrite, like a GCS generation.
fn generation_of(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, bucket: &BucketName, object: &str, max_bytes: u64) -> Result<StoredObject, StorageError> {
        let path = self.lexical_path(bucket, object)?;
        let resolved = match tokio::fs::canonicalize(&path).await {
            Ok(p) => p,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(not_found(bucket, object)),
            Err(e) => return Err(io_error(e)),
        };
        self.contained(bucket, object, &resolved)?;
        let file = tokio::fs::File::open(&resolved).await.map_err(io_error)?;
        let meta = file.metadata().await.map_err(io_error)?;
        if !meta.is_file() {
            return Err(not_found(bucket, object));
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
            .map_err(io_error)?;
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
