//! The JPEG path of `decode.rs`: the header, its cost at the chosen DCT scale, and the
//! decode through `jpeg-decoder` to RGB. Apart because it is the one decoder with reduced-scale
//! output and its own memory model; `decode.rs` keeps the checks every format shares.

use image::RgbImage;
use image::metadata::Orientation;

use super::deadline::{Stop, Watched};
use super::decode::{
    DECODER_SLACK_BYTES, DecodeCost, DecodeOptions, DecodedImage, check_memory, check_pixels, oriented,
};
use super::error::ImageError;
use super::format::ImageFormat;
use crate::config::IngestLimits;

/// A JPEG decoder past its header, set to the DCT scale `options` allow, and its cost.
pub(super) fn jpeg_header<'a>(
    bytes: &'a [u8],
    stop: &'a Stop,
    limits: &IngestLimits,
    options: DecodeOptions,
) -> Result<(jpeg_decoder::Decoder<Watched<'a>>, DecodeCost), ImageError> {
    let corrupt = |e: jpeg_decoder::Error| ImageError::Corrupt(format!("JPEG: {e}"));
    let mut decoder = jpeg_decoder::Decoder::new(Watched::new(bytes, stop));
    decoder.set_max_decoding_buffer_size(usize::try_from(limits.max_decode_bytes).unwrap_or(usize::MAX));
    decoder.read_info().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| ImageError::Corrupt("JPEG: no frame header".into()))?;
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    check_pixels(width, height, limits)?;

    // Every 8x8 block of the first component costs at least one bit of entropy-coded data
    // (its DC code, in a baseline scan or a progressive DC scan). A file with fewer bits than
    // blocks is truncated or forged: jpeg-decoder would fill the rest with grey, after
    // allocating for the whole declared size.
    let blocks = u64::from(width.div_ceil(8)) * u64::from(height.div_ceil(8));
    if (bytes.len() as u64) * 8 < blocks {
        return Err(ImageError::Corrupt(format!(
            "JPEG: the file is {} bytes, too short for the {width}x{height} pixels its header declares (at least {} bytes); it is truncated",
            bytes.len(),
            blocks.div_ceil(8)
        )));
    }

    // The smallest fraction of the source that satisfies both minimums, as short:source ratio.
    let short = width.min(height);
    let long = width.max(height);
    let by_short = options.min_short_side.map(|m| (u64::from(m), u64::from(short)));
    let by_long = options.min_long_side.map(|m| (u64::from(m), u64::from(long)));
    let need = match (by_short, by_long) {
        // Compare m1/s1 with m2/s2 without division.
        (Some(a), Some(b)) => Some(if a.0 * b.1 >= b.0 * a.1 { a } else { b }),
        (a, b) => a.or(b),
    };
    let (mut out_w, mut out_h) = (width, height);
    if let Some((min_side, side)) = need
        && min_side > 0
        && side > min_side
        && info.coding_process != jpeg_decoder::CodingProcess::Lossless
    {
        // Ask for the aspect-preserving size whose side is `min_side`; the decoder picks
        // the smallest DCT scale that reaches it, so that side stays ≥ min_side.
        let req_w = (u64::from(width) * min_side).div_ceil(side);
        let req_h = (u64::from(height) * min_side).div_ceil(side);
        let (w, h) = decoder
            .scale(
                u16::try_from(req_w).unwrap_or(u16::MAX),
                u16::try_from(req_h).unwrap_or(u16::MAX),
            )
            .map_err(corrupt)?;
        (out_w, out_h) = (u32::from(w), u32::from(h));
    }

    use jpeg_decoder::PixelFormat as P;
    let components: u64 = match info.pixel_format {
        P::L8 | P::L16 => 1,
        P::RGB24 => 3,
        P::CMYK32 => 4,
    };
    let out = (u64::from(out_w) + 16) * (u64::from(out_h) + 16);
    // Whole-image coefficient storage (i16, 64 per block, blocks padded to the MCU) for a
    // progressive frame, counted twice: once decoded, and once more as the copies of its rows
    // that jpeg-decoder queues for its IDCT threads at the end, which can fall behind. A
    // lossless frame keeps 16-bit sample planes. All at full size, whatever the output scale;
    // a baseline frame is decoded one MCU row at a time.
    let padded_blocks = (u64::from(width.div_ceil(8)) + 2) * (u64::from(height.div_ceil(8)) + 2);
    let whole_frame = match info.coding_process {
        jpeg_decoder::CodingProcess::DctProgressive => 2 * components * padded_blocks * 64 * 2,
        jpeg_decoder::CodingProcess::Lossless => components * out * 2,
        jpeg_decoder::CodingProcess::DctSequential => 0,
    };
    // Component planes, the decoder's interleaved output, the RGB copy, the oriented copy
    // and the caller's grey copy.
    let per_pixel = components + info.pixel_format.pixel_bytes() as u64 + 3 + 3 + 1;
    let cost = DecodeCost {
        format: ImageFormat::Jpeg,
        width,
        height,
        peak_bytes: whole_frame + out * per_pixel + DECODER_SLACK_BYTES,
        output_bytes: u64::from(out_w) * u64::from(out_h) * 3,
    };
    let what = match info.coding_process {
        jpeg_decoder::CodingProcess::DctProgressive => "progressive JPEG",
        jpeg_decoder::CodingProcess::Lossless => "lossless JPEG",
        jpeg_decoder::CodingProcess::DctSequential => "JPEG",
    };
    Ok((decoder, check_memory(cost, what, limits)?))
}

