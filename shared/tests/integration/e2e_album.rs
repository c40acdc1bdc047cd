//! Flows A and B end to end, in Cloud Run's shape, on the real parts: 30 photos uploaded to
//! fake-gcs-server → its notifications through the Pub/Sub emulator → the embedding
//! function (push) → `ongi-features` → the per-photo steps of the category, quality, score
//! and people functions (four push subscriptions) → `ongi-results` → then the six album
//! calls, each to its own function, all answering from the cache the upload flow filled.
//! Skipped, saying so, only where the machine has no `gcloud` (so no Pub/Sub emulator).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ongi_shared::domain::BucketName;
use ongi_shared::functions::{Function, Functions};
use ongi_shared::storage::ObjectStore;
use ongi_shared::storage::gcs::GcsStore;
use serde_json::{Value, json};

use crate::analyses_api::png;
use crate::e2e_upload::{NotifyingGcs, PROJECT};
use crate::face_detect::rustface_dir;
use crate::people_api::model_folder;
use crate::support::{
    PubSubEmulator, TestApp, free_port, message_data, pubsub_emulator, redis_url, required_env, spawn_app,
    unique_prefix,
};

const PHOTOS: usize = 30;

/// 30 photos of an album: 25 distinct scenes, two re-encoded copies (duplicates), a blurred
/// one, a dark one, and the real group photo (faces).
fn album() -> Vec<(String, Vec<u8>)> {
    let scene = |seed: u32| {
        image::RgbImage::from_fn(480, 360, move |x, y| {
            let v = (x * (seed % 7 + 1) + y * (seed % 5 + 2) + seed * 37) % 256;
            let stripe = if (x / (8 + seed % 13) + y / (5 + seed % 11)).is_multiple_of(2) {
                60
            } else {
                0
            };
            image::Rgb([v as u8, ((v + stripe) % 256) as u8, ((seed * 53 + x / 3) % 256) as u8])
        })
    };
    let mut photos: Vec<(String, Vec<u8>)> = (0..25)
        .map(|i| (format!("album/scene-{i:02}.png"), png(&scene(i))))
        .collect();
    // A duplicate: the same scene, one pixel value changed (different bytes, same picture).
    let mut copy = scene(3);
    copy.put_pixel(0, 0, image::Rgb([1, 2, 3]));
    photos.push(("album/scene-03-copy.png".into(), png(&copy)));
    photos.push((
        "album/scene-05-copy.png".into(),
        png(&image::imageops::resize(
            &scene(5),
            400,
            300,
            image::imageops::FilterType::Triangle,
        )),
    ));
    photos.push(("album/blurred.png".into(), png(&image::imageops::blur(&scene(9), 8.0))));
    photos.push((
        "album/dark.png".into(),
        png(&image::RgbImage::from_pixel(480, 360, image::Rgb([2, 2, 3]))),
    ));
    photos.push((
        "album/group.png".into(),
        std::fs::read(rustface_dir().join("test.png")).unwrap(),
    ));
    assert_eq!(photos.len(), PHOTOS);
    photos
}

/// The messages waiting on `sub`, acknowledged.
async fn pull_all(pubsub: &PubSubEmulator, sub: &str) -> Vec<Value> {
    let received = pubsub.pull(sub, json!({"maxMessages": 100})).await;
    if received.is_empty() {
        return Vec::new();
    }
    pubsub.acknowledge(sub, &received).await;
    received.iter().map(message_data).collect()
}

