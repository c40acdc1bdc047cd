//! [`Services`]: the process's clients and services, built once from the settings: the photo
//! store, the feature cache, the models, the feature, face and text-embedding services, the
//! per-photo flow and its publishers, the style queue and prompt writer. `ongi serve` and every function hand them
//! to their HTTP handlers; the command-line tools use them directly. Cheap to clone.

use std::sync::Arc;

use std::time::Duration;

use crate::cache::{Cache, Keyspace, memory::MemoryCache, redis::RedisCache};
use crate::config::Settings;
use crate::events::publish::Publisher;
use crate::functions::{Function, Functions};
use crate::model::loaded::Runtime;
use crate::model::{Models, ort_library};
use crate::photo::{PhotoFlow, Publishers};
use crate::pipeline::FeatureService;
use crate::pipeline::analysis_models::AnalysisModels;
use crate::pipeline::batcher::Batcher;
use crate::pipeline::faces::FaceService;
use crate::queue::StyleQueue;
use crate::reprocess::Reprocessor;
use crate::storage::{ObjectStore, StorageError};
use crate::style::PromptWriter;
use crate::style::gemini::GeminiClient;

#[derive(Clone)]
pub struct Services {
    pub settings: Arc<Settings>,
    pub functions: Functions,
    pub store: Arc<dyn ObjectStore>,
    pub cache: Cache,
    pub models: Arc<Models>,
    pub features: Arc<FeatureService>,
    pub analysis_models: Arc<AnalysisModels>,
    pub faces: Arc<FaceService>,
    /// The per-photo flow (uploads, announcements, walks), publishing on `ongi-features`
    /// and `ongi-results`.
    pub photo: PhotoFlow,
    /// The style job queue (Redis); `None` without `REDIS_URL` or when style is not served.
    pub style_queue: Option<StyleQueue>,
    /// Writes style prompts: Gemini with `GEMINI_API_KEY`, the templates otherwise.
    pub prompt_writer: Arc<PromptWriter>,
}

/// Up to this many photos share one CLIP inference call…
const MAX_BATCH: usize = 16;
/// …gathered for at most this long after the first one arrives.
const MAX_BATCH_WAIT: Duration = Duration::from_millis(5);

