//! Faces per photo, cache-or-compute, for the people analysis.
//!
//! The photos' content hashes come from the `latest` aliases the feature service keeps (one
//! cache round trip); the faces are cached under the hash and the face models' ids, so an
//! album that grows only computes its new photos. A miss downloads the photo once, records
//! its aliases, and decodes it (at the scale the detector needs), detects, aligns, and embeds
//! every face in one batch. People never computes CLIP features it does not use.

use std::sync::Arc;

use futures::StreamExt;

use super::face_record::{self, StoredFace};
use super::features::FeatureService;
use super::hashing::content_hash;
use super::photo_error::PhotoError;
use crate::analysis::people::{Cluster, FaceInput, PeopleParams, cluster_faces};
use crate::cache::Cache;
use crate::config::IngestLimits;
use crate::domain::Reason;
use crate::domain::{BucketName, ContentHash, ImageRef};
use crate::image::{DecodeCost, DecodeOptions};
use crate::model::Models;
use crate::model::face::{align_face, detect_in_original, detection_bytes, frontalness, sharpness};
use crate::storage::ObjectStore;

pub struct FaceService {
    features: Arc<FeatureService>,
    store: Arc<dyn ObjectStore>,
    cache: Cache,
    models: Arc<Models>,
    limits: IngestLimits,
}

/// How good a representative a face is, in [0, 1]: its size relative to the photo (a
/// face filling a fifth of the short side scores full), the detector's confidence, its
/// sharpness (log scale, saturating at a Laplacian variance of 1000) and a frontal pose.
pub fn representative_quality(face_px: f32, photo_short_side: f32, score: f32, sharpness: f32, frontal: f32) -> f32 {
    let size = (face_px / (0.2 * photo_short_side.max(1.0))).clamp(0.0, 1.0);
    let sharp = ((sharpness.max(0.0) + 1.0).log10() / 3.0).clamp(0.0, 1.0);
    0.4 * size + 0.2 * score.clamp(0.0, 1.0) + 0.2 * sharp + 0.2 * frontal.clamp(0.0, 1.0)
}

/// The album's people: `faces` are (photo index, face) pairs, and each cluster names faces
/// by their index in `faces` (two faces of one photo are never one person).
pub fn cluster_people(faces: &[(usize, StoredFace)]) -> Vec<Cluster> {
    let input: Vec<FaceInput> = faces
        .iter()
        .map(|(p, f)| FaceInput {
            photo: *p,
            embedding: f.embedding.clone(),
            quality: f.quality,
        })
        .collect();
    cluster_faces(&input, &PeopleParams::default())
}

impl FaceService {
    pub fn new(
        features: Arc<FeatureService>,
        store: Arc<dyn ObjectStore>,
        cache: Cache,
        models: Arc<Models>,
        limits: IngestLimits,
    ) -> Self {
        Self {
            features,
            store,
            cache,
            models,
            limits,
        }
    }

    /// How photos are decoded for detection (the detector's scale).
    fn decode_options(&self) -> DecodeOptions {
        self.models
            .face_detector
            .as_ref()
            .map_or_else(DecodeOptions::default, |d| d.options().decode_options())
    }

    pub fn available(&self) -> bool {
        self.models.face_detector.is_some() && self.models.face_embedder.is_some()
    }

