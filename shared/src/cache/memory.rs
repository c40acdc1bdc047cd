//! The in-process cache of `ongi serve` without Redis: entries with per-entry expiry, bounded
//! in bytes (keys, values and bookkeeping), evicted in O(1) by `quick_cache`'s CLOCK-Pro, so
//! a full cache costs an insert what an empty one does. A std `Mutex` around the
//! non-concurrent cache is right here: nothing awaits while it is held and every critical
//! section is a few map operations (as in mini-redis's `Db`), and it keeps `set_if_absent`
//! and `delete_if_equal` atomic.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use quick_cache::Weighter;
use quick_cache::unsync::Cache as Entries;

use super::{CacheError, CacheKey, FeatureCache};

/// Heap per entry besides its key and value: the map's slot, the `Bytes` handle, the expiry.
const ENTRY_OVERHEAD_BYTES: u64 = 96;

/// The size of a feature record with its key: how many entries a budget is expected to hold.
const TYPICAL_ENTRY_BYTES: u64 = 2_300;

#[derive(Clone)]
struct Entry {
    value: Bytes,
    expires: Instant,
}

/// An entry weighs its bytes.
#[derive(Clone)]
struct EntryBytes;

impl Weighter<CacheKey, Entry> for EntryBytes {
    fn weight(&self, key: &CacheKey, entry: &Entry) -> u64 {
        (key.as_str().len() + entry.value.len()) as u64 + ENTRY_OVERHEAD_BYTES
    }
}

pub struct MemoryCache {
    entries: Mutex<Entries<CacheKey, Entry, EntryBytes>>,
}

impl MemoryCache {
    /// A cache that holds at most `max_bytes` of entries; an entry larger than that is not kept.
    pub fn new(max_bytes: u64) -> Self {
        let expected = usize::try_from((max_bytes / TYPICAL_ENTRY_BYTES).max(16)).unwrap_or(16);
        Self {
            entries: Mutex::new(Entries::with_weighter(expected, max_bytes, EntryBytes)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<CacheKey, Entry, EntryBytes>> {
        // A panic while holding the lock cannot leave the cache inconsistent (each operation
        // is a single insert or remove), so a poisoned lock is still safe to use.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The bytes held (keys, values and bookkeeping), never more than the bound.
    #[cfg(test)]
    pub fn bytes(&self) -> u64 {
        self.lock().weight()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Default for MemoryCache {
    /// 64 MiB: about 28,000 photos' features.
    fn default() -> Self {
        Self::new(64 << 20)
    }
}

/// The live value under `key`; an expired one is removed.
fn live(entries: &mut Entries<CacheKey, Entry, EntryBytes>, key: &CacheKey, now: Instant) -> Option<Bytes> {
    match entries.get(key) {
        Some(entry) if entry.expires > now => Some(entry.value.clone()),
        Some(_) => {
            entries.remove(key);
            None
        }
        None => None,
    }
}

#[async_trait]
impl FeatureCache for MemoryCache {
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let now = Instant::now();
        let mut entries = self.lock();
        Ok(keys.iter().map(|k| live(&mut entries, k, now)).collect())
    }

    async fn set_many(&self, new: &[(CacheKey, Bytes)], ttl: Duration) -> Result<(), CacheError> {
        let expires = Instant::now() + ttl;
        let mut entries = self.lock();
        for (k, v) in new {
            entries.insert(
                k.clone(),
                Entry {
                    value: v.clone(),
                    expires,
                },
            );
        }
        Ok(())
    }

    async fn set_if_absent(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut entries = self.lock();
        if live(&mut entries, key, now).is_some() {
            return Ok(false);
        }
        entries.insert(
            key.clone(),
            Entry {
                value,
                expires: now + ttl,
            },
        );
        Ok(true)
    }

    async fn delete_if_equal(&self, key: &CacheKey, expected: &[u8]) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut entries = self.lock();
        let held = live(&mut entries, key, now).is_some_and(|v| v.as_ref() == expected);
        if held {
            entries.remove(key);
        }
        Ok(held)
    }

    async fn delete(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let mut entries = self.lock();
        for k in keys {
            entries.remove(k);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Keyspace;

    #[tokio::test]
    async fn entries_expire() {
        let ks = Keyspace::new("t:");
        let cache = MemoryCache::new(1 << 20);
        let k = |s: &str| ks.text("m", s);
        cache
            .set_many(&[(k("a"), Bytes::from_static(b"1"))], Duration::from_millis(30))
            .await
            .unwrap();
        cache
            .set_many(
                &[(k("b"), Bytes::from_static(b"2")), (k("c"), Bytes::from_static(b"3"))],
                Duration::from_secs(60),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let got = cache.get_many(&[k("a"), k("b"), k("c")]).await.unwrap();
        assert_eq!(
            got,
            vec![None, Some(Bytes::from_static(b"2")), Some(Bytes::from_static(b"3"))]
        );
        assert_eq!(cache.len(), 2, "the expired entry was dropped when read");
    }

    #[tokio::test]
    async fn holds_at_most_its_bytes_however_many_entries_arrive() {
        let ks = Keyspace::new("t:");
        let cache = MemoryCache::new(1 << 20);
        let ttl = Duration::from_secs(60);
        // 8 MB of 2 KiB embeddings, one call at a time as the text route writes them.
        for i in 0..4000 {
            let key = ks.concept_text("m", &format!("a flood text {i}"));
            cache
                .set_many(&[(key, Bytes::from(vec![7u8; 2048]))], ttl)
                .await
                .unwrap();
            assert!(cache.bytes() <= 1 << 20, "{} bytes after {i} entries", cache.bytes());
        }
        assert!(cache.len() > 300, "it is full, not emptied: {} entries", cache.len());
        let newest = ks.concept_text("m", "a flood text 3999");
        assert!(cache.get_many(&[newest]).await.unwrap()[0].is_some());
        let huge = ks.text("m", "huge");
        cache
            .set_many(&[(huge.clone(), Bytes::from(vec![0u8; 2 << 20]))], ttl)
            .await
            .unwrap();
        assert_eq!(
            cache.get_many(&[huge]).await.unwrap(),
            vec![None],
            "larger than the bound: not kept"
        );
    }

    #[tokio::test]
    async fn a_lease_is_taken_once_and_released_only_by_its_holder() {
        let ks = Keyspace::new("t:");
        let cache = MemoryCache::default();
        let key = ks.text("m", "lease");
        let ttl = Duration::from_secs(60);
        assert!(cache.set_if_absent(&key, Bytes::from_static(b"a"), ttl).await.unwrap());
        assert!(!cache.set_if_absent(&key, Bytes::from_static(b"b"), ttl).await.unwrap());
        assert!(!cache.delete_if_equal(&key, b"b").await.unwrap(), "not b's lease");
        assert!(cache.delete_if_equal(&key, b"a").await.unwrap());
        assert!(cache.set_if_absent(&key, Bytes::from_static(b"b"), ttl).await.unwrap());
        cache.delete(std::slice::from_ref(&key)).await.unwrap();
        assert_eq!(cache.get_many(&[key]).await.unwrap(), vec![None]);
    }
}