impl Services {
    /// Builds the clients the settings ask for. Nothing here waits for a dependency to
    /// answer: Redis connects lazily, and `/readyz` reports what is unreachable.
    pub async fn from_settings(settings: Settings, functions: Functions) -> Result<Self, ServicesError> {
        let store = crate::storage::from_settings(&settings).await?;
        let keyspace = Keyspace::new(settings.cache_prefix.clone());
        let cache = match &settings.redis_url {
            Some(url) => Cache::new(
                Arc::new(RedisCache::new(url.expose()).map_err(|e| ServicesError::Cache(e.to_string()))?),
                keyspace,
                settings.cache_ttl,
            )
            .with_near(settings.near_cache_bytes),
            // Without Redis the in-process cache is the whole cache, under the same byte bound
            // as the near cache would be (at least 1 MiB: it also holds the compute leases).
            None => Cache::new(
                Arc::new(MemoryCache::new((settings.near_cache_bytes as u64).max(1 << 20))),
                keyspace,
                settings.cache_ttl,
            ),
        };
        // Only the functions that use a model load one. On Cloud Run the analyses read features
        // from the cache and ask the embedding service for what is missing (`EMBEDDING_URL`);
        // in `ongi serve` everything runs in one process.
        let needs_models = [
            Function::Embedding,
            Function::Category,
            Function::Quality,
            Function::Score,
            Function::Duplicate,
        ]
        .iter()
        .any(|m| functions.contains(*m));
        // The image encoder runs where photos are embedded: the embedding function, or any
        // process without an embedding service to ask.
        let embeds_here = functions.contains(Function::Embedding) || settings.embedding_url.is_none();
        let models = if needs_models || functions.contains(Function::People) {
            let dir = settings.model_dir.clone();
            let search = ort_library::Search::from_settings(&settings);
            let people = functions.contains(Function::People);
            let detector = settings.face_detector;
            tokio::task::spawn_blocking(move || {
                let mut models = match ort_library::load_first(&search) {
                    Ok(library) => {
                        tracing::info!(
                            library = %library.path.display(),
                            found_in = %library.found_in,
                            "ONNX Runtime library loaded"
                        );
                        let mut models = Models::load(&dir, Some(&library.path), embeds_here);
                        models.runtime = Runtime::Loaded {
                            library: library.path,
                            found_in: library.found_in.to_string(),
                        };
                        models
                    }
                    Err(e) => Models::without_runtime(&dir, &e),
                };
                // Without the runtime the face models are missing too, which its line already says.
                if people && let Runtime::Loaded { library, .. } = &models.runtime {
                    let library = library.clone();
                    models.load_faces(&dir, Some(&library), detector);
                }
                models
            })
            .await
            .unwrap_or_else(|e| Models::none(format!("model loading failed: {e}")))
        } else {
            Models::none("this function needs no model")
        };
        let models = Arc::new(models);
        let batcher = models
            .clip_visual
            .clone()
            .map(|m| Batcher::start(m, MAX_BATCH, MAX_BATCH_WAIT));
        let features = Arc::new(FeatureService::new(
            store.clone(),
            cache.clone(),
            models.clone(),
            batcher,
            settings.limits,
            settings.bucket.clone(),
            if embeds_here {
                None
            } else {
                settings.embedding_url.as_ref().map(|u| u.expose().to_owned())
            },
        ));
        let analysis_models = Arc::new(AnalysisModels::new(models.clone(), cache.clone(), settings.analysis));
        warm_text_embeddings(&analysis_models, &models, &functions);
        let faces = Arc::new(FaceService::new(
            features.clone(),
            store.clone(),
            cache.clone(),
            models.clone(),
            settings.limits,
        ));
        let features_publisher = publisher(
            &settings,
            &settings.features_topic,
            functions.contains(Function::Embedding),
        )
        .await?;
        let per_photo = functions.iter().any(Function::has_per_photo_step);
        let results_publisher = publisher(&settings, &settings.results_topic, per_photo).await?;
        let photo = PhotoFlow::new(
            features.clone(),
            faces.clone(),
            analysis_models.clone(),
            cache.clone(),
            Publishers {
                features: features_publisher,
                results: results_publisher,
            },
        );
        let style_queue = match (&settings.redis_url, functions.contains(Function::Style)) {
            (Some(url), true) => Some(
                StyleQueue::new(
                    url.expose(),
                    &settings.cache_prefix,
                    settings.style.max_attempts,
                    settings.style.job_ttl,
                )
                .map_err(|e| ServicesError::Cache(e.to_string()))?,
            ),
            _ => None,
        };
        let prompt_writer = Arc::new(PromptWriter::new(GeminiClient::from_settings(&settings.gemini)));
        Ok(Self {
            style_queue,
            prompt_writer,
            settings: Arc::new(settings),
            functions,
            store,
            cache,
            models,
            features,
            analysis_models,
            faces,
            photo,
        })
    }
}

/// Embeds the taxonomy's prompts and the quality prompt pairs in the background at start:
/// on a cold process the first categories call would otherwise spend ~25 s (2 vCPUs, the
/// full-size text encoder) on 500-odd prompts. The results land in the cache (Redis on
/// Cloud Run), so later processes find them there; a failure only logs.
fn warm_text_embeddings(analysis_models: &Arc<AnalysisModels>, models: &Models, functions: &Functions) {
    let wanted = functions.contains(Function::Category) || functions.contains(Function::Quality);
    if models.clip_textual.is_none() || !wanted {
        return;
    }
    let analysis_models = analysis_models.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let tags = crate::analysis::taxonomy::Taxonomy::builtin().candidates(&[]);
        if let Err(e) = analysis_models.tag_vectors(&tags).await {
            tracing::warn!(error = %e, "could not embed the taxonomy's prompts at start");
            return;
        }
        let _ = analysis_models.quality_pairs().await;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            tags = tags.len(),
            "text prompts embedded"
        );
    });
}

impl Services {
    /// The batch reprocessing walk over this process's store, cache and per-photo flow.
    pub fn reprocessor(&self) -> Reprocessor {
        Reprocessor::new(
            self.store.clone(),
            self.cache.clone(),
            self.photo.clone(),
            self.settings.reprocess.concurrency,
        )
    }
}

async fn publisher(settings: &Settings, topic: &str, used_here: bool) -> Result<Arc<dyn Publisher>, ServicesError> {
    crate::events::publish::for_topic(settings, topic, used_here)
        .await
        .map_err(|e| ServicesError::Publisher(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum ServicesError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cache: {0}")]
    Cache(String),
    #[error("{0}")]
    Publisher(String),
}
