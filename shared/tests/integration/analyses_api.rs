//! The album analyses through the real application (`ongi serve`'s functions, the tiny models,
//! Redis): the anchor's request and response shapes, per-photo errors, and the detail views.
//! The tiny CLIP has random weights, so these tests check structure and the pixel-based
//! decisions (blur, exposure, pHash duplicates), not what CLIP thinks a photo shows.

use std::collections::HashSet;
use std::path::Path;

use ongi_shared::functions::Functions;
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::support::{TestApp, redis_url, required_env, spawn_app, unique_prefix};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)).unwrap()
}

pub fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// An album: a sharp photo, its blurred copy, an exact copy, three distinct photos (two of
/// them smooth synthetic images, which the Laplacian test calls blurry), a black frame, and
/// an unreadable file.
async fn album_app() -> TestApp {
    let app = spawn_app(
        Functions::all(),
        &[
            ("ONGI_MODEL_DIR", &models_dir().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &unique_prefix()),
            // Random tiny CLIP: keep its quality opinions out of these tests.
            ("ONGI_QUALITY_CLIP_PROBABILITY", "0"),
            // …and its similarity opinions out of the duplicate tiers (unit-tested instead).
            ("ONGI_DUPLICATE_COSINE", "2"),
        ],
    )
    .await;
    let dir = app.data_dir().join("uploads/a");
    std::fs::create_dir_all(&dir).unwrap();
    let sharp = fixture("pixel/photo_1000x750.png");
    std::fs::write(dir.join("sharp.png"), &sharp).unwrap();
    std::fs::write(dir.join("sharp-copy.png"), &sharp).unwrap();
    // A strong Gaussian blur of the same photo: still a near duplicate by pHash, and blurry.
    let decoded = image::load_from_memory(&sharp).unwrap().to_rgb8();
    std::fs::write(dir.join("blurred.png"), png(&image::imageops::blur(&decoded, 6.0))).unwrap();
    std::fs::write(dir.join("ref0.png"), fixture("models/ref_images/ref_0.png")).unwrap();
    std::fs::write(dir.join("ref1.png"), fixture("models/ref_images/ref_1.png")).unwrap();
    std::fs::write(dir.join("rings.png"), fixture("pixel/rings_900x675.png")).unwrap();
    std::fs::write(dir.join("black.png"), png(&image::RgbImage::new(400, 300))).unwrap();
    std::fs::write(dir.join("broken.jpg"), b"not a photo").unwrap();
    app
}

const ALBUM: [&str; 8] = [
    "a/sharp.png",
    "a/sharp-copy.png",
    "a/blurred.png",
    "a/ref0.png",
    "a/ref1.png",
    "a/rings.png",
    "a/black.png",
    "a/broken.jpg",
];

