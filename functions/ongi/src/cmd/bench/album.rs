//! `ongi bench album` and `ongi bench ready`: the app's view of speed.
//!
//! - `album`: a 30-photo album (the app's album size) from upload to the six album results,
//!   as the app backend sees it: the photos are written to the uploads bucket, then
//!   `POST /api/albums/embedding` (which computes every photo's features, batched), then the
//!   five analyses at once (categories, duplicates, quality, score, people). Every round uses
//!   photos the cache has never seen (each copy carries the round's marker after the JPEG's
//!   end, which decoders ignore and the content hash does not), so nothing is a cache hit.
//!   One JSON line per round, then one with p50 / p95 and the median of each call.
//! - `ready`: start `ongi serve` as a new process and time until `/readyz` answers 200 (the
//!   models loaded, hashed and warmed), then stop it with SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use ongi_shared::config::Settings;
use ongi_shared::domain::BucketName;
use ongi_shared::functions::Functions;
use ongi_shared::http::Application;
use serde_json::{Value, json};

pub const ALBUM_SIZE: usize = 30;

pub(crate) fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    // Nearest rank: with few rounds, p95 is the slowest round.
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

pub(crate) fn photos_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    // JPEGs only: each round's marker goes after the JPEG's end, which decoders ignore.
    let files = super::files_in(dir, |e| e.eq_ignore_ascii_case("jpg"))?;
    if files.len() < ALBUM_SIZE {
        bail!(
            "{} holds {} JPEGs; an album needs {ALBUM_SIZE}",
            dir.display(),
            files.len()
        );
    }
    Ok(files)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> anyhow::Result<(f64, Value)> {
    let started = Instant::now();
    let response = client
        .post(&url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let answer: Value = response.json().await.with_context(|| format!("POST {url}: not JSON"))?;
    if status.as_u16() != 201 {
        bail!("POST {url} answered {status}: {answer}");
    }
    Ok((started.elapsed().as_secs_f64(), answer))
}

pub async fn album(photos: &Path, models: &Path, rounds: usize) -> anyhow::Result<()> {
    let files = photos_in(photos)?;
    let data = std::env::temp_dir().join(format!("ongi-bench-album-{}", std::process::id()));
    let lookup = |name: &str| -> Option<String> {
        match name {
            "PORT" => Some("0".into()),
            "ONGI_HOST" => Some("127.0.0.1".into()),
            "ONGI_MODEL_DIR" => Some(models.display().to_string()),
            "ONGI_DATA_DIR" => Some(data.display().to_string()),
            "ONGI_STORAGE" => Some("local".into()),
            // Everything else as the environment says (ORT_DYLIB_PATH, REDIS_URL,
            // ONGI_FACE_DETECTOR, …), but never the emulators: the album is local.
            "STORAGE_EMULATOR_HOST" | "PUBSUB_EMULATOR_HOST" => None,
            other => std::env::var(other).ok(),
        }
    };
    let settings = Settings::from_lookup(lookup)?;
    let cache = if settings.redis_url.is_some() {
        "redis"
    } else {
        "memory"
    };
    let detector = format!("{:?}", settings.face_detector).to_lowercase();
    let bucket = settings.bucket.clone();
    let app = Application::build(settings, Functions::all()).await?;
    let base = format!("http://{}", app.address());
    let store = app.state().store.clone();
    let loaded = &app.state().models;
    let models_loaded = json!({"clip": loaded.clip_model_id, "faces": loaded.face_model_id,
        "aesthetic": loaded.aesthetic.is_some(), "missing": loaded.missing});
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    let client = reqwest::Client::new();

    let mut totals = Vec::with_capacity(rounds);
    let mut per_call: std::collections::BTreeMap<&'static str, Vec<f64>> = Default::default();
    for round in 0..rounds {
        let refs: Vec<String> = (0..ALBUM_SIZE).map(|i| format!("bench/{round}/{i:02}.jpg")).collect();
        let mut bodies = Vec::with_capacity(ALBUM_SIZE);
        for i in 0..ALBUM_SIZE {
            let path = &files[(round * ALBUM_SIZE + i) % files.len()];
            let mut bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            bytes.extend_from_slice(format!("ongi-bench-round-{round}").as_bytes());
            bodies.push(Bytes::from(bytes));
        }
        let started = Instant::now();
        upload(store.as_ref(), &bucket, &refs, bodies).await?;
        let upload_s = started.elapsed().as_secs_f64();
        let images = json!({ "images": refs });
        let (embedding_s, summary) = post(&client, format!("{base}/api/albums/embedding"), images.clone()).await?;
        let computed = summary["data"]["computed"].as_u64().unwrap_or(0);
        let (categories, duplicates, quality, score, people) = tokio::try_join!(
            post(&client, format!("{base}/api/albums/categories"), images.clone()),
            post(&client, format!("{base}/api/albums/duplicates"), images.clone()),
            post(&client, format!("{base}/api/albums/quality"), images.clone()),
            post(
                &client,
                format!("{base}/api/albums/score"),
                json!({"categories": [{"category": "album", "images": refs}]})
            ),
            post(&client, format!("{base}/api/albums/people"), images.clone()),
        )?;
        let total = started.elapsed().as_secs_f64();
        totals.push(total);
        for (name, s) in [
            ("upload", upload_s),
            ("embedding", embedding_s),
            ("categories", categories.0),
            ("duplicates", duplicates.0),
            ("quality", quality.0),
            ("score", score.0),
            ("people", people.0),
        ] {
            per_call.entry(name).or_default().push(s);
        }
        println!(
            "{}",
            json!({"config": "album", "round": round, "photos": ALBUM_SIZE, "computed": computed,
                   "total_s": total, "upload_s": upload_s, "embedding_s": embedding_s,
                   "categories_s": categories.0, "duplicates_s": duplicates.0, "quality_s": quality.0,
                   "score_s": score.0, "people_s": people.0})
        );
    }
    // The first album of a process also pays for its start (the taxonomy's prompts, embedded
    // in the background from start, and the ONNX sessions' first runs): reported apart.
    let warm = if totals.len() > 1 { 1 } else { 0 };
    let medians: serde_json::Map<String, Value> = per_call
        .iter()
        .map(|(k, v)| (format!("{k}_p50_s"), json!(percentile(&v[warm..], 0.5))))
        .collect();
    println!(
        "{}",
        json!({"config": "album-summary", "rounds": rounds, "photos": ALBUM_SIZE, "cache": cache,
               "face_detector": detector, "models": models_loaded, "first_round_s": totals[0],
               "p50_s": percentile(&totals[warm..], 0.5), "p95_s": percentile(&totals[warm..], 0.95),
               "calls": medians})
    );
    let _ = std::fs::remove_dir_all(&data);
    Ok(())
}

/// Writes the album's photos, eight at a time (an app uploads in parallel too).
async fn upload(
    store: &dyn ongi_shared::storage::ObjectStore,
    bucket: &BucketName,
    refs: &[String],
    bodies: Vec<Bytes>,
) -> anyhow::Result<()> {
    use futures::StreamExt;
    let puts = refs
        .iter()
        .zip(bodies)
        .map(|(name, bytes)| async move { store.put(bucket, name, bytes, "image/jpeg").await });
    let results: Vec<_> = futures::stream::iter(puts).buffer_unordered(8).collect().await;
    for r in results {
        r.context("upload")?;
    }
    Ok(())
}

pub fn ready(models: &Path, rounds: usize, baseline_bin: Option<&Path>) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the ongi binary")?;
    // With a baseline, the two binaries take turns, so that both see the same machine state
    // (the model files in the page cache, the other core's load).
    let mut servers: Vec<(&str, &Path)> = Vec::new();
    if let Some(bin) = baseline_bin {
        servers.push(("baseline", bin));
    }
    servers.push(("current", exe.as_path()));
    let mut seconds: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); servers.len()];
    for round in 0..rounds {
        for (which, (name, bin)) in servers.iter().enumerate() {
            let s = time_to_ready(bin, models, &format!("{round}-{name}"))?;
            println!(
                "{}",
                json!({"config": "ready", "server": name, "round": round, "ready_s": s})
            );
            seconds[which].push(s);
        }
    }
    for ((name, bin), seconds) in servers.iter().zip(&seconds) {
        println!(
            "{}",
            json!({"config": "ready-summary", "server": name, "bin": bin.display().to_string(), "rounds": rounds,
                   "p50_s": percentile(seconds, 0.5), "max_s": percentile(seconds, 1.0),
                   "models": models.display().to_string()})
        );
    }
    Ok(())
}

/// Seconds from starting `bin serve` until its `/readyz` answers 200.
fn time_to_ready(bin: &Path, models: &Path, tag: &str) -> anyhow::Result<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let data = std::env::temp_dir().join(format!("ongi-bench-ready-{}-{tag}", std::process::id()));
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(["serve", "--no-fetch", "--port", &port.to_string()])
        .env("ONGI_MODEL_DIR", models)
        .env("ONGI_DATA_DIR", &data)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {} serve", bin.display()))?;
    let ready = loop {
        if started.elapsed() > Duration::from_secs(120) {
            break None;
        }
        if readyz(port) == Some(200) {
            break Some(started.elapsed().as_secs_f64());
        }
        if let Ok(Some(exit)) = child.try_wait() {
            bail!("{} serve exited with {exit} before it was ready", bin.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&data);
    ready.context("ongi serve was not ready within 120 s")
}

/// The status of `GET /readyz`, or `None` while nothing listens. A raw HTTP/1.1 request:
/// this runs on a plain thread, where an async client would need a runtime of its own.
pub(crate) fn readyz(port: u16) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(b"GET /readyz HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
