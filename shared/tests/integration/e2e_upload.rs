//! Flow A end to end, on the real parts: a photo uploaded to fake-gcs-server, which notifies
//! the Pub/Sub emulator, whose push subscription calls `POST /events/storage` on the
//! embedding function; the features land in Redis and a message on `ongi-features`.
//! Skipped, saying so, only where the machine has no `gcloud` (so no Pub/Sub emulator).

use std::time::{Duration, Instant};

use bytes::Bytes;
use ongi_shared::analysis::FeatureRecord;
use ongi_shared::cache::Keyspace;
use ongi_shared::domain::{BucketName, ContentHash};
use ongi_shared::events::publish::FeaturesMessage;
use ongi_shared::functions::{Function, Functions};
use ongi_shared::storage::ObjectStore;
use ongi_shared::storage::gcs::GcsStore;
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::support::{
    Killed, free_port, message_data, pubsub_emulator, redis_url, required_env, spawn_app, start_fake_gcs, unique_prefix,
};

pub const PROJECT: &str = "ongi-e2e";

/// A fake-gcs-server of a test's own (bucket `uploads`), notifying a Pub/Sub emulator topic
/// of every upload as GCS does. Stopped on drop.
pub struct NotifyingGcs {
    _process: Killed,
    _data: tempfile::TempDir,
}

impl NotifyingGcs {
    pub async fn start(port: u16, pubsub: &str, topic: &str) -> Self {
        let data = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(data.path().join("uploads")).unwrap();
        std::fs::write(data.path().join("uploads/.seed"), b"seed").unwrap();
        let data_dir = data.path().display().to_string();
        let process = start_fake_gcs(
            port,
            &[
                "-backend",
                "memory",
                "-data",
                &data_dir,
                "-event.pubsub-project-id",
                PROJECT,
                "-event.pubsub-topic",
                topic,
            ],
            &[("PUBSUB_EMULATOR_HOST", pubsub)],
            Duration::from_secs(20),
        );
        Self {
            _process: process,
            _data: data,
        }
    }
}

#[tokio::test]
async fn an_upload_flows_through_pubsub_into_the_cache_and_ongi_features() {
    let Some(pubsub) = pubsub_emulator(PROJECT) else {
        return;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (uploads_topic, features_topic) = (format!("uploads-{id}"), format!("features-{id}"));
    pubsub.put(&format!("topics/{uploads_topic}"), json!({})).await;
    pubsub.put(&format!("topics/{features_topic}"), json!({})).await;

    // The embedding function, publishing to this test's features topic.
    let prefix = unique_prefix();
    let gcs_port = free_port();
    let gcs = format!("http://127.0.0.1:{gcs_port}");
    let app = spawn_app(
        Functions::only(Function::Embedding),
        &[
            ("ONGI_MODEL_DIR", &models_dir().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &prefix),
            ("STORAGE_EMULATOR_HOST", &gcs),
            ("PUBSUB_EMULATOR_HOST", &pubsub.host),
            ("GOOGLE_CLOUD_PROJECT", PROJECT),
            ("ONGI_FEATURES_TOPIC", &features_topic),
        ],
    )
    .await;
    // Upload notifications are pushed to the function; features are pulled here.
    pubsub
        .put(
            &format!("subscriptions/push-{id}"),
            json!({"topic": pubsub.topic(&uploads_topic),
                   "pushConfig": {"pushEndpoint": app.url("/events/storage")}, "ackDeadlineSeconds": 30}),
        )
        .await;
    pubsub
        .put(
            &format!("subscriptions/pull-{id}"),
            json!({"topic": pubsub.topic(&features_topic)}),
        )
        .await;

    let _gcs = NotifyingGcs::start(gcs_port, &pubsub.host, &uploads_topic).await;

    let photo = std::fs::read(models_dir().join("ref_images/ref_1.png")).unwrap();
    let store = GcsStore::emulator(&gcs, None).await.unwrap();
    let bucket = BucketName::parse("uploads").unwrap();
    let generation = store
        .put(&bucket, "albums/7/e2e.png", Bytes::from(photo.clone()), "image/png")
        .await
        .expect("upload");

    // Wait for the features message.
    let deadline = Instant::now() + Duration::from_secs(60);
    let message: FeaturesMessage = loop {
        let received = pubsub.pull(&format!("pull-{id}"), json!({"maxMessages": 10})).await;
        if let Some(m) = received.first() {
            break message_data(m);
        }
        assert!(Instant::now() < deadline, "no message on ongi-features within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(message.schema, "ongi.features.v1");
    assert_eq!(
        (message.bucket.as_str(), message.object.as_str()),
        ("uploads", "albums/7/e2e.png")
    );
    assert_eq!(message.generation, generation);
    assert!(message.computed);
    let hash = ContentHash::of(&photo);
    assert_eq!(message.content_hash, hash.to_hex());
    assert!(message.model.starts_with("clip-vit-b32@"));

    // The features are in Redis under the hash and the model id, with the generation alias.
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let ks = Keyspace::new(prefix);
    let record: Option<Vec<u8>> = redis::cmd("GET")
        .arg(ks.features(&message.model, &hash).as_str())
        .query_async(&mut con)
        .await
        .unwrap();
    let record = FeatureRecord::decode(&record.expect("features in Redis")).unwrap();
    assert_eq!((record.width, record.height), (181, 301));
    assert_eq!(record.embedding.map(|e| e.len()), Some(512));
    let alias: Option<Vec<u8>> = redis::cmd("GET")
        .arg(ks.alias(&bucket, "albums/7/e2e.png", generation).as_str())
        .query_async(&mut con)
        .await
        .unwrap();
    assert!(alias.is_some(), "the bucket/object#generation alias is cached");

    // The same event delivered again is a cache hit, and is published again as such.
    let replay = json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads",
        "objectId": "albums/7/e2e.png", "objectGeneration": generation.to_string()}, "data": "", "messageId": "x"},
        "subscription": "s"});
    let again: Value = app.post_json("/events/storage", &replay).await.json().await.unwrap();
    assert_eq!(again["status"], "cached", "{again}");
}
