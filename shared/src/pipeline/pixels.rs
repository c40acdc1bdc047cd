//! One photo, decoded once: the pixel features and the CLIP input from the same pixels.
//! CPU-bound: the feature service runs it on the decode threads, inside the decode budget
//! (`decode_budget.rs`), right after the decode that produced the pixels.

use crate::config::IngestLimits;
use crate::image::features::{exposure, laplacian_variance, phash, to_gray};
use crate::image::{DecodeOptions, DecodedImage, ImageError, decode};
use crate::model::clip::preprocess::{CLIP_SIZE, preprocess_into};

use crate::analysis::FeatureRecord;

/// The smallest decode every feature can use: CLIP's 224 px short side and the blur
/// metric's 300 px long side. A 12 MP JPEG is then decoded at 1/8 scale (504×378).
pub const DECODE_FOR_FEATURES: DecodeOptions = DecodeOptions {
    min_short_side: Some(CLIP_SIZE),
    min_long_side: Some(300),
};

/// A photo's pixel features: its record without the embedding, and the CLIP model input
/// when asked for.
pub struct PixelFeatures {
    pub record: FeatureRecord,
    pub clip_input: Option<Vec<f32>>,
}

/// Decodes `bytes` (at [`DECODE_FOR_FEATURES`]) and measures the pixels (tools and the fuzz
/// target; the service decodes under its budget and calls [`pixel_features_of`]).
pub fn pixel_features(bytes: &[u8], limits: &IngestLimits, want_clip_input: bool) -> Result<PixelFeatures, ImageError> {
    decode(bytes, limits, DECODE_FOR_FEATURES).map(|decoded| pixel_features_of(decoded, want_clip_input))
}

/// Every pixel feature, and the CLIP input when asked for, from pixels decoded at
/// [`DECODE_FOR_FEATURES`].
pub fn pixel_features_of(decoded: DecodedImage, want_clip_input: bool) -> PixelFeatures {
    let gray = to_gray(&decoded.pixels);
    let clip_input = want_clip_input.then(|| {
        let mut v = Vec::new();
        preprocess_into(&decoded.pixels, &mut v);
        v
    });
    PixelFeatures {
        record: FeatureRecord {
            embedding: None,
            phash: phash(&gray),
            blur_variance: laplacian_variance(&gray),
            exposure: exposure(&gray),
            width: decoded.source_width,
            height: decoded.source_height,
            format: decoded.format,
            captured_at: decoded.captured_at,
        },
        clip_input,
    }
}
