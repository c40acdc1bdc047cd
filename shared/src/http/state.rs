//! What every handler can reach: settings, the photo store, the feature cache.
//! Built once by [`Application::build`](super::Application::build); cheap to clone.

use std::sync::Arc;

use crate::cache::{Cache, Keyspace, memory::MemoryCache, redis::RedisCache};
use crate::config::{Settings, StorageBackend};
use crate::modules::Modules;
use crate::storage::{ObjectStore, StorageError, gcs::GcsStore, local::LocalStore};

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub modules: Modules,
    pub store: Arc<dyn ObjectStore>,
    pub cache: Cache,
}

impl AppState {
    /// Builds the clients the settings ask for. Nothing here waits for a dependency to
    /// answer: Redis connects lazily, and `/readyz` reports what is unreachable.
    pub async fn from_settings(settings: Settings, modules: Modules) -> Result<Self, StateError> {
        let store: Arc<dyn ObjectStore> = match settings.storage {
            StorageBackend::Local => Arc::new(LocalStore::new(&settings.data_dir)?),
            StorageBackend::Gcs => match &settings.storage_emulator_host {
                Some(endpoint) => Arc::new(GcsStore::emulator(endpoint, None).await?),
                None => Arc::new(GcsStore::production().await?),
            },
        };
        let backend: Arc<dyn crate::cache::FeatureCache> = match &settings.redis_url {
            Some(url) => Arc::new(RedisCache::new(url).map_err(|e| StateError::Cache(e.to_string()))?),
            None => Arc::new(MemoryCache::default()),
        };
        let cache = Cache::new(
            backend,
            Keyspace::new(settings.cache_prefix.clone()),
            settings.cache_ttl,
        );
        Ok(Self {
            settings: Arc::new(settings),
            modules,
            store,
            cache,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error("cache: {0}")]
    Cache(String),
}
