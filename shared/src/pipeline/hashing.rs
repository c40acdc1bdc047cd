//! Content hashes of downloaded photos, computed on the decode threads rather than on the
//! async runtime: SHA-256 of a 50 MB file takes tens of milliseconds, the runtime's few
//! threads serve every connection, and on the decode threads (one per core, short work
//! first) a call of many large files takes at most those cores, not as many threads as it
//! has photos in flight.

use bytes::Bytes;

use super::decode_budget::DecodeBudget;
use crate::domain::ContentHash;

/// Files up to this size are hashed where they are (well under a millisecond).
const INLINE_BYTES: usize = 256 * 1024;

/// The content hash of `bytes`, on `decoder`'s threads when they are large.
pub async fn content_hash(decoder: &DecodeBudget, bytes: &Bytes) -> ContentHash {
    if bytes.len() <= INLINE_BYTES {
        return ContentHash::of(bytes);
    }
    let owned = bytes.clone();
    match decoder.quick(move || ContentHash::of(&owned)).await {
        Ok(hash) => hash,
        // No decode thread could run it: hash here rather than fail the photo.
        Err(_) => ContentHash::of(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IngestLimits;

    #[tokio::test]
    async fn large_and_small_files_hash_as_their_bytes_do() {
        let decoder = DecodeBudget::new(IngestLimits::default());
        for len in [0, 10, INLINE_BYTES + 1, 3 << 20] {
            let bytes = Bytes::from(vec![7u8; len]);
            assert_eq!(content_hash(&decoder, &bytes).await, ContentHash::of(&bytes));
        }
    }
}
