//! Decode failures remembered under the photo's content hash, so the same undecodable bytes
//! under any name cost one decode, not one per call; the key carries the limits, the decode
//! options and the formats this build decodes.

use bytes::Bytes;

use super::FeatureService;
use crate::cache::CacheKey;
use crate::domain::ContentHash;
use crate::image::{DecodeCost, DecodeOptions, DecodedImage, ImageError};
use crate::pipeline::PhotoError;

/// A remembered decode failure: `reason\ndetail`, with a reason of [`ImageError::REASONS`].
pub(super) fn decode_failure(bytes: &[u8]) -> Option<PhotoError> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (reason, detail) = text.split_once('\n')?;
    Some(PhotoError::permanent(ImageError::known_reason(reason)?, detail))
}

impl FeatureService {
    /// Decodes `bytes` (whose content hash is `hash`) under the decode budget and runs
    /// `work` on the pixels, reserving `work_bytes` for it beside the decode (see
    /// [`DecodeBudget::decode_then`]). Bytes that cannot be decoded are remembered under their
    /// hash, so the same photo under any name costs one decode, not one per call.
    pub async fn decode_then<T: Send + 'static>(
        &self,
        hash: &ContentHash,
        bytes: Bytes,
        options: DecodeOptions,
        work_bytes: impl FnOnce(&DecodeCost) -> u64,
        work: impl FnOnce(DecodedImage) -> T + Send + 'static,
    ) -> Result<T, PhotoError> {
        let result = self.decoder.decode_then(bytes, options, work_bytes, work).await;
        if let Err(e) = &result
            && !e.transient
            && ImageError::REASONS.contains(&e.reason)
        {
            let record = Bytes::from(format!("{}\n{}", e.reason, e.detail));
            self.cache
                .set_many(&[(self.undecodable_key(options, hash), record)])
                .await;
        }
        result
    }

    /// The decode failures remembered for `hashes` with `options`, in one round trip.
    pub async fn known_failures(&self, options: DecodeOptions, hashes: &[ContentHash]) -> Vec<Option<PhotoError>> {
        if hashes.is_empty() {
            return Vec::new();
        }
        let keys: Vec<CacheKey> = hashes.iter().map(|h| self.undecodable_key(options, h)).collect();
        self.cache
            .get_many(&keys)
            .await
            .iter()
            .map(|v| v.as_deref().and_then(decode_failure))
            .collect()
    }

    /// Where a decode failure of `hash` is remembered: the limits, decode options and the
    /// formats this build decodes are part of the key, because a photo too large for one
    /// decode may fit another (or new limits), and one unsupported here may be supported by
    /// another build.
    pub(super) fn undecodable_key(&self, options: DecodeOptions, hash: &ContentHash) -> CacheKey {
        let l = &self.limits;
        let tag = format!(
            "{}:{}:{}:{:?}:{:?}:{}",
            l.max_bytes,
            l.max_pixels,
            l.max_decode_bytes,
            options.min_short_side,
            options.min_long_side,
            crate::image::DECODERS
        );
        let tag = ContentHash::of(tag.as_bytes()).to_hex();
        self.cache.keyspace().undecodable(&tag[..12], hash)
    }
}
