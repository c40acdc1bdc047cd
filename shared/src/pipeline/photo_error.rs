//! [`PhotoError`]: why one photo has no features, with the stable reason `invalid_images`
//! answers and whether a retry may help. Every stage that can fail a photo (download,
//! decode threads, decode budget, the embedding service, the feature service) returns it.

use crate::domain::Reason;
use crate::storage::StorageError;

/// Why one photo has no features. `reason` is the stable reason of `invalid_images`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct PhotoError {
    pub reason: Reason,
    pub detail: String,
    /// A retry may succeed (storage or model unavailable): the caller should answer 503.
    pub transient: bool,
}

impl PhotoError {
    pub(crate) fn permanent(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            transient: false,
        }
    }

    pub(crate) fn transient(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            transient: true,
        }
    }
}

impl From<StorageError> for PhotoError {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::NotFound { .. } => Self::permanent(Reason::NotFound, e.to_string()),
            StorageError::TooLarge { .. } => Self::permanent(Reason::TooLarge, e.to_string()),
            StorageError::Refused(_) => Self::permanent(Reason::Refused, e.to_string()),
            StorageError::Unreadable(_) => Self::permanent(Reason::Unreadable, e.to_string()),
            _ if e.is_transient() => Self::transient(Reason::StorageUnavailable, e.to_string()),
            _ => Self::transient(Reason::StorageError, e.to_string()),
        }
    }
}
