//! Load and a Redis outage under load, on the real parts: `ongi bench load` starts the real
//! `ongi serve` (tiny CLIP models, ONNX Runtime, Redis) and sends concurrent album calls of
//! 30 photos for a fixed time. The 60-second figure in docs/reliability.md comes from the
//! same command on full-size models; these runs are shorter so CI stays quick.
//!
//! Needs `REDIS_URL` and `ORT_DYLIB_PATH` (set by `.ci/run`) and `redis-server` on PATH.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{clip_model_folder, save, scene};
use image::ImageFormat;
use ongi_test_support::{RedisServer, required_env};
use serde_json::Value;

/// 30 small synthetic photos (PNG: the image crate here has no JPEG encoder). Small, so that
/// the debug build computes them quickly and the run measures the service, not the decoder.
fn photo_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..30 {
        save(
            &scene(100 + i, 640, 480),
            &dir.path().join(format!("p{i:02}.png")),
            ImageFormat::Png,
        );
    }
    dir
}

fn load_command(photos: &Path, models: &Path, redis: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ongi"));
    cmd.args(["bench", "load", "--photos"])
        .arg(photos)
        .arg("--models")
        .arg(models)
        .args(args)
        .env("REDIS_URL", redis)
        .env("ORT_DYLIB_PATH", required_env("ORT_DYLIB_PATH"))
        .env("ONGI_CACHE_PREFIX", format!("test-load-{}:", std::process::id()))
        // The tiny CLIP's random embeddings put unrelated scenes close together.
        .env("ONGI_DUPLICATE_COSINE", "1.01")
        .env_remove("ONGI_MODEL_DIR")
        .env_remove("RUST_LOG");
    cmd
}

/// The report line `ongi bench load` prints.
fn report(stdout: &str) -> Value {
    reports(stdout)
        .pop()
        .unwrap_or_else(|| panic!("no load report in:\n{stdout}"))
}

/// Runs `ongi bench load` to its end, prints its report lines and returns them; fails the
/// test, with both outputs, where the command failed.
fn run_ok(cmd: Command, limit: Duration) -> String {
    let output = common::run_with_timeout(cmd, limit);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn timeline(report: &Value) -> Vec<[u64; 3]> {
    report["timeline_ok_refused_bad"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let v: Vec<u64> = s.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
            [v[0], v[1], v[2]]
        })
        .collect()
}

#[test]
fn concurrent_album_calls_are_answered_or_shed_with_retry_after_and_memory_stays_bounded() {
    let photos = photo_folder();
    let models = clip_model_folder();
    // Twelve clients against four slots: some calls must be shed, and shed cleanly.
    let cmd = load_command(
        photos.path(),
        models.path(),
        &required_env("REDIS_URL"),
        &[
            "--concurrency",
            "12",
            "--max-in-flight",
            "4",
            "--duration",
            "8",
            "--pool",
            "30",
        ],
    );
    let stdout = run_ok(cmd, Duration::from_secs(240));
    let r = report(&stdout);
    assert_eq!(r["bad"], 0, "{r}");
    assert!(r["ok"].as_u64().unwrap() >= 4, "too few calls answered: {r}");
    assert!(
        r["refused_with_retry_after"].as_u64().unwrap() > 0,
        "12 clients over 4 slots must be shed sometimes: {r}"
    );
    let statuses: Vec<&String> = r["by_status"].as_object().unwrap().keys().collect();
    assert!(statuses.iter().all(|s| *s == "201" || *s == "503"), "{r}");
    assert!(r["p50_s"].as_f64().unwrap() <= r["p99_s"].as_f64().unwrap());
    // Twelve clients drawing from the same 30 new photos: each photo computed at most once,
    // however many calls asked for it at the same time.
    let (computed, named) = (
        r["photos_computed"].as_f64().unwrap(),
        r["photos_named"].as_f64().unwrap(),
    );
    assert!(computed > 0.0 && computed <= named, "{r}");
    let peak = r["rss_peak_mib"].as_f64().unwrap();
    assert!(peak > 0.0 && peak < 1024.0, "the server's memory is not bounded: {r}");
}

