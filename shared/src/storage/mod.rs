//! Object storage: one trait, two implementations.
//!
//! - [`gcs::GcsStore`]: Google Cloud Storage through the official client (or
//!   fake-gcs-server when `STORAGE_EMULATOR_HOST` is set).
//! - [`local::LocalStore`]: a folder per bucket under `ONGI_DATA_DIR`, laid out as
//!   fake-gcs-server lays out its `-data` folder, for `ongi serve` on a laptop.
//!
//! Object names reaching a store have already passed [`ImageRef`](crate::domain::ImageRef)
//! validation; the local store checks again on the resolved path, because the file system
//! (symlinks) can still lead outside the root.
//!
//! Listing ([`ObjectStore::list`]) is paged and in lexicographic (byte) order of names in
//! both stores, as GCS lists, so a walk can resume after the last name it finished.

pub mod gcs;
pub mod local;

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::BucketName;

/// The store the settings name: a local folder, fake-gcs-server, or Cloud Storage.
pub async fn from_settings(
    settings: &crate::config::Settings,
) -> Result<std::sync::Arc<dyn ObjectStore>, StorageError> {
    use crate::config::StorageBackend;
    Ok(match settings.storage {
        StorageBackend::Local => std::sync::Arc::new(local::LocalStore::new(&settings.data_dir)?),
        StorageBackend::Gcs => match &settings.storage_emulator_host {
            Some(endpoint) => std::sync::Arc::new(gcs::GcsStore::emulator(endpoint.expose(), None).await?),
            None => std::sync::Arc::new(gcs::GcsStore::production().await?),
        },
    })
}

/// Signed URLs never live longer than this, whatever the caller asks for.
pub const MAX_SIGNED_URL_TTL: Duration = Duration::from_secs(15 * 60);

/// An object's bytes and the generation they belong to (GCS bumps the generation on
/// every overwrite, so `bucket/object#generation` names one immutable version).
#[derive(Debug, Clone)]
pub struct StoredObject {
    pub bytes: Bytes,
    pub generation: i64,
}

/// One object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub generation: i64,
    pub size: u64,
    /// When this generation was written (GCS `updated`; a file's modification time).
    pub updated: SystemTime,
    /// The stored `Content-Type`; `None` where the store keeps none (local folders).
    pub content_type: Option<String>,
}

/// GCS answers at most this many objects per page; the local store follows suit.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// What to list: the objects whose names start with `prefix`, in lexicographic order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub prefix: String,
    /// Only names strictly after this one (where a cut-off walk resumes).
    pub start_after: Option<String>,
    /// The previous page's `next_page_token`, with the same `prefix` and `start_after`.
    pub page_token: Option<String>,
    /// At most this many objects per page: 1 to [`MAX_PAGE_SIZE`] (0 means the maximum).
    pub page_size: u32,
}

impl ListQuery {
    pub(crate) fn limit(&self) -> u32 {
        if self.page_size == 0 {
            MAX_PAGE_SIZE
        } else {
            self.page_size.min(MAX_PAGE_SIZE)
        }
    }

    /// Whether a listed name belongs in the answer (the stores' own `startOffset` is inclusive).
    pub(crate) fn wants(&self, name: &str) -> bool {
        name.starts_with(&self.prefix) && self.start_after.as_deref().is_none_or(|after| name > after)
    }
}

/// One page of a listing. A page may hold fewer objects than asked for (even none) and
/// still have a next page: only `next_page_token: None` ends the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectPage {
    pub objects: Vec<ObjectInfo>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("object {bucket}/{object} was not found")]
    NotFound { bucket: String, object: String },
    #[error("bucket {0} was not found")]
    BucketNotFound(String),
    #[error("object {bucket}/{object} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        bucket: String,
        object: String,
        size: u64,
        limit: u64,
    },
    #[error("refused: {0}")]
    Refused(String),
    /// The object exists but cannot be read, and a retry will not change that (no
    /// permission, a symlink loop, not a regular file, a request the store refuses as bad).
    #[error("unreadable: {0}")]
    Unreadable(String),
    #[error("storage is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} is not supported by this store")]
    Unsupported(&'static str),
    #[error("storage error: {0}")]
    Other(String),
}

impl StorageError {
    /// Whether a retry may succeed (the caller answers 503 rather than naming the photo).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Reads a whole object. Objects over `max_bytes` are refused before their body is read.
    async fn get(&self, bucket: &BucketName, object: &str, max_bytes: u64) -> Result<StoredObject, StorageError>;

    /// Writes (or overwrites) an object and returns its new generation.
    async fn put(
        &self,
        bucket: &BucketName,
        object: &str,
        bytes: Bytes,
        content_type: &str,
    ) -> Result<i64, StorageError>;

    /// A time-limited GET URL for an object; `ttl` is capped at [`MAX_SIGNED_URL_TTL`].
    async fn signed_url(&self, bucket: &BucketName, object: &str, ttl: Duration) -> Result<String, StorageError>;

    /// One page of the objects under `query.prefix`, in lexicographic order of names.
    async fn list(&self, bucket: &BucketName, query: &ListQuery) -> Result<ObjectPage, StorageError>;

    /// A cheap round trip proving the store answers (for `/readyz`).
    async fn check(&self, bucket: &BucketName) -> Result<(), StorageError>;

    /// The current generation of each object (`None` for one that cannot be read), from a
    /// store whose objects change without an upload event: a local folder, where a user
    /// replaces a photo by copying a file over it. An album call checks its `latest` aliases
    /// against these, so a replaced photo is computed again rather than answered from the
    /// old photo's record. `None` (the default) for a store that announces every write
    /// (Cloud Storage: the finalize event recomputes the photo and moves its alias), where a
    /// lookup per photo would cost a round trip each.
    async fn unannounced_generations(&self, _bucket: &BucketName, _objects: &[&str]) -> Option<Vec<Option<i64>>> {
        None
    }

    /// A short name for logs and `/readyz`.
    fn kind(&self) -> &'static str;
}