fn invalid(body: &Value) -> Vec<(String, String)> {
    body["invalid_images"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    (
                        i["image"].as_str().unwrap().to_owned(),
                        i["reason"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn quality_names_blurry_and_dark_photos_with_reasons() {
    let app = album_app().await;
    let resp = app.post_json("/api/albums/quality", &json!({"images": ALBUM})).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let low: HashSet<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(low.contains("a/blurred.png") && low.contains("a/black.png"), "{body}");
    assert!(!low.contains("a/sharp.png") && !low.contains("a/ref1.png"), "{body}");
    assert_eq!(invalid(&body), vec![("a/broken.jpg".into(), "corrupt".into())]);

    let detail: Value = app
        .post_json("/api/albums/quality?detail=true", &json!({"images": ALBUM}))
        .await
        .json()
        .await
        .unwrap();
    let rows = detail["data"].as_array().unwrap();
    assert_eq!(rows.len(), 7);
    let row = |name: &str| rows.iter().find(|r| r["image"] == name).unwrap().clone();
    assert_eq!(row("a/blurred.png")["reasons"], json!(["blurry"]));
    assert!(
        row("a/black.png")["reasons"]
            .as_array()
            .unwrap()
            .contains(&json!("underexposed"))
    );
    assert_eq!(row("a/sharp.png")["low_quality"], false);
    let m = &row("a/sharp.png")["metrics"];
    assert!(m["blur_variance"].as_f64().unwrap() > 1000.0, "{m}");
    assert!(m["p_sharp"].as_f64().is_some(), "CLIP probabilities are reported: {m}");
}

#[tokio::test]
async fn duplicates_group_around_the_best_photo() {
    let app = album_app().await;
    let body: Value = app
        .post_json("/api/albums/duplicates", &json!({"images": ALBUM}))
        .await
        .json()
        .await
        .unwrap();
    let groups = body["data"].as_array().unwrap();
    let group = groups
        .iter()
        .find(|g| g.as_array().unwrap().contains(&json!("a/sharp.png")))
        .expect("the sharp photo is in a group");
    let members: HashSet<&str> = group.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(
        members,
        HashSet::from(["a/sharp.png", "a/sharp-copy.png", "a/blurred.png"]),
        "{body}"
    );
    assert_ne!(
        group[0], "a/blurred.png",
        "the keeper comes first and is not the blurred copy"
    );
    assert!(
        groups
            .iter()
            .all(|g| !g.as_array().unwrap().contains(&json!("a/ref0.png")))
    );

    let detail: Value = app
        .post_json("/api/albums/duplicates?detail=true", &json!({"images": ALBUM}))
        .await
        .json()
        .await
        .unwrap();
    let g = detail["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| {
            g["duplicates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["image"] == "a/blurred.png")
        })
        .unwrap()
        .clone();
    let tier_of = |name: &str| {
        g["duplicates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["image"] == name)
            .map(|d| d["tier"].clone())
    };
    assert!(g["keeper"] == "a/sharp.png" || g["keeper"] == "a/sharp-copy.png", "{g}");
    let copy = if g["keeper"] == "a/sharp.png" {
        "a/sharp-copy.png"
    } else {
        "a/sharp.png"
    };
    assert_eq!(tier_of(copy), Some(json!("exact")));
    assert_eq!(tier_of("a/blurred.png"), Some(json!("near")));
}

#[tokio::test]
async fn categories_and_scores_answer_the_anchor_shapes() {
    let app = album_app().await;
    let images: Vec<&str> = ALBUM.to_vec();
    let body: Value = app
        .post_json(
            "/api/albums/categories",
            &json!({"images": images, "concepts": ["여행", "우주 탐사"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let groups = body["data"].as_array().unwrap();
    let mut seen = Vec::new();
    for g in groups {
        let name = g["category"].as_str().unwrap();
        assert!(!name.is_empty() && name.chars().count() <= 20, "{name}");
        seen.extend(
            g["images"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned()),
        );
    }
    seen.sort();
    let mut want: Vec<String> = ALBUM[..7].iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(seen, want, "every readable photo in exactly one category: {body}");
    assert_eq!(invalid(&body), vec![("a/broken.jpg".into(), "corrupt".into())]);

    let request = json!({"categories": [
        {"category": "여행", "images": ["a/sharp.png", "a/blurred.png", "a/sharp-copy.png", "a/ref0.png"]},
        {"category": "기타", "images": ["a/rings.png", "a/broken.jpg"]}
    ]});
    let scored: Value = app.post_json("/api/albums/score", &request).await.json().await.unwrap();
    let cats = scored["data"].as_array().unwrap();
    assert_eq!(cats[0]["category"], "여행");
    let names: Vec<&str> = cats[0]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["a/sharp.png", "a/blurred.png", "a/sharp-copy.png", "a/ref0.png"],
        "input order"
    );
    assert!(cats[0]["images"][0]["score"].as_f64().unwrap().is_finite());
    assert_eq!(
        cats[0]["images"][0]["score"], cats[0]["images"][2]["score"],
        "the same bytes, the same score"
    );
    assert!(cats[0].get("highlights").is_none(), "highlights only with detail=true");

    let detail: Value = app
        .post_json("/api/albums/score?detail=true", &request)
        .await
        .json()
        .await
        .unwrap();
    let highlights: Vec<&str> = detail["data"][0]["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !highlights.contains(&"a/blurred.png"),
        "low quality is no highlight: {highlights:?}"
    );
    let copies = highlights.iter().filter(|h| h.starts_with("a/sharp")).count();
    assert_eq!(copies, 1, "one photo of a duplicate group, its keeper: {highlights:?}");
}

#[tokio::test]
async fn per_photo_steps_store_results_from_the_features_message() {
    let prefix = unique_prefix();
    let app = spawn_app(
        Functions::all(),
        &[
            ("ONGI_MODEL_DIR", &models_dir().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &prefix),
        ],
    )
    .await;
    let dir = app.data_dir().join("uploads");
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = fixture("pixel/photo_1000x750.png");
    std::fs::write(dir.join("p.png"), &bytes).unwrap();
    let summary: Value = app
        .post_json("/api/albums/embedding", &json!({"images": ["p.png"]}))
        .await
        .json()
        .await
        .unwrap();
    let model = summary["data"]["model"].as_str().unwrap().to_owned();
    let hash = ongi_shared::domain::ContentHash::of(&bytes);
    let message = json!({"schema": "ongi.features.v1", "bucket": "uploads", "object": "p.png", "generation": 1,
        "content_hash": hash.to_hex(), "model": model, "computed": true});
    let data = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, message.to_string());
    let push = json!({"message": {"data": data, "messageId": "1"}, "subscription": "s"});
    let resp = app.post_json("/events/features", &push).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let results = &body["results"];
    assert!(results["category"]["tags"].is_array(), "{body}");
    assert!(results["quality"]["low_quality"].is_boolean(), "{body}");
    assert!(results["score"]["score"].as_f64().is_some(), "{body}");
    // Stored beside the features.
    let ks = ongi_shared::cache::Keyspace::new(prefix);
    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let stored: Option<String> = redis::cmd("GET")
        .arg(ks.result("quality", &model, &hash).as_str())
        .query_async(&mut con)
        .await
        .unwrap();
    let stored: Value = serde_json::from_str(&stored.expect("stored")).unwrap();
    assert_eq!(stored, results["quality"]);

    // A malformed message is acknowledged (no retry can fix it), saying why, and counted.
    for junk in [
        json!({"message": {"data": "!!"}}),
        json!({"not": "a push"}),
        json!({"message": {"data": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "{\"schema\": \"other\"}")}}),
    ] {
        let bad = app.post_json("/events/features", &junk).await;
        assert_eq!(bad.status(), 200, "{junk}");
        let body: Value = bad.json().await.unwrap();
        assert_eq!(body["status"], "rejected", "{body}");
        assert!(body["reason"].as_str().is_some_and(|r| !r.is_empty()), "{body}");
    }
    let metrics = reqwest::get(app.url("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"ongi_events_total{route="features",outcome="malformed"}"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_analysis_function_computes_missing_features_through_the_embedding_service() {
    // Cloud Run's shape: the embedding function, and a quality function that has no image
    // encoder of its own and asks the embedding function for what the cache lacks.
    let prefix = unique_prefix();
    let shared_data = tempfile::tempdir().unwrap();
    let data = shared_data.path().display().to_string();
    let common = |extra: &[(&'static str, String)]| {
        let mut v: Vec<(&'static str, String)> = vec![
            ("ONGI_MODEL_DIR", models_dir().display().to_string()),
            ("ORT_DYLIB_PATH", required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", redis_url()),
            ("ONGI_CACHE_PREFIX", prefix.clone()),
            ("ONGI_DATA_DIR", data.clone()),
        ];
        v.extend_from_slice(extra);
        v
    };
    let embedding_settings = common(&[]);
    let embedding = spawn_app(
        Functions::only(ongi_shared::functions::Function::Embedding),
        &embedding_settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    let quality_settings = common(&[("EMBEDDING_URL", embedding.url(""))]);
    let quality = spawn_app(
        Functions::only(ongi_shared::functions::Function::Quality),
        &quality_settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    std::fs::create_dir_all(shared_data.path().join("uploads")).unwrap();
    std::fs::write(
        shared_data.path().join("uploads/black.png"),
        png(&image::RgbImage::new(300, 200)),
    )
    .unwrap();
    std::fs::write(shared_data.path().join("uploads/broken.jpg"), b"nope").unwrap();
    let body: Value = quality
        .post_json("/api/albums/quality", &json!({"images": ["black.png", "broken.jpg"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"], json!(["black.png"]), "{body}");
    assert_eq!(invalid(&body), vec![("broken.jpg".into(), "corrupt".into())]);
    // Without the embedding service, the same call is a clear 503, not a local computation.
    let dead = format!("http://127.0.0.1:{}", crate::support::free_port());
    let orphan_settings = common(&[("EMBEDDING_URL", dead), ("ONGI_CACHE_PREFIX", unique_prefix())]);
    let orphan = spawn_app(
        Functions::only(ongi_shared::functions::Function::Quality),
        &orphan_settings
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
            .collect::<Vec<_>>(),
    )
    .await;
    let resp = orphan
        .post_json("/api/albums/quality", &json!({"images": ["black.png"]}))
        .await;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("embedding_unavailable"),
        "{body}"
    );
}

/// Callers' concepts are any strings: their text embeddings must neither grow the process
/// without bound nor fill Redis for a month. 300 made-up concepts (2,400 prompts, more than
/// the in-process memo keeps), then every key the calls wrote is checked for its TTL.
#[tokio::test]
async fn callers_concepts_are_bounded_in_memory_and_short_lived_in_redis() {
    use std::sync::Arc;
    use std::time::Duration;

    use ongi_shared::cache::redis::RedisCache;
    use ongi_shared::cache::{Cache, Keyspace};
    use ongi_shared::config::AnalysisSettings;
    use ongi_shared::model::Models;
    use ongi_shared::pipeline::analysis_models::{AnalysisModels, CONCEPT_MEMO_CAP};

    let ort = required_env("ORT_DYLIB_PATH");
    let models = Arc::new(Models::load(&models_dir(), Some(Path::new(&ort)), false));
    assert!(models.clip_textual.is_some(), "{:?}", models.missing);
    let prefix = unique_prefix();
    let month = Duration::from_secs(30 * 24 * 3600);
    let cache = Cache::new(
        Arc::new(RedisCache::new(&redis_url()).unwrap()),
        Keyspace::new(prefix.clone()),
        month,
    );
    // A byte budget for callers' texts large enough to write every concept prompt, so that
    // each one's TTL can be checked (the budget itself: `search_api`).
    let settings = AnalysisSettings {
        caller_text_bytes_per_min: 64 << 20,
        ..AnalysisSettings::default()
    };
    let analysis_models = AnalysisModels::new(models, cache, settings);

    analysis_models.category_tags(&[]).await.unwrap();
    let fixed = analysis_models.text_memo_len();
    assert!(fixed > 100, "the taxonomy's prompts are remembered: {fixed}");
    let run = uuid::Uuid::new_v4();
    let first: Vec<String> = (0..100).map(|i| format!("made-up concept 0-{i} {run}")).collect();
    let first_tags = analysis_models.category_tags(&first).await.unwrap();
    for call in 1..3 {
        let concepts: Vec<String> = (0..100).map(|i| format!("made-up concept {call}-{i} {run}")).collect();
        analysis_models.category_tags(&concepts).await.unwrap();
        let held = analysis_models.text_memo_len();
        assert!(
            held <= fixed + CONCEPT_MEMO_CAP,
            "call {call}: {held} text embeddings held, the cap is {fixed} fixed + {CONCEPT_MEMO_CAP}"
        );
    }
    // The first call's concepts have left the memo; asking again gives the same vectors.
    let again = analysis_models.category_tags(&first).await.unwrap();
    let photo = vec![0.03f32; 512];
    assert_eq!(
        first_tags.assign(&[photo.as_slice()]),
        again.assign(&[photo.as_slice()]),
        "an evicted concept is read back (or recomputed), never lost"
    );

    let client = redis::Client::open(redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    let (mut long, mut short) = (0usize, 0usize);
    for key in &keys {
        let pttl: i64 = redis::cmd("PTTL").arg(key).query_async(&mut con).await.unwrap();
        assert!(pttl > 0, "{key} has no time to live ({pttl})");
        if pttl > 86_400_000 {
            long += 1;
        } else {
            short += 1;
        }
    }
    println!(
        "{} keys: {long} with the features' TTL (the taxonomy), {short} short-lived (concepts)",
        keys.len()
    );
    assert_eq!(long, fixed, "only the taxonomy's own prompts keep the long TTL");
    assert!(short >= 300 * 8, "every concept prompt is short-lived: {short}");
}

#[tokio::test]
async fn without_the_aesthetic_head_score_says_what_is_missing_and_the_rest_still_works() {
    // A model folder may lack the head (one assembled by hand, a start-up with --no-fetch or
    // offline). Then the score route names the missing file, and the other analyses are
    // unaffected.
    let models = tempfile::tempdir().unwrap();
    for file in ["clip-vit-b32-visual.onnx", "clip-vit-b32-textual.onnx"] {
        std::os::unix::fs::symlink(models_dir().join(file), models.path().join(file)).unwrap();
    }
    let app = spawn_app(
        Functions::all(),
        &[
            ("ONGI_MODEL_DIR", &models.path().display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &unique_prefix()),
        ],
    )
    .await;
    let dir = app.data_dir().join("uploads/a");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("sharp.png"), fixture("pixel/photo_1000x750.png")).unwrap();

    let scored = app
        .post_json(
            "/api/albums/score?detail=true",
            &json!({"categories": [{"category": "trip", "images": ["a/sharp.png"]}]}),
        )
        .await;
    assert_eq!(scored.status(), 503);
    let body: Value = scored.json().await.unwrap();
    let message = body["message"].as_str().unwrap_or_default().to_owned() + body["error"].as_str().unwrap_or_default();
    assert!(
        message.contains("aesthetic-vit-b32-linear.safetensors") && message.contains("without the aesthetic head"),
        "{body}"
    );

    let ready: Value = reqwest::get(app.url("/readyz")).await.unwrap().json().await.unwrap();
    let missing = ready["models"]["missing"].to_string();
    assert!(missing.contains("aesthetic-vit-b32-linear.safetensors"), "{ready}");

    let quality = app
        .post_json("/api/albums/quality", &json!({"images": ["a/sharp.png"]}))
        .await;
    assert_eq!(quality.status(), 201);
    let categories = app
        .post_json(
            "/api/albums/categories",
            &json!({"images": ["a/sharp.png"], "concepts": []}),
        )
        .await;
    assert_eq!(categories.status(), 201);
}
