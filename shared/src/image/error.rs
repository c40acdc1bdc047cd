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
    /// Decoding ran past the time one photo may take (`IngestLimits::max_decode_time`).
    #[error("decoding this image took longer than the {} s one photo may take", .0.as_secs_f64())]
    TimedOut(std::time::Duration),
    /// The decode was stopped because nobody waits for its result any more. No caller
    /// receives it: it only ends the work early.
    #[error("the decode was stopped: nobody waits for it any more")]
    Abandoned,
}

impl ImageError {
    /// Every reason a photo can be refused with: every value [`ImageError::reason`] can
    /// take but `internal`, which only [`ImageError::Abandoned`] (seen by no caller) has.
    /// A photo refused with one of them is refused again whenever it is decoded.
    pub const REASONS: [Reason; 5] = [
        Reason::Empty,
        Reason::Corrupt,
        Reason::UnsupportedFormat,
        Reason::TooLarge,
        Reason::DecodeTimeout,
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
            Self::TimedOut(_) => Reason::DecodeTimeout,
            Self::Abandoned => Reason::Internal,
        }
    }
}
