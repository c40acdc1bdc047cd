//! Metadata budgets, checked before any decoder parses a photo.
//!
//! A photo's pixels are budgeted from its header (`decode.rs`); its metadata blocks (EXIF,
//! ICC profiles, XMP, text chunks, JPEG application segments) cost memory too, and the
//! decoders read them before and after the pixels, allocating what they find: a 1x1 PNG can
//! carry a 45 MB `eXIf` chunk, a 611 KB PNG an `iCCP` profile that inflates to 600 MiB, a
//! JPEG thousands of ICC segments that jpeg-decoder keeps. So the container's own structure
//! (PNG chunks, RIFF chunks, JPEG marker segments) is walked first, every metadata block is
//! measured (a compressed one by inflating it into a counter that stops at the cap, never
//! into memory), and a photo whose blocks together are over
//! [`IngestLimits::max_metadata_bytes`], or more than [`MAX_METADATA_BLOCKS`], is refused as
//! `too_large`. What passes is counted in the photo's decode estimate. The JPEG walk also
//! counts scans, each a pass over the whole picture, and refuses more than [`MAX_JPEG_SCANS`].
//!
//! Written by hand: the decoders and EXIF crates measure a block only by reading it into
//! memory, which is the cost being bounded. A malformed structure (a truncated chunk, a
//! length past the end) ends the walk and is left to the decoder, which names it better.
//! HEIC and AVIF are not walked here: libheif reports each metadata item's size before
//! anything is read, and `heif.rs` reads only an EXIF item under its own cap.

use std::io::Read;

use super::error::ImageError;
use super::format::ImageFormat;
use crate::config::IngestLimits;

/// More metadata blocks than any camera or editor writes (a phone JPEG has under ten; a
/// depth map in extended XMP a few dozen). Each one is an allocation in the decoder.
pub const MAX_METADATA_BLOCKS: usize = 1024;

/// Heap per metadata byte that passes: the decoder's copy, the copy `image` hands over and
/// the EXIF reader's own, with room to spare.
pub(super) const HEAP_PER_METADATA_BYTE: u64 = 4;

/// A JPEG's scans past this are refused as `too_large`. Each scan is one pass of the decoder
/// over every block of its components, however few bytes it holds (a 733 KB progressive
/// file with 20,000 scans took 30 s of CPU). Encoders write 1 (baseline) to about 20
/// (libjpeg's progressive scripts write 10, mozjpeg's searched ones a few more).
pub const MAX_JPEG_SCANS: usize = 100;

/// What a photo's metadata blocks add up to, and (the same walk) a JPEG's scans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Their bytes, compressed blocks counted inflated.
    pub bytes: u64,
    pub blocks: usize,
    /// A JPEG's scans (SOS segments) seen so far, at most [`MAX_JPEG_SCANS`].
    pub scans: usize,
}

/// Measures the metadata of `bytes` (already sniffed as `format`), refusing it over the caps.
pub fn measure(bytes: &[u8], format: ImageFormat, limits: &IngestLimits) -> Result<Metadata, ImageError> {
    let mut tally = Tally {
        metadata: Metadata::default(),
        max_bytes: limits.max_metadata_bytes,
        format,
    };
    match format {
        ImageFormat::Png => png(bytes, &mut tally)?,
        ImageFormat::WebP => webp(bytes, &mut tally)?,
        ImageFormat::Jpeg => jpeg(bytes, &mut tally)?,
        ImageFormat::Heic | ImageFormat::Avif => {}
    }
    Ok(tally.metadata)
}

struct Tally {
    metadata: Metadata,
    max_bytes: u64,
    format: ImageFormat,
}

impl Tally {
    /// Room left under the byte cap.
    fn room(&self) -> u64 {
        self.max_bytes.saturating_sub(self.metadata.bytes)
    }

