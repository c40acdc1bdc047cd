//! Batch reprocessing (flow D) on the real parts: `POST /batch/reprocess` through the real
//! application, listing the local folder or fake-gcs-server, with its cursor and results in
//! the real Redis. Pixel-only (no models): the steps are `embedding` and `quality`, which is
//! what such a process serves. The listing itself is `reprocess_listing`'s.

use std::time::Duration;

use bytes::Bytes;
use ongi_shared::analysis::FeatureRecord;
use ongi_shared::domain::BucketName;
use ongi_shared::functions::{Function, Functions};
use ongi_shared::storage::ObjectStore;
use ongi_shared::storage::gcs::GcsStore;
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::support::{
    TestApp, free_port, message_data, pubsub_emulator, redis_url, required_env, spawn_app, storage_emulator,
    unique_prefix,
};

fn uploads() -> BucketName {
    BucketName::parse("uploads").unwrap()
}

/// A small PNG, different for every `seed` (so every photo has its own content hash).
fn photo(seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([
            (x * 4 + seed * 17) as u8,
            (y * 5 + seed * 29) as u8,
            ((x ^ y) + seed * 7) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// The whole application, pixel-only, with the cursor and the cache in the real Redis.
async fn app_with_redis(extra: &[(&str, &str)]) -> (TestApp, String) {
    let prefix = unique_prefix();
    let redis = redis_url();
    let mut settings = vec![("REDIS_URL", redis.as_str()), ("ONGI_CACHE_PREFIX", prefix.as_str())];
    settings.extend_from_slice(extra);
    (spawn_app(Functions::all(), &settings).await, prefix)
}

async fn reprocess(app: &TestApp, body: Value) -> Value {
    let resp = app.post_json("/batch/reprocess", &body).await;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["message"], "success");
    answer["data"].clone()
}

/// Keys under this test's prefix that match `pattern` (after the prefix), from Redis itself.
async fn redis_keys(prefix: &str, pattern: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}{pattern}"))
        .query_async(&mut con)
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn redis_get(key: &str) -> Option<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET").arg(key).query_async(&mut con).await.unwrap()
}

async fn redis_get_bytes(key: &str) -> Option<Vec<u8>> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("GET").arg(key).query_async(&mut con).await.unwrap()
}

