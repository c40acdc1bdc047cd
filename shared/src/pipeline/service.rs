//! Cache-or-compute for photos: the one way any module gets a photo's features.
//!
//! For an album: one `MGET` for the `latest` aliases (object → generation + content hash;
//! in a local folder, where no upload event moves them, checked against the files' current
//! generations), one `MGET` for the feature records they point at, then every miss is computed with
//! bounded concurrency: download once, decode once (blocking pool), embed (batched), store
//! the record under its content hash and both aliases. Calls that need the same new photo at
//! once compute it once: the first leads, the others wait for its record (see
//! `single_flight`). A photo that cannot be read is reported with its reason; the rest of the
//! album goes on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;

use super::batcher::{BatchError, Batcher};
use super::decode_budget::DecodeBudget;
use super::fair_slots::{FairSlots, Slot};
use super::hashing::content_hash;
use super::photo::{DECODE_FOR_FEATURES, analyse_decoded};
use super::remote::EmbeddingClient;
use super::single_flight::{SingleFlight, Turn};
use crate::analysis::FeatureRecord;
use crate::cache::{Cache, CacheKey};
use crate::config::IngestLimits;
use crate::domain::{BucketName, ContentHash, ImageRef, Reason};
use crate::image::{DecodeCost, DecodeOptions, DecodedImage, ImageError};
use crate::model::Models;
use crate::model::clip::l2_normalize;
use crate::storage::{ObjectStore, StorageError};

/// Why one photo has no features. `reason` is the stable reason of `invalid_images`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct PhotoError {
    pub reason: Reason,
    pub detail: String,
    /// A retry may succeed (storage or model unavailable): the caller should answer 503.
    pub transient: bool,
}

impl PhotoError {
    pub(crate) fn permanent(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            transient: false,
        }
    }

    pub(crate) fn transient(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
            transient: true,
        }
    }
}

impl From<StorageError> for PhotoError {
    fn from(e: StorageError) -> Self {
        match &e {
            StorageError::NotFound { .. } => Self::permanent(Reason::NotFound, e.to_string()),
            StorageError::TooLarge { .. } => Self::permanent(Reason::TooLarge, e.to_string()),
            StorageError::Refused(_) => Self::permanent(Reason::Refused, e.to_string()),
            StorageError::Unreadable(_) => Self::permanent(Reason::Unreadable, e.to_string()),
            _ if e.is_transient() => Self::transient(Reason::StorageUnavailable, e.to_string()),
            _ => Self::transient(Reason::StorageError, e.to_string()),
        }
    }
}

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

/// A remembered decode failure: `reason\ndetail`, with a reason of [`ImageError::REASONS`].
fn decode_failure(bytes: &[u8]) -> Option<PhotoError> {
    let text = std::str::from_utf8(bytes).ok()?;
    let (reason, detail) = text.split_once('\n')?;
    Some(PhotoError::permanent(ImageError::known_reason(reason)?, detail))
}

/// Alias value: generation (i64 LE) followed by the 32-byte content hash.
fn encode_alias(generation: i64, hash: &ContentHash) -> Bytes {
    let mut v = generation.to_le_bytes().to_vec();
    v.extend_from_slice(&hash.to_bytes());
    Bytes::from(v)
}