pub(super) fn decode_jpeg(
    bytes: &[u8],
    stop: &Stop,
    limits: &IngestLimits,
    options: DecodeOptions,
) -> Result<DecodedImage, ImageError> {
    let corrupt = |e: jpeg_decoder::Error| ImageError::Corrupt(format!("JPEG: {e}"));
    let (mut decoder, cost) = jpeg_header(bytes, stop, limits, options)?;
    let (width, height) = (cost.width, cost.height);
    let data = decoder.decode().map_err(corrupt)?;
    let info = decoder
        .info()
        .ok_or_else(|| ImageError::Corrupt("JPEG: no frame header".into()))?;
    let (out_w, out_h) = (u32::from(info.width), u32::from(info.height));
    let rgb = to_rgb(&data, info.pixel_format, out_w, out_h)?;
    drop(data);
    // The APP1 EXIF block, from its TIFF header on (jpeg-decoder strips the `Exif\0\0`).
    let exif = decoder.exif_data();
    let exif_orientation = exif
        .and_then(Orientation::from_exif_chunk)
        .map_or(1, Orientation::to_exif);
    let captured_at = exif.and_then(super::exif::capture_time);
    let scale_denominator = (width / out_w.max(1)).max(1);
    let mut decoded = oriented(
        rgb,
        ImageFormat::Jpeg,
        width,
        height,
        scale_denominator,
        exif_orientation,
    );
    decoded.captured_at = captured_at;
    Ok(decoded)
}

/// Converts jpeg-decoder's output to RGB.
fn to_rgb(data: &[u8], format: jpeg_decoder::PixelFormat, w: u32, h: u32) -> Result<RgbImage, ImageError> {
    use jpeg_decoder::PixelFormat as P;
    let n = (w as usize) * (h as usize);
    if data.len() < n * format.pixel_bytes() {
        return Err(ImageError::Corrupt("JPEG: the decoder returned too few pixels".into()));
    }
    let mut out = Vec::with_capacity(n * 3);
    match format {
        P::RGB24 => out.extend_from_slice(&data[..n * 3]),
        P::L8 => data[..n].iter().for_each(|&l| out.extend_from_slice(&[l, l, l])),
        // 16-bit samples come big-endian; keep the high byte.
        P::L16 => data[..n * 2]
            .chunks_exact(2)
            .for_each(|p| out.extend_from_slice(&[p[0], p[0], p[0]])),
        // jpeg-decoder undoes Adobe's inversion, so these are ink amounts (0 = no ink).
        P::CMYK32 => data[..n * 4].chunks_exact(4).for_each(|p| {
            let k = 255 - u32::from(p[3]);
            let ch = |c: u8| ((255 - u32::from(c)) * k / 255) as u8;
            out.extend_from_slice(&[ch(p[0]), ch(p[1]), ch(p[2])]);
        }),
    }
    RgbImage::from_raw(w, h, out).ok_or_else(|| ImageError::Corrupt("JPEG: inconsistent pixel buffer".into()))
}
