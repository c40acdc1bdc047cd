//! `ongi bench load`: many album calls at once against a real `ongi serve`, for a fixed time.
//!
//! It starts `ongi serve` as a child process (this binary, `--no-fetch`, loopback, a port of
//! its own) over a fresh data folder holding a pool of photos, with the caller's environment
//! (`REDIS_URL`, `ORT_DYLIB_PATH`, …). Then `--concurrency` clients each send album calls of
//! `--album` photos drawn from the pool, round-robin over the album routes, until
//! `--duration` has passed. Meanwhile the server's resident memory is sampled from /proc.
//!
//! One JSON line comes out: the calls by status, p50/p99 latency of the answered calls, the
//! memory before and at its peak, the photos the server computed (its
//! `ongi_photos_processed_total`) against the distinct photos the calls named, and a
//! per-second timeline (for fault tests: what a Redis restart did, and when the calls
//! recovered). With `--baseline-bin`, the same load runs first against that binary (an
//! older build), then against this one, over photos new to each run, and a last line
//! compares the two. A call is *bad* when it got a 5xx other than
//! a 503 with `Retry-After` (shed load or a dependency down, which callers retry), a 429
//! without `Retry-After`, or no answer at all; the command exits 1 if any call was bad.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::album::percentile;
use super::list_photos;
use super::serve::{self, ServeChild, rss_mib};

pub struct LoadOptions {
    pub photos: PathBuf,
    pub models: PathBuf,
    pub concurrency: usize,
    pub duration: Duration,
    pub album: usize,
    /// Photos copied into the uploads bucket, drawn from for every call.
    pub pool: usize,
    pub routes: Vec<String>,
    /// `ONGI_MAX_IN_FLIGHT` for the server, when given.
    pub max_in_flight: Option<usize>,
    /// Where the server's log goes (default: its data folder, removed at the end).
    pub server_log: Option<PathBuf>,
    /// Runs the same load against this `ongi` binary first, for a side-by-side comparison.
    pub baseline_bin: Option<PathBuf>,
    /// Every client draws the same sequence of albums (as several app servers asking about
    /// the same new album at once), instead of albums of its own.
    pub same_albums: bool,
    /// Each client stops after this many calls, if it gets there before `duration`.
    pub calls_per_client: Option<usize>,
}

/// One finished call.
struct Call {
    started_s: f64,
    seconds: f64,
    /// 0: no answer (connection refused, reset, timed out).
    status: u16,
    retry_after: bool,
}

impl Call {
    /// Answered: the album routes answer 201, the others 200.
    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    fn bad(&self) -> bool {
        match self.status {
            0 => true,
            503 | 429 => !self.retry_after,
            s => s >= 500,
        }
    }
}

/// The pool's object names, `{folder}/0000.jpg` …, each with its source's extension.
fn pool_names(files: &[PathBuf], pool: usize, folder: &str) -> Vec<String> {
    (0..pool)
        .map(|i| {
            let ext = files[i % files.len()]
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("jpg")
                .to_ascii_lowercase();
            format!("{folder}/{i:04}.{ext}")
        })
        .collect()
}

/// The pool's folder for one run: its own names as well as its own bytes, because an album
/// call finds a photo's features through the name's `latest` alias in the cache, which an
/// earlier run under the same name (in a shared Redis) would have left there.
fn pool_folder(run: &str) -> String {
    format!("load-{}-{run}", std::process::id())
}

fn start_server(
    options: &LoadOptions,
    server_bin: Option<&std::path::Path>,
    run: &str,
    files: &[PathBuf],
    names: &[String],
) -> anyhow::Result<ServeChild> {
    let data = std::env::temp_dir().join(format!("ongi-bench-load-{}-{run}", std::process::id()));
    let bucket = data.join("uploads");
    std::fs::create_dir_all(bucket.join(pool_folder(run)))
        .with_context(|| format!("cannot create {}", bucket.display()))?;
    for (i, name) in names.iter().enumerate() {
        let from = &files[i % files.len()];
        let mut bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        // Every photo gets a trailer after the image's end, which decoders ignore and the
        // content hash does not: every pool photo is its own, and new to this run (a shared
        // Redis has not seen it in an earlier run or under the other binary).
        bytes.extend_from_slice(format!("ongi-load-{}-{run}-{i}", std::process::id()).as_bytes());
        std::fs::write(bucket.join(name), bytes)?;
    }
    let log_path = options.server_log.clone().unwrap_or_else(|| data.join("serve.log"));
    let env: Vec<(&str, String)> = options
        .max_in_flight
        .map(|limit| ("ONGI_MAX_IN_FLIGHT", limit.to_string()))
        .into_iter()
        .collect();
    serve::start(server_bin, &options.models, data, &env, &log_path)
}

