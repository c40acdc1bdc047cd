//! Vectors as little-endian `f32` bytes: 2 KiB for a 512-d embedding instead of ~10 KB of
//! JSON text, and no float formatting or parsing on the hot path.

use bytes::Bytes;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a vector record must be a multiple of 4 bytes, got {0}")]
pub struct CodecError(pub usize);

pub fn encode_f32_le(values: &[f32]) -> Bytes {
    let mut out = Vec::with_capacity(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    Bytes::from(out)
}

pub fn decode_f32_le(bytes: &[u8]) -> Result<Vec<f32>, CodecError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(CodecError(bytes.len()));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_and_little_endian() {
        let v = [1.0f32, -0.5, f32::MIN_POSITIVE, 3.25e7];
        let bytes = encode_f32_le(&v);
        assert_eq!(&bytes[..4], &[0x00, 0x00, 0x80, 0x3f]);
        assert_eq!(decode_f32_le(&bytes).unwrap(), v);
        assert_eq!(decode_f32_le(&[1, 2, 3]), Err(CodecError(3)));
    }
}
