//! The feature cache: per-photo features shared by every function (docs/architecture.md, "Redis layout").
//!
//! - [`FeatureCache`] is the raw trait, implemented by [`redis::RedisCache`] (Memorystore)
//!   and [`memory::MemoryCache`] (in-process, for `ongi serve` without `REDIS_URL`).
//! - [`Cache`] is what the request path uses: it turns every cache failure into a miss,
//!   logged and counted, because a cache outage must cost recomputation, never a 500. In
//!   front of Redis it keeps a bounded in-process copy of recent *immutable* entries (the
//!   near cache: features, text embeddings, generation aliases, never the `latest` alias),
//!   so a hot photo costs no round trip, and a Redis outage costs no recomputation of what
//!   this process saw recently.
//! - [`keys::Keyspace`] builds every key (schema version, model id, content hash);
//!   [`codec`] stores vectors as little-endian `f32`, not JSON.

pub mod codec;
pub(crate) mod keys;
pub(crate) mod lru;
pub(crate) mod memory;
pub mod redis;
pub(crate) mod write_budget;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

pub use keys::{CacheKey, Keyspace};
use lru::Lru;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    #[error("cache error: {0}")]
    Other(String),
}

#[async_trait]
pub trait FeatureCache: Send + Sync + 'static {
    /// One round trip for many keys; the result is aligned with `keys`.
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError>;

    /// One round trip for many entries, each with the same time to live.
    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Duration) -> Result<(), CacheError>;

    /// Sets `key` only when it does not exist (a lease); returns whether it was set.
    async fn set_if_absent(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, CacheError>;

    /// Deletes `key` only while it still holds `expected` (releasing one's own lease, never
    /// one a later holder took after ours expired); returns whether it was deleted.
    async fn delete_if_equal(&self, key: &CacheKey, expected: &[u8]) -> Result<bool, CacheError>;

    /// Deletes keys (missing ones are not an error).
    async fn delete(&self, keys: &[CacheKey]) -> Result<(), CacheError>;

    /// A round trip proving the cache answers (for `/readyz`).
    async fn ping(&self) -> Result<(), CacheError>;

    fn kind(&self) -> &'static str;
}

/// How long the cache is left alone after it was found unreachable. Without this, every
/// cache call of every photo in flight goes to the backend and waits for its reconnect
/// attempt or timeout. With it, an outage costs one such wait per window, and the cache is
/// tried again right after (recovery within a window). The calls are still slower while
/// Redis is down, because every photo is recomputed: that cost is the CPU's, not the cache's.
pub const OUTAGE_BACKOFF: Duration = Duration::from_millis(500);

/// The cache as the request path sees it: failures become misses (and a log line and a
/// counter), so a request always succeeds by computing what the cache could not give.
#[derive(Clone)]
pub struct Cache {
    inner: Arc<dyn FeatureCache>,
    keyspace: Keyspace,
    ttl: Duration,
    /// Until when the backend is skipped, after it was found unreachable.
    skip_until: Arc<Mutex<Option<Instant>>>,
    /// Recent immutable entries, bounded in bytes (see [`Cache::with_near`]).
    near: Option<Arc<Mutex<Lru<Bytes>>>>,
}

/// A near-cache entry's weight: its value and key bytes, plus the map's own bookkeeping.
fn near_weight(key: &CacheKey, value: &Bytes) -> usize {
    value.len() + 2 * key.as_str().len() + 96
}

impl Cache {
    pub fn new(inner: Arc<dyn FeatureCache>, keyspace: Keyspace, ttl: Duration) -> Self {
        Self {
            inner,
            keyspace,
            ttl,
            skip_until: Arc::default(),
            near: None,
        }
    }

    /// Keeps up to `max_bytes` of recent immutable entries in this process, in front of the
    /// backend (nothing when 0). For a shared backend (Redis) only: an in-process backend
    /// would hold every entry twice.
    pub fn with_near(mut self, max_bytes: usize) -> Self {
        self.near = (max_bytes > 0).then(|| Arc::new(Mutex::new(Lru::with_weight(usize::MAX, max_bytes))));
        self
    }

    fn near(&self) -> Option<std::sync::MutexGuard<'_, Lru<Bytes>>> {
        // Every operation on the map is a single insert, get or eviction loop that leaves it
        // consistent, so a poisoned lock is still safe to use.
        self.near.as_ref().map(|n| n.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Copies the immutable entries among `entries` into the near cache.
    fn keep_near<'a>(&self, entries: impl IntoIterator<Item = (&'a CacheKey, &'a Bytes)>) {
        if let Some(mut near) = self.near() {
            for (key, value) in entries {
                if key.is_immutable() {
                    near.insert_weighted(key.as_str().to_owned(), value.clone(), near_weight(key, value));
                }
            }
        }
    }

