//! Computing a miss: download once, hash, decode once under the decode budget, embed
//! (batched), store the record under its content hash and both aliases. Concurrent calls for
//! one object join one download (single flight by name); calls for the same bytes under
//! different names join one computation (single flight by content hash).

use std::time::Instant;

use bytes::Bytes;

use super::decode_failures::decode_failure;
use super::{FeatureService, Features};
use crate::analysis::FeatureRecord;
use crate::domain::{BucketName, ContentHash, Reason};
use crate::model::clip::l2_normalize;
use crate::pipeline::PhotoError;
use crate::pipeline::batcher::BatchError;
use crate::pipeline::hashing::content_hash;
use crate::pipeline::pixels::{DECODE_FOR_FEATURES, pixel_features_of};
use crate::pipeline::single_flight::Turn;

impl FeatureService {
    pub(super) async fn compute(&self, bucket: &BucketName, object: &str) -> Result<Features, PhotoError> {
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
        let pixels = match self
            .decode_then(
                &hash,
                bytes,
                DECODE_FOR_FEATURES,
                |_| 0,
                move |decoded| pixel_features_of(decoded, want_clip),
            )
            .await
        {
            Ok(pixels) => pixels,
            Err(e) => {
                if !e.transient {
                    // The alias leads the next call to the remembered failure, without a download.
                    self.remember(bucket, object, generation, &hash).await;
                }
                return Err(e);
            }
        };
        let mut record = pixels.record;
        if let (Some(batcher), Some(input)) = (&self.batcher, pixels.clip_input) {
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
