//! Turning per-photo feature results into an album answer: photos that could not be read
//! go to `invalid_images` with their reason; a transient failure (storage or model down)
//! makes the whole call a 503 so the caller retries instead of getting a partial album.

use std::collections::HashSet;
use std::time::Duration;

use super::envelope::InvalidImage;
use super::error::ApiError;
use crate::domain::ImageRef;
use crate::pipeline::{Features, PhotoError};

/// The album's photos, each once: a photo listed twice, under one spelling or two
/// (`a.jpg`, `gs://uploads/a.jpg`), is one photo, named as it was first listed.
pub struct AlbumFeatures {
    pub photos: Vec<(ImageRef, Features)>,
    pub invalid: Vec<InvalidImage>,
}

pub fn split(refs: &[ImageRef], results: Vec<Result<Features, PhotoError>>) -> Result<AlbumFeatures, ApiError> {
    let mut photos = Vec::with_capacity(refs.len());
    let mut invalid = Vec::new();
    let mut seen = HashSet::new();
    for (r, result) in refs.iter().zip(results) {
        if !seen.insert(r) {
            continue;
        }
        match result {
            Ok(f) => photos.push((r.clone(), f)),
            Err(e) if e.transient => {
                return Err(ApiError::Unavailable {
                    message: format!("{r}: {e}; retry shortly"),
                    retry_after: Duration::from_secs(5),
                });
            }
            Err(e) => invalid.push(InvalidImage {
                image: r.to_string(),
                reason: e.reason,
                detail: Some(e.detail),
            }),
        }
    }
    Ok(AlbumFeatures { photos, invalid })
}