/// The body of one album call to `route`.
fn body(route: &str, refs: Vec<String>) -> Value {
    match route {
        "score" => json!({"categories": [{"category": "album", "images": refs}]}),
        _ => json!({ "images": refs }),
    }
}

/// A small xorshift, seeded per client: which photos make up each album need not be
/// cryptographic, only different between calls and the same from run to run.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

pub async fn run(options: LoadOptions) -> anyhow::Result<()> {
    if options.concurrency == 0 || options.album == 0 || options.routes.is_empty() {
        bail!("--concurrency, --album and --routes must be at least 1");
    }
    let files = list_photos(&options.photos, None)?;
    let pool = options.pool.max(options.album);
    let options = LoadOptions { pool, ..options };
    let mut bad = 0;
    let baseline = match &options.baseline_bin {
        Some(bin) => {
            let report = run_once(&options, Some(bin), "baseline", &files).await?;
            bad += report["bad"].as_u64().unwrap_or(0);
            Some(report)
        }
        None => None,
    };
    let current = run_once(&options, None, "current", &files).await?;
    bad += current["bad"].as_u64().unwrap_or(0);
    if let Some(baseline) = baseline {
        let p50 = |r: &Value| r["p50_s"].as_f64();
        println!(
            "{}",
            json!({
                "config": "load-compare",
                "baseline_bin": options.baseline_bin.as_ref().map(|b| b.display().to_string()),
                "baseline_p50_s": p50(&baseline),
                "current_p50_s": p50(&current),
                "p50_speedup": p50(&baseline).zip(p50(&current)).map(|(b, c)| b / c),
                "baseline_computed": baseline["photos_computed"],
                "current_computed": current["photos_computed"],
                "baseline_calls_ok": baseline["ok"],
                "current_calls_ok": current["ok"],
            })
        );
    }
    if bad > 0 {
        bail!("{bad} calls got a 5xx that was not shed load, or no answer");
    }
    Ok(())
}