fn decode_alias(b: &[u8]) -> Option<(i64, ContentHash)> {
    if b.len() != 40 {
        return None;
    }
    let mut g = [0u8; 8];
    g.copy_from_slice(&b[..8]);
    Some((i64::from_le_bytes(g), ContentHash::from_bytes(b[8..].try_into().ok()?)))
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
    fn undecodable_key(&self, options: DecodeOptions, hash: &ContentHash) -> CacheKey {
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

    pub fn model_id(&self) -> &str {
        &self.models.clip_model_id
    }

    pub fn bucket(&self) -> &BucketName {
        &self.bucket
    }

    /// The content hash an alias value names (`bucket/object#generation` or `latest`).
    pub fn alias_hash(bytes: &[u8]) -> Option<ContentHash> {
        decode_alias(bytes).map(|(_, h)| h)
    }

    fn feature_key(&self, hash: &ContentHash) -> CacheKey {
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

    /// Two round trips for the whole album: the `latest` aliases, then the records.
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

    fn alias_entries(
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

    async fn cached(
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

    /// Features for one uploaded object generation (flow A). A repeated delivery of the same
    /// event is a cache hit: the exact alias names the content hash, no download needed.
    pub async fn object(&self, bucket: &BucketName, object: &str, generation: i64) -> Result<Features, PhotoError> {
        let alias_key = self.cache.keyspace().alias(bucket, object, generation);
        if let Some(hash) = self.cache.get_many(&[alias_key]).await[0]
            .as_deref()
            .and_then(decode_alias)
            .map(|(_, h)| h)
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

    async fn compute(&self, bucket: &BucketName, object: &str) -> Result<Features, PhotoError> {
        loop {
            match self.by_name.join((bucket.clone(), object.to_owned())) {
                Turn::Lead(leader) => {
                    let result = self.compute_downloaded(bucket, object).await;
                    leader.finish(result.clone());
                    return result;
                }
                // Another call is computing this object: its answer, holding nothing meanwhile.
                Turn::Follow(follower) => {
                    metrics::counter!("ongi_photos_joined_total").increment(1);
                    if let Some(result) = follower.result().await {
                        return result.map(|features| Features {
                            computed: false,
                            ..features
                        });
                    }
                    // That call was cancelled before it finished: lead or follow anew.
                }
            }
        }
    }

    async fn compute_downloaded(&self, bucket: &BucketName, object: &str) -> Result<Features, PhotoError> {
        loop {
            if let Some(done) = self.compute_once(bucket, object).await {
                return done;
            }
            // Another call was computing these bytes and was cancelled (its client went
            // away) before it finished: download again, and lead or follow anew.
        }
    }

    /// Features of `bucket/object`: from the cache under its content hash, from a concurrent
    /// call computing the same bytes, or computed here. `None`: the call this one waited for
    /// was cancelled.
    async fn compute_once(&self, bucket: &BucketName, object: &str) -> Option<Result<Features, PhotoError>> {
        let slot = self.compute_slot().await;
        let started = Instant::now();
        let stored = match self.store.get(bucket, object, self.limits.max_bytes).await {
            Ok(stored) => stored,
            Err(e) => return Some(Err(e.into())),
        };
        metrics::histogram!("ongi_download_seconds").record(started.elapsed().as_secs_f64());
        let hash = content_hash(&self.decoder, &stored.bytes).await;
        // One call per content hash goes on; the others wait for its result. The leader looks
        // in the cache only now, after joining: a leader stores its record before it leaves,
        // so a call that joins after another finished finds that record here.
        let leader = match self.in_flight.join(hash) {
            Turn::Lead(leader) => leader,
            Turn::Follow(follower) => {
                // Waiting holds neither the bytes nor a compute slot.
                let generation = stored.generation;
                drop((stored, slot));
                metrics::counter!("ongi_photos_joined_total").increment(1);
                let result = follower.result().await?;
                if result.as_ref().map_or_else(|e| !e.transient, |_| true) {
                    self.remember(bucket, object, generation, &hash).await;
                }
                return Some(result.map(|record| Features {
                    record,
                    hash,
                    computed: false,
                }));
            }
        };
        // The same bytes under another name (or re-uploaded) are already computed, or known
        // to be undecodable.
        let known = self
            .cache
            .get_many(&[
                self.feature_key(&hash),
                self.undecodable_key(DECODE_FOR_FEATURES, &hash),
            ])
            .await;
        let found = match (
            known[0].as_deref().map(FeatureRecord::decode),
            known[1].as_deref().and_then(decode_failure),
        ) {
            (Some(Ok(record)), _) => Some(Ok(record)),
            (_, Some(e)) => Some(Err(e)),
            _ => None,
        };
        if let Some(result) = found {
            self.remember(bucket, object, stored.generation, &hash).await;
            leader.finish(result.clone());
            return Some(result.map(|record| Features {
                record,
                hash,
                computed: false,
            }));
        }
        let result = self
            .compute_record(bucket, object, stored.generation, hash, stored.bytes)
            .await;
        drop(slot);
        leader.finish(result.clone());
        Some(result.map(|record| Features {
            record,
            hash,
            computed: true,
        }))
    }

    /// Decodes, analyses and embeds one photo's bytes, and caches the record under its hash
    /// and both aliases (a decode failure under the aliases too, so the next call skips the
    /// download).
    async fn compute_record(
        &self,
        bucket: &BucketName,
        object: &str,
        generation: i64,
        hash: ContentHash,
        bytes: Bytes,
    ) -> Result<FeatureRecord, PhotoError> {
        let want_clip = self.batcher.is_some();
        let analysed = match self
            .decode_then(
                &hash,
                bytes,
                DECODE_FOR_FEATURES,
                |_| 0,
                move |decoded| analyse_decoded(decoded, want_clip),
            )
            .await
        {
            Ok(analysed) => analysed,
            Err(e) => {
                if !e.transient {
                    // The alias leads the next call to the remembered failure, without a download.
                    self.remember(bucket, object, generation, &hash).await;
                }
                return Err(e);
            }
        };
        let mut record = analysed.record;
        if let (Some(batcher), Some(input)) = (&self.batcher, analysed.clip_input) {
            let mut embedding = batcher.embed(input).await.map_err(|e| match e {
                BatchError::Overloaded => PhotoError::transient(Reason::Overloaded, e.to_string()),
                other => PhotoError::transient(Reason::ModelUnavailable, other.to_string()),
            })?;
            l2_normalize(&mut embedding);
            record.embedding = Some(embedding);
        }
        let mut entries = vec![(self.feature_key(&hash), record.encode())];
        entries.extend(self.alias_entries(bucket, object, generation, &hash));
        self.cache.set_many(&entries).await;
        metrics::counter!("ongi_photos_processed_total").increment(1);
        Ok(record)
    }
}
