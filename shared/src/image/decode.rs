//! Decoding with limits: bytes → oriented RGB pixels.
//!
//! JPEG goes through `jpeg-decoder` (`jpeg.rs`), which can decode at 1/2, 1/4 or 1/8 scale
//! straight from the DCT coefficients (the `image` crate's JPEG decoder cannot), and handles
//! CMYK and progressive files. PNG and WebP go through `image`. EXIF orientation is applied in
//! both paths, so callers always see the photo the right way up. HEIC and AVIF go through
//! libheif (`heif.rs`, cargo feature `heif`; without it they are `unsupported_format`).

use std::panic::{AssertUnwindSafe, catch_unwind};

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};

use super::deadline::{Fired, Stop, Watched};
use super::error::ImageError;
use super::format::{ImageFormat, Sniffed, sniff};
use super::jpeg::{decode_jpeg, jpeg_header};
use super::metadata::{self, HEAP_PER_METADATA_BYTE, Metadata};
use crate::config::IngestLimits;

/// What the caller needs from the decode.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// The smallest short side the caller can work with. A JPEG is then decoded at the
    /// smallest DCT scale whose short side is still at least this (never below it).
    /// `None` decodes at full resolution.
    pub min_short_side: Option<u32>,
    /// Likewise for the long side (the blur metric works at a 300 px long side).
    pub min_long_side: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct DecodedImage {
    /// The pixels, the right way up (EXIF orientation applied), possibly at reduced scale.
    pub pixels: RgbImage,
    pub format: ImageFormat,
    /// The full-resolution size, the right way up.
    pub source_width: u32,
    pub source_height: u32,
    /// 1, 2, 4 or 8: how much smaller than the source `pixels` is (JPEG only).
    pub scale_denominator: u32,
    /// The EXIF orientation that was applied (1 = none).
    pub exif_orientation: u8,
    /// EXIF `DateTimeOriginal` as naive local seconds since 1970, when present.
    pub captured_at: Option<i64>,
}

/// What decoding a photo will cost, read from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeCost {
    pub format: ImageFormat,
    /// The size the header declares (before EXIF orientation).
    pub width: u32,
    pub height: u32,
    /// An upper bound of the heap the decode holds at its peak: the decoder's own buffers
    /// and every copy of the pixels until they are handed over the right way up.
    pub peak_bytes: u64,
    /// The size of the RGB pixels handed over, which the caller holds after the decode.
    pub output_bytes: u64,
}

/// Room for the decoders' fixed-size buffers (Huffman and inflate tables, row buffers).
pub(super) const DECODER_SLACK_BYTES: u64 = 1 << 20;

/// The cost of decoding `bytes` with `options`, from the header alone: every check of
/// [`decode`] that needs no pixel (size, format, declared pixels, a JPEG's data too short for
/// its declared size, the memory the decode would take). [`decode`] applies it first, so a
/// photo refused here costs a header parse, never an allocation the size of its pixels.
/// The metadata's heap is part of the estimate (`metadata.rs`).
pub fn estimate(bytes: &[u8], limits: &IngestLimits, options: DecodeOptions) -> Result<DecodeCost, ImageError> {
    let (format, metadata) = admit(bytes, limits)?;
    let never = Stop::never();
    let mut cost = guarded(|| match format {
        ImageFormat::Jpeg => jpeg_header(bytes, &never, limits, options).map(|(_, cost)| cost),
        ImageFormat::Png | ImageFormat::WebP => image_header(bytes, &never, format, limits).map(|(_, cost)| cost),
        ImageFormat::Heic | ImageFormat::Avif => heif_estimate(bytes, format, limits),
    })?;
    cost.peak_bytes += metadata.bytes * HEAP_PER_METADATA_BYTE;
    check_memory(cost, &format!("{} with its metadata", format.name()), limits)
}

/// Decodes `bytes` within `limits`, however long it takes. Never panics: every input gives
/// pixels or an [`ImageError`].
pub fn decode(bytes: &[u8], limits: &IngestLimits, options: DecodeOptions) -> Result<DecodedImage, ImageError> {
    decode_until(bytes, limits, options, &Stop::never())
}

/// [`decode`], stopped when `stop` fires (`deadline.rs`): past its deadline the photo is
/// refused as `decode_timeout`, and a decode nobody waits for ends as
/// [`ImageError::Abandoned`].
pub fn decode_until(
    bytes: &[u8],
    limits: &IngestLimits,
    options: DecodeOptions,
    stop: &Stop,
) -> Result<DecodedImage, ImageError> {
    stopped(stop)?;
    let (format, _) = admit(bytes, limits)?;
    let decoded = guarded(|| match format {
        ImageFormat::Jpeg => decode_jpeg(bytes, stop, limits, options),
        ImageFormat::Png | ImageFormat::WebP => decode_with_image(bytes, stop, format, limits),
        ImageFormat::Heic | ImageFormat::Avif => heif_decode(bytes, format, limits),
    });
    // A decoder stopped by its reader reports an I/O error; the stop is the reason.
    if decoded.is_err() {
        stopped(stop)?;
    }
    decoded
}