#[tokio::test]
async fn thirty_uploads_fan_out_to_every_function_and_the_six_album_calls_answer() {
    let Some(pubsub) = pubsub_emulator(PROJECT) else {
        return;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = |name: &str| format!("{name}-{id}");
    for t in ["uploads", "features", "results"] {
        pubsub.put(&format!("topics/{}", topic(t)), json!({})).await;
    }

    // The seven functions' shared settings: one Redis, one bucket, one project.
    let models = model_folder();
    let prefix = unique_prefix();
    let gcs_port = free_port();
    let gcs = format!("http://127.0.0.1:{gcs_port}");
    let (features_topic, results_topic) = (topic("features"), topic("results"));
    let common: Vec<(&str, String)> = vec![
        ("ONGI_MODEL_DIR", models.path().display().to_string()),
        ("ORT_DYLIB_PATH", required_env("ORT_DYLIB_PATH")),
        ("ONGI_FACE_DETECTOR", "mtcnn".into()),
        ("REDIS_URL", redis_url()),
        ("ONGI_CACHE_PREFIX", prefix),
        ("STORAGE_EMULATOR_HOST", gcs.clone()),
        ("PUBSUB_EMULATOR_HOST", pubsub.host.clone()),
        ("GOOGLE_CLOUD_PROJECT", PROJECT.into()),
        ("ONGI_FEATURES_TOPIC", features_topic.clone()),
        ("ONGI_RESULTS_TOPIC", results_topic.clone()),
    ];
    let settings = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut v: Vec<(&'static str, String)> = common.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.extend_from_slice(extra);
        v
    };
    let start = |module: Function, extra: Vec<(&'static str, String)>| async move {
        let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
        spawn_app(Functions::only(module), &pairs).await
    };
    let embedding = start(Function::Embedding, settings(&[])).await;
    let via_embedding = settings(&[("EMBEDDING_URL", embedding.url(""))]);
    let mut functions: HashMap<Function, TestApp> = HashMap::new();
    for module in [
        Function::Category,
        Function::Duplicate,
        Function::Quality,
        Function::Score,
        Function::People,
    ] {
        functions.insert(module, start(module, via_embedding.clone()).await);
    }

    // Subscriptions as terraform/pubsub.tf makes them: uploads → embedding; features → each
    // per-photo step; results pulled here in the app backend's place.
    let push = |name: String, topic: String, endpoint: String| {
        let pubsub = &pubsub;
        async move {
            pubsub
                .put(
                    &format!("subscriptions/{name}"),
                    json!({"topic": pubsub.topic(&topic),
                           "pushConfig": {"pushEndpoint": endpoint}, "ackDeadlineSeconds": 60}),
                )
                .await;
        }
    };
    push(
        format!("embedding-{id}"),
        topic("uploads"),
        embedding.url("/events/storage"),
    )
    .await;
    for module in [Function::Category, Function::Quality, Function::Score, Function::People] {
        push(
            format!("{module}-{id}"),
            features_topic.clone(),
            functions[&module].url("/events/features"),
        )
        .await;
    }
    let results_sub = format!("results-pull-{id}");
    pubsub
        .put(
            &format!("subscriptions/{results_sub}"),
            json!({"topic": pubsub.topic(&results_topic)}),
        )
        .await;

    let _gcs = NotifyingGcs::start(gcs_port, &pubsub.host, &topic("uploads")).await;
    let store = GcsStore::emulator(&gcs, None).await.unwrap();
    let bucket = BucketName::parse("uploads").unwrap();
    let photos = album();
    for (name, bytes) in &photos {
        store
            .put(&bucket, name, Bytes::from(bytes.clone()), "image/png")
            .await
            .expect("upload");
    }

    // Every photo's four per-photo results arrive on ongi-results.
    let mut results: HashMap<(String, String), Value> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    while results.len() < PHOTOS * 4 {
        for m in pull_all(&pubsub, &results_sub).await {
            assert_eq!(m["schema"], "ongi.results.v1", "{m}");
            let key = (
                m["module"].as_str().unwrap().to_owned(),
                m["object"].as_str().unwrap().to_owned(),
            );
            results.insert(key, m["result"].clone());
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {} per-photo results within 180 s",
            results.len(),
            PHOTOS * 4
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for module in ["category", "quality", "score", "people"] {
        let n = results.keys().filter(|(m, _)| m == module).count();
        assert_eq!(n, PHOTOS, "{module}: {n} results");
    }
    assert_eq!(
        results[&("quality".into(), "album/blurred.png".into())]["low_quality"],
        true
    );
    assert!(
        results[&("people".into(), "album/group.png".into())]["faces"]
            .as_array()
            .is_some_and(|f| f.len() >= 20),
        "MTCNN finds the group photo's faces in the per-photo step"
    );

    // The six album calls, each to its own function; nothing needs computing any more.
    let refs: Vec<&str> = photos.iter().map(|(n, _)| n.as_str()).collect();
    let call = |app: &TestApp, path: &str, body: Value| {
        let request = app.client.post(app.url(path)).json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 201, "{v}");
            assert_eq!(v["message"], "success");
            assert!(v.get("invalid_images").is_none(), "{v}");
            v["data"].clone()
        }
    };
    let summary = call(&embedding, "/api/albums/embedding", json!({"images": refs})).await;
    assert_eq!(
        (summary["computed"].as_u64(), summary["cached"].as_u64()),
        (Some(0), Some(PHOTOS as u64))
    );
    let categories = call(
        &functions[&Function::Category],
        "/api/albums/categories",
        json!({"images": refs}),
    )
    .await;
    let categorised: usize = categories
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["images"].as_array().unwrap().len())
        .sum();
    assert!(categorised >= PHOTOS, "every photo has a category: {categories}");
    let duplicates = call(
        &functions[&Function::Duplicate],
        "/api/albums/duplicates",
        json!({"images": refs}),
    )
    .await;
    let groups = duplicates.as_array().unwrap();
    for copy in ["album/scene-03-copy.png", "album/scene-05-copy.png"] {
        assert!(
            groups.iter().any(|g| g.as_array().unwrap().iter().any(|r| r == copy)),
            "{copy} is in a duplicate group: {duplicates}"
        );
    }
    let quality = call(
        &functions[&Function::Quality],
        "/api/albums/quality",
        json!({"images": refs}),
    )
    .await;
    for bad in ["album/blurred.png", "album/dark.png"] {
        assert!(quality.as_array().unwrap().iter().any(|r| r == bad), "{bad}: {quality}");
    }
    let score = call(
        &functions[&Function::Score],
        "/api/albums/score",
        json!({"categories": [{"category": "all", "images": refs}]}),
    )
    .await;
    assert_eq!(score[0]["images"].as_array().unwrap().len(), PHOTOS);
    let people = call(
        &functions[&Function::People],
        "/api/albums/people",
        json!({"images": refs}),
    )
    .await;
    assert!(people.is_array(), "{people}");

    // The album calls read what the upload flow cached: the people function found every
    // photo's faces in the cache (no second download), shown by its metrics.
    let metrics = reqwest::get(functions[&Function::People].url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ongi_cache_hits_total"), "{metrics}");
}