fn count(report: &Value, field: &str, reason: &str) -> u64 {
    report[field][reason].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_walk_processes_once_resumes_from_its_cursor_and_skips_what_is_current() {
    let (app, prefix) = app_with_redis(&[]).await;
    let album = app.data_dir().join("uploads/album");
    std::fs::create_dir_all(&album).unwrap();
    for i in 0..12 {
        std::fs::write(album.join(format!("p{i:02}.png")), photo(i)).unwrap();
    }
    std::fs::write(album.join("notes.txt"), b"not a photo, and not named like one").unwrap();
    std::fs::write(album.join("zz-broken.jpg"), b"named like a photo, but not one").unwrap();
    let body = |extra: Value| {
        let mut b = json!({"bucket": "uploads", "prefix": "album/"});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };

    // A dry run counts and moves nothing.
    let dry = reprocess(&app, body(json!({"dry_run": true}))).await;
    assert_eq!(dry["complete"], true, "{dry}");
    assert_eq!(
        (dry["scanned"].as_u64(), dry["would_process"].as_u64()),
        (Some(14), Some(13))
    );
    assert_eq!((dry["processed"].as_u64(), dry["skipped"].as_u64()), (Some(0), Some(1)));
    assert_eq!(count(&dry, "skipped_by_reason", "not_image"), 1);
    assert_eq!(dry["steps"], json!(["embedding", "quality"]));
    let run = dry["run"].as_str().unwrap().to_owned();
    assert!(redis_keys(&prefix, "*").await.is_empty(), "a dry run writes nothing");

    // Cut off by the page limit: notes.txt and p00..p03, then the cursor.
    let first = reprocess(&app, body(json!({"page_size": 5, "max_pages": 1}))).await;
    assert_eq!(first["complete"], false, "{first}");
    assert_eq!(first["stopped"], "page_limit");
    assert_eq!(
        (first["scanned"].as_u64(), first["processed"].as_u64()),
        (Some(5), Some(4))
    );
    assert_eq!(first["cursor"], "album/p03.png");
    assert_eq!(first["run"], run.as_str(), "the run is the same whatever cuts the call");
    let cursor_key = format!("{prefix}v3:reprocess:cursor:{run}");
    let saved: Value = serde_json::from_str(&redis_get(&cursor_key).await.expect("the cursor is in Redis")).unwrap();
    assert_eq!(saved["after"], "album/p03.png");

    // A dry run from there: what the next call would do; the cursor stays.
    let dry = reprocess(&app, body(json!({"dry_run": true}))).await;
    assert_eq!(dry["would_process"], 9, "{dry}");
    assert_eq!(dry["cursor"], "album/p03.png");
    let again: Value = serde_json::from_str(&redis_get(&cursor_key).await.unwrap()).unwrap();
    assert_eq!(again["after"], "album/p03.png");

    // A budget already spent when the walk starts: one photo (every call moves the walk
    // forward), then it stops cleanly with the cursor after it.
    let tiny = reprocess(&app, body(json!({"budget_secs": 1e-9}))).await;
    assert_eq!(tiny["complete"], false, "{tiny}");
    assert_eq!(tiny["stopped"], "time_budget");
    assert_eq!(
        (tiny["processed"].as_u64(), tiny["cursor"].as_str()),
        (Some(1), Some("album/p04.png"))
    );
    let tiny_processed = 1;

    // The rest, then the end: the corrupt photo fails with its reason; the cursor is gone.
    let rest = reprocess(&app, body(json!({}))).await;
    assert_eq!(rest["complete"], true, "{rest}");
    assert_eq!(rest["cursor"], Value::Null);
    assert_eq!(rest["failed"], 1);
    assert_eq!(count(&rest, "failed_by_reason", "corrupt"), 1);
    assert_eq!(rest["failures"][0]["object"], "album/zz-broken.jpg");
    assert_eq!(
        4 + tiny_processed + rest["processed"].as_u64().unwrap(),
        12,
        "every photo processed exactly once over the three calls"
    );
    assert_eq!(redis_get(&cursor_key).await, None, "a complete walk deletes its cursor");

    // What the cache holds: one alias per object read (the broken one's leads to its
    // remembered decode failure), one feature record and one quality result per photo.
    assert_eq!(redis_keys(&prefix, "v3:alias:uploads/album/*").await.len(), 13);
    assert_eq!(redis_keys(&prefix, "v3:undecodable:*").await.len(), 1);
    assert_eq!(redis_keys(&prefix, "v3:feat:pixels-only:*").await.len(), 12);
    assert_eq!(redis_keys(&prefix, "v3:result:quality:pixels-only:*").await.len(), 12);
    assert_eq!(redis_keys(&prefix, "v3:failed:pixels-only:*").await.len(), 1);
    assert!(
        redis_keys(&prefix, "v3:reprocess:lease:*").await.is_empty(),
        "the lease is released"
    );

    // Called again: nothing to do, nothing done.
    let second = reprocess(&app, body(json!({}))).await;
    assert_eq!(second["complete"], true, "{second}");
    assert_eq!(
        (second["processed"].as_u64(), second["failed"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(count(&second, "skipped_by_reason", "current"), 12);
    assert_eq!(count(&second, "skipped_by_reason", "not_image"), 1);
    assert_eq!(count(&second, "skipped_by_reason", "failed_before"), 1);

    // `since` is part of the run: far in the future skips everything, long ago skips what is current.
    let future = reprocess(&app, body(json!({"since": "2999-01-01T00:00:00Z"}))).await;
    assert_eq!(count(&future, "skipped_by_reason", "before_since"), 14, "{future}");
    assert_ne!(future["run"], run.as_str());
    let past = reprocess(&app, body(json!({"since": "2000-01-01T00:00:00+09:00"}))).await;
    assert_eq!(
        (count(&past, "skipped_by_reason", "current"), past["processed"].as_u64()),
        (12, Some(0))
    );

    // A photo replaced by new bytes is a new generation: only it is processed.
    std::thread::sleep(Duration::from_millis(5));
    std::fs::write(album.join("p05.png"), photo(99)).unwrap();
    let changed = reprocess(&app, body(json!({}))).await;
    assert_eq!(
        (
            changed["processed"].as_u64(),
            count(&changed, "skipped_by_reason", "current")
        ),
        (Some(1), 11)
    );
}

#[tokio::test]
async fn a_walk_over_fake_gcs_server_processes_what_is_new() {
    let (app, _prefix) = app_with_redis(&[("STORAGE_EMULATOR_HOST", &storage_emulator())]).await;
    let store = GcsStore::emulator(&storage_emulator(), None).await.unwrap();
    let album = format!("tests/reprocess-{}/", uuid::Uuid::new_v4());
    for i in 0..5 {
        store
            .put(
                &uploads(),
                &format!("{album}{i}.png"),
                Bytes::from(photo(100 + i)),
                "image/png",
            )
            .await
            .unwrap();
    }
    store
        .put(
            &uploads(),
            &format!("{album}readme"),
            Bytes::from_static(b"hello"),
            "text/plain",
        )
        .await
        .unwrap();
    let body = json!({"bucket": "uploads", "prefix": album, "page_size": 2});
    let first = reprocess(&app, body.clone()).await;
    assert_eq!(first["complete"], true, "{first}");
    assert_eq!(
        (first["processed"].as_u64(), first["pages"].as_u64()),
        (Some(5), Some(3))
    );
    assert_eq!(count(&first, "skipped_by_reason", "not_image"), 1);
    let second = reprocess(&app, body).await;
    assert_eq!(
        (
            second["processed"].as_u64(),
            count(&second, "skipped_by_reason", "current")
        ),
        (Some(0), 5)
    );
}

fn pairs<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

#[tokio::test]
async fn an_analysis_function_reprocesses_its_step_with_the_embedding_services_features() {
    // Cloud Run's shape: the quality function has no image encoder and asks the embedding
    // function for missing features; both share the data folder and Redis.
    let prefix = unique_prefix();
    let data = tempfile::tempdir().unwrap();
    let (models, ort, redis) = (
        models_dir().display().to_string(),
        required_env("ORT_DYLIB_PATH"),
        redis_url(),
    );
    let data_dir = data.path().display().to_string();
    let common = |cache_prefix: &str, embedding_url: Option<&str>| {
        let mut v = vec![
            ("ONGI_MODEL_DIR", models.clone()),
            ("ORT_DYLIB_PATH", ort.clone()),
            ("REDIS_URL", redis.clone()),
            ("ONGI_CACHE_PREFIX", cache_prefix.to_owned()),
            ("ONGI_DATA_DIR", data_dir.clone()),
        ];
        if let Some(url) = embedding_url {
            v.push(("EMBEDDING_URL", url.to_owned()));
        }
        v
    };
    let embedding = spawn_app(Functions::only(Function::Embedding), &pairs(&common(&prefix, None))).await;
    let quality_settings = common(&prefix, Some(&embedding.url("")));
    let quality = spawn_app(Functions::only(Function::Quality), &pairs(&quality_settings)).await;
    let album = data.path().join("uploads/cr");
    std::fs::create_dir_all(&album).unwrap();
    for i in 0..3 {
        std::fs::write(album.join(format!("{i}.png")), photo(200 + i)).unwrap();
    }
    let body = json!({"bucket": "uploads", "prefix": "cr/"});

    // Without the embedding service the call stops with a 503, and its cursor stays put.
    let orphan_prefix = unique_prefix();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let orphan = spawn_app(
        Functions::only(Function::Quality),
        &pairs(&common(&orphan_prefix, Some(&dead))),
    )
    .await;
    let resp = orphan.post_json("/batch/reprocess", &body).await;
    assert_eq!(resp.status(), 503);
    let answer: Value = resp.json().await.unwrap();
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("embedding_unavailable") && error.contains("resumes"),
        "{answer}"
    );
    assert!(redis_keys(&orphan_prefix, "v3:reprocess:cursor:*").await.is_empty());
    assert!(
        redis_keys(&orphan_prefix, "v3:failed:*").await.is_empty(),
        "an outage is not the photo's fault"
    );

    let report = reprocess(&quality, body.clone()).await;
    assert_eq!(report["steps"], json!(["quality"]), "{report}");
    assert_eq!(
        (report["processed"].as_u64(), report["complete"].as_bool()),
        (Some(3), Some(true))
    );
    let model = report["model"].as_str().unwrap();
    assert!(model.starts_with("clip-vit-b32@"), "{model}");
    // The features are the embedding function's: CLIP records, with their embeddings.
    let features = redis_keys(&prefix, &format!("v3:feat:{model}:*")).await;
    assert_eq!(features.len(), 3);
    for key in &features {
        let record = FeatureRecord::decode(&redis_get_bytes(key).await.unwrap()).unwrap();
        assert!(record.embedding.is_some(), "{key} has no embedding");
    }
    assert_eq!(
        redis_keys(&prefix, &format!("v3:result:quality:{model}:*")).await.len(),
        3
    );
    let again = reprocess(&quality, body).await;
    assert_eq!(count(&again, "skipped_by_reason", "current"), 3, "{again}");
}

#[tokio::test]
async fn the_embedding_functions_walk_announces_each_photo_on_ongi_features() {
    const PROJECT: &str = "ongi-reprocess";
    let Some(pubsub) = pubsub_emulator(PROJECT) else {
        return;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("features-{id}");
    let sub = format!("pull-{id}");
    pubsub.put(&format!("topics/{topic}"), json!({})).await;
    pubsub
        .put(&format!("subscriptions/{sub}"), json!({"topic": pubsub.topic(&topic)}))
        .await;
    // Pulls what is there now, acknowledged.
    let pull = || async {
        let mut messages = Vec::new();
        for _ in 0..10 {
            let batch = pubsub
                .pull(&sub, json!({"maxMessages": 100, "returnImmediately": true}))
                .await;
            if batch.is_empty() && !messages.is_empty() {
                break;
            }
            if !batch.is_empty() {
                pubsub.acknowledge(&sub, &batch).await;
            }
            messages.extend(batch.iter().map(message_data::<Value>));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        messages
    };

    let prefix = unique_prefix();
    let redis = redis_url();
    let app = spawn_app(
        Functions::only(Function::Embedding),
        &[
            ("REDIS_URL", &redis),
            ("ONGI_CACHE_PREFIX", &prefix),
            ("PUBSUB_EMULATOR_HOST", &pubsub.host),
            ("GOOGLE_CLOUD_PROJECT", PROJECT),
            ("ONGI_FEATURES_TOPIC", &topic),
        ],
    )
    .await;
    let album = app.data_dir().join("uploads/e");
    std::fs::create_dir_all(&album).unwrap();
    for i in 0..3 {
        std::fs::write(album.join(format!("{i}.png")), photo(300 + i)).unwrap();
    }
    let body = json!({"bucket": "uploads", "prefix": "e/"});
    let report = reprocess(&app, body.clone()).await;
    assert_eq!(
        (report["processed"].as_u64(), report["steps"].clone()),
        (Some(3), json!(["embedding"]))
    );
    let mut objects: Vec<String> = pull()
        .await
        .iter()
        .inspect(|m| assert_eq!(m["schema"], "ongi.features.v1", "{m}"))
        .map(|m| m["object"].as_str().unwrap().to_owned())
        .collect();
    objects.sort();
    assert_eq!(
        objects,
        ["e/0.png", "e/1.png", "e/2.png"],
        "one ongi-features message per photo"
    );
    // Current: the second walk announces nothing.
    let again = reprocess(&app, body).await;
    assert_eq!(count(&again, "skipped_by_reason", "current"), 3, "{again}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pulled = pubsub
        .pull(&sub, json!({"maxMessages": 100, "returnImmediately": true}))
        .await;
    assert!(pulled.is_empty(), "{pulled:?}");
}

#[tokio::test]
async fn an_overlapping_call_is_told_to_come_back() {
    let (app, prefix) = app_with_redis(&[]).await;
    std::fs::create_dir_all(app.data_dir().join("uploads/x")).unwrap();
    let body = json!({"bucket": "uploads", "prefix": "x/"});
    let dry = reprocess(&app, json!({"bucket": "uploads", "prefix": "x/", "dry_run": true})).await;
    // Another call holds the run's lease.
    let lease = format!("{prefix}v3:reprocess:lease:{}", dry["run"].as_str().unwrap());
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg(&lease)
        .arg("someone-else")
        .arg("PX")
        .arg(60_000)
        .query_async::<()>(&mut con)
        .await
        .unwrap();
    let busy = app.post_json("/batch/reprocess", &body).await;
    assert_eq!(busy.status(), 429);
    assert!(busy.headers().contains_key("retry-after"));
    let answer: Value = busy.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("another call"), "{answer}");
    assert_eq!(
        redis_get(&lease).await.as_deref(),
        Some("someone-else"),
        "not ours to release"
    );
    // A dry run needs no lease.
    reprocess(&app, json!({"bucket": "uploads", "prefix": "x/", "dry_run": true})).await;
}

async fn expect_400(app: &TestApp, body: Value, naming: &str) {
    let resp = app.post_json("/batch/reprocess", &body).await;
    let status = resp.status();
    let answer: Value = resp.json().await.unwrap();
    assert_eq!(status, 400, "{body} -> {answer}");
    assert_eq!(answer["message"], "invalid_request");
    let error = answer["error"].as_str().unwrap();
    assert!(error.contains(naming), "{body}: {error:?} should name {naming:?}");
}

#[tokio::test]
async fn bad_requests_name_what_is_wrong() {
    let app = spawn_app(Functions::all(), &[]).await;
    let ok = |extra: Value| {
        let mut b = json!({"bucket": "uploads", "prefix": ""});
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    expect_400(&app, json!({"bucket": "uploads"}), "prefix").await;
    expect_400(&app, ok(json!({"dryrun": true})), "unknown field `dryrun`").await;
    expect_400(&app, ok(json!({"bucket": "Not A Bucket"})), "bucket \"Not A Bucket\"").await;
    expect_400(&app, ok(json!({"bucket": "results"})), "is not served here").await;
    expect_400(&app, ok(json!({"prefix": "../up"})), "prefix").await;
    expect_400(&app, ok(json!({"since": "1764547200"})), "since").await;
    expect_400(&app, ok(json!({"since": "last week"})), "since").await;
    expect_400(&app, ok(json!({"steps": ["faces"]})), "\"faces\" is not a step").await;
    expect_400(&app, ok(json!({"steps": []})), "steps is empty").await;
    expect_400(&app, ok(json!({"budget_secs": 0})), "budget_secs").await;
    expect_400(&app, ok(json!({"page_size": 0})), "page_size").await;
    expect_400(&app, ok(json!({"max_pages": 0})), "max_pages").await;
    // Served, but the model is missing: a retry after deployment may work.
    let score = app
        .post_json("/batch/reprocess", &ok(json!({"steps": ["score"]})))
        .await;
    assert_eq!(score.status(), 503);
    let answer: Value = score.json().await.unwrap();
    assert!(answer["error"].as_str().unwrap().contains("aesthetic head"), "{answer}");
    // The uploads folder does not exist yet in this fresh data folder.
    let missing = app.post_json("/batch/reprocess", &ok(json!({}))).await;
    assert_eq!(missing.status(), 404);

    let quality = spawn_app(Functions::only(Function::Quality), &[]).await;
    expect_400(
        &quality,
        ok(json!({"steps": ["embedding"]})),
        "not served by this process (quality)",
    )
    .await;
    let duplicate = spawn_app(Functions::only(Function::Duplicate), &[]).await;
    expect_400(&duplicate, ok(json!({})), "serves no step").await;
}
