//! The aliases that name a photo's bytes: `bucket/object#generation` and `latest`, each
//! holding the generation and the content hash; and the album's cache lookups through them
//! (two round trips for the whole album: the aliases, then the records).

use std::collections::HashMap;

use bytes::Bytes;

use super::{FeatureService, Features};
use crate::analysis::FeatureRecord;
use crate::cache::CacheKey;
use crate::domain::{BucketName, ContentHash, ImageRef};
use crate::pipeline::PhotoError;
use crate::pipeline::pixels::DECODE_FOR_FEATURES;

/// Alias value: generation (i64 LE) followed by the 32-byte content hash.
fn encode_alias(generation: i64, hash: &ContentHash) -> Bytes {
    let mut v = generation.to_le_bytes().to_vec();
    v.extend_from_slice(&hash.to_bytes());
    Bytes::from(v)
}

pub(super) fn decode_alias(b: &[u8]) -> Option<(i64, ContentHash)> {
    if b.len() != 40 {
        return None;
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&b[..8]);
    Some((i64::from_le_bytes(g), ContentHash::from_bytes(b[8..].try_into().ok()?)))
}

impl FeatureService {
    /// The content hash an alias value names (`bucket/object#generation` or `latest`).
    pub fn alias_hash(bytes: &[u8]) -> Option<ContentHash> {
        decode_alias(bytes).map(|(_, h)| h)
    }

    /// The content hash last seen for each reference (the `latest` aliases), in one round trip.
    pub async fn known_hashes(
        &self,
        refs: &[&ImageRef],
        bucket_of: &impl Fn(&ImageRef) -> BucketName,
    ) -> Vec<Option<ContentHash>> {
        let ks = self.cache.keyspace();
        let latest_keys: Vec<CacheKey> = refs.iter().map(|r| ks.latest(&bucket_of(r), r.object())).collect();
        let aliases: Vec<Option<(i64, ContentHash)>> = self
            .cache
            .get_many(&latest_keys)
            .await
            .iter()
            .map(|a| a.as_deref().and_then(decode_alias))
            .collect();
        let current = self.current_generations(refs, bucket_of).await;
        aliases
            .into_iter()
            .enumerate()
            .map(|(i, alias)| {
                let (generation, hash) = alias?;
                // An alias to an older generation names the bytes the object held before.
                match current.as_ref().map(|c| c[i]) {
                    Some(now) if now != Some(generation) => None,
                    _ => Some(hash),
                }
            })
            .collect()
    }

    /// The objects' current generations, where the store's objects change without an upload
    /// event (see [`ObjectStore::unannounced_generations`]); `None` where events keep the
    /// aliases current.
    async fn current_generations(
        &self,
        refs: &[&ImageRef],
        bucket_of: &impl Fn(&ImageRef) -> BucketName,
    ) -> Option<Vec<Option<i64>>> {
        // One lookup per bucket, in the references' order.
        let mut current = vec![None; refs.len()];
        let mut by_bucket: HashMap<BucketName, Vec<usize>> = HashMap::new();
        for (i, r) in refs.iter().enumerate() {
            by_bucket.entry(bucket_of(r)).or_default().push(i);
        }
        for (bucket, indices) in by_bucket {
            let objects: Vec<&str> = indices.iter().map(|&i| refs[i].object()).collect();
            let found = self.store.unannounced_generations(&bucket, &objects).await?;
            for (i, generation) in indices.into_iter().zip(found) {
                current[i] = generation;
            }
        }
        Some(current)
    }

    /// Records that `bucket/object#generation` holds the bytes with `hash` (both aliases).
    pub async fn remember(&self, bucket: &BucketName, object: &str, generation: i64, hash: &ContentHash) {
        self.cache
            .set_many(&self.alias_entries(bucket, object, generation, hash))
            .await;
    }

    pub(super) fn alias_entries(
        &self,
        bucket: &BucketName,
        object: &str,
        generation: i64,
        hash: &ContentHash,
    ) -> Vec<(CacheKey, Bytes)> {
        let ks = self.cache.keyspace();
        let value = encode_alias(generation, hash);
        vec![
            (ks.alias(bucket, object, generation), value.clone()),
            (ks.latest(bucket, object), value),
        ]
    }

    pub(super) async fn cached(
        &self,
        refs: &[&ImageRef],
        bucket_of: &impl Fn(&ImageRef) -> BucketName,
    ) -> Vec<Option<Result<Features, PhotoError>>> {
        let hashes = self.known_hashes(refs, bucket_of).await;
        let wanted: Vec<(usize, CacheKey)> = hashes
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.map(|h| (i, self.feature_key(&h))))
            .collect();
        let keys: Vec<CacheKey> = wanted.iter().map(|(_, k)| k.clone()).collect();
        let records = self.cache.get_many(&keys).await;
        let mut results: Vec<Option<Result<Features, PhotoError>>> = vec![None; refs.len()];
        for ((i, _), value) in wanted.iter().zip(records) {
            if let (Some(bytes), Some(hash)) = (value, hashes[*i])
                && let Ok(record) = FeatureRecord::decode(&bytes)
            {
                results[*i] = Some(Ok(Features {
                    record,
                    hash,
                    computed: false,
                }));
            }
        }
        // Known bytes without features may be known to be undecodable: no download then.
        let unknown: Vec<(usize, ContentHash)> = (0..refs.len())
            .filter(|&i| results[i].is_none())
            .filter_map(|i| hashes[i].map(|h| (i, h)))
            .collect();
        let hashes: Vec<ContentHash> = unknown.iter().map(|(_, h)| *h).collect();
        let failures = self.known_failures(DECODE_FOR_FEATURES, &hashes).await;
        for ((i, _), failure) in unknown.iter().zip(failures) {
            if let Some(e) = failure {
                results[*i] = Some(Err(e));
            }
        }
        results
    }
}