/// The error for a stop that has fired.
fn stopped(stop: &Stop) -> Result<(), ImageError> {
    match stop.fired() {
        None => Ok(()),
        Some(Fired::Deadline(limit)) => Err(ImageError::TimedOut(limit)),
        Some(Fired::Abandoned) => Err(ImageError::Abandoned),
    }
}

#[cfg(feature = "heif")]
fn heif_estimate(bytes: &[u8], format: ImageFormat, limits: &IngestLimits) -> Result<DecodeCost, ImageError> {
    super::heif::header(bytes, format, limits).map(|(_, cost)| cost)
}

#[cfg(feature = "heif")]
fn heif_decode(bytes: &[u8], format: ImageFormat, limits: &IngestLimits) -> Result<DecodedImage, ImageError> {
    super::heif::decode(bytes, format, limits)
}

#[cfg(not(feature = "heif"))]
fn heif_estimate(_: &[u8], format: ImageFormat, _: &IngestLimits) -> Result<DecodeCost, ImageError> {
    Err(ImageError::NotBuiltIn(format.name()))
}

#[cfg(not(feature = "heif"))]
fn heif_decode(_: &[u8], format: ImageFormat, _: &IngestLimits) -> Result<DecodedImage, ImageError> {
    Err(ImageError::NotBuiltIn(format.name()))
}

/// The third-party decoders are fed untrusted bytes. They are expected to return errors,
/// but one panic must cost one photo, never the process or the album.
fn guarded<T>(f: impl FnOnce() -> Result<T, ImageError>) -> Result<T, ImageError> {
    catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|_| Err(ImageError::Corrupt("the decoder failed on this file".into())))
}

/// What every photo passes before a decoder sees it: [`check_bytes`], then its metadata
/// measured from the container and held to its caps.
fn admit(bytes: &[u8], limits: &IngestLimits) -> Result<(ImageFormat, Metadata), ImageError> {
    let format = check_bytes(bytes, limits)?;
    let metadata = guarded(|| metadata::measure(bytes, format, limits))?;
    Ok((format, metadata))
}

/// The checks on the bytes themselves: not empty, within the byte limit, a format we decode.
fn check_bytes(bytes: &[u8], limits: &IngestLimits) -> Result<ImageFormat, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if bytes.len() as u64 > limits.max_bytes {
        return Err(ImageError::TooLarge(format!(
            "{} bytes, the limit is {}",
            bytes.len(),
            limits.max_bytes
        )));
    }
    match sniff(bytes) {
        Sniffed::Supported(format) => Ok(format),
        Sniffed::Unsupported(name) => Err(ImageError::UnsupportedFormat(name)),
        Sniffed::Unknown if looks_like_text(bytes) => {
            Err(ImageError::Corrupt("the bytes are text, not an image".into()))
        }
        Sniffed::Unknown => Err(ImageError::Corrupt("no JPEG, PNG, WebP, HEIC or AVIF signature".into())),
    }
}

fn looks_like_text(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(512)];
    std::str::from_utf8(head).is_ok_and(|s| s.chars().all(|c| !c.is_control() || c.is_whitespace()))
}

pub(super) fn check_pixels(width: u32, height: u32, limits: &IngestLimits) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::Corrupt(format!(
            "the header declares {width}x{height} pixels"
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(ImageError::TooLarge(format!(
            "{width}x{height} is {pixels} pixels, the limit is {}",
            limits.max_pixels
        )));
    }
    Ok(())
}

/// Refuses a decode whose memory estimate is over the limit, naming both.
pub(super) fn check_memory(cost: DecodeCost, what: &str, limits: &IngestLimits) -> Result<DecodeCost, ImageError> {
    if cost.peak_bytes > limits.max_decode_bytes {
        return Err(ImageError::TooLarge(format!(
            "decoding this {}x{} {what} needs about {} MiB, over the {} MiB decode limit (ONGI_DECODE_MEMORY_MB)",
            cost.width,
            cost.height,
            cost.peak_bytes.div_ceil(1 << 20),
            limits.max_decode_bytes >> 20
        )));
    }
    Ok(cost)
}

fn image_error(format: ImageFormat) -> impl Fn(image::ImageError) -> ImageError {
    let name = format.name();
    move |e| match e {
        image::ImageError::Limits(l) => ImageError::TooLarge(format!("{name}: {l}")),
        other => ImageError::Corrupt(format!("{name}: {other}")),
    }
}

