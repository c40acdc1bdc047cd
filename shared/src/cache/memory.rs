//! The in-process cache of `ongi serve` without Redis: a map with per-entry expiry and a
//! bound on the number of entries. A std `Mutex` is right here: nothing awaits while it is
//! held and every critical section is a few map operations (as in mini-redis's `Db`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;

use super::{CacheError, CacheKey, FeatureCache};

pub struct MemoryCache {
    entries: Mutex<HashMap<CacheKey, (Bytes, Instant)>>,
    max_entries: usize,
}

impl MemoryCache {
    pub fn new(max_entries: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CacheKey, (Bytes, Instant)>> {
        // A panic while holding the lock cannot leave the map inconsistent (each operation
        // is a single insert or remove), so a poisoned lock is still safe to use.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(100_000)
    }
}

#[async_trait]
impl FeatureCache for MemoryCache {
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let now = Instant::now();
        let map = self.lock();
        Ok(keys
            .iter()
            .map(|k| map.get(k).filter(|(_, exp)| *exp > now).map(|(v, _)| v.clone()))
            .collect())
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Duration) -> Result<(), CacheError> {
        let now = Instant::now();
        let expires = now + ttl;
        let mut map = self.lock();
        if map.len() + entries.len() > self.max_entries {
            map.retain(|_, (_, exp)| *exp > now);
        }
        // Still full: drop the entries closest to expiry (the oldest writes).
        let overflow = (map.len() + entries.len()).saturating_sub(self.max_entries);
        if overflow > 0 {
            let mut by_expiry: Vec<(CacheKey, Instant)> = map.iter().map(|(k, (_, e))| (k.clone(), *e)).collect();
            by_expiry.sort_by_key(|(_, e)| *e);
            for (k, _) in by_expiry.into_iter().take(overflow) {
                map.remove(&k);
            }
        }
        for (k, v) in entries {
            map.insert(k.clone(), (v.clone(), expires));
        }
        Ok(())
    }

    async fn set_if_absent(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut map = self.lock();
        if map.get(key).is_some_and(|(_, exp)| *exp > now) {
            return Ok(false);
        }
        map.insert(key.clone(), (value, now + ttl));
        Ok(true)
    }

    async fn delete_if_equal(&self, key: &CacheKey, expected: &[u8]) -> Result<bool, CacheError> {
        let now = Instant::now();
        let mut map = self.lock();
        let held = map
            .get(key)
            .is_some_and(|(v, exp)| *exp > now && v.as_ref() == expected);
        if held {
            map.remove(key);
        }
        Ok(held)
    }

    async fn delete(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        let mut map = self.lock();
        for k in keys {
            map.remove(k);
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
    async fn entries_expire_and_the_size_is_bounded() {
        let ks = Keyspace::new("t:");
        let cache = MemoryCache::new(2);
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
        let got = cache.get_many(&[k("a"), k("b"), k("c")]).await.unwrap();
        assert_eq!(
            got,
            vec![None, Some(Bytes::from_static(b"2")), Some(Bytes::from_static(b"3"))]
        );
        assert!(cache.lock().len() <= 2);
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
