//! HEIC and AVIF through libheif (the cargo feature `heif`; the FFI is the `ongi-heif`
//! crate), with the limits of every format.
//!
//! The order is that of the other formats: libheif's own maximum image size is set from
//! [`IngestLimits`] before the file is parsed (it refuses an oversized `ispe` while
//! parsing); the primary image's size is then read from its handle and checked against the
//! pixel and memory limits before anything is decoded.
//!
//! Orientation: libheif applies the HEIF transformations (`irot`, `imir`, `clap`) itself,
//! and the handle's size is the size after them. The EXIF `Orientation` tag of a HEIF file
//! is NOT applied: the HEIF specification makes the transformation properties normative
//! and the EXIF tag informative, and phones write both, the EXIF tag repeating `irot`
//! (applying it as well would turn an iPhone photo twice). `exif_orientation` is then 1.
//!
//! No reduced-scale decode: HEVC and AV1 have no DCT-scale shortcut and libheif offers no
//! downscaled decode, so the whole image is decoded and the memory estimate is for the full
//! size.

use image::RgbImage;
use ongi_heif::{HeifError, Primary};

use super::decode::{DECODER_SLACK_BYTES, DecodeCost, DecodedImage, check_memory, check_pixels};
use super::error::ImageError;
use super::format::ImageFormat;
use crate::config::IngestLimits;

/// libheif's own default per-side limit (`MAX_IMAGE_WIDTH` in 1.15). Ours only lowers it.
const LIBHEIF_MAX_SIDE: u64 = 32_768;

/// Bytes per pixel at the decode's peak of an 8-bit file: libheif's decoded YCbCr image (three
/// full planes at most, 4:4:4), the codec's own picture buffers (twice as many, with room to
/// spare), libheif's interleaved 8-bit RGB, our copy of it and the caller's grey copy. An
/// alpha plane adds two more.
const PEAK_BYTES_PER_PIXEL_8BIT: u64 = 3 + 9 + 3 + 3 + 1;

/// The same for 10- and 12-bit samples, stored in 16 bits: the YCbCr planes (6), the codec's
/// pictures (12), the 16-bit RGB that libheif converts to 8 bits (6), then as above. A 12-bit
/// 4:4:4 AVIF was measured at 25.4 bytes a pixel. An alpha plane adds eight more.
const PEAK_BYTES_PER_PIXEL_DEEP: u64 = 6 + 12 + 6 + 3 + 3 + 1;

/// Every bit depth and chroma layout is bounded by its depth's worst (4:4:4): the chroma
/// layout is not known before decoding in libheif 1.15. `heif_decode.rs` checks the bound
/// against the peak memory of real decodes of every combination the encoders write.
fn peak_bytes_per_pixel(bits_per_sample: u8, alpha: bool) -> u64 {
    match (bits_per_sample > 8, alpha) {
        (false, false) => PEAK_BYTES_PER_PIXEL_8BIT,
        (false, true) => PEAK_BYTES_PER_PIXEL_8BIT + 2,
        (true, false) => PEAK_BYTES_PER_PIXEL_DEEP,
        (true, true) => PEAK_BYTES_PER_PIXEL_DEEP + 8,
    }
}

/// A photo's EXIF block is a few KiB (its thumbnail at most 64 KiB): a larger one is not
/// read rather than allocated at the size the file declares.
const MAX_EXIF_BYTES: usize = 1 << 20;

fn error(format: ImageFormat) -> impl Fn(HeifError) -> ImageError {
    move |e| {
        let message = format!("{}: {}", format.name(), e.message);
        if e.security_limit {
            ImageError::TooLarge(message)
        } else {
            ImageError::Corrupt(message)
        }
    }
}

/// The parsed file's primary image and the cost of decoding it, within `limits`.
pub(super) fn header<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    limits: &IngestLimits,
) -> Result<(Primary<'a>, DecodeCost), ImageError> {
    // The per-side limit; check_pixels bounds the product.
    let max_side = u32::try_from(limits.max_pixels.min(LIBHEIF_MAX_SIDE)).unwrap_or(u32::MAX);
    let primary = Primary::read(bytes, max_side).map_err(error(format))?;
    let (width, height) = primary.size();
    check_pixels(width, height, limits)?;
    let pixels = u64::from(width) * u64::from(height);
    let per_pixel = peak_bytes_per_pixel(primary.bits_per_sample(), primary.has_alpha());
    let cost = DecodeCost {
        format,
        width,
        height,
        peak_bytes: pixels * per_pixel + DECODER_SLACK_BYTES,
        output_bytes: pixels * 3,
    };
    Ok((primary, check_memory(cost, format.name(), limits)?))
}

/// Decodes the primary image to 8-bit RGB, the right way up, with its EXIF capture time.
pub(super) fn decode(bytes: &[u8], format: ImageFormat, limits: &IngestLimits) -> Result<DecodedImage, ImageError> {
    let (primary, cost) = header(bytes, format, limits)?;
    let captured_at = primary
        .exif(MAX_EXIF_BYTES)
        .and_then(|block| super::exif::capture_time(tiff_of(&block)?));
    let (width, height, rgb) = primary.decode_rgb().map_err(error(format))?;
    drop(primary);
    if (width, height) != (cost.width, cost.height) {
        return Err(ImageError::Corrupt(format!(
            "{}: the decoder returned {width}x{height} pixels for a {}x{} header",
            format.name(),
            cost.width,
            cost.height
        )));
    }
    let pixels = RgbImage::from_raw(width, height, rgb)
        .ok_or_else(|| ImageError::Corrupt(format!("{}: inconsistent pixels", format.name())))?;
    Ok(DecodedImage {
        pixels,
        format,
        source_width: width,
        source_height: height,
        scale_denominator: 1,
        exif_orientation: 1,
        captured_at,
    })
}

/// The TIFF block inside HEIF's `Exif` item: a 4-byte big-endian offset to the TIFF header
/// comes first. It is followed, not assumed to be 0 (some writers put `Exif\0\0` between).
fn tiff_of(block: &[u8]) -> Option<&[u8]> {
    let offset = u32::from_be_bytes(block.get(..4)?.try_into().ok()?) as usize;
    block.get(4usize.checked_add(offset)?..)
}

#[cfg(test)]
mod tests {
    use super::tiff_of;

    #[test]
    fn the_tiff_block_is_found_past_its_offset() {
        assert_eq!(tiff_of(b"\0\0\0\0II*\0rest"), Some(&b"II*\0rest"[..]));
        assert_eq!(tiff_of(b"\0\0\0\x06Exif\0\0MM\0*"), Some(&b"MM\0*"[..]));
        assert_eq!(tiff_of(b"\xff\xff\xff\xffII*\0"), None);
        assert_eq!(tiff_of(b"\0\0"), None);
    }
}