/// A PNG or WebP decoder past its header, and its cost. These decoders have no reduced-scale
/// mode: the whole image is decoded, so the estimate is for the full size.
fn image_header<'a>(
    bytes: &'a [u8],
    stop: &'a Stop,
    format: ImageFormat,
    limits: &IngestLimits,
) -> Result<(impl ImageDecoder + 'a, DecodeCost), ImageError> {
    let reader = ImageReader::with_format(
        Watched::new(bytes, stop),
        match format {
            ImageFormat::Png => image::ImageFormat::Png,
            _ => image::ImageFormat::WebP,
        },
    );
    let mut decoder = reader.into_decoder().map_err(image_error(format))?;
    let (width, height) = decoder.dimensions();
    check_pixels(width, height, limits)?;
    let pixels = u64::from(width) * u64::from(height);
    let native = u64::from(decoder.color_type().bytes_per_pixel());
    // WebP decodes through its own ARGB or YUV planes before filling the output (and an
    // animation keeps a canvas beside the frame): up to 8 bytes a pixel besides the output.
    let working = if format == ImageFormat::WebP { 8 } else { 0 };
    // The decoder's output, the 8-bit RGB copy, the oriented copy and the caller's grey copy.
    let per_pixel = native + working + 3 + 3 + 1;
    let cost = DecodeCost {
        format,
        width,
        height,
        peak_bytes: pixels * per_pixel + DECODER_SLACK_BYTES,
        output_bytes: pixels * 3,
    };
    let what = format!("{:?} {}", decoder.color_type(), format.name());
    let cost = check_memory(cost, &what, limits)?;
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_decode_bytes);
    decoder.set_limits(decoder_limits).map_err(image_error(format))?;
    Ok((decoder, cost))
}

fn decode_with_image(
    bytes: &[u8],
    stop: &Stop,
    format: ImageFormat,
    limits: &IngestLimits,
) -> Result<DecodedImage, ImageError> {
    let (mut decoder, cost) = image_header(bytes, stop, format, limits)?;
    // Unreadable metadata costs only what it would have told; a decoder's limit, never.
    let orientation = unless_limited(decoder.orientation(), format)?.unwrap_or(Orientation::NoTransforms);
    let captured_at = unless_limited(decoder.exif_metadata(), format)?
        .flatten()
        .and_then(|e| super::exif::capture_time(&e));
    let image = DynamicImage::from_decoder(decoder).map_err(image_error(format))?;
    // 16-bit and grey images are scaled to 8-bit RGB; an alpha channel is dropped.
    let rgb = image.into_rgb8();
    let mut decoded = oriented(rgb, format, cost.width, cost.height, 1, orientation.to_exif());
    decoded.captured_at = captured_at;
    Ok(decoded)
}

/// `Some` value, `None` for a metadata error, or the photo refused as `too_large` when the
/// decoder hit one of its limits reading it.
fn unless_limited<T>(result: image::ImageResult<T>, format: ImageFormat) -> Result<Option<T>, ImageError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(e @ image::ImageError::Limits(_)) => Err(image_error(format)(e)),
        Err(_) => Ok(None),
    }
}

pub(super) fn oriented(
    pixels: RgbImage,
    format: ImageFormat,
    width: u32,
    height: u32,
    scale_denominator: u32,
    exif_orientation: u8,
) -> DecodedImage {
    let orientation = Orientation::from_exif(exif_orientation).unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::ImageRgb8(pixels);
    image.apply_orientation(orientation);
    let swaps = matches!(exif_orientation, 5..=8);
    let (source_width, source_height) = if swaps { (height, width) } else { (width, height) };
    DecodedImage {
        pixels: image.into_rgb8(),
        format,
        source_width,
        source_height,
        scale_denominator,
        exif_orientation: if (1..=8).contains(&exif_orientation) {
            exif_orientation
        } else {
            1
        },
        captured_at: None,
    }
}

#[cfg(all(test, not(feature = "heif")))]
mod without_heif {
    use super::*;

    #[test]
    fn heic_and_avif_say_how_to_enable_them() {
        for (bytes, name) in [
            (&b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"[..], "HEIC"),
            (b"\0\0\0\x18ftypavif\0\0\0\0mif1avif", "AVIF"),
        ] {
            let e = decode(bytes, &IngestLimits::default(), DecodeOptions::default()).unwrap_err();
            assert_eq!(e, ImageError::NotBuiltIn(name));
            assert_eq!(e.reason(), crate::domain::Reason::UnsupportedFormat);
            assert!(e.to_string().contains("--features ongi-shared/heif"), "{e}");
        }
    }
}
