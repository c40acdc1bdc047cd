//! Decode failures. `reason()` is the stable, machine-readable string the app backend
//! receives in `invalid_images`; `Display` is the human sentence beside it.

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is not a readable image: {0}")]
    Corrupt(String),
    #[error("{0} is not a supported format (JPEG, PNG and WebP are)")]
    UnsupportedFormat(&'static str),
    #[error("the image is too large: {0}")]
    TooLarge(String),
}

impl ImageError {
    /// Every value [`ImageError::reason`] can take.
    pub const REASONS: [&'static str; 4] = ["empty", "corrupt", "unsupported_format", "too_large"];

    /// The reason string as a `'static` one, if it is one of [`ImageError::REASONS`].
    pub fn known_reason(reason: &str) -> Option<&'static str> {
        Self::REASONS.into_iter().find(|r| *r == reason)
    }

    pub fn reason(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Corrupt(_) => "corrupt",
            Self::UnsupportedFormat(_) => "unsupported_format",
            Self::TooLarge(_) => "too_large",
        }
    }
}