    /// How many entries and bytes the near cache holds.
    pub fn near_usage(&self) -> (usize, usize) {
        self.near().map_or((0, 0), |n| (n.len(), n.weight()))
    }

    /// Whether the backend was found unreachable less than [`OUTAGE_BACKOFF`] ago.
    fn skipping(&self) -> bool {
        let mut until = self.skip_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match *until {
            Some(t) if Instant::now() < t => true,
            Some(_) => {
                *until = None;
                false
            }
            None => false,
        }
    }

    fn note_failure(&self, e: &CacheError) {
        if let CacheError::Unavailable(_) = e {
            let mut until = self.skip_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            *until = Some(Instant::now() + OUTAGE_BACKOFF);
        }
    }

    pub fn keyspace(&self) -> &Keyspace {
        &self.keyspace
    }

    pub fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    /// The backend itself, whose errors are returned rather than turned into misses: for
    /// state whose loss must be noticed (a batch run's cursor and lease), not for features.
    pub fn backend(&self) -> &dyn FeatureCache {
        self.inner.as_ref()
    }

    /// The time to live of every entry written through [`Cache::set_many`].
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Values aligned with `keys`; every key the near cache does not hold is a miss when the
    /// backend is down.
    pub async fn get_many(&self, keys: &[CacheKey]) -> Vec<Option<Bytes>> {
        let mut values: Vec<Option<Bytes>> = vec![None; keys.len()];
        if let Some(mut near) = self.near() {
            for (value, key) in values.iter_mut().zip(keys) {
                if key.is_immutable() {
                    *value = near.get(key.as_str());
                }
            }
        }
        let near_hits = values.iter().filter(|v| v.is_some()).count() as u64;
        metrics::counter!("ongi_cache_hits_total", "layer" => "near").increment(near_hits);
        let wanted: Vec<usize> = (0..keys.len()).filter(|&i| values[i].is_none()).collect();
        if wanted.is_empty() {
            return values;
        }
        let far: Vec<CacheKey> = wanted.iter().map(|&i| keys[i].clone()).collect();
        if self.skipping() {
            metrics::counter!("ongi_cache_errors_total", "op" => "skipped").increment(1);
            metrics::counter!("ongi_cache_misses_total").increment(far.len() as u64);
            return values;
        }
        match self.inner.get_many(&far).await {
            Ok(found) => {
                let hits = found.iter().filter(|v| v.is_some()).count() as u64;
                metrics::counter!("ongi_cache_hits_total", "layer" => "shared").increment(hits);
                metrics::counter!("ongi_cache_misses_total").increment(far.len() as u64 - hits);
                self.keep_near(far.iter().zip(&found).filter_map(|(k, v)| Some((k, v.as_ref()?))));
                for (i, value) in wanted.into_iter().zip(found) {
                    values[i] = value;
                }
                values
            }
            Err(e) => {
                self.note_failure(&e);
                tracing::warn!(error = %e, keys = far.len(), "cache read failed; computing instead");
                metrics::counter!("ongi_cache_errors_total", "op" => "get").increment(1);
                metrics::counter!("ongi_cache_misses_total").increment(far.len() as u64);
                values
            }
        }
    }

    /// Stores entries; a failure is logged and counted, never returned.
    /// Returns whether the write reached the cache.
    pub async fn set_many(&self, entries: &[(CacheKey, Bytes)]) -> bool {
        self.set_many_for(entries, self.ttl).await
    }

