//! Secrets never reach a log or a response: the real `ongi serve` (debug logs, JSON and text
//! format), searched line by line and answer by answer.
//!
//! - The Gemini key, with Redis and a local fake of Gemini's HTTP API that answers every call
//!   with an error quoting the key back (as a proxy or an "invalid key" message can).
//! - The Redis password (Memorystore's AUTH string, which Terraform puts into `REDIS_URL`),
//!   against a private `redis-server --requirepass`: right, wrong, and unreachable.
//!
//! Needs `REDIS_URL` (set by `.ci/run`) and `redis-server` on PATH.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{save, scene};
use image::ImageFormat;
use ongi_test_support::{RedisServer, free_port, required_env};
use serde_json::{Value, json};

const KEY: &str = "AIzaSy-test-key-that-must-never-be-seen-42";

/// A fake Gemini: reads each request, records its `x-goog-api-key`, answers 400 with the
/// key in the body. Plain HTTP/1.1 on a thread; one request per connection.
fn fake_gemini() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let keys: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = keys.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut key) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-goog-api-key:") {
                    key = line["x-goog-api-key:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push(key.clone());
            let answer = json!({"error": {"code": 400, "status": "INVALID_ARGUMENT",
                "message": format!("API key not valid. Please pass a valid API key. (got {key})")}})
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, keys)
}

