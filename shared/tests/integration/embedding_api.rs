//! `POST /api/albums/embedding` through the real application with the tiny CLIP models:
//! features computed once per photo, cached in Redis as binary records under versioned
//! keys, bad photos reported per photo, repeated calls and repeated bytes served from cache.

use std::path::Path;

use ongi_shared::analysis::FeatureRecord;
use ongi_shared::cache::Keyspace;
use ongi_shared::cache::codec::decode_f32_le;
use ongi_shared::domain::{BucketName, ContentHash};
use ongi_shared::functions::{Function, Functions};
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::support::{TestApp, redis_url, required_env, spawn_app, unique_prefix};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)).unwrap()
}

pub async fn embedding_app(prefix: &str) -> TestApp {
    let models = models_dir().display().to_string();
    spawn_app(
        Functions::only(Function::Embedding),
        &[
            ("ONGI_MODEL_DIR", &models),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", prefix),
        ],
    )
    .await
}

async fn redis_get(key: &str) -> Option<Vec<u8>> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET").arg(key).query_async(&mut con).await.unwrap()
}

#[tokio::test]
async fn album_features_are_computed_once_cached_and_reported_per_photo() {
    let prefix = unique_prefix();
    let app = embedding_app(&prefix).await;
    let uploads = app.data_dir().join("uploads");
    std::fs::create_dir_all(uploads.join("album")).unwrap();
    std::fs::write(uploads.join("album/ref_0.png"), fixture("models/ref_images/ref_0.png")).unwrap();
    std::fs::write(uploads.join("album/baseline.jpg"), fixture("images/baseline.jpg")).unwrap();
    std::fs::write(uploads.join("album/large.jpg"), fixture("images/large.jpg")).unwrap();
    std::fs::write(uploads.join("album/rotated.jpg"), fixture("images/orientation-6.jpg")).unwrap();
    std::fs::write(uploads.join("album/text.jpg"), fixture("images/text.jpg")).unwrap();
    std::fs::write(uploads.join("album/photo.bmp"), fixture("images/tiny.bmp")).unwrap();

    let images = json!({"images": [
        "album/ref_0.png", "album/baseline.jpg", "gs://uploads/album/large.jpg", "album/rotated.jpg",
        "album/text.jpg", "album/photo.bmp", "album/missing.jpg", "album/ref_0.png"
    ]});
    let resp = app.post_json("/api/albums/embedding", &images).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["message"], "success");
    assert_eq!(body["data"]["computed"], 4, "{body}");
    assert_eq!(body["data"]["cached"], 0, "the repeated reference is one photo: {body}");
    let model = body["data"]["model"].as_str().unwrap().to_owned();
    assert!(model.starts_with("clip-vit-b32@"), "{model}");
    let invalid: Vec<(String, String)> = body["invalid_images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["image"].as_str().unwrap().to_owned(),
                i["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        invalid,
        vec![
            ("album/text.jpg".to_owned(), "corrupt".to_owned()),
            ("album/photo.bmp".to_owned(), "unsupported_format".to_owned()),
            ("album/missing.jpg".to_owned(), "not_found".to_owned()),
        ]
    );

    // The record is in Redis, binary, under the content hash and this model's id.
    let ks = Keyspace::new(prefix.clone());
    let png = fixture("models/ref_images/ref_0.png");
    let key = ks.features(&model, &ContentHash::of(&png));
    let record = FeatureRecord::decode(&redis_get(key.as_str()).await.expect("features cached")).unwrap();
    assert_eq!((record.width, record.height), (320, 240));
    // Through the whole pipeline, the embedding is still the reference's (normalised).
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(models_dir().join("reference_outputs.json")).unwrap()).unwrap();
    let mut want: Vec<f32> = reference["images"][0]["image_embeds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    ongi_shared::model::clip::l2_normalize(&mut want);
    let got = record.embedding.expect("an embedding");
    let diff = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "embedding differs by {diff}");
    assert!(decode_f32_le(&got.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>()).is_ok());
    let bucket = BucketName::parse("uploads").unwrap();
    assert!(
        redis_get(ks.latest(&bucket, "album/ref_0.png").as_str())
            .await
            .is_some()
    );

    // EXIF orientation is applied before anything is measured.
    let rotated = FeatureRecord::decode(
        &redis_get(
            ks.features(&model, &ContentHash::of(&fixture("images/orientation-6.jpg")))
                .as_str(),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!((rotated.width, rotated.height), (20, 30));

    // A second call computes nothing; the same bytes under a new name are not recomputed.
    std::fs::write(uploads.join("album/copy-of-ref_0.png"), &png).unwrap();
    let again: Value = app
        .post_json(
            "/api/albums/embedding",
            &json!({"images": ["album/ref_0.png", "album/large.jpg", "album/copy-of-ref_0.png"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"]["computed"], 0, "{again}");
    assert_eq!(again["data"]["cached"], 3, "{again}");
}

#[tokio::test]
async fn a_photo_replaced_in_the_local_folder_is_computed_again_not_answered_from_the_old_record() {
    let prefix = unique_prefix();
    let app = embedding_app(&prefix).await;
    let uploads = app.data_dir().join("uploads");
    std::fs::create_dir_all(uploads.join("album")).unwrap();
    let (first, second) = (fixture("images/baseline.jpg"), fixture("models/ref_images/ref_0.png"));
    std::fs::write(uploads.join("album/photo.jpg"), &first).unwrap();
    let images = json!({"images": ["album/photo.jpg"]});
    let call = || app.post_for_json("/api/albums/embedding", &images);
    assert_eq!(call().await["data"]["computed"], 1);
    assert_eq!(call().await["data"]["cached"], 1, "unchanged: from the cache");

    // Another photo copied over the same name: no upload event tells the cache.
    std::thread::sleep(std::time::Duration::from_millis(5));
    std::fs::write(uploads.join("album/photo.jpg"), &second).unwrap();
    let body = call().await;
    assert_eq!(body["data"]["computed"], 1, "the new bytes are computed: {body}");
    let ks = Keyspace::new(prefix.clone());
    let bucket = BucketName::parse("uploads").unwrap();
    let alias = redis_get(ks.latest(&bucket, "album/photo.jpg").as_str()).await.unwrap();
    assert_eq!(
        &alias[8..],
        ContentHash::of(&second).to_bytes().as_slice(),
        "the alias names the new bytes"
    );
    assert_eq!(call().await["data"]["cached"], 1);
}

#[tokio::test]
async fn without_models_the_pixel_features_are_still_computed() {
    let app = spawn_app(
        Functions::only(Function::Embedding),
        &[("ONGI_MODEL_DIR", "/nonexistent")],
    )
    .await;
    let uploads = app.data_dir().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("a.jpg"), fixture("images/baseline.jpg")).unwrap();
    let body: Value = app
        .post_json("/api/albums/embedding", &json!({"images": ["a.jpg"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["computed"], 1, "{body}");
    assert_eq!(body["data"]["model"], "pixels-only");
}

#[tokio::test]
async fn one_upload_delivered_five_times_is_computed_once_and_malformed_events_are_acknowledged() {
    let prefix = unique_prefix();
    let app = embedding_app(&prefix).await;
    let uploads = app.data_dir().join("uploads");
    std::fs::create_dir_all(&uploads).unwrap();
    std::fs::write(uploads.join("five.png"), fixture("models/ref_images/ref_1.png")).unwrap();
    // At-least-once delivery: the same Pub/Sub notification five times, two of them at once.
    let event = json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE", "bucketId": "uploads",
        "objectId": "five.png", "objectGeneration": "1"}, "data": "", "messageId": "m-1"}, "subscription": "s"});
    let first: Value = app.post_json("/events/storage", &event).await.json().await.unwrap();
    assert_eq!(first["status"], "computed", "{first}");
    let (a, b) = tokio::join!(
        app.post_json("/events/storage", &event),
        app.post_json("/events/storage", &event)
    );
    let mut statuses = vec![
        a.json::<Value>().await.unwrap()["status"].clone(),
        b.json::<Value>().await.unwrap()["status"].clone(),
    ];
    for _ in 0..2 {
        let again: Value = app.post_json("/events/storage", &event).await.json().await.unwrap();
        statuses.push(again["status"].clone());
    }
    assert!(statuses.iter().all(|s| s == "cached"), "{statuses:?}");

    // Junk is acknowledged (200, rejected, with the reason), so Pub/Sub does not redeliver it.
    for junk in [
        json!({"message": "not an object"}),
        json!([1, 2, 3]),
        json!({"message": {"attributes": {"eventType": "OBJECT_FINALIZE"}}}),
    ] {
        let resp = app.post_json("/events/storage", &junk).await;
        assert_eq!(resp.status(), 200, "{junk}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["status"], "rejected", "{junk} -> {v}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    }
}
