//! The Redis feature cache against a real server: pipelined round trips, binary vectors,
//! TTLs, and an outage (server killed, then restarted) that costs misses, never errors.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ongi_shared::cache::codec::{decode_f32_le, encode_f32_le};
use ongi_shared::cache::redis::RedisCache;
use ongi_shared::cache::{Cache, FeatureCache, Keyspace};
use ongi_shared::domain::ContentHash;
use ongi_test_support::RedisServer;

use crate::support::{free_port, redis_url, unique_prefix};

#[tokio::test]
async fn pipelined_round_trip_with_binary_vectors_and_ttl() {
    let redis = RedisCache::new(&redis_url()).unwrap();
    let ks = Keyspace::new(unique_prefix());
    let cache = Cache::new(Arc::new(redis.clone()), ks.clone(), Duration::from_secs(120));
    let vectors: Vec<Vec<f32>> = (0..5)
        .map(|i| (0..512).map(|j| (i * 512 + j) as f32 * 0.001 - 1.0).collect())
        .collect();
    let keys: Vec<_> = (0..5)
        .map(|i| ks.features("clip-test", &ContentHash::of(format!("photo {i}").as_bytes())))
        .collect();
    let entries: Vec<_> = keys
        .iter()
        .cloned()
        .zip(vectors.iter().map(|v| encode_f32_le(v)))
        .collect();
    assert!(cache.set_many(&entries[..4]).await);

    let got = cache.get_many(&keys).await;
    assert_eq!(got.len(), 5);
    for i in 0..4 {
        let bytes = got[i].as_ref().expect("cached");
        assert_eq!(bytes.len(), 512 * 4, "binary little-endian, not JSON");
        assert_eq!(decode_f32_le(bytes).unwrap(), vectors[i]);
    }
    assert!(got[4].is_none());

    // The TTL is set on every entry.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let pttl: i64 = redis::cmd("PTTL")
        .arg(keys[0].as_str())
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(pttl > 100_000 && pttl <= 120_000, "PTTL {pttl}");
    redis.ping().await.unwrap();
}

#[tokio::test]
async fn an_outage_costs_misses_not_errors_and_recovers_without_restart() {
    let port = free_port();
    let mut server = RedisServer::start(port);
    let ks = Keyspace::new(unique_prefix());
    let cache = Cache::new(
        Arc::new(RedisCache::new(&server.url()).unwrap()),
        ks.clone(),
        Duration::from_secs(60),
    );
    let key = ks.text("clip-test", "a photo of a dog");
    let value = Bytes::from_static(b"\x00\x00\x80\x3f");
    assert!(cache.set_many(&[(key.clone(), value.clone())]).await);
    assert_eq!(
        cache.get_many(std::slice::from_ref(&key)).await,
        vec![Some(value.clone())]
    );

    server.kill();
    let started = Instant::now();
    assert_eq!(
        cache.get_many(std::slice::from_ref(&key)).await,
        vec![None],
        "down: a miss"
    );
    assert!(
        !cache.set_many(&[(key.clone(), value.clone())]).await,
        "down: the write is reported lost"
    );
    assert!(cache.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "an outage must fail fast: {:?}",
        started.elapsed()
    );

    // Same port, empty server: the same Cache object reconnects by itself.
    let _server = RedisServer::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if cache.set_many(&[(key.clone(), value.clone())]).await
            && cache.get_many(std::slice::from_ref(&key)).await == vec![Some(value.clone())]
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache did not recover after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    cache.ping().await.expect("ping after recovery");
}