#[tokio::test]
async fn the_gemini_key_never_reaches_a_log_or_a_response() {
    let (gemini_port, keys_seen) = fake_gemini();
    let dir = tempfile::tempdir().unwrap();
    save(
        &scene(7, 640, 480),
        &dir.path().join("data/uploads/p.png"),
        ImageFormat::Png,
    );
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ongi"))
        .args(["serve", "--no-fetch", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env("GEMINI_API_KEY", KEY)
        .env("GEMINI_ENDPOINT", format!("http://127.0.0.1:{gemini_port}"))
        .env("REDIS_URL", required_env("REDIS_URL"))
        .env("ONGI_CACHE_PREFIX", format!("test-secrets-{}:", std::process::id()))
        .env("ONGI_LOG_FORMAT", "json")
        .env("RUST_LOG", "debug")
        .env_remove("ONGI_MODEL_DIR")
        .env_remove("STORAGE_EMULATOR_HOST")
        .env_remove("PUBSUB_EMULATOR_HOST")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "ongi serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut answers = Vec::new();
    let submitted = client
        .post(format!("{base}/api/albums/style"))
        .json(&json!({"image": "p.png", "style": "ghibli", "steps": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 202);
    let submitted: Value = submitted.json().await.unwrap();
    let job_id = submitted["data"]["job_id"].as_str().unwrap().to_owned();
    answers.push(submitted.to_string());
    let job = client
        .get(format!("{base}/api/albums/style/{job_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(job.status(), 200);
    let job: Value = job.json().await.unwrap();
    assert_eq!(
        job["data"]["prompt_source"], "template",
        "Gemini refused, so the template wrote it: {job}"
    );
    answers.push(job.to_string());
    for path in ["/readyz", "/metrics", "/openapi.json", "/healthz"] {
        answers.push(
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    // A bad request and a free-text style (another Gemini call) too.
    for body in [
        json!({"image": "p.png", "style": "x", "steps": 99}),
        json!({"image": "p.png", "style": "a neon city"}),
    ] {
        answers.push(
            client
                .post(format!("{base}/api/albums/style"))
                .json(&body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }

    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let logs = std::fs::read_to_string(&log_path).unwrap();

    // Not vacuous: Gemini was called with the key, and its refusal was logged.
    assert!(!keys_seen.lock().unwrap().is_empty(), "Gemini was never called");
    assert!(
        keys_seen.lock().unwrap().iter().all(|k| k == KEY),
        "the key is sent in x-goog-api-key"
    );
    assert!(logs.lines().count() > 5, "the service logged: {logs}");
    assert!(
        logs.contains("Gemini") || logs.contains("gemini"),
        "the refusal was logged:\n{logs}"
    );
    assert!(
        logs.contains("[redacted]"),
        "the quoted key was cut out of the logged error:\n{logs}"
    );
    for (i, answer) in answers.iter().enumerate() {
        assert!(!answer.contains(KEY), "answer {i} holds the key: {answer}");
    }
    let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(KEY)).collect();
    assert!(leaks.is_empty(), "log lines hold the key:\n{}", leaks.join("\n"));
}

const REDIS_PASSWORD: &str = "memorystore-auth-string-never-to-be-seen-7f3a";
const WRONG_PASSWORD: &str = "a-wrong-password-also-never-to-be-seen-91c2";

/// Runs `ongi serve` with `REDIS_URL = url` and `ONGI_LOG_FORMAT = format`, debug logs, sends
/// it album, style, bad and probe requests, stops it; returns its log and every answer body.
async fn serve_and_ask(url: &str, format: &str) -> (String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    save(
        &scene(11, 640, 480),
        &dir.path().join("data/uploads/p.png"),
        ImageFormat::Png,
    );
    let port = free_port();
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ongi"))
        .args(["serve", "--no-fetch", "--port", &port.to_string()])
        .current_dir(dir.path())
        .env("REDIS_URL", url)
        .env(
            "ONGI_CACHE_PREFIX",
            format!("test-secrets-redis-{}:", std::process::id()),
        )
        .env("ONGI_LOG_FORMAT", format)
        .env("RUST_LOG", "debug")
        .env_remove("ONGI_MODEL_DIR")
        .env_remove("STORAGE_EMULATOR_HOST")
        .env_remove("PUBSUB_EMULATOR_HOST")
        .env_remove("GEMINI_API_KEY")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let started = Instant::now();
    while client.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "ongi serve did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut answers = Vec::new();
    for (path, body) in [
        ("/api/albums/quality", json!({"images": ["p.png"]})),
        ("/api/albums/duplicates", json!({"images": ["p.png", "missing.png"]})),
        (
            "/api/albums/style",
            json!({"image": "p.png", "style": "ghibli", "steps": 2}),
        ),
        ("/api/albums/quality", json!({"images": ["../x"]})),
    ] {
        let answer = client.post(format!("{base}{path}")).json(&body).send().await.unwrap();
        answers.push(format!("{} {}", answer.status(), answer.text().await.unwrap()));
    }
    for path in ["/readyz", "/metrics", "/openapi.json", "/healthz"] {
        answers.push(
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    (std::fs::read_to_string(&log_path).unwrap(), answers)
}

#[tokio::test]
async fn the_redis_password_never_reaches_a_log_or_a_response() {
    let redis = RedisServer::start_with_password(free_port(), REDIS_PASSWORD);
    let right = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}/0", redis.port);
    let wrong = format!("redis://default:{WRONG_PASSWORD}@127.0.0.1:{}", redis.port);
    let unreachable = format!("redis://:{REDIS_PASSWORD}@127.0.0.1:{}", free_port());
    let mut runs = Vec::new();
    for (what, url, format) in [
        ("right password, text", &right, "text"),
        ("right password, json", &right, "json"),
        ("wrong password, json", &wrong, "json"),
        ("unreachable, text", &unreachable, "text"),
    ] {
        let (logs, answers) = serve_and_ask(url, format).await;
        runs.push((what, logs, answers));
    }

    // Not vacuous: the real URL reached the Redis client (the right password wrote features
    // and a style job), the settings line was logged, and the failures were logged too.
    assert!(redis.dbsize() > 0, "ongi serve wrote to the password-protected Redis");
    for (what, logs, answers) in &runs {
        assert!(logs.lines().count() > 5, "{what}: the service logged:\n{logs}");
        let settings_line = logs
            .lines()
            .find(|l| l.contains("redis_url"))
            .unwrap_or_else(|| panic!("{what}: the settings line names redis_url:\n{logs}"));
        assert!(settings_line.contains("[redacted]"), "{what}: {settings_line}");
        assert!(
            settings_line.contains("127.0.0.1"),
            "{what}: the host is still shown: {settings_line}"
        );
        if what.starts_with("right") {
            assert!(
                answers[2].starts_with("202"),
                "{what}: the style job was queued: {answers:?}"
            );
        } else {
            assert!(
                logs.lines()
                    .any(|l| l.contains("cache") && (l.contains("WARN") || l.contains("WARNING"))),
                "{what}: the cache failure was logged:\n{logs}"
            );
        }
        for secret in [REDIS_PASSWORD, WRONG_PASSWORD] {
            let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
            assert!(
                leaks.is_empty(),
                "{what}: log lines hold the password:\n{}",
                leaks.join("\n")
            );
            for (i, answer) in answers.iter().enumerate() {
                assert!(
                    !answer.contains(secret),
                    "{what}: answer {i} holds the password: {answer}"
                );
            }
        }
    }
}
