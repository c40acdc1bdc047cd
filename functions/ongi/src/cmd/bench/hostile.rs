//! `ongi bench hostile`: every hostile input at once against a real `ongi serve`, its
//! memory sampled, while a well-behaved caller's album calls are timed.
//!
//! - The bombs (`bombs.rs`): pixel bombs (PNGs of all-zero rows, JPEGs whose frame declares
//!   9999x9999), metadata bombs (EXIF, ICC and text blocks in PNG, WebP and JPEG), a JPEG
//!   whose scans repeat 2,000 times, a 12-bit 4:4:4 AVIF declaring 5300x5300, and one heavy
//!   but well-formed 5000x5000 16-bit PNG that may be analysed under the decode budget. Each
//!   comes in `--variants` copies that differ by a trailer after the image's end, so no copy
//!   is answered from another's remembered failure. Every album route gets `--concurrency`
//!   calls at once, each with every bomb and one ordinary photo; the style route one call per
//!   bomb (16 at a time) when `REDIS_URL` is set.
//! - The floods (`floods.rs`): `--body-flood` connections trickling bodies that declare
//!   almost a megabyte, and `--text-flood` callers of distinct texts.
//! - The well-behaved caller (`steady.rs`): album calls of four new ordinary photos, one
//!   every half second, from just before the bombs until every bomb call is answered.
//!
//! A route is *held* when every answer is 201 (style: 400 for a bomb, 202 or 400 `too_large`
//! for the heavy photo) with every bomb in `invalid_images` and the ordinary photo analysed.
//! `--memory-limit-mib` runs the server in a cgroup of that size, as a container would;
//! `--baseline-bin` runs the same attack against another build first, in the same run, for
//! a side-by-side figure. One JSON line per server; the command exits 1 if this build's
//! server died, a route was not held, its memory went over `--max-rss-mib`, or the
//! well-behaved caller's p99 went over `--max-p99-s` or a photo of it was not analysed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use futures::StreamExt;
use serde_json::{Value, json};

use super::bombs::{Bomb, ORDINARY, bombs, plant, plant_steady};
use super::cgroup::MemoryCage;
use super::serve::{self, rss_mib};
use super::steady::album_body;
use super::{floods, steady};

pub struct HostileOptions {
    pub models: PathBuf,
    pub concurrency: usize,
    pub variants: usize,
    pub max_rss_mib: f64,
    /// Another `ongi` binary to serve instead of this one.
    pub server_bin: Option<PathBuf>,
    /// Another `ongi` binary attacked the same way first, in the same run (the "before").
    pub baseline_bin: Option<PathBuf>,
    /// Runs the server in a cgroup with this much memory, as a container.
    pub memory_limit_mib: Option<u64>,
    /// Connections trickling bodies during the attack.
    pub body_flood: usize,
    /// Callers sending distinct texts during the attack.
    pub text_flood: usize,
    /// The well-behaved caller's p99 must stay at or under this, in seconds.
    pub max_p99_s: f64,
}

/// What one route made of its calls.
#[derive(Default)]
struct RouteReport {
    statuses: BTreeMap<u16, u64>,
    /// Bombs and heavy photos that came back in `invalid_images`, by reason.
    refused_by_reason: BTreeMap<String, u64>,
    /// Heavy photos that were analysed.
    heavy_analysed: u64,
    /// Bombs that were not refused, and photos that were wrongly (each a failure to hold).
    missed: Vec<String>,
    /// The first error sentence of a call that was not answered as expected.
    error: Option<String>,
}

impl RouteReport {
    fn held(&self, expected: &[u16]) -> bool {
        self.missed.is_empty()
            && self.error.is_none()
            && !self.statuses.is_empty()
            && self.statuses.keys().all(|s| expected.contains(s))
    }
}