/// One load run against `server_bin` (this binary when `None`); prints and returns its line.
async fn run_once(
    options: &LoadOptions,
    server_bin: Option<&std::path::Path>,
    run: &str,
    files: &[PathBuf],
) -> anyhow::Result<Value> {
    let names = Arc::new(pool_names(files, options.pool, &pool_folder(run)));
    let server = start_server(options, server_bin, run, files, &names)?;
    let pid = server.pid();
    let base = server.base_url();
    let rss_start = rss_mib(pid).unwrap_or(0.0);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .pool_max_idle_per_host(options.concurrency)
        .build()?;
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let named: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let began = Instant::now();
    let deadline = began + options.duration;

    // Stops at the deadline, or when the clients have made their calls.
    let clients_done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampling = clients_done.clone();
    let sampler = tokio::spawn(async move {
        let mut peak = 0f64;
        while Instant::now() < deadline && !sampling.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(mib) = rss_mib(pid) {
                peak = peak.max(mib);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        peak
    });

    // Fault tests wait for this line before they break something.
    eprintln!(
        "load: started {} clients against {base} (pid {pid})",
        options.concurrency
    );
    let mut clients = Vec::with_capacity(options.concurrency);
    for id in 0..options.concurrency {
        let client = client.clone();
        let calls = calls.clone();
        let named = named.clone();
        let base = base.clone();
        let routes = options.routes.clone();
        let names = names.clone();
        let album = options.album;
        let same_albums = options.same_albums;
        let max_calls = options.calls_per_client.unwrap_or(usize::MAX);
        clients.push(tokio::spawn(async move {
            let client_seed = if same_albums { 0 } else { id as u64 + 1 };
            let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ client_seed.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            let mut n = id;
            let mut made = 0;
            while Instant::now() < deadline && made < max_calls {
                made += 1;
                let route = &routes[n % routes.len()];
                n += 1;
                let picked: Vec<usize> = (0..album)
                    .map(|_| (next(&mut seed) % names.len() as u64) as usize)
                    .collect();
                named.lock().await.extend(picked.iter().copied());
                let refs: Vec<String> = picked.iter().map(|&i| names[i].clone()).collect();
                let started = Instant::now();
                let answer = client
                    .post(format!("{base}/api/albums/{route}"))
                    .json(&body(route, refs))
                    .send()
                    .await;
                let (status, retry_after) = match answer {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let retry_after = r.headers().contains_key("retry-after");
                        // Read the whole body: the call is over when the answer is.
                        let _ = r.bytes().await;
                        (status, retry_after)
                    }
                    Err(_) => (0, false),
                };
                let call = Call {
                    started_s: started.duration_since(began).as_secs_f64(),
                    seconds: started.elapsed().as_secs_f64(),
                    status,
                    retry_after,
                };
                // Shed or unavailable: back off as told (at most a second here, so that the
                // run measures recovery rather than the header's value).
                let wait = (status == 503 || status == 429).then(|| Duration::from_millis(250));
                calls.lock().await.push(call);
                if let Some(wait) = wait {
                    tokio::time::sleep(wait).await;
                }
            }
        }));
    }
    for c in clients {
        c.await?;
    }
    clients_done.store(true, std::sync::atomic::Ordering::Relaxed);
    let wall = began.elapsed().as_secs_f64();
    let rss_peak = sampler.await?.max(rss_start);
    let rss_end = rss_mib(pid).unwrap_or(0.0);
    let computed = photos_computed(&client, &base).await;
    drop(server);

    let calls = calls.lock().await;
    let mut report = summarise(&calls, options, wall, rss_start, rss_peak, rss_end);
    report["server"] = json!(run);
    report["photos_computed"] = json!(computed);
    report["photos_named"] = json!(named.lock().await.len());
    println!("{report}");
    Ok(report)
}

/// The server's count of photos it computed (`ongi_photos_processed_total` on /metrics).
async fn photos_computed(client: &reqwest::Client, base: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with("ongi_photos_processed_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .reduce(|a, b| a + b)
}

fn summarise(calls: &[Call], options: &LoadOptions, wall: f64, rss_start: f64, rss_peak: f64, rss_end: f64) -> Value {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    for c in calls {
        *by_status.entry(c.status.to_string()).or_default() += 1;
    }
    let answered: Vec<f64> = calls.iter().filter(|c| c.ok()).map(|c| c.seconds).collect();
    let quantile = |p: f64| (!answered.is_empty()).then(|| percentile(&answered, p));
    // Per second: 200s, clean refusals (503/429 with Retry-After), bad calls.
    let seconds = wall.ceil() as usize;
    let mut timeline = vec![[0u64; 3]; seconds.max(1)];
    for c in calls {
        let slot = (c.started_s as usize).min(timeline.len() - 1);
        let column = if c.ok() {
            0
        } else if c.bad() {
            2
        } else {
            1
        };
        timeline[slot][column] += 1;
    }
    json!({
        "config": "load",
        "concurrency": options.concurrency,
        "duration_s": options.duration.as_secs_f64(),
        "wall_s": wall,
        "album": options.album,
        "pool": options.pool,
        "routes": options.routes,
        "max_in_flight": options.max_in_flight,
        "same_albums": options.same_albums,
        "calls_per_client": options.calls_per_client,
        "calls": calls.len(),
        "calls_per_s": calls.len() as f64 / wall,
        "by_status": by_status,
        "ok": answered.len(),
        "refused_with_retry_after": calls.iter().filter(|c| !c.ok() && !c.bad()).count(),
        "bad": calls.iter().filter(|c| c.bad()).count(),
        "p50_s": quantile(0.5),
        "p99_s": quantile(0.99),
        "max_s": quantile(1.0),
        "rss_start_mib": rss_start,
        "rss_peak_mib": rss_peak,
        "rss_end_mib": rss_end,
        "timeline_ok_refused_bad": timeline,
    })
}
