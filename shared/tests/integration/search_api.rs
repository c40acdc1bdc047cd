//! The vectors and search by text, through the real application with the tiny CLIP models
//! and real Redis: `?include=embedding` on the embedding route, `POST /api/text/embedding`,
//! `POST /api/albums/search`, and concurrent calls for the same new photos computing each
//! photo once.

use std::path::Path;

use base64::Engine;
use ongi_shared::model::clip::{ClipTextual, TEXTUAL_FILE};
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::embedding_api::embedding_app;
use crate::support::{TestApp, ort_env, session_config, unique_prefix};

const PHOTOS: [&str; 7] = [
    "images/baseline.jpg",
    "images/large.jpg",
    "images/progressive.jpg",
    "images/cmyk.jpg",
    "images/gray8.png",
    "models/ref_images/ref_0.png",
    "models/ref_images/ref_1.png",
];

/// Writes the fixture photos into the uploads bucket as `album/0.jpg`, …; returns their names.
fn upload(app: &TestApp) -> Vec<String> {
    let dir = app.data_dir().join("uploads/album");
    std::fs::create_dir_all(&dir).unwrap();
    PHOTOS
        .iter()
        .enumerate()
        .map(|(i, rel)| {
            let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel);
            let ext = Path::new(rel).extension().unwrap().to_str().unwrap();
            let name = format!("album/{i}.{ext}");
            std::fs::copy(from, app.data_dir().join("uploads").join(&name)).unwrap();
            name
        })
        .collect()
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap_or_else(|| panic!("an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn assert_unit(v: &[f32]) {
    assert_eq!(v.len(), 512);
    assert!((dot(v, v) - 1.0).abs() < 1e-4, "not unit length: {}", dot(v, v));
}

/// Every readable photo's embedding, as `?include=embedding` answers it.
async fn vectors_of(app: &TestApp, images: &[String]) -> Vec<(String, Vec<f32>)> {
    let (_, vectors) = post(
        app,
        "/api/albums/embedding?include=embedding",
        json!({ "images": images }),
    )
    .await;
    vectors["data"]["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["image"].as_str().unwrap().to_owned(), floats(&e["embedding"])))
        .collect()
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let resp = app.post_json(path, &body).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn embeddings_are_returned_on_request_in_json_or_base64() {
    let app = embedding_app(&unique_prefix()).await;
    let mut images = upload(&app);
    images.push("album/missing.jpg".into());

    let (status, plain) = post(&app, "/api/albums/embedding", json!({ "images": images })).await;
    assert_eq!(status, 201, "{plain}");
    assert!(
        plain["data"].get("embeddings").is_none(),
        "counts only by default: {plain}"
    );

    let (status, body) = post(
        &app,
        "/api/albums/embedding?include=embedding",
        json!({ "images": images }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let listed = body["data"]["embeddings"].as_array().unwrap();
    let names: Vec<&str> = listed.iter().map(|e| e["image"].as_str().unwrap()).collect();
    assert_eq!(names, images[..PHOTOS.len()], "readable photos, in order");
    assert_eq!(body["invalid_images"][0]["image"], "album/missing.jpg");
    // Each vector is the one the features service holds for the photo.
    let refs: Vec<_> = images[..PHOTOS.len()]
        .iter()
        .map(|n| ongi_shared::domain::ImageRef::parse(n).unwrap())
        .collect();
    let held = app.state.features.album(&refs).await;
    for (entry, features) in listed.iter().zip(&held) {
        let vector = floats(&entry["embedding"]);
        assert_unit(&vector);
        let expected = features.as_ref().unwrap().record.embedding.clone().unwrap();
        assert_eq!(vector, expected, "{}", entry["image"]);
    }

    let (status, b64) = post(
        &app,
        "/api/albums/embedding?include=embedding&encoding=base64",
        json!({ "images": images }),
    )
    .await;
    assert_eq!(status, 201, "{b64}");
    for (a, b) in listed.iter().zip(b64["data"]["embeddings"].as_array().unwrap()) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b["embedding"].as_str().unwrap())
            .unwrap();
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(decoded, floats(&a["embedding"]));
    }

    for bad in ["include=vectors", "include=embedding&encoding=hex"] {
        let (status, err) = post(
            &app,
            &format!("/api/albums/embedding?{bad}"),
            json!({ "images": images }),
        )
        .await;
        assert_eq!(status, 400, "{bad}: {err}");
        assert_eq!(err["message"], "invalid_request", "{err}");
    }
}

#[tokio::test]
async fn text_embeddings_are_the_text_encoders_normalised_and_bad_texts_are_named() {
    let app = embedding_app(&unique_prefix()).await;
    let texts = ["a photo of a dog", "a beach at sunset"];
    let (status, body) = post(&app, "/api/text/embedding", json!({ "texts": texts })).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["data"]["model"].as_str().unwrap().starts_with("clip-vit-b32@"));
    let encoder = ClipTextual::load(ort_env(), &models_dir().join(TEXTUAL_FILE), session_config()).unwrap();
    let mut expected = encoder.embed(&texts).unwrap();
    for (entry, (text, want)) in body["data"]["embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .zip(texts.iter().zip(&mut expected))
    {
        assert_eq!(entry["text"], *text);
        ongi_shared::model::clip::l2_normalize(want);
        let got = floats(&entry["embedding"]);
        assert_unit(&got);
        assert!(got.iter().zip(want.iter()).all(|(a, b)| (a - b).abs() < 1e-5), "{text}");
    }

    let too_many: Vec<String> = (0..65).map(|i| format!("text {i}")).collect();
    for (body, named) in [
        (json!({ "texts": [] }), "texts has 0"),
        (json!({ "texts": too_many }), "texts has 65"),
        (json!({ "texts": ["ok", "  "] }), "texts[1]"),
        (json!({ "texts": ["a\u{0}b"] }), "control character"),
        (json!({ "texts": ["x".repeat(1001)] }), "longer than 1000"),
        (json!({ "text": ["a"] }), "unknown field"),
    ] {
        let (status, err) = post(&app, "/api/text/embedding", body).await;
        assert_eq!(status, 400, "{err}");
        let message = err["error"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
}

#[tokio::test]
async fn search_ranks_the_album_by_similarity_to_the_query() {
    let app = embedding_app(&unique_prefix()).await;
    let mut images = upload(&app);
    images.push("album/missing.jpg".into());
    let photo_vectors = vectors_of(&app, &images).await;

    let (status, body) = post(
        &app,
        "/api/albums/search",
        json!({ "images": images, "query": "반려묘 on a sofa", "limit": 5 }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    assert_eq!(
        data["query"]["english"], "pet cat on a sofa",
        "the taxonomy's name: {data}"
    );
    assert_eq!(data["query"]["translated"][0]["korean"], "반려묘");
    assert_eq!(body["invalid_images"][0]["image"], "album/missing.jpg");

    // The ranking, recomputed here: the query vector is the normalised mean of the prompt
    // embeddings (the taxonomy's templates around the English query).
    let templates = &ongi_shared::analysis::taxonomy::Taxonomy::builtin().prompt_templates;
    let prompts: Vec<String> = templates.iter().map(|t| t.replace("{}", "pet cat on a sofa")).collect();
    let (_, texts) = post(&app, "/api/text/embedding", json!({ "texts": prompts })).await;
    let mut query = vec![0f32; 512];
    for e in texts["data"]["embeddings"].as_array().unwrap() {
        query.iter_mut().zip(floats(&e["embedding"])).for_each(|(q, x)| *q += x);
    }
    let norm = dot(&query, &query).sqrt();
    query.iter_mut().for_each(|q| *q /= norm);
    let mut expected: Vec<(String, f32)> = photo_vectors.iter().map(|(n, v)| (n.clone(), dot(v, &query))).collect();
    expected.sort_by(|a, b| b.1.total_cmp(&a.1));
    let results = data["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "the limit");
    for (hit, (name, similarity)) in results.iter().zip(&expected) {
        assert_eq!(hit["image"], name.as_str());
        assert!((hit["similarity"].as_f64().unwrap() as f32 - similarity).abs() < 1e-4);
    }

    for (body, named) in [
        (json!({ "images": images, "query": "우주선" }), "우주선"),
        (json!({ "images": images, "query": " " }), "query"),
        (json!({ "images": images, "query": "cat", "limit": 0 }), "limit is 0"),
        (json!({ "images": [], "query": "cat" }), "images is empty"),
    ] {
        let (status, err) = post(&app, "/api/albums/search", body).await;
        assert_eq!(status, 400, "{err}");
        let message = err["error"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
}

#[tokio::test]
async fn similar_ranks_the_album_by_likeness_to_one_of_its_photos() {
    let app = embedding_app(&unique_prefix()).await;
    let mut images = upload(&app);
    // The same bytes under another name, and a photo that is not there.
    let uploads = app.data_dir().join("uploads");
    std::fs::copy(uploads.join(&images[0]), uploads.join("album/copy.jpg")).unwrap();
    images.push("album/copy.jpg".into());
    images.push("album/missing.jpg".into());
    let vector_of: std::collections::HashMap<String, Vec<f32>> = vectors_of(&app, &images).await.into_iter().collect();

    // Asked under its gs:// spelling, the photo is still the album's own, and left out.
    let asked = format!("gs://uploads/{}", images[0]);
    let (status, body) = post(
        &app,
        "/api/albums/similar",
        json!({ "images": images, "image": asked, "limit": 4 }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let data = &body["data"];
    assert_eq!(data["image"], asked.as_str());
    assert_eq!(body["invalid_images"][0]["image"], "album/missing.jpg");
    assert_eq!(body["invalid_images"][0]["reason"], "not_found");
    let results = data["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "the limit: {data}");
    assert_eq!(results[0]["image"], "album/copy.jpg", "{data}");
    assert_eq!(results[0]["exact_duplicate"], true);
    assert!((results[0]["similarity"].as_f64().unwrap() - 1.0).abs() < 1e-4);
    assert!(results.iter().all(|h| h["image"] != images[0].as_str()), "never itself");
    assert!(results[1..].iter().all(|h| h["exact_duplicate"] == false));
    // Each similarity, recomputed from the vectors (a re-encode of the same picture, album/2,
    // is as similar as the copy, but not the same bytes, so it comes after it).
    let target = &vector_of[&images[0]];
    for hit in results {
        let expected = dot(&vector_of[hit["image"].as_str().unwrap()], target);
        assert!(
            (hit["similarity"].as_f64().unwrap() as f32 - expected).abs() < 1e-4,
            "{hit}"
        );
    }
    let similarities: Vec<f64> = results.iter().map(|h| h["similarity"].as_f64().unwrap()).collect();
    assert!(
        similarities.windows(2).all(|w| w[0] >= w[1]),
        "best first: {similarities:?}"
    );

    // A photo from outside the album is compared with it all the same.
    let (status, body) = post(
        &app,
        "/api/albums/similar",
        json!({ "images": &images[1..3], "image": images[0], "limit": 5 }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let names: Vec<&str> = body["data"]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["image"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{body}");
    assert!(names.contains(&images[1].as_str()) && names.contains(&images[2].as_str()));

    // The asked-about photo cannot be read: no results, and invalid_images says why.
    let (status, body) = post(
        &app,
        "/api/albums/similar",
        json!({ "images": images, "image": "album/missing.jpg" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["results"], json!([]), "{body}");
    assert_eq!(body["invalid_images"][0]["image"], "album/missing.jpg", "{body}");
    assert_eq!(body["invalid_images"][0]["reason"], "not_found", "{body}");

    for (body, named) in [
        (
            json!({ "images": images, "image": images[1], "limit": 0 }),
            "limit is 0",
        ),
        (json!({ "images": [], "image": "a.jpg" }), "images is empty"),
        (json!({ "images": images, "image": "../a.jpg" }), "image \"../a.jpg\""),
    ] {
        let (status, err) = post(&app, "/api/albums/similar", body).await;
        assert_eq!(status, 400, "{err}");
        let message = err["error"].as_str().unwrap();
        assert!(message.contains(named), "{message}");
    }
}

#[tokio::test]
async fn concurrent_calls_for_the_same_new_photos_compute_each_once() {
    let app = embedding_app(&unique_prefix()).await;
    let images = upload(&app);
    let calls = (0..6).map(|_| post(&app, "/api/albums/embedding", json!({ "images": images })));
    let answers = futures::future::join_all(calls).await;
    let mut computed = 0;
    for (status, body) in &answers {
        assert_eq!(*status, 201, "{body}");
        assert_eq!(
            body["data"]["computed"].as_u64().unwrap() + body["data"]["cached"].as_u64().unwrap(),
            PHOTOS.len() as u64
        );
        computed += body["data"]["computed"].as_u64().unwrap();
    }
    // Six calls at once over the same seven new photos: every photo computed by one call,
    // the others waiting for its result (or finding it cached).
    assert_eq!(computed, PHOTOS.len() as u64, "{answers:?}");
}

/// Keys under `prefix` and the bytes of their names and values.
async fn redis_usage(prefix: &str) -> (usize, usize) {
    let client = redis::Client::open(crate::support::redis_url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut con)
        .await
        .unwrap();
    let mut bytes = 0;
    for key in &keys {
        let value: Vec<u8> = redis::cmd("GET").arg(key).query_async(&mut con).await.unwrap();
        bytes += key.len() + value.len();
    }
    (keys.len(), bytes)
}

#[tokio::test]
async fn callers_texts_add_at_most_their_byte_budget_to_redis() {
    let prefix = unique_prefix();
    let models = models_dir().display().to_string();
    let app = crate::support::spawn_app(
        ongi_shared::functions::Functions::only(ongi_shared::functions::Function::Embedding),
        &[
            ("ONGI_MODEL_DIR", &models),
            ("ORT_DYLIB_PATH", &crate::support::required_env("ORT_DYLIB_PATH")),
            ("REDIS_URL", &crate::support::redis_url()),
            ("ONGI_CACHE_PREFIX", &prefix),
            ("ONGI_TEXT_CACHE_KB_PER_MIN", "16"),
        ],
    )
    .await;
    // 20 calls of 64 distinct texts: 1,280 embeddings of 2 KiB, 2.6 MB had they all been shared.
    for call in 0..20 {
        let texts: Vec<String> = (0..64).map(|i| format!("a flood text {call} {i}")).collect();
        let (status, body) = post(&app, "/api/text/embedding", json!({ "texts": texts })).await;
        assert_eq!(status, 201, "every text is still answered: {body}");
        assert_eq!(body["data"]["embeddings"].as_array().unwrap().len(), 64);
    }
    let (keys, bytes) = redis_usage(&prefix).await;
    // The minute's budget, plus what refilled while the calls ran (well under a minute).
    assert!(keys > 0, "the budget lets some texts be shared");
    assert!(
        bytes <= 2 * 16 * 1024,
        "{keys} keys, {bytes} bytes written by callers' texts"
    );
}
