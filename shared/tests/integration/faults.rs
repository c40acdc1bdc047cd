//! Faults in the storage the photos live in, on the real parts: a fake-gcs-server of the
//! test's own (filesystem backend, so its objects survive a restart), stopped under the
//! running application and started again on the same port. The application must answer a
//! clear 503 with `Retry-After` for what it cannot read, keep answering what its cache
//! holds, say so in `/readyz`, and recover by itself once storage is back.

use std::time::{Duration, Instant};

use bytes::Bytes;
use ongi_shared::domain::BucketName;
use ongi_shared::functions::{Function, Functions};
use ongi_shared::storage::ObjectStore;
use ongi_shared::storage::gcs::GcsStore;
use serde_json::{Value, json};

use crate::analyses_api::png;
use crate::support::{Killed, free_port, spawn_app, start_fake_gcs};

/// A fake-gcs-server on `port` keeping its objects in `root` (bucket `uploads`).
fn start_gcs(port: u16, root: &std::path::Path) -> Killed {
    let root = root.display().to_string();
    start_fake_gcs(
        port,
        &[
            "-backend",
            "filesystem",
            "-filesystem-root",
            &root,
            "-log-level",
            "error",
        ],
        &[],
        Duration::from_secs(20),
    )
}

fn album(prefix: &str) -> Value {
    json!({"images": (0..4).map(|i| format!("{prefix}/{i}.png")).collect::<Vec<_>>()})
}

#[tokio::test]
async fn storage_stopped_and_restarted_gives_clear_503s_then_recovers_by_itself() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap();
    let gcs = start_gcs(port, root.path());
    let endpoint = format!("http://127.0.0.1:{port}");
    let store = GcsStore::emulator(&endpoint, None).await.unwrap();
    let http = reqwest::Client::new();
    let made = http
        .post(format!("{endpoint}/storage/v1/b"))
        .json(&json!({"name": "uploads"}))
        .send()
        .await
        .unwrap();
    assert!(made.status().is_success(), "create bucket: {}", made.status());
    let bucket = BucketName::parse("uploads").unwrap();
    for prefix in ["seen", "unseen"] {
        for i in 0..4u64 {
            let img = image::RgbImage::from_fn(320, 240, |x, y| {
                image::Rgb([(x * (i + 1) as u32 % 256) as u8, (y * 3 % 256) as u8, (i * 60) as u8])
            });
            store
                .put(
                    &bucket,
                    &format!("{prefix}/{i}.png"),
                    Bytes::from(png(&img)),
                    "image/png",
                )
                .await
                .expect("upload");
        }
    }
    // In-process cache: it holds what was read before the outage.
    let app = spawn_app(
        Functions::only(Function::Quality),
        &[("ONGI_STORAGE", "gcs"), ("STORAGE_EMULATOR_HOST", &endpoint)],
    )
    .await;
    let first = app.post_json("/api/albums/quality", &album("seen")).await;
    assert_eq!(first.status(), 201, "{}", first.text().await.unwrap());

    drop(gcs);
    let stopped = Instant::now();
    let down = app.post_json("/api/albums/quality", &album("unseen")).await;
    let took = stopped.elapsed();
    assert_eq!(down.status(), 503);
    let retry_after = down
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = down.json().await.unwrap();
    println!(
        "storage down: 503 after {:.2} s, Retry-After {retry_after:?}: {body}",
        took.as_secs_f64()
    );
    assert!(retry_after.is_some(), "a 503 says when to retry");
    assert_eq!(body["message"], "service_unavailable");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("unseen/0.png") || error.contains("unseen/"),
        "names the photo: {error}"
    );
    assert!(
        took < Duration::from_secs(12),
        "an outage must surface within seconds, took {took:?}"
    );

    // What the cache holds is still answered; readiness says storage is the problem.
    let cached = app.post_json("/api/albums/quality", &album("seen")).await;
    assert_eq!(cached.status(), 201, "cached photos need no storage");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["storage"]["ok"], false, "{ready}");

    // Storage back on the same port with the same objects: no restart of the app.
    let _gcs = start_gcs(port, root.path());
    let restarted = Instant::now();
    let recovered = loop {
        let r = app.post_json("/api/albums/quality", &album("unseen")).await;
        if r.status() == 201 {
            break restarted.elapsed();
        }
        assert_eq!(r.status(), 503, "while recovering only clean 503s");
        assert!(
            restarted.elapsed() < Duration::from_secs(30),
            "did not recover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    println!("storage back: first 201 after {:.2} s", recovered.as_secs_f64());
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}
