//! [`FeatureService`]: cache-or-compute for photos, the one way any function gets a photo's
//! features.
//!
//! For an album: one `MGET` for the `latest` aliases (object → generation + content hash;
//! in a local folder, where no upload event moves them, checked against the files' current
//! generations), one `MGET` for the feature records they point at, then every miss is computed with
//! bounded concurrency: download once, decode once (decode threads), embed (batched), store
//! the record under its content hash and both aliases. Calls that need the same new photo at
//! once compute it once: the first leads, the others wait for its record (see
//! `single_flight`). A photo that cannot be read is reported with its reason; the rest of the
//! album goes on.
//!
//! By concern: the aliases (object generation → content hash) and the album's cache lookups
//! in `aliases`, remembered decode failures in `decode_failures`, downloading and computing a
//! miss (single flight by name, then by content hash) in `compute`; the remote embedding
//! service is `super::remote`.

mod aliases;
mod compute;
mod decode_failures;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;

use super::batcher::Batcher;
use super::decode_budget::DecodeBudget;
use super::fair_slots::{FairSlots, Slot};
use super::photo_error::PhotoError;
use super::remote::EmbeddingClient;
use super::single_flight::SingleFlight;
use crate::analysis::FeatureRecord;
use crate::cache::{Cache, CacheKey};
use crate::config::IngestLimits;
use crate::domain::{BucketName, ContentHash, ImageRef, Reason};
use crate::model::Models;
use crate::storage::ObjectStore;

/// A photo's features and whether this call computed them (false: from the cache).
#[derive(Debug, Clone)]
pub struct Features {
    pub record: FeatureRecord,
    pub hash: ContentHash,
    pub computed: bool,
}

pub struct FeatureService {
    store: Arc<dyn ObjectStore>,
    cache: Cache,
    models: Arc<Models>,
    batcher: Option<Batcher>,
    limits: IngestLimits,
    bucket: BucketName,
    concurrency: usize,
    /// Photos being downloaded and decoded at once, across every call of the process: each
    /// holds its encoded bytes and decoded pixels (tens of MB for a phone photo), so this,
    /// not the number of concurrent calls, bounds the memory that computing takes. Shared
    /// fairly between calls (`fair_slots.rs`).
    compute_slots: FairSlots,
    /// The memory every decode of the process draws from (features, faces, thumbnails).
    decoder: DecodeBudget,
    /// Where misses are computed when this process has no image encoder (Cloud Run).
    remote: Option<EmbeddingClient>,
    /// The photos being computed now, by content hash, with the callers waiting for them.
    in_flight: SingleFlight<ContentHash, Result<FeatureRecord, PhotoError>>,
    /// The objects being downloaded and computed now, by name: concurrent calls for one
    /// object download and hash it once (a 50 MB file costs a compute slot and tens of
    /// milliseconds of hashing per call otherwise).
    by_name: SingleFlight<(BucketName, String), Result<Features, PhotoError>>,
}

impl FeatureService {
    pub fn new(
        store: Arc<dyn ObjectStore>,
        cache: Cache,
        models: Arc<Models>,
        batcher: Option<Batcher>,
        limits: IngestLimits,
        bucket: BucketName,
        embedding_url: Option<String>,
    ) -> Self {
        // Downloads overlap decoding and inference; a few per core keeps both busy.
        let concurrency = std::thread::available_parallelism().map_or(2, usize::from) * 4;
        Self {
            store,
            cache,
            models,
            batcher,
            limits,
            bucket,
            concurrency,
            compute_slots: FairSlots::new(concurrency),
            decoder: DecodeBudget::new(limits),
            remote: embedding_url.as_deref().map(EmbeddingClient::new),
            in_flight: SingleFlight::new(),
            by_name: SingleFlight::new(),
        }
    }

    /// Waits for one of the process's compute slots (see `compute_slots`). Face detection
    /// takes its slots here too, so features and faces share one bound.
    pub async fn compute_slot(&self) -> Slot {
        self.compute_slots.acquire().await
    }

    /// The process's decode budget, which every decode takes (see [`DecodeBudget`]).
    pub fn decoder(&self) -> &DecodeBudget {
        &self.decoder
    }

    pub fn model_id(&self) -> &str {
        &self.models.clip_model_id
    }

    pub fn bucket(&self) -> &BucketName {
        &self.bucket
    }