    fn add(&mut self, what: &str, bytes: u64) -> Result<(), ImageError> {
        self.metadata.blocks += 1;
        self.metadata.bytes = self.metadata.bytes.saturating_add(bytes);
        if self.metadata.bytes > self.max_bytes {
            return Err(ImageError::TooLarge(format!(
                "{}: its metadata is over {} KiB (at the {what} block); a photo's EXIF, ICC, XMP and text blocks together may take {} KiB",
                self.format.name(),
                self.metadata.bytes >> 10,
                self.max_bytes >> 10
            )));
        }
        if self.metadata.blocks > MAX_METADATA_BLOCKS {
            return Err(ImageError::TooLarge(format!(
                "{}: it holds more than {MAX_METADATA_BLOCKS} metadata blocks",
                self.format.name()
            )));
        }
        Ok(())
    }

    /// Adds a zlib-compressed block, measured by inflating it into a counter that stops one
    /// byte past the room left. A stream that stops being valid counts what it gave.
    fn add_compressed(&mut self, what: &str, prefix: usize, zlib: &[u8]) -> Result<(), ImageError> {
        let limit = self.room().saturating_add(1);
        let mut inflated = flate2::read::ZlibDecoder::new(zlib).take(limit);
        let size = std::io::copy(&mut inflated, &mut std::io::sink()).unwrap_or(0);
        self.add(what, prefix as u64 + size)
    }
}

fn be_u32(b: &[u8]) -> usize {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize
}

/// The position after the first NUL in `data` (a PNG keyword's end), if any.
fn after_nul(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?.iter().position(|&b| b == 0).map(|i| from + i + 1)
}

/// PNG: length, type, data, CRC per chunk, from the signature to `IEND`.
fn png(bytes: &[u8], tally: &mut Tally) -> Result<(), ImageError> {
    let mut pos = 8;
    while let Some(header) = bytes.get(pos..pos + 8) {
        let length = be_u32(header);
        let kind = &header[4..8];
        let start = pos + 8;
        let Some(data) = start.checked_add(length).and_then(|end| bytes.get(start..end)) else {
            break;
        };
        match kind {
            b"IEND" => break,
            b"eXIf" | b"tEXt" => tally.add(&String::from_utf8_lossy(kind), length as u64)?,
            // keyword, NUL, compression method, zlib data
            b"iCCP" | b"zTXt" => match after_nul(data, 0) {
                Some(at) if at < data.len() => {
                    tally.add_compressed(&String::from_utf8_lossy(kind), at + 1, &data[at + 1..])?
                }
                _ => tally.add(&String::from_utf8_lossy(kind), length as u64)?,
            },
            // keyword, NUL, compressed?, method, language, NUL, translated keyword, NUL, text
            b"iTXt" => {
                let text = after_nul(data, 0)
                    .map(|at| (data.get(at).copied(), at + 2))
                    .and_then(|(flag, at)| Some((flag, after_nul(data, after_nul(data, at)?)?)));
                match text {
                    Some((Some(1), at)) if at <= data.len() => tally.add_compressed("iTXt", at, &data[at..])?,
                    _ => tally.add("iTXt", length as u64)?,
                }
            }
            _ => {}
        }
        pos = start + length + 4;
    }
    Ok(())
}

/// WebP: `RIFF`, size, `WEBP`, then chunks of FourCC, little-endian size and data padded to
/// an even length.
fn webp(bytes: &[u8], tally: &mut Tally) -> Result<(), ImageError> {
    // The chunks end where the RIFF size says (what follows is not the decoder's).
    let riff_end = bytes
        .get(4..8)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
    let chunks = &bytes[..riff_end.saturating_add(8).min(bytes.len())];
    let mut pos = 12;
    while let Some(header) = chunks.get(pos..pos + 8) {
        let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]) as u64;
        match &header[..4] {
            b"EXIF" => tally.add("EXIF", size)?,
            b"XMP " => tally.add("XMP", size)?,
            b"ICCP" => tally.add("ICCP", size)?,
            _ => {}
        }
        let Some(next) = usize::try_from(size + (size & 1))
            .ok()
            .and_then(|padded| (pos + 8).checked_add(padded))
        else {
            break;
        };
        pos = next;
    }
    Ok(())
}

