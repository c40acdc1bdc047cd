//! Decode failures. `reason()` is the stable, machine-readable reason the app backend
//! receives in `invalid_images`; `Display` is the human sentence beside it.

use crate::domain::Reason;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a readable image: {0}")]
    Corrupt(String),
    #[error("{0} is not a supported format (JPEG, PNG, WebP, HEIC and AVIF are)")]
    UnsupportedFormat(&'static str),
    /// A format this build was compiled without (the cargo feature `heif`).
    #[error(
        "{0} is not supported by this build: it was built without the HEIF decoder (install libheif-dev and build with `--features ongi-shared/heif`)"
    )]
    NotBuiltIn(&'static str),
    #[error("the image is too large: {0}")]
    TooLarge(String),
}

impl ImageError {
    /// Every value [`ImageError::reason`] can take.
    pub const REASONS: [Reason; 4] = [
        Reason::Empty,
        Reason::Corrupt,
        Reason::UnsupportedFormat,
        Reason::TooLarge,
    ];

    /// The reason `text` names, if it is one of [`ImageError::REASONS`].
    pub fn known_reason(text: &str) -> Option<Reason> {
        Reason::parse(text).filter(|r| Self::REASONS.contains(r))
    }

    pub fn reason(&self) -> Reason {
        match self {
            Self::Empty => Reason::Empty,
            Self::Corrupt(_) => Reason::Corrupt,
            Self::UnsupportedFormat(_) | Self::NotBuiltIn(_) => Reason::UnsupportedFormat,
            Self::TooLarge(_) => Reason::TooLarge,
        }
    }
}
