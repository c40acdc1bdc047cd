//! The batch reprocessing job's walk on a bucket of 10 000 objects: the real `ongi reprocess`
//! (what the Cloud Run job of terraform/scheduler.tf runs) against fake-gcs-server and the
//! real Redis, with a short time budget per call so that the walk takes many calls, as a
//! large bucket does with the 50 s budget of `POST /batch/reprocess`. It must end with every
//! object processed and `complete: true`.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::run_with_timeout;
use ongi_test_support::{free_port, required_env, start_fake_gcs};

const OBJECTS: usize = 10_000;

/// 10 000 tiny distinct PNGs under uploads/big/ in fake-gcs-server's data folder layout.
fn write_bucket(data: &Path) {
    let dir = data.join("uploads/big");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..OBJECTS {
        let img = image::RgbImage::from_fn(8, 8, |x, y| {
            image::Rgb([(i % 251) as u8, (i / 251 % 251) as u8, (x * 31 + y * 7) as u8])
        });
        img.save(dir.join(format!("{i:05}.png"))).unwrap();
    }
}

#[test]
fn the_reprocessing_job_walks_10000_objects_to_the_end_over_many_calls() {
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    write_bucket(data.path());
    let written = started.elapsed();

    let port = free_port();
    let data_dir = data.path().display().to_string();
    let _gcs = start_fake_gcs(
        port,
        &["-backend", "memory", "-data", &data_dir, "-log-level", "error"],
        &[],
        Duration::from_secs(120),
    );
    let loaded = started.elapsed();

    let home = tempfile::tempdir().unwrap();
    let models = home.path().join("no-models");
    std::fs::create_dir_all(&models).unwrap();
    let prefix = format!("test:10k:{}:{}:", std::process::id(), uuid_like());
    let walk = |extra: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ongi"));
        cmd.args(["reprocess", "--bucket", "uploads", "--prefix", "big/"])
            .args(["--steps", "embedding", "--page-size", "1000"])
            .args(extra)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("REDIS_URL", required_env("REDIS_URL"))
            .env("ONGI_CACHE_PREFIX", &prefix)
            .env("ONGI_STORAGE", "gcs")
            .env("STORAGE_EMULATOR_HOST", format!("http://127.0.0.1:{port}"))
            .env("GOOGLE_CLOUD_PROJECT", "ongi-test")
            .env("ONGI_MODEL_DIR", &models)
            .current_dir(home.path());
        cmd
    };
    let walk_start = Instant::now();
    let out = run_with_timeout(walk(&["--budget-secs", "2"]), Duration::from_secs(300));
    let walked = walk_start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ongi reprocess failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is the JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    eprintln!(
        "10k walk: {OBJECTS} objects written in {:.1} s, fake-gcs-server loaded them by {:.1} s, \
         `ongi reprocess` took {:.1} s in {} calls: {report}",
        written.as_secs_f64(),
        loaded.as_secs_f64(),
        walked.as_secs_f64(),
        report["calls"],
    );
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["scanned"], OBJECTS as u64, "{report}");
    assert_eq!(report["processed"], OBJECTS as u64, "{report}");
    assert!(
        report["calls"].as_u64().unwrap() > 1,
        "a 2 s budget per call must take several calls, chained to the end: {report}"
    );

    // A second run finds the walk done: nothing left to process.
    let second = run_with_timeout(walk(&[]), Duration::from_secs(300));
    assert!(second.status.success(), "{}", String::from_utf8_lossy(&second.stderr));
    let second: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(second["complete"], true, "{second}");
    assert_eq!(second["processed"], 0, "{second}");
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
