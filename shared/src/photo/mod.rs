//! The per-photo flow: what happens to one photo object generation, whichever way it arrives.
//! An upload event (`POST /events/storage`), an `ongi-features` announcement
//! (`POST /events/features`) and a reprocessing walk (`POST /batch/reprocess`, `ongi
//! reprocess`) are thin shells over [`PhotoFlow::run`], which owns the sequence, in this
//! order (`arrivals` says what each arrival asks for):
//!
//! 1. **Features**: the record named by the announced content hash, else by the generation's
//!    alias, else computed (one download, one decode, batched inference) and cached
//!    ([`FeatureService::for_object`]).
//! 2. **Announce**, when the [`Plan`] says so: an `ongi-features` message, whose push
//!    subscriptions feed the other functions' per-photo results. If it cannot be published,
//!    the generation's alias is forgotten, so the generation is not taken for announced (a
//!    walk finds it due again) and the call fails as transient.
//! 3. **Results**: each planned function's per-photo result, from the features (`results`).
//! 4. **Publish, then store**: each result is published on `ongi-results`, then stored in the
//!    cache under the photo's content hash and the model id.
//!
//! **The guarantee: a stored result is one `ongi-results` has carried.** A process stopped
//! between publishing and storing leaves the result unstored, so the redelivery (Pub/Sub
//! redelivers a push that was not acknowledged) or the next walk computes and publishes it
//! again: a consumer may receive a result twice, never zero times. Storing first would break
//! it: a walk skips a photo whose results are stored, so a result stored but never
//! published would never reach the app. The test `a_stop_between_publishing_and_storing`
//! stops the flow there and redelivers.

mod arrivals;
mod results;

use std::sync::Arc;

use serde_json::Value;

use crate::cache::{Cache, CacheKey};
use crate::domain::{BucketName, ContentHash};
use crate::events::publish::{FeaturesMessage, Publisher, RESULTS_SCHEMA, ResultsMessage, publish_json};
use crate::functions::Function;
use crate::pipeline::analysis_models::AnalysisModels;
use crate::pipeline::faces::FaceService;
use crate::pipeline::{FeatureService, PhotoError};

pub use arrivals::{Arrival, admit_upload};

/// Where the flow announces what it did.
#[derive(Clone)]
pub struct Publishers {
    /// `ongi-features`, for photos whose features were read or computed for an upload or a
    /// walk's embedding step; only the embedding function really publishes.
    pub features: Arc<dyn Publisher>,
    /// `ongi-results`, for every per-photo result computed.
    pub results: Arc<dyn Publisher>,
}

/// One object generation in a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoObject {
    pub bucket: BucketName,
    pub name: String,
    pub generation: i64,
}

/// What an entry point asks of the flow.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Announce the features on `ongi-features` (an upload; a walk whose embedding step ran).
    pub announce: bool,
    /// The functions whose per-photo result to compute, publish and store, in order.
    pub results: Vec<Function>,
    /// Leave out a function whose result is already stored for these bytes and model (a walk:
    /// a stored result has been published). An announcement computes and publishes every
    /// result, because a result is stored per content hash but published per object.
    pub skip_stored: bool,
    /// The content hash an `ongi-features` message named: its record is read directly.
    pub announced: Option<ContentHash>,
}

/// What the flow did for one photo.
#[derive(Debug, Clone)]
pub struct PhotoOutcome {
    pub hash: ContentHash,
    /// Whether this call computed the features (false: they were cached).
    pub computed: bool,
    /// Each result computed, published and stored now.
    pub results: Vec<(Function, Value)>,
    /// Planned functions with nothing to say about this photo: `score` without the aesthetic
    /// head or without an embedding, `people` without the face models.
    pub without_result: Vec<Function>,
}

/// Why the flow stopped for one photo.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FlowError {
    /// The photo cannot be read (missing, undecodable, too large): no retry of this
    /// generation can help.
    #[error("{0}")]
    Unreadable(PhotoError),
    /// A retry may succeed: storage, a model or Pub/Sub did not answer.
    #[error("{0}")]
    Transient(String),
    /// A bug, not the photo's fault: a fixed build may succeed.
    #[error("{0}")]
    Internal(String),
}

/// The per-photo flow, with everything it needs; cheap to clone.
#[derive(Clone)]
pub struct PhotoFlow {
    features: Arc<FeatureService>,
    faces: Arc<FaceService>,
    analysis_models: Arc<AnalysisModels>,
    cache: Cache,
    publishers: Publishers,
}