    /// [`Cache::set_many`] with a time to live of its own (entries that must not stay as long
    /// as features, such as the text embeddings of callers' concepts).
    /// The near cache keeps its copy whatever the backend does: a photo computed while Redis
    /// is down is not computed again by this process.
    pub async fn set_many_for(&self, entries: &[(CacheKey, Bytes)], ttl: Duration) -> bool {
        if entries.is_empty() {
            return true;
        }
        self.keep_near(entries.iter().map(|(k, v)| (k, v)));
        if self.skipping() {
            metrics::counter!("ongi_cache_errors_total", "op" => "skipped").increment(1);
            return false;
        }
        match self.inner.set_many(entries, ttl).await {
            Ok(()) => true,
            Err(e) => {
                self.note_failure(&e);
                tracing::warn!(error = %e, entries = entries.len(), "cache write failed; results not cached");
                metrics::counter!("ongi_cache_errors_total", "op" => "set").increment(1);
                false
            }
        }
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        self.inner.ping().await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// A backend that is down: every call fails as unreachable, and is counted.
    #[derive(Default)]
    struct Down {
        calls: AtomicUsize,
    }

    #[async_trait]
    impl FeatureCache for Down {
        async fn get_many(&self, _: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(CacheError::Unavailable("connection refused".into()))
        }
        async fn set_many(&self, _: &[(CacheKey, Bytes)], _: Duration) -> Result<(), CacheError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            Err(CacheError::Unavailable("connection refused".into()))
        }
        async fn set_if_absent(&self, _: &CacheKey, _: Bytes, _: Duration) -> Result<bool, CacheError> {
            Err(CacheError::Unavailable("connection refused".into()))
        }
        async fn delete_if_equal(&self, _: &CacheKey, _: &[u8]) -> Result<bool, CacheError> {
            Err(CacheError::Unavailable("connection refused".into()))
        }
        async fn delete(&self, _: &[CacheKey]) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("connection refused".into()))
        }
        async fn ping(&self) -> Result<(), CacheError> {
            Err(CacheError::Unavailable("connection refused".into()))
        }
        fn kind(&self) -> &'static str {
            "down"
        }
    }

    #[tokio::test]
    async fn an_unreachable_cache_is_left_alone_for_a_moment_then_tried_again() {
        let down = Arc::new(Down::default());
        let ks = Keyspace::new("t:");
        let cache = Cache::new(down.clone(), ks.clone(), Duration::from_secs(60));
        let keys = [ks.text("m", "a"), ks.text("m", "b")];
        assert_eq!(cache.get_many(&keys).await, vec![None, None]);
        assert_eq!(down.calls.load(Ordering::SeqCst), 1);
        // Within the window: misses and dropped writes, without asking the backend.
        for _ in 0..50 {
            assert_eq!(cache.get_many(&keys).await, vec![None, None]);
            assert!(!cache.set_many(&[(keys[0].clone(), Bytes::from_static(b"v"))]).await);
        }
        assert_eq!(down.calls.load(Ordering::SeqCst), 1);
        // Readiness still asks the backend itself.
        assert!(cache.ping().await.is_err());
        tokio::time::sleep(OUTAGE_BACKOFF + Duration::from_millis(50)).await;
        assert_eq!(cache.get_many(&keys).await, vec![None, None]);
        assert_eq!(down.calls.load(Ordering::SeqCst), 2, "tried again after the window");
    }

    #[tokio::test]
    async fn the_near_cache_serves_immutable_entries_through_an_outage_and_stays_bounded() {
        let down = Arc::new(Down::default());
        let ks = Keyspace::new("t:");
        let cache = Cache::new(down.clone(), ks.clone(), Duration::from_secs(60)).with_near(64 << 10);
        let bucket = crate::domain::BucketName::parse("uploads").unwrap();
        let features = ks.features("m", &crate::domain::ContentHash::of(b"photo"));
        let latest = ks.latest(&bucket, "a.jpg");
        let value = Bytes::from(vec![7u8; 2048]);
        // The backend is down: the write fails, the near copy stays.
        assert!(
            !cache
                .set_many(&[(features.clone(), value.clone()), (latest.clone(), value.clone())])
                .await
        );
        assert_eq!(down.calls.load(Ordering::SeqCst), 1);
        let got = cache.get_many(&[features.clone(), latest.clone()]).await;
        assert_eq!(
            got[0].as_ref(),
            Some(&value),
            "features are immutable: served from memory"
        );
        assert_eq!(got[1], None, "the latest alias can move: never kept in memory");
        // Only the near hit: the backend is not asked for what memory holds.
        let calls = down.calls.load(Ordering::SeqCst);
        assert_eq!(
            cache.get_many(std::slice::from_ref(&features)).await[0].as_ref(),
            Some(&value)
        );
        assert_eq!(down.calls.load(Ordering::SeqCst), calls);
        // Bounded: a thousand more records never take it past its bytes.
        for i in 0..1000u32 {
            let key = ks.features("m", &crate::domain::ContentHash::of(&i.to_le_bytes()));
            cache.set_many(&[(key, value.clone())]).await;
            assert!(cache.near_usage().1 <= 64 << 10);
        }
        assert!(cache.near_usage().0 >= 20, "{:?}", cache.near_usage());
        // Without a near cache nothing is kept.
        let plain = Cache::new(down, ks, Duration::from_secs(60));
        plain.set_many(&[(features.clone(), value)]).await;
        assert_eq!(plain.near_usage(), (0, 0));
    }
}
