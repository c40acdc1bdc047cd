//! The per-photo feature record: everything the album analyses need from one decode,
//! stored as one compact little-endian binary value (≈2.1 KB with a 512-d embedding).
//!
//! Layout (version 2):
//! `b"OF"`, version u8, flags u8 (bit 0: has embedding, bit 1: has capture time), width u32,
//! height u32, format u8, luma p05 u8, luma p95 u8, reserved u8, pHash u64, Laplacian
//! variance f64, luma mean f32, luma std f32, shadows clipped f32, highlights clipped f32,
//! embedding dim u16, capture time i64 (EXIF, naive local seconds), dim × f32.

use bytes::Bytes;

use crate::image::ImageFormat;
use crate::image::features::Exposure;

const MAGIC: &[u8; 2] = b"OF";
const VERSION: u8 = 2;
const HEADER: usize = 58;

#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRecord {
    /// The L2-normalised CLIP image embedding; absent when computed without a CLIP model.
    pub embedding: Option<Vec<f32>>,
    /// OpenCV-compatible 64-bit DCT perceptual hash.
    pub phash: u64,
    /// Variance of the Laplacian at a 300 px long side (the anchor's blur metric).
    pub blur_variance: f64,
    pub exposure: Exposure,
    /// Full-resolution size, the right way up.
    pub width: u32,
    pub height: u32,
    pub format: ImageFormat,
    /// EXIF `DateTimeOriginal`, naive local seconds since 1970.
    pub captured_at: Option<i64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("feature record is malformed: {0}")]
pub struct RecordError(&'static str);

fn format_code(f: ImageFormat) -> u8 {
    match f {
        ImageFormat::Jpeg => 1,
        ImageFormat::Png => 2,
        ImageFormat::WebP => 3,
        ImageFormat::Heic => 4,
        ImageFormat::Avif => 5,
    }
}

impl FeatureRecord {
    pub fn encode(&self) -> Bytes {
        let dim = self.embedding.as_ref().map_or(0, Vec::len);
        let mut out = Vec::with_capacity(HEADER + dim * 4);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(u8::from(self.embedding.is_some()) | (u8::from(self.captured_at.is_some()) << 1));
        out.extend_from_slice(&self.width.to_le_bytes());
        out.extend_from_slice(&self.height.to_le_bytes());
        out.push(format_code(self.format));
        out.push(self.exposure.p05);
        out.push(self.exposure.p95);
        out.push(0);
        out.extend_from_slice(&self.phash.to_le_bytes());
        out.extend_from_slice(&self.blur_variance.to_le_bytes());
        for v in [
            self.exposure.mean,
            self.exposure.std,
            self.exposure.shadows_clipped,
            self.exposure.highlights_clipped,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(dim as u16).to_le_bytes());
        out.extend_from_slice(&self.captured_at.unwrap_or(0).to_le_bytes());
        for v in self.embedding.iter().flatten() {
            out.extend_from_slice(&v.to_le_bytes());
        }
        Bytes::from(out)
    }

    pub fn decode(b: &[u8]) -> Result<Self, RecordError> {
        if b.len() < HEADER || &b[..2] != MAGIC {
            return Err(RecordError("bad magic or too short"));
        }
        if b[2] != VERSION {
            return Err(RecordError("unknown version"));
        }
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let f32_at = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        let format = match b[12] {
            1 => ImageFormat::Jpeg,
            2 => ImageFormat::Png,
            3 => ImageFormat::WebP,
            4 => ImageFormat::Heic,
            5 => ImageFormat::Avif,
            _ => return Err(RecordError("unknown format")),
        };
        let dim = usize::from(u16::from_le_bytes([b[48], b[49]]));
        if b.len() != HEADER + dim * 4 {
            return Err(RecordError("length does not match the embedding size"));
        }
        let has_embedding = b[3] & 1 == 1;
        if has_embedding != (dim > 0) {
            return Err(RecordError("embedding flag and size disagree"));
        }
        let embedding = has_embedding.then(|| (0..dim).map(|k| f32_at(HEADER + 4 * k)).collect());
        Ok(Self {
            embedding,
            phash: u64_at(16),
            blur_variance: f64::from_bits(u64_at(24)),
            exposure: Exposure {
                mean: f32_at(32),
                std: f32_at(36),
                shadows_clipped: f32_at(40),
                highlights_clipped: f32_at(44),
                p05: b[13],
                p95: b[14],
            },
            width: u32_at(4),
            height: u32_at(8),
            format,
            captured_at: (b[3] & 2 == 2).then(|| u64_at(50) as i64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(embedding: Option<Vec<f32>>) -> FeatureRecord {
        FeatureRecord {
            embedding,
            phash: 0x0123_4567_89ab_cdef,
            blur_variance: 123.456,
            exposure: Exposure {
                mean: 120.5,
                std: 40.25,
                shadows_clipped: 0.01,
                highlights_clipped: 0.002,
                p05: 12,
                p95: 240,
            },
            width: 4032,
            height: 3024,
            format: ImageFormat::Jpeg,
            captured_at: Some(1_720_952_430),
        }
    }

    #[test]
    fn round_trips_with_and_without_an_embedding() {
        for r in [record(Some((0..512).map(|i| i as f32 / 512.0).collect())), record(None)] {
            let bytes = r.encode();
            assert_eq!(FeatureRecord::decode(&bytes).unwrap(), r);
        }
        assert_eq!(record(Some(vec![0.0; 512])).encode().len(), 58 + 2048);
        let undated = FeatureRecord {
            captured_at: None,
            ..record(None)
        };
        assert_eq!(FeatureRecord::decode(&undated.encode()).unwrap(), undated);
    }

    #[test]
    fn malformed_records_are_errors() {
        let good = record(Some(vec![1.0; 4])).encode();
        assert!(FeatureRecord::decode(&good[..good.len() - 1]).is_err());
        assert!(FeatureRecord::decode(b"nope").is_err());
        let mut bad = good.to_vec();
        bad[2] = 9;
        assert!(FeatureRecord::decode(&bad).is_err());
    }
}