/// Every report line `ongi bench load` prints, in order (one per server it ran).
fn reports(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| l.contains("\"config\":\"load\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn clients_asking_for_the_same_new_album_at_once_get_every_photo_computed_once_in_each_run() {
    let photos = photo_folder();
    let models = clip_model_folder();
    // Two runs in one command (this binary as its own baseline), in one Redis under one
    // prefix: the second run's photos must be new to it too, names included.
    let cmd = load_command(
        photos.path(),
        models.path(),
        &required_env("REDIS_URL"),
        &[
            "--concurrency",
            "4",
            "--same-albums",
            "--calls-per-client",
            "1",
            "--duration",
            "120",
            "--pool",
            "30",
            "--baseline-bin",
            env!("CARGO_BIN_EXE_ongi"),
        ],
    );
    let stdout = run_ok(cmd, Duration::from_secs(300));
    let runs = reports(&stdout);
    assert_eq!(runs.len(), 2, "a baseline and a current run: {stdout}");
    for r in &runs {
        // Each client stopped after its one call, long before the deadline.
        assert_eq!(r["calls"], 4, "{r}");
        assert_eq!(r["ok"], 4, "{r}");
        assert!(r["wall_s"].as_f64().unwrap() < 120.0, "{r}");
        // Four calls named the same new photos at the same moment; each was computed once.
        let named = r["photos_named"].as_f64().unwrap();
        assert!(named > 0.0, "{r}");
        assert_eq!(r["photos_computed"].as_f64(), Some(named), "{r}");
    }
}

#[test]
fn redis_killed_and_restarted_under_load_costs_no_failed_call_and_the_cache_recovers_without_a_restart() {
    let photos = photo_folder();
    let models = clip_model_folder();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut redis = RedisServer::start(port);
    let mut cmd = load_command(
        photos.path(),
        models.path(),
        &format!("redis://127.0.0.1:{port}"),
        &["--concurrency", "6", "--duration", "18", "--pool", "30"],
    );
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut lines = stderr.lines();
    // Wait for the load to begin (the server is up and ready, on this Redis).
    let started = loop {
        let line = lines.next().expect("ongi bench load printed its start").unwrap();
        if line.starts_with("load: started") {
            break Instant::now();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    std::thread::sleep(Duration::from_secs(4));
    let keys_before = redis.dbsize();
    redis.kill();
    let killed_at = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(4));
    // Same port, empty server: the running process must find it again by itself.
    let redis = RedisServer::start(port);
    let restarted_at = started.elapsed().as_secs_f64();

    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    println!("{stdout}");
    println!("redis killed at {killed_at:.1} s, restarted at {restarted_at:.1} s; keys before: {keys_before}");
    assert!(status.success(), "{status}\n{stdout}");
    let r = report(&stdout);
    assert_eq!(r["bad"], 0, "a call failed uncleanly: {r}");
    assert!(keys_before > 0, "the features were cached in Redis before the outage");

    // Without the cache every call recomputes its photos, so calls slow down while Redis is
    // down (the figure in docs/reliability.md); none may fail, and new ones keep coming.
    let t = timeline(&r);
    let after_kill: u64 = t[(killed_at.ceil() as usize)..].iter().map(|s| s[0]).sum();
    assert!(after_kill > 0, "no call was answered after Redis went down: {t:?}");
    let after_restart: u64 = t[(restarted_at.ceil() as usize).min(t.len() - 1)..]
        .iter()
        .map(|s| s[0])
        .sum();
    assert!(after_restart > 0, "no call succeeded after Redis came back: {t:?}");
    assert!(
        redis.dbsize() > 0,
        "after the restart the same process wrote to Redis again (reconnected by itself)"
    );
}