impl PhotoFlow {
    pub fn new(
        features: Arc<FeatureService>,
        faces: Arc<FaceService>,
        analysis_models: Arc<AnalysisModels>,
        cache: Cache,
        publishers: Publishers,
    ) -> Self {
        Self {
            features,
            faces,
            analysis_models,
            cache,
            publishers,
        }
    }

    /// The model id the features, results and messages carry.
    pub fn model_id(&self) -> &str {
        self.features.model_id()
    }

    /// The whole sequence for one photo (see the module's documentation).
    pub async fn run(&self, arrival: &Arrival) -> Result<PhotoOutcome, FlowError> {
        let Arrival { photo, plan } = arrival;
        let features = match self
            .features
            .for_object(&photo.bucket, &photo.name, photo.generation, plan.announced)
            .await
        {
            Ok(features) => features,
            Err(e) if e.transient => return Err(FlowError::Transient(format!("{}/{}: {e}", photo.bucket, photo.name))),
            Err(e) => return Err(FlowError::Unreadable(e)),
        };
        let model = self.model_id().to_owned();
        let hash_hex = features.hash.to_hex();
        if plan.announce {
            self.announce(photo, &hash_hex, &model, features.computed).await?;
        }
        let due = self.due(plan, &model, &features.hash).await;
        let mut outcome = PhotoOutcome {
            hash: features.hash,
            computed: features.computed,
            results: Vec::new(),
            without_result: Vec::new(),
        };
        for function in due {
            let Some(result) =
                results::result_of(&self.analysis_models, &self.faces, function, photo, &features.record).await?
            else {
                outcome.without_result.push(function);
                continue;
            };
            let message = ResultsMessage {
                schema: RESULTS_SCHEMA.to_owned(),
                module: function.name().to_owned(),
                bucket: photo.bucket.as_str().to_owned(),
                object: photo.name.clone(),
                generation: photo.generation,
                content_hash: hash_hex.clone(),
                model: model.clone(),
                result,
            };
            // Published first, then stored: see the guarantee above.
            publish_json(self.publishers.results.as_ref(), &message, message.attributes())
                .await
                .map_err(|e| FlowError::Transient(e.to_string()))?;
            let stored = serde_json::to_vec(&message.result).map_err(|e| FlowError::Internal(e.to_string()))?;
            let key = self.result_key(function, &model, &features.hash);
            self.cache.set_many(&[(key, stored.into())]).await;
            outcome.results.push((function, message.result));
        }
        Ok(outcome)
    }

    /// Publishes the `ongi-features` message; on failure forgets the generation's alias,
    /// which would otherwise make it look current to a walk though no one was told.
    async fn announce(
        &self,
        photo: &PhotoObject,
        hash_hex: &str,
        model: &str,
        computed: bool,
    ) -> Result<(), FlowError> {
        let message = FeaturesMessage::new(
            photo.bucket.as_str(),
            &photo.name,
            photo.generation,
            hash_hex.to_owned(),
            model,
            computed,
        );
        let Err(e) = publish_json(self.publishers.features.as_ref(), &message, message.attributes()).await else {
            return Ok(());
        };
        let alias = self
            .cache
            .keyspace()
            .alias(&photo.bucket, &photo.name, photo.generation);
        if let Err(forget) = self.cache.backend().delete(std::slice::from_ref(&alias)).await {
            tracing::warn!(alias = alias.as_str(), error = %forget, "an unannounced photo's alias could not be forgotten");
        }
        Err(FlowError::Transient(e.to_string()))
    }

    /// The planned functions whose result is to be computed: all of them, or (a walk) those
    /// whose result is not stored yet, in one round trip.
    async fn due(&self, plan: &Plan, model: &str, hash: &ContentHash) -> Vec<Function> {
        if !plan.skip_stored || plan.results.is_empty() {
            return plan.results.clone();
        }
        let keys: Vec<CacheKey> = plan.results.iter().map(|f| self.result_key(*f, model, hash)).collect();
        let stored = self.cache.get_many(&keys).await;
        plan.results
            .iter()
            .zip(stored)
            .filter(|(_, have)| have.is_none())
            .map(|(f, _)| *f)
            .collect()
    }

    /// Where `function`'s result for these bytes and model is stored: what makes the photo
    /// current for that function.
    fn result_key(&self, function: Function, model: &str, hash: &ContentHash) -> CacheKey {
        self.cache.keyspace().result(function.name(), model, hash)
    }
}

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
