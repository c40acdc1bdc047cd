//! A per-photo flow over a local folder and the in-process cache, with topics that record
//! what is published, for the flow's tests and the walk's.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

use super::{PhotoFlow, Publishers};
use crate::cache::memory::MemoryCache;
use crate::cache::{Cache, Keyspace};
use crate::config::{AnalysisSettings, IngestLimits};
use crate::domain::BucketName;
use crate::events::publish::{PublishError, Publisher};
use crate::model::Models;
use crate::pipeline::FeatureService;
use crate::pipeline::analysis_models::AnalysisModels;
use crate::pipeline::faces::FaceService;
use crate::storage::ObjectStore;
use crate::storage::local::LocalStore;

/// Records what is published; refuses everything while `down`; while `hang_after_publish`,
/// records a message and then never answers, as a process stopped right after publishing.
#[derive(Default)]
pub(crate) struct Topic {
    pub sent: Mutex<Vec<serde_json::Value>>,
    pub down: AtomicBool,
    pub hang_after_publish: AtomicBool,
}

impl Topic {
    pub fn sent(&self) -> Vec<serde_json::Value> {
        self.sent.lock().unwrap().clone()
    }
}

#[async_trait]
impl Publisher for Topic {
    async fn publish(&self, data: Bytes, _attributes: Vec<(String, String)>) -> Result<String, PublishError> {
        if self.down.load(Ordering::Relaxed) {
            return Err(PublishError::Publish {
                topic: "test".into(),
                reason: "down".into(),
            });
        }
        let value = serde_json::from_slice(&data).map_err(|e| PublishError::Publish {
            topic: "test".into(),
            reason: e.to_string(),
        })?;
        self.sent.lock().unwrap().push(value);
        if self.hang_after_publish.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        Ok("1".into())
    }

    fn kind(&self) -> &'static str {
        "test"
    }
}

/// A flow over `dir/uploads` without models (pixel features only), and its two topics.
pub(crate) struct LocalFlow {
    pub flow: PhotoFlow,
    pub store: Arc<dyn ObjectStore>,
    pub cache: Cache,
    pub bucket: BucketName,
    pub features: Arc<Topic>,
    pub results: Arc<Topic>,
}

pub(crate) fn local_flow(dir: &Path) -> LocalFlow {
    let bucket = BucketName::parse("uploads").unwrap();
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir).unwrap());
    let cache = Cache::new(
        Arc::new(MemoryCache::default()),
        Keyspace::new("t:"),
        Duration::from_secs(600),
    );
    let models = Arc::new(Models::none("test"));
    let limits = IngestLimits::default();
    let service = Arc::new(FeatureService::new(
        store.clone(),
        cache.clone(),
        models.clone(),
        None,
        limits,
        bucket.clone(),
        None,
    ));
    let faces = Arc::new(FaceService::new(
        service.clone(),
        store.clone(),
        cache.clone(),
        models.clone(),
        limits,
    ));
    let analysis_models = Arc::new(AnalysisModels::new(models, cache.clone(), AnalysisSettings::default()));
    let (features, results) = (Arc::new(Topic::default()), Arc::new(Topic::default()));
    let flow = PhotoFlow::new(
        service,
        faces,
        analysis_models,
        cache.clone(),
        Publishers {
            features: features.clone(),
            results: results.clone(),
        },
    );
    LocalFlow {
        flow,
        store,
        cache,
        bucket,
        features,
        results,
    }
}

/// A small PNG photo at `dir/uploads/<name>`, different for each `seed`.
pub(crate) fn put_photo(dir: &Path, name: &str, seed: u8) {
    let path = dir.join("uploads").join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(16, 12, |x, y| {
        image::Rgb([x as u8 * 9, y as u8 * 11, seed.wrapping_mul(90)])
    });
    img.save(path).unwrap();
}