/// JPEG: marker segments after SOI, through the entropy-coded data of every scan (a segment
/// may follow any scan), to EOI. APPn (EXIF, XMP, ICC, MPF, vendors') and COM are metadata.
fn jpeg(bytes: &[u8], tally: &mut Tally) -> Result<(), ImageError> {
    let mut pos = 2;
    // The next marker: 0xFF (fill bytes allowed) then a byte that is not 0 (a stuffed 0xFF
    // in entropy-coded data) nor a restart marker, which carry no length.
    while let Some(at) = bytes.get(pos..).and_then(|rest| rest.iter().position(|&b| b == 0xFF)) {
        pos += at + 1;
        let Some(&marker) = bytes.get(pos) else { break };
        match marker {
            0xFF | 0x00 | 0x01 | 0xD0..=0xD8 => continue,
            0xD9 => break,
            _ => {}
        }
        let Some(length) = bytes
            .get(pos + 1..pos + 3)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
        else {
            break;
        };
        match marker {
            0xE0..=0xEF => tally.add(&format!("APP{}", marker - 0xE0), length as u64)?,
            0xFE => tally.add("COM", length as u64)?,
            0xDA => {
                tally.metadata.scans += 1;
                if tally.metadata.scans > MAX_JPEG_SCANS {
                    return Err(ImageError::TooLarge(format!(
                        "JPEG: more than {MAX_JPEG_SCANS} scans; each is a pass over the whole picture"
                    )));
                }
            }
            _ => {}
        }
        // Past the segment; a scan's entropy-coded data follows its SOS header and is
        // searched for the next marker above.
        pos += 1 + length;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn limits(max_metadata_bytes: u64) -> IngestLimits {
        IngestLimits {
            max_metadata_bytes,
            ..IngestLimits::default()
        }
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut chunk = (data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(kind);
        chunk.extend_from_slice(data);
        chunk.extend_from_slice(&[0; 4]);
        chunk
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn png_with(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
        chunks.iter().for_each(|c| png.extend_from_slice(c));
        png.extend(png_chunk(b"IEND", &[]));
        png
    }

    #[test]
    fn png_blocks_are_measured_and_compressed_ones_counted_inflated() {
        let mut iccp = b"profile\0\0".to_vec();
        iccp.extend(zlib(&[7; 3000]));
        let mut itxt = b"k\0\x01\0en\0kw\0".to_vec();
        itxt.extend(zlib(&[b'x'; 500]));
        let png = png_with(&[
            png_chunk(b"eXIf", &[1; 100]),
            png_chunk(b"iCCP", &iccp),
            png_chunk(b"tEXt", b"a\0b"),
            png_chunk(b"iTXt", &itxt),
            png_chunk(b"IDAT", &[0; 50]),
        ]);
        let m = measure(&png, ImageFormat::Png, &limits(1 << 20)).unwrap();
        assert_eq!(m.blocks, 4);
        assert_eq!(m.bytes, 100 + (9 + 3000) + 3 + (10 + 500));
    }

    #[test]
    fn an_inflating_profile_is_refused_without_being_inflated_whole() {
        let mut iccp = b"p\0\0".to_vec();
        iccp.extend(zlib(&vec![0; 64 << 20]));
        assert!(iccp.len() < 100_000, "{}", iccp.len());
        let png = png_with(&[png_chunk(b"iCCP", &iccp)]);
        let e = measure(&png, ImageFormat::Png, &limits(1 << 20)).unwrap_err();
        assert!(
            matches!(&e, ImageError::TooLarge(m) if m.contains("iCCP") && m.contains("1024 KiB")),
            "{e}"
        );
    }

    #[test]
    fn too_many_blocks_are_refused_even_when_small() {
        let chunks = vec![png_chunk(b"tEXt", b"k\0v"); MAX_METADATA_BLOCKS + 1];
        let e = measure(&png_with(&chunks), ImageFormat::Png, &limits(1 << 20)).unwrap_err();
        assert!(e.to_string().contains("metadata blocks"), "{e}");
        let fine = vec![png_chunk(b"tEXt", b"k\0v"); 10];
        assert_eq!(
            measure(&png_with(&fine), ImageFormat::Png, &limits(1 << 20))
                .unwrap()
                .blocks,
            10
        );
    }

    #[test]
    fn webp_and_jpeg_segments_are_measured() {
        let mut webp = b"RIFF\xff\xff\0\0WEBP".to_vec();
        for (kind, size) in [(b"VP8X", 10u32), (b"ICCP", 31), (b"EXIF", 200), (b"XMP ", 8)] {
            webp.extend_from_slice(kind);
            webp.extend_from_slice(&size.to_le_bytes());
            webp.extend(vec![0; (size + (size & 1)) as usize]);
        }
        let m = measure(&webp, ImageFormat::WebP, &limits(1 << 20)).unwrap();
        assert_eq!((m.blocks, m.bytes), (3, 31 + 200 + 8));

        // SOI, APP1, a scan whose data holds a stuffed 0xFF and a restart marker, COM after it, EOI.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x06, 1, 2, 3, 4];
        jpeg.extend([0xFF, 0xDA, 0x00, 0x04, 9, 9, 0x11, 0xFF, 0x00, 0x22, 0xFF, 0xD0, 0x33]);
        jpeg.extend([0xFF, 0xFE, 0x00, 0x05, b'h', b'i', b'!', 0xFF, 0xD9]);
        let m = measure(&jpeg, ImageFormat::Jpeg, &limits(1 << 20)).unwrap();
        assert_eq!((m.blocks, m.bytes, m.scans), (2, 6 + 5, 1));
        let e = measure(&jpeg, ImageFormat::Jpeg, &limits(8)).unwrap_err();
        assert!(e.to_string().contains("COM"), "{e}");
    }

    #[test]
    fn a_jpeg_with_too_many_scans_is_refused() {
        let scans = |n: usize| {
            let mut jpeg = vec![0xFF, 0xD8];
            for _ in 0..n {
                jpeg.extend([0xFF, 0xDA, 0x00, 0x04, 1, 0, 0x00, 0x01]);
            }
            jpeg.extend([0xFF, 0xD9]);
            jpeg
        };
        assert_eq!(
            measure(&scans(MAX_JPEG_SCANS), ImageFormat::Jpeg, &limits(1 << 20))
                .unwrap()
                .scans,
            MAX_JPEG_SCANS
        );
        let e = measure(&scans(MAX_JPEG_SCANS + 1), ImageFormat::Jpeg, &limits(1 << 20)).unwrap_err();
        assert!(matches!(&e, ImageError::TooLarge(m) if m.contains("scans")), "{e}");
    }

    /// A PNG chunk or JPEG segment cut short is the decoder's to name; a WebP chunk counts
    /// the size it declares, which image-webp would allocate.
    #[test]
    fn truncated_structures_end_the_walk_and_a_webp_chunk_counts_its_declared_size() {
        let mut png = png_with(&[png_chunk(b"eXIf", &[1; 10])]);
        png.truncate(20);
        png.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(measure(&png, ImageFormat::Png, &limits(1 << 20)).is_ok());
        assert!(
            measure(
                b"RIFF\x0c\0\0\0WEBPEXIF\xff\xff\xff\xff",
                ImageFormat::WebP,
                &limits(1 << 20)
            )
            .is_err()
        );
        assert!(measure(&[0xFF, 0xD8, 0xFF, 0xE1], ImageFormat::Jpeg, &limits(1 << 20)).is_ok());
    }
}