/// Records one answer: its status, and which of `sent` (names, and whether each must be
/// refused) came back in `invalid_images`.
fn record(report: &mut RouteReport, status: u16, body: &Value, sent: &[(String, bool)]) {
    *report.statuses.entry(status).or_default() += 1;
    let invalid: BTreeMap<&str, &str> = body["invalid_images"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|i| Some((i["image"].as_str()?, i["reason"].as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    let answered = matches!(status, 201 | 202);
    for (name, must_refuse) in sent {
        let ordinary = name.as_str() == ORDINARY;
        match invalid.get(name.as_str()) {
            Some(reason) if ordinary || (!must_refuse && *reason != "too_large") => {
                report.missed.push(format!("{name} refused ({reason})"));
            }
            Some(reason) => *report.refused_by_reason.entry((*reason).to_owned()).or_default() += 1,
            None if *must_refuse => report.missed.push(format!("{name} not refused")),
            None if !ordinary && answered => report.heavy_analysed += 1,
            None => {}
        }
    }
    if report.error.is_none()
        && !matches!(status, 201 | 202 | 400)
        && let Some(e) = body["error"].as_str()
    {
        report.error = Some(e.to_owned());
    }
}

pub async fn run(options: HostileOptions) -> anyhow::Result<()> {
    if options.concurrency == 0 || options.variants == 0 {
        bail!("--concurrency and --variants must be at least 1");
    }
    let made = Instant::now();
    let bombs = bombs()?;
    let make_s = made.elapsed().as_secs_f64();
    if let Some(baseline) = &options.baseline_bin {
        let report = attack(&options, &bombs, Some(baseline), "baseline").await?;
        println!("{report}");
    }
    let mut report = attack(&options, &bombs, options.server_bin.as_deref(), "this build").await?;
    report["make_bombs_s"] = json!(make_s);
    println!("{report}");
    if let Some(exit) = report["server_exited"].as_str() {
        bail!("ongi serve died under the attack ({exit}); its log: {}", report["log"]);
    }
    if report["all_held"] != true {
        bail!("a route let a bomb through or failed; see \"routes\"");
    }
    if report["within_memory"] != true {
        bail!(
            "ongi serve's memory peaked at {} MiB, over {:.0} MiB",
            report["rss_peak_mib"],
            options.max_rss_mib
        );
    }
    if report["steady_held"] != true {
        bail!(
            "the well-behaved caller was not served within {} s at p99, or a photo of it was refused; see \"steady\"",
            options.max_p99_s
        );
    }
    Ok(())
}

/// One attack on a fresh server (`server_bin`, or this binary): its report.
async fn attack(
    options: &HostileOptions,
    bombs: &[Bomb],
    server_bin: Option<&Path>,
    label: &str,
) -> anyhow::Result<Value> {
    // The cgroup first: a machine that cannot make one fails before anything is written.
    let cage = options.memory_limit_mib.map(MemoryCage::new).transpose()?;
    let tag = format!("hostile-{}-{}", std::process::id(), label.replace(' ', "-"));
    let data = std::env::temp_dir().join(format!("ongi-bench-{tag}"));
    let names = plant(&data.join("uploads"), bombs, options.variants)?;
    let steady_photos = Arc::new(plant_steady(&data.join("uploads"), 512)?);
    let log_path = data.with_extension("log");
    let with_style = std::env::var_os("REDIS_URL").is_some();
    // Each server its own cache keys and style queue: what the baseline accepted must not
    // answer for this build.
    let prefix = format!("{}{tag}:", std::env::var("ONGI_CACHE_PREFIX").unwrap_or_default());
    let mut server = serve::start(
        server_bin,
        &options.models,
        data,
        &[("ONGI_CACHE_PREFIX", prefix)],
        &log_path,
    )?;
    let pid = server.pid();
    if let Some(cage) = &cage {
        cage.admit(pid)?;
    }
    let base = server.base_url();
    let address: std::net::SocketAddr = format!("127.0.0.1:{}", server.port).parse()?;
    let rss_start = rss_mib(pid).unwrap_or(0.0);

    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while !done.load(Ordering::Relaxed) {
                if let Some(mib) = rss_mib(pid) {
                    peak = peak.max(mib);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        })
    };
    let steady_caller = tokio::spawn(steady::call_until(
        reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?,
        base.clone(),
        steady_photos,
        done.clone(),
    ));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(300)).build()?;
    let texts = tokio::spawn(floods::distinct_texts(
        client.clone(),
        base.clone(),
        options.text_flood,
        done.clone(),
    ));

    let mut album: Vec<(String, bool)> = names.clone();
    album.push((ORDINARY.to_owned(), false));
    let album = Arc::new(album);
    let routes = ["embedding", "categories", "duplicates", "quality", "score", "people"];
    let began = Instant::now();
    let mut calls = Vec::new();
    for route in routes {
        for _ in 0..options.concurrency {
            let (client, base, album) = (client.clone(), base.clone(), album.clone());
            calls.push(tokio::spawn(async move {
                let images: Vec<String> = album.iter().map(|(name, _)| name.clone()).collect();
                let answer = client
                    .post(format!("{base}/api/albums/{route}"))
                    .json(&album_body(route, &images))
                    .send()
                    .await;
                vec![(route, album.to_vec(), answer_of(answer).await)]
            }));
        }
    }
    if with_style {
        let (client, base, names) = (client.clone(), base.clone(), names.clone());
        calls.push(tokio::spawn(async move {
            futures::stream::iter(names)
                .map(|sent| {
                    let (client, base) = (client.clone(), base.clone());
                    async move {
                        let answer = client
                            .post(format!("{base}/api/albums/style"))
                            .json(&json!({"image": sent.0, "style": "ghibli"}))
                            .send()
                            .await;
                        ("style", vec![sent], answer_of(answer).await)
                    }
                })
                .buffer_unordered(16)
                .collect::<Vec<_>>()
                .await
        }));
    }
    // The trickling bodies start once the calls above have their connections.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bodies = tokio::spawn(floods::trickled_bodies(address, options.body_flood, done.clone()));
    let mut reports: BTreeMap<&str, RouteReport> = BTreeMap::new();
    for call in calls {
        for (route, sent, (status, body)) in call.await? {
            record(reports.entry(route).or_default(), status, &body, &sent);
        }
    }
    let wall = began.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let steady_calls = steady_caller.await?;
    let (text_statuses, texts_sent) = texts.await?;
    let body_endings = bodies.await?;
    let rss_peak = sampler.await?.max(rss_start);
    let exited = server.exited().map(|s| s.to_string());
    drop(server);
    let oom_kills = cage.as_ref().and_then(MemoryCage::oom_kills);
    drop(cage);

    let route_json: BTreeMap<&str, Value> = reports
        .iter()
        .map(|(route, r)| {
            let expected: &[u16] = if *route == "style" { &[202, 400] } else { &[201] };
            (
                *route,
                json!({
                    "held": r.held(expected),
                    "statuses": r.statuses,
                    "refused_by_reason": r.refused_by_reason,
                    "heavy_analysed": r.heavy_analysed,
                    "missed": r.missed.iter().take(10).collect::<Vec<_>>(),
                    "error": r.error,
                }),
            )
        })
        .collect();
    let all_held = route_json.values().all(|r| r["held"] == true);
    let within_memory = rss_peak <= options.max_rss_mib;
    let steady = steady::summary(&steady_calls);
    let steady_held = steady["calls"].as_u64().is_some_and(|n| n > 0)
        && steady["not_analysed"] == 0
        && steady["p99_s"].as_f64().is_some_and(|p99| p99 <= options.max_p99_s);
    let report = json!({
        "config": "hostile",
        "binary": label,
        "server_bin": server_bin.map(|p| p.display().to_string()),
        "bombs": bombs
            .iter()
            .map(|b| json!({"name": b.stem, "declares": b.declares, "bytes": b.bytes.len(), "must_refuse": b.must_refuse}))
            .collect::<Vec<_>>(),
        "variants": options.variants,
        "concurrency": options.concurrency,
        "photos_per_album_call": album.len(),
        "style": with_style,
        "routes": route_json,
        "steady": steady,
        "body_flood": {"connections": options.body_flood, "endings": body_endings},
        "text_flood": {"callers": options.text_flood, "statuses": text_statuses, "texts": texts_sent},
        "memory_limit_mib": options.memory_limit_mib,
        "oom_kills": oom_kills,
        "wall_s": wall,
        "rss_start_mib": rss_start,
        "rss_peak_mib": rss_peak,
        "max_rss_mib": options.max_rss_mib,
        "server_exited": exited,
        "all_held": all_held,
        "within_memory": within_memory,
        "steady_held": steady_held,
        "log": log_path.display().to_string(),
        "ok": all_held && within_memory && steady_held && exited.is_none(),
    });
    if report["ok"] == true {
        let _ = std::fs::remove_file(&log_path);
    }
    Ok(report)
}

/// The status and JSON body of an answer; status 0 for no answer.
async fn answer_of(answer: reqwest::Result<reqwest::Response>) -> (u16, Value) {
    match answer {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}
