//! The report's pictures: a small thumbnail per photo shown and a crop per face shown, as
//! `data:` URIs of lossless WebP, so `report.html` needs no file beside it. (The `image`
//! crate here encodes PNG and WebP, not JPEG; lossless WebP is the smaller of the two.)

use std::collections::HashMap;
use std::io::Cursor;

use base64::Engine;
use image::imageops::FilterType;
use image::{DynamicImage, RgbImage};
use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodeOptions, ImageError, decode};

/// Thumbnails are shown at about 160 px; a little more keeps them sharp on dense screens
/// while a photo costs tens of kilobytes of HTML, not hundreds.
pub const THUMBNAIL_LONG_SIDE: u32 = 200;
/// Face crops are shown at 96 px (the representative larger); smaller faces stay as they are.
pub const FACE_LONG_SIDE: u32 = 128;
/// Context kept around a face box on each side, as a fraction of the box's longer side:
/// the box itself cuts through the forehead and chin.
const FACE_MARGIN: f32 = 0.25;

/// Everything the HTML shows as a picture.
#[derive(Debug, Default)]
pub struct Pictures {
    /// Photo name → thumbnail `data:` URI.
    pub thumbnails: HashMap<String, String>,
    /// (photo name, face box in the photo's pixels) → crop `data:` URI.
    pub faces: HashMap<(String, [i32; 4]), String>,
}

/// One photo's pictures.
#[derive(Debug, Default)]
pub struct PhotoPictures {
    pub thumbnail: Option<String>,
    pub faces: Vec<([i32; 4], String)>,
}

/// Decodes the photo once (at full size when faces are to be cropped, else at the smallest
/// scale a thumbnail allows) and draws what is asked. EXIF orientation is applied by the
/// decode, so the boxes (photo pixels, the right way up) line up with the pixels.
pub fn draw(
    bytes: &[u8],
    limits: &IngestLimits,
    thumbnail: bool,
    faces: &[[i32; 4]],
) -> Result<PhotoPictures, ImageError> {
    let options = if faces.is_empty() {
        DecodeOptions {
            min_short_side: None,
            min_long_side: Some(THUMBNAIL_LONG_SIDE),
        }
    } else {
        DecodeOptions::default()
    };
    let decoded = decode(bytes, limits, options)?;
    let pixels = &decoded.pixels;
    let thumbnail = if thumbnail {
        Some(data_uri(&fit(pixels, THUMBNAIL_LONG_SIDE))?)
    } else {
        None
    };
    // Boxes are in full-size pixels; the decode may be smaller (a JPEG's DCT scaling).
    let scale = pixels.width() as f32 / decoded.source_width.max(1) as f32;
    let mut crops = Vec::with_capacity(faces.len());
    for b in faces {
        if let Some(crop) = crop_face(pixels, b, scale) {
            crops.push((*b, data_uri(&fit(&crop, FACE_LONG_SIDE))?));
        }
    }
    Ok(PhotoPictures {
        thumbnail,
        faces: crops,
    })
}

/// A square around the face with some margin, clipped to the photo; `None` for a box that
/// lies outside it.
fn crop_face(pixels: &RgbImage, b: &[i32; 4], scale: f32) -> Option<RgbImage> {
    let [x1, y1, x2, y2] = b.map(|v| v as f32 * scale);
    let (w, h) = (x2 - x1, y2 - y1);
    if !(w > 0.0 && h > 0.0) {
        return None;
    }
    let side = w.max(h) * (1.0 + 2.0 * FACE_MARGIN);
    let (cx, cy) = ((x1 + x2) / 2.0, (y1 + y2) / 2.0);
    let (iw, ih) = (pixels.width() as f32, pixels.height() as f32);
    let left = (cx - side / 2.0).clamp(0.0, iw);
    let top = (cy - side / 2.0).clamp(0.0, ih);
    let right = (cx + side / 2.0).clamp(0.0, iw);
    let bottom = (cy + side / 2.0).clamp(0.0, ih);
    let (cw, ch) = ((right - left).round() as u32, (bottom - top).round() as u32);
    if cw == 0 || ch == 0 {
        return None;
    }
    Some(image::imageops::crop_imm(pixels, left as u32, top as u32, cw, ch).to_image())
}

/// Scaled down (never up) so its long side is at most `long_side`.
fn fit(pixels: &RgbImage, long_side: u32) -> RgbImage {
    let (w, h) = pixels.dimensions();
    let long = w.max(h);
    if long <= long_side {
        return pixels.clone();
    }
    let scale = f64::from(long_side) / f64::from(long);
    let nw = ((f64::from(w) * scale).round() as u32).max(1);
    let nh = ((f64::from(h) * scale).round() as u32).max(1);
    image::imageops::resize(pixels, nw, nh, FilterType::Triangle)
}

fn data_uri(pixels: &RgbImage) -> Result<String, ImageError> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(pixels.clone())
        .write_to(&mut out, image::ImageFormat::WebP)
        .map_err(|e| ImageError::Corrupt(format!("cannot encode the picture: {e}")))?;
    Ok(format!(
        "data:image/webp;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(out.into_inner())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn face_crops_are_squares_with_margin_clipped_to_the_photo() {
        let pixels = RgbImage::new(400, 300);
        let crop = crop_face(&pixels, &[100, 100, 140, 160], 1.0).unwrap();
        // 60 px tall box → 90 px square.
        assert_eq!(crop.dimensions(), (90, 90));
        let edge = crop_face(&pixels, &[0, 0, 40, 40], 1.0).unwrap();
        assert_eq!(edge.dimensions(), (50, 50), "clipped at the top-left corner");
        let half = crop_face(&pixels, &[100, 100, 140, 160], 0.5).unwrap();
        assert_eq!(half.dimensions(), (45, 45), "boxes follow a reduced-scale decode");
        assert!(crop_face(&pixels, &[500, 500, 600, 600], 1.0).is_none());
        assert!(crop_face(&pixels, &[10, 10, 10, 30], 1.0).is_none());
    }

    #[test]
    fn thumbnails_shrink_never_grow_and_are_webp_data_uris() {
        assert_eq!(fit(&RgbImage::new(1000, 500), 200).dimensions(), (200, 100));
        assert_eq!(fit(&RgbImage::new(50, 80), 200).dimensions(), (50, 80));
        let uri = data_uri(&RgbImage::new(8, 8)).unwrap();
        assert!(uri.starts_with("data:image/webp;base64,UklGR"), "{uri}");
    }
}
