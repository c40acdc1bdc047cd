//! The photo as Gemini sees it: decoded once at a reduced scale, the right way up, at most
//! 512 px on its long side, as PNG (the `image` crate here encodes PNG, not JPEG).

use std::io::Cursor;

use image::imageops::FilterType;

use crate::image::{DecodeOptions, DecodedImage, ImageError};

/// Gemini reads a photo's content well at this size, and the request stays small.
pub const THUMBNAIL_LONG_SIDE: u32 = 512;

/// How a photo is decoded for its thumbnail: a JPEG at the DCT scale that still gives
/// [`THUMBNAIL_LONG_SIDE`] pixels on the long side.
pub const THUMBNAIL_DECODE: DecodeOptions = DecodeOptions {
    min_short_side: None,
    min_long_side: Some(THUMBNAIL_LONG_SIDE),
};

/// A PNG of at most [`THUMBNAIL_LONG_SIDE`] px from pixels decoded with [`THUMBNAIL_DECODE`].
pub fn thumbnail_png(decoded: DecodedImage) -> Result<Vec<u8>, ImageError> {
    let (w, h) = decoded.pixels.dimensions();
    let long = w.max(h);
    let pixels = if long > THUMBNAIL_LONG_SIDE {
        let scale = f64::from(THUMBNAIL_LONG_SIDE) / f64::from(long);
        let nw = ((f64::from(w) * scale).round() as u32).max(1);
        let nh = ((f64::from(h) * scale).round() as u32).max(1);
        image::imageops::resize(&decoded.pixels, nw, nh, FilterType::Triangle)
    } else {
        decoded.pixels
    };
    let mut out = Cursor::new(Vec::new());
    pixels
        .write_to(&mut out, image::ImageFormat::Png)
        .map_err(|e| ImageError::Corrupt(format!("cannot encode the thumbnail: {e}")))?;
    Ok(out.into_inner())
}
