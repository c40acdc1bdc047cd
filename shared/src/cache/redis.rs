//! Memorystore (Redis 7) as the feature cache.
//!
//! One [`ConnectionManager`] (cheap to clone, multiplexed, reconnects by itself), created
//! lazily so the process starts even while Redis is down. Short connect and response
//! timeouts keep an outage from stalling requests: a slow cache is treated as a miss.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{CacheError, CacheKey, FeatureCache};

#[derive(Clone)]
pub struct RedisCache {
    connection: ConnectionManager,
}

impl RedisCache {
    /// Does not connect: the first command does, and later ones reconnect after an outage.
    pub fn new(url: &str) -> Result<Self, CacheError> {
        Self::with_timeouts(url, Duration::from_secs(1), Duration::from_secs(2))
    }

    pub fn with_timeouts(url: &str, connect: Duration, response: Duration) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| CacheError::Other(format!("REDIS_URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(connect))
            .set_response_timeout(Some(response))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CacheError::Other(format!("cannot configure the Redis connection: {e}")))?;
        Ok(Self { connection })
    }
}

fn classify(e: redis::RedisError) -> CacheError {
    if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
        CacheError::Unavailable(e.to_string())
    } else {
        CacheError::Other(e.to_string())
    }
}

#[async_trait]
impl FeatureCache for RedisCache {
    async fn get_many(&self, keys: &[CacheKey]) -> Result<Vec<Option<Bytes>>, CacheError> {
        let mut con = self.connection.clone();
        let names: Vec<&str> = keys.iter().map(CacheKey::as_str).collect();
        // MGET always answers an array, even for one key.
        let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut con)
            .await
            .map_err(classify)?;
        if values.len() != keys.len() {
            return Err(CacheError::Other(format!(
                "MGET answered {} values for {} keys",
                values.len(),
                keys.len()
            )));
        }
        Ok(values.into_iter().map(|v| v.map(Bytes::from)).collect())
    }

    async fn set_many(&self, entries: &[(CacheKey, Bytes)], ttl: Duration) -> Result<(), CacheError> {
        let mut con = self.connection.clone();
        let mut pipe = redis::pipe();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        for (key, value) in entries {
            pipe.cmd("SET")
                .arg(key.as_str())
                .arg(value.as_ref())
                .arg("PX")
                .arg(millis)
                .ignore();
        }
        pipe.query_async::<()>(&mut con).await.map_err(classify)
    }

    async fn set_if_absent(&self, key: &CacheKey, value: Bytes, ttl: Duration) -> Result<bool, CacheError> {
        let mut con = self.connection.clone();
        let millis = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        // SET NX answers OK when it set the key and nil when the key existed.
        let set: Option<String> = redis::cmd("SET")
            .arg(key.as_str())
            .arg(value.as_ref())
            .arg("NX")
            .arg("PX")
            .arg(millis)
            .query_async(&mut con)
            .await
            .map_err(classify)?;
        Ok(set.is_some())
    }

    async fn delete_if_equal(&self, key: &CacheKey, expected: &[u8]) -> Result<bool, CacheError> {
        let mut con = self.connection.clone();
        // Compare and delete in one step: between a GET and a DEL another holder could take it.
        let script = redis::Script::new(
            "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end",
        );
        let deleted: i64 = script
            .key(key.as_str())
            .arg(expected)
            .invoke_async(&mut con)
            .await
            .map_err(classify)?;
        Ok(deleted == 1)
    }

    async fn delete(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut con = self.connection.clone();
        let names: Vec<&str> = keys.iter().map(CacheKey::as_str).collect();
        redis::cmd("DEL")
            .arg(&names)
            .query_async::<()>(&mut con)
            .await
            .map_err(classify)
    }

    async fn ping(&self) -> Result<(), CacheError> {
        let mut con = self.connection.clone();
        let pong: String = redis::cmd("PING").query_async(&mut con).await.map_err(classify)?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(CacheError::Other(format!("PING answered {pong:?}")))
        }
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