    /// Each reference's faces, in order. Photos whose hash is known and whose faces are
    /// cached cost two round trips for the whole album; the others are downloaded once.
    pub async fn album(&self, refs: &[ImageRef]) -> Vec<Result<Vec<StoredFace>, PhotoError>> {
        let bucket_of = |r: &ImageRef| r.bucket().cloned().unwrap_or_else(|| self.features.bucket().clone());
        let all: Vec<&ImageRef> = refs.iter().collect();
        let hashes = self.features.known_hashes(&all, &bucket_of).await;
        let ks = self.cache.keyspace();
        let keys: Vec<_> = hashes
            .iter()
            .flatten()
            .map(|h| ks.faces(&self.models.face_model_id, h))
            .collect();
        let mut cached = self.cache.get_many(&keys).await.into_iter();
        let mut out: Vec<Option<Result<Vec<StoredFace>, PhotoError>>> = Vec::with_capacity(refs.len());
        let mut misses = Vec::new();
        for (i, hash) in hashes.iter().enumerate() {
            let hit = hash
                .and_then(|_| cached.next().flatten())
                .and_then(|bytes| face_record::decode(&bytes).ok());
            if hit.is_none() {
                misses.push(i);
            }
            out.push(hit.map(Ok));
        }
        // Known bytes that are known to be undecodable need no download.
        let known: Vec<(usize, ContentHash)> = misses.iter().filter_map(|&i| hashes[i].map(|h| (i, h))).collect();
        let known_hashes: Vec<ContentHash> = known.iter().map(|(_, h)| *h).collect();
        let failures = self.features.known_failures(self.decode_options(), &known_hashes).await;
        for ((i, _), failure) in known.iter().zip(failures) {
            if let Some(e) = failure {
                out[*i] = Some(Err(e));
            }
        }
        misses.retain(|&i| out[i].is_none());
        let computed: Vec<(usize, Result<Vec<StoredFace>, PhotoError>)> = futures::stream::iter(misses)
            .map(|i| {
                let r = &refs[i];
                let bucket = bucket_of(r);
                async move { (i, self.compute(&bucket, r.object()).await) }
            })
            // Detection and embedding take both cores per photo already.
            .buffer_unordered(2)
            .collect()
            .await;
        for (i, result) in computed {
            out[i] = Some(result);
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(PhotoError::permanent(Reason::Internal, "no result"))))
            .collect()
    }

    /// Downloads the photo once; its faces come from the cache when the same bytes were seen
    /// under another name, else from detection, alignment and embedding.
    async fn compute(&self, bucket: &BucketName, object: &str) -> Result<Vec<StoredFace>, PhotoError> {
        let (Some(detector), Some(embedder)) = (self.models.face_detector.clone(), self.models.face_embedder.clone())
        else {
            return Err(PhotoError::transient(
                Reason::ModelUnavailable,
                "the face models are not loaded",
            ));
        };
        let _slot = self.features.compute_slot().await;
        let stored = self.store.get(bucket, object, self.limits.max_bytes).await?;
        let hash = content_hash(self.features.decoder(), &stored.bytes).await;
        self.features.remember(bucket, object, stored.generation, &hash).await;
        let key = self.cache.keyspace().faces(&self.models.face_model_id, &hash);
        if let Some(Ok(faces)) = self.cache.get_many(std::slice::from_ref(&key)).await[0]
            .as_deref()
            .map(face_record::decode)
        {
            return Ok(faces);
        }
        if let Some(Some(e)) = self
            .features
            .known_failures(self.decode_options(), std::slice::from_ref(&hash))
            .await
            .pop()
        {
            return Err(e);
        }
        let options = self.decode_options();
        // Detection's own memory is reserved with the decode's: it scales with the photo.
        let detection = {
            let detector = detector.clone();
            move |cost: &DecodeCost| detection_bytes(detector.as_ref(), cost.width, cost.height)
        };
        let faces = self
            .features
            .decode_then(
                &hash,
                stored.bytes,
                options,
                detection,
                move |decoded| -> Result<Vec<StoredFace>, PhotoError> {
                    let found = detect_in_original(detector.as_ref(), &decoded)
                        .map_err(|e| PhotoError::transient(Reason::ModelUnavailable, e.to_string()))?;
                    // Landmarks are in original pixels; the decoded pixels may be smaller.
                    let to_pixels = decoded.pixels.width() as f32 / decoded.source_width.max(1) as f32;
                    let short = decoded.source_width.min(decoded.source_height) as f32;
                    let mut aligned = Vec::new();
                    let mut kept = Vec::new();
                    for face in found {
                        let landmarks = face.landmarks.map(|[x, y]| [x * to_pixels, y * to_pixels]);
                        // A face whose landmarks cannot be aligned is dropped, never the photo.
                        match align_face(&decoded.pixels, &landmarks) {
                            Ok(img) => {
                                let sharp = sharpness(&img);
                                let frontal = frontalness(&face.landmarks);
                                let size = face.width().max(face.height());
                                kept.push((
                                    face,
                                    sharp,
                                    frontal,
                                    representative_quality(size, short, face.score, sharp, frontal),
                                ));
                                aligned.push(img);
                            }
                            Err(e) => tracing::debug!(error = %e, "face dropped: cannot align"),
                        }
                    }
                    let embeddings = embedder
                        .embed(&aligned)
                        .map_err(|e| PhotoError::transient(Reason::ModelUnavailable, e.to_string()))?;
                    Ok(kept
                        .into_iter()
                        .zip(embeddings)
                        .map(|((face, sharpness, frontalness, quality), embedding)| StoredFace {
                            bbox: face.bbox,
                            score: face.score,
                            landmarks: face.landmarks,
                            quality,
                            sharpness,
                            frontalness,
                            embedding,
                        })
                        .collect())
                },
            )
            .await??;
        self.cache.set_many(&[(key, face_record::encode(&faces))]).await;
        metrics::counter!("ongi_faces_detected_total").increment(faces.len() as u64);
        Ok(faces)
    }
}
