//! The faces of one photo, cached under its content hash and the face models' ids, so an
//! album that grows reuses the faces of the photos it already had.
//!
//! Layout (version 1, little-endian): `b"OP"`, version u8, face count u16, embedding dim
//! u16, then per face: bbox 4×f32 (x1, y1, x2, y2 in original pixels), detection score f32,
//! landmarks 10×f32, representative quality f32, sharpness f32, frontalness f32, embedding
//! dim×f32 (L2-normalised).

use bytes::Bytes;

#[derive(Debug, Clone, PartialEq)]
pub struct StoredFace {
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: [[f32; 2]; 5],
    /// How good a representative this face is (size, detection score, sharpness, pose).
    pub quality: f32,
    pub sharpness: f32,
    pub frontalness: f32,
    pub embedding: Vec<f32>,
}

impl StoredFace {
    /// The box as the API gives it: `[x1, y1, x2, y2]` rounded to whole pixels of the photo.
    pub fn pixel_box(&self) -> [i32; 4] {
        self.bbox.map(|v| v.round() as i32)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("face record is malformed: {0}")]
pub struct FaceRecordError(&'static str);

const MAGIC: &[u8; 2] = b"OP";
const VERSION: u8 = 1;
const HEADER: usize = 7;
const FIXED_PER_FACE: usize = 4 * (4 + 1 + 10 + 3);

pub fn encode(faces: &[StoredFace]) -> Bytes {
    let dim = faces.first().map_or(0, |f| f.embedding.len());
    let mut out = Vec::with_capacity(HEADER + faces.len() * (FIXED_PER_FACE + 4 * dim));
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(faces.len() as u16).to_le_bytes());
    out.extend_from_slice(&(dim as u16).to_le_bytes());
    for f in faces {
        let mut put = |v: f32| out.extend_from_slice(&v.to_le_bytes());
        f.bbox.iter().for_each(|&v| put(v));
        put(f.score);
        f.landmarks.iter().flatten().for_each(|&v| put(v));
        put(f.quality);
        put(f.sharpness);
        put(f.frontalness);
        // Every face of a record has the same width (one embedder); pad or cut defensively.
        (0..dim).for_each(|k| put(f.embedding.get(k).copied().unwrap_or(0.0)));
    }
    Bytes::from(out)
}

pub fn decode(b: &[u8]) -> Result<Vec<StoredFace>, FaceRecordError> {
    if b.len() < HEADER || &b[..2] != MAGIC || b[2] != VERSION {
        return Err(FaceRecordError("bad header"));
    }
    let count = usize::from(u16::from_le_bytes([b[3], b[4]]));
    let dim = usize::from(u16::from_le_bytes([b[5], b[6]]));
    let per_face = FIXED_PER_FACE + 4 * dim;
    if b.len() != HEADER + count * per_face {
        return Err(FaceRecordError("length does not match the face count"));
    }
    let f = |i: usize| f32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    Ok((0..count)
        .map(|n| {
            let at = HEADER + n * per_face;
            let v = |k: usize| f(at + 4 * k);
            StoredFace {
                bbox: [v(0), v(1), v(2), v(3)],
                score: v(4),
                landmarks: [
                    [v(5), v(6)],
                    [v(7), v(8)],
                    [v(9), v(10)],
                    [v(11), v(12)],
                    [v(13), v(14)],
                ],
                quality: v(15),
                sharpness: v(16),
                frontalness: v(17),
                embedding: (0..dim).map(|k| v(18 + k)).collect(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_malformed() {
        let face = StoredFace {
            bbox: [1.0, 2.0, 30.0, 40.0],
            score: 0.99,
            landmarks: [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0], [11.0, 12.0], [13.0, 14.0]],
            quality: 0.7,
            sharpness: 120.0,
            frontalness: 0.9,
            embedding: (0..128).map(|i| i as f32 / 128.0).collect(),
        };
        let faces = vec![face.clone(), StoredFace { score: 0.5, ..face }];
        assert_eq!(decode(&encode(&faces)).unwrap(), faces);
        assert_eq!(decode(&encode(&[])).unwrap(), vec![]);
        let bytes = encode(&faces);
        assert!(decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(decode(b"xx").is_err());
    }
}
