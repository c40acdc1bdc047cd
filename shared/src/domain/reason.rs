//! Why a photo could not be used: the stable, machine-readable `reason` of
//! `invalid_images`, which the app backend branches on (the `detail` beside it is the human
//! sentence). Pipeline errors carry it, answers serialise it, as the same snake_case text.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The file is empty.
    Empty,
    /// The bytes are not a readable image.
    Corrupt,
    /// An image format Ongi does not decode (GIF, TIFF…; HEIC and AVIF without the `heif` feature).
    UnsupportedFormat,
    /// Over the size or pixel limits.
    TooLarge,
    /// Decoding it took longer than one photo may take.
    DecodeTimeout,
    /// No such object in the bucket.
    NotFound,
    /// Reading it was refused (no permission, a name the store will not read).
    Refused,
    /// It exists but cannot be read, and a retry will not change that.
    Unreadable,
    /// The store did not answer; a retry may succeed.
    StorageUnavailable,
    /// Another store failure; a retry may succeed.
    StorageError,
    /// A model this step needs is not loaded or failed.
    ModelUnavailable,
    /// The embedding service could not be asked, or did not compute the features.
    EmbeddingUnavailable,
    /// The image encoder's queue is full.
    Overloaded,
    /// The process is stopping.
    ShuttingDown,
    /// A task of ours failed (a bug): no result for the photo.
    Internal,
    /// The album call needs an image embedding the photo does not have.
    NoEmbedding,
    /// The name is not a valid image reference.
    InvalidName,
    /// `ongi analyze`: a folder under the analysed one cannot be listed.
    UnreadableFolder,
}

impl Reason {
    /// Every reason, in declaration order.
    pub const ALL: [Reason; 18] = [
        Self::Empty,
        Self::Corrupt,
        Self::UnsupportedFormat,
        Self::TooLarge,
        Self::DecodeTimeout,
        Self::NotFound,
        Self::Refused,
        Self::Unreadable,
        Self::StorageUnavailable,
        Self::StorageError,
        Self::ModelUnavailable,
        Self::EmbeddingUnavailable,
        Self::Overloaded,
        Self::ShuttingDown,
        Self::Internal,
        Self::NoEmbedding,
        Self::InvalidName,
        Self::UnreadableFolder,
    ];

    /// The text the JSON carries (the serde name).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Corrupt => "corrupt",
            Self::UnsupportedFormat => "unsupported_format",
            Self::TooLarge => "too_large",
            Self::DecodeTimeout => "decode_timeout",
            Self::NotFound => "not_found",
            Self::Refused => "refused",
            Self::Unreadable => "unreadable",
            Self::StorageUnavailable => "storage_unavailable",
            Self::StorageError => "storage_error",
            Self::ModelUnavailable => "model_unavailable",
            Self::EmbeddingUnavailable => "embedding_unavailable",
            Self::Overloaded => "overloaded",
            Self::ShuttingDown => "shutting_down",
            Self::Internal => "internal",
            Self::NoEmbedding => "no_embedding",
            Self::InvalidName => "invalid_name",
            Self::UnreadableFolder => "unreadable_folder",
        }
    }

    /// The reason `text` names, if any.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason compares equal to its text: `err.reason == "too_large"`.
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_text_is_as_str_and_parses_back() {
        for r in Reason::ALL {
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Reason>(&format!("\"{r}\"")).unwrap(), r);
            assert_eq!(Reason::parse(r.as_str()), Some(r));
        }
        assert_eq!(Reason::parse("Corrupt"), None);
        assert!(Reason::TooLarge == "too_large");
    }
}