    pub(super) fn feature_key(&self, hash: &ContentHash) -> CacheKey {
        self.cache.keyspace().features(&self.models.clip_model_id, hash)
    }

    /// Features for every reference, in order. Repeated references are computed once.
    pub async fn album(&self, refs: &[ImageRef]) -> Vec<Result<Features, PhotoError>> {
        let bucket_of = |r: &ImageRef| r.bucket().cloned().unwrap_or_else(|| self.bucket.clone());
        // Unique references, in first-seen order.
        let mut unique: Vec<&ImageRef> = Vec::new();
        let mut slot: HashMap<&ImageRef, usize> = HashMap::new();
        for r in refs {
            slot.entry(r).or_insert_with(|| {
                unique.push(r);
                unique.len() - 1
            });
        }
        let mut results = self.cached(&unique, &bucket_of).await;
        let misses: Vec<usize> = (0..unique.len()).filter(|i| results[*i].is_none()).collect();
        if let (Some(remote), false) = (&self.remote, misses.is_empty()) {
            let names: Vec<String> = misses.iter().map(|&i| unique[i].as_str().to_owned()).collect();
            match remote.embed(&names).await {
                Ok(invalid) => {
                    let again: Vec<&ImageRef> = misses.iter().map(|&i| unique[i]).collect();
                    let found = self.cached(&again, &bucket_of).await;
                    for (&i, f) in misses.iter().zip(found) {
                        results[i] = Some(match (f, invalid.get(unique[i].as_str())) {
                            (Some(f), _) => f,
                            (None, Some(e)) => Err(e.clone()),
                            (None, None) => Err(PhotoError::transient(
                                Reason::EmbeddingUnavailable,
                                "the embedding service answered but the features are not in the cache",
                            )),
                        });
                    }
                }
                Err(e) => misses.iter().for_each(|&i| results[i] = Some(Err(e.clone()))),
            }
        } else {
            let computed: Vec<(usize, Result<Features, PhotoError>)> = futures::stream::iter(misses)
                .map(|i| {
                    let r = unique[i];
                    let bucket = bucket_of(r);
                    async move { (i, self.compute(&bucket, r.object()).await) }
                })
                .buffer_unordered(self.concurrency)
                .collect()
                .await;
            for (i, result) in computed {
                results[i] = Some(result);
            }
        }
        refs.iter()
            .map(|r| {
                results[slot[r]]
                    .clone()
                    .unwrap_or_else(|| Err(PhotoError::permanent(Reason::Internal, "no result")))
            })
            .collect()
    }

    /// Features for one object generation (an upload, an announcement, a reprocessing walk).
    /// A repeated delivery of the same event is a cache hit: the exact alias names the content
    /// hash, no download needed; `announced` is the hash an `ongi-features` message named,
    /// which saves looking the alias up.
    pub async fn for_object(
        &self,
        bucket: &BucketName,
        object: &str,
        generation: i64,
        announced: Option<ContentHash>,
    ) -> Result<Features, PhotoError> {
        let hash = match announced {
            Some(hash) => Some(hash),
            None => {
                let alias_key = self.cache.keyspace().alias(bucket, object, generation);
                self.cache.get_many(&[alias_key]).await[0]
                    .as_deref()
                    .and_then(aliases::decode_alias)
                    .map(|(_, h)| h)
            }
        };
        if let Some(hash) = hash
            && let Some(bytes) = self.cache.get_many(&[self.feature_key(&hash)]).await[0].clone()
            && let Ok(record) = FeatureRecord::decode(&bytes)
        {
            return Ok(Features {
                record,
                hash,
                computed: false,
            });
        }
        if self.remote.is_some() {
            // No image encoder in this process (an analysis function on Cloud Run): the
            // embedding service computes the features, as for an album. Computing them here
            // would store pixel-only records under the CLIP model's id.
            let reference = ImageRef::parse(&format!("gs://{bucket}/{object}"))
                .map_err(|e| PhotoError::permanent(Reason::Refused, format!("{bucket}/{object}: {e}")))?;
            return self
                .album(std::slice::from_ref(&reference))
                .await
                .into_iter()
                .next()
                .unwrap_or_else(|| Err(PhotoError::permanent(Reason::Internal, "no result")));
        }
        self.compute(bucket, object).await
    }
}
