//! The style flow end to end (docs/style.md), from the real parts: the style routes of
//! the real application, the real worker (in process, and the `gpu-job` binary where a
//! process must die), the tiny random-weight Stable Diffusion on the CPU, Redis,
//! fake-gcs-server, and a local fake of Gemini's HTTP API.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gpu_job::diffusion::target_size;
use gpu_job::worker::Step;
use ongi_shared::queue::JobStatus;
use ongi_shared::style::preset::PRESETS;
use serde_json::{Value, json};
use support::*;
use tokio::sync::watch;

const GEMINI_POSITIVE: &str = "a colourful gradient wall, studio ghibli style, soft light";
const GEMINI_NEGATIVE: &str = "blurry, photo";

async fn gemini_app(fake: &FakeGemini, extra: &[(&str, &str)]) -> TestApp {
    let endpoint = fake.endpoint();
    let mut settings = vec![("GEMINI_ENDPOINT", endpoint.as_str()), ("GEMINI_API_KEY", GEMINI_KEY)];
    settings.extend_from_slice(extra);
    spawn_app(&settings).await
}

async fn submitted(app: &TestApp, body: Value) -> String {
    let r = app.submit(body).await;
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert_eq!(status, 202, "{v}");
    assert_eq!(v["message"], "success");
    v["data"]["job_id"].as_str().expect("a job id").to_owned()
}

/// Steps the worker until the job's attempt ends with something other than `Idle`.
async fn step_until_busy(worker: &gpu_job::worker::Worker, limit: Duration) -> Step {
    let (_tx, mut stop) = watch::channel(false);
    let started = Instant::now();
    loop {
        let step = worker.step(&mut stop).await.expect("the queue answers");
        if step != Step::Idle {
            return step;
        }
        assert!(started.elapsed() < limit, "no job came within {limit:?}");
    }
}

#[tokio::test]
async fn a_photo_is_restyled_with_geminis_prompt_and_stored_under_its_job() {
    let fake = FakeGemini::start(GeminiMode::Prompt(GEMINI_POSITIVE, GEMINI_NEGATIVE)).await;
    let app = gemini_app(&fake, &[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;

    let body =
        json!({"image": photo, "style": "Studio Ghibli", "steps": 4, "seed": 5, "idempotency_key": "album-1/photo-1"});
    let job_id = submitted(&app, body.clone()).await;

    // Gemini saw the photo (a PNG thumbnail) and the preset, with the key in its header.
    let (key, request) = fake.requests.lock().expect("lock")[0].clone();
    assert_eq!(key, GEMINI_KEY);
    let parts = &request["contents"][0]["parts"];
    assert_eq!(parts[0]["inlineData"]["mimeType"], "image/png");
    assert!(parts[0]["inlineData"]["data"].as_str().is_some_and(|d| d.len() > 100));
    assert!(
        parts[1]["text"]
            .as_str()
            .unwrap()
            .contains("Studio Ghibli style hand-drawn anime illustration")
    );

    // The same idempotency key is the same job, and Gemini is not asked again.
    assert_eq!(submitted(&app, body).await, job_id);
    assert_eq!(fake.calls(), 1);

    let queued = app.job(&job_id).await;
    assert_eq!(queued["status"], "queued");
    assert_eq!(queued["prompt"], GEMINI_POSITIVE);
    assert_eq!(queued["negative_prompt"], GEMINI_NEGATIVE);
    assert_eq!(queued["prompt_source"], "gemini");
    assert_eq!(queued["style"], "ghibli");
    assert_eq!((queued["steps"].as_u64(), queued["seed"].as_u64()), (Some(4), Some(5)));

    let worker = worker(&app, "w-happy", 3, Duration::from_secs(60)).await;
    let step = step_until_busy(&worker, Duration::from_secs(10)).await;
    let expected_object = format!("style/{job_id}.png");
    assert_eq!(
        step,
        Step::Done {
            job_id: job_id.clone(),
            result_object: expected_object.clone()
        }
    );

    let done = app.job(&job_id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["result_object"], expected_object);
    assert!(done["finished_ms"].as_u64() >= done["started_ms"].as_u64());
    assert!(!done.to_string().contains(GEMINI_KEY));

    // The result is a real picture at the diffusion size, in the results bucket.
    let stored = store
        .get(&results(), &expected_object, 50 << 20)
        .await
        .expect("the result is stored");
    let picture = image::load_from_memory(&stored.bytes).expect("a PNG").to_rgb8();
    assert_eq!(picture.dimensions(), target_size(640, 480));
    let first = picture.get_pixel(0, 0);
    assert!(picture.pixels().any(|p| p != first), "the result is one flat colour");
}

#[tokio::test]
async fn without_gemini_the_presets_template_writes_the_prompt_and_the_job_still_runs() {
    let fake = FakeGemini::start(GeminiMode::Status(503)).await;
    let app = gemini_app(&fake, &[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;

    // Gemini down: retried (3 attempts within the 10 s budget), then the template.
    let started = Instant::now();
    let down = submitted(&app, json!({"image": photo, "style": "watercolour", "steps": 3})).await;
    assert!(started.elapsed() < Duration::from_secs(11), "the Gemini budget is 10 s");
    assert_eq!(fake.calls(), 3);
    let job = app.job(&down).await;
    assert_eq!(job["prompt_source"], "template");
    let watercolor = PRESETS.iter().find(|p| p.id == "watercolor").unwrap();
    assert_eq!(
        job["prompt"],
        watercolor.template.split_whitespace().collect::<Vec<_>>().join(" ")
    );

    // Gemini answers junk: not retried, the template again.
    fake.set(GeminiMode::Junk);
    let junk = submitted(
        &app,
        json!({"image": photo, "style": "ukiyo-e woodblock print", "steps": 3}),
    )
    .await;
    assert_eq!(fake.calls(), 4);
    let job = app.job(&junk).await;
    assert_eq!(job["prompt_source"], "template");
    assert!(job["prompt"].as_str().unwrap().starts_with("ukiyo-e woodblock print"));

    // Not configured at all: the template, no call.
    let plain = spawn_app(&[]).await;
    let local = submitted(&plain, json!({"image": photo, "style": "anime", "steps": 3})).await;
    assert_eq!(plain.job(&local).await["prompt_source"], "template");
    assert_eq!(fake.calls(), 4);

    let worker = worker(&app, "w-template", 3, Duration::from_secs(60)).await;
    for _ in 0..2 {
        assert!(matches!(
            step_until_busy(&worker, Duration::from_secs(10)).await,
            Step::Done { .. }
        ));
    }
    assert_eq!(app.job(&down).await["status"], "done");
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let app = spawn_app(&[("ONGI_STYLE_MAX_QUEUE", "2")]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;
    for _ in 0..2 {
        submitted(&app, json!({"image": photo, "style": "anime"})).await;
    }
    let r = app.submit(json!({"image": photo, "style": "anime"})).await;
    assert_eq!(r.status(), 429);
    let retry_after: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["message"], "too_many_requests");
    assert!(v["error"].as_str().unwrap().contains("holds 2 jobs"), "{v}");
    assert_eq!(app.queue(3).depth().await.unwrap(), 2);
}

#[tokio::test]
async fn bad_requests_are_refused_naming_what_is_wrong() {
    let app = spawn_app(&[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;
    let corrupt = format!("tests/{}.jpg", uuid::Uuid::new_v4());
    store
        .put(
            &uploads(),
            &corrupt,
            bytes::Bytes::from_static(b"\xff\xd8\xff\xe0 not really a jpeg"),
            "image/jpeg",
        )
        .await
        .unwrap();
    for (body, needle) in [
        (json!({"image": photo, "style": "  "}), "style is empty"),
        (json!({"image": photo, "style": "anime", "strength": 1.5}), "strength"),
        (json!({"image": photo, "style": "anime", "steps": 0}), "steps"),
        (
            json!({"image": photo, "style": "anime", "guidance_scale": 50}),
            "guidance_scale",
        ),
        (json!({"image": photo, "style": "anime", "colour": "red"}), "colour"),
        (json!({"image": "../etc/passwd", "style": "anime"}), "image"),
        (json!({"image": photo, "style": "x".repeat(300)}), "at most 200"),
        (json!({"image": "tests/missing.png", "style": "anime"}), "not found"),
        (json!({"image": corrupt, "style": "anime"}), "cannot be restyled"),
    ] {
        let r = app.submit(body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["message"], "invalid_request");
        assert!(v["error"].as_str().unwrap().contains(needle), "{body} → {v}");
    }
    let r = app.submit(json!({"image": corrupt, "style": "anime"})).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["invalid_images"][0]["reason"], "corrupt", "{v}");

    let get = |path: String| {
        let client = app.client.clone();
        let url = app.url(&path);
        async move { client.get(url).send().await.unwrap() }
    };
    assert_eq!(get("/api/albums/style/not-a-job".into()).await.status(), 400);
    let unknown = get(format!("/api/albums/style/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(unknown.json::<Value>().await.unwrap()["message"], "not_found");

    // Without Redis there is no queue: a clear 503, not a job that never runs.
    let no_redis = spawn_app(&[("REDIS_URL", "")]).await;
    let r = no_redis.submit(json!({"image": photo, "style": "anime"})).await;
    assert_eq!(r.status(), 503);
    assert!(
        r.json::<Value>().await.unwrap()["error"]
            .as_str()
            .unwrap()
            .contains("REDIS_URL")
    );
}

#[tokio::test]
async fn a_job_that_always_fails_goes_to_the_dead_letter_stream_after_its_attempts() {
    let app = spawn_app(&[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;
    let job_id = submitted(&app, json!({"image": photo, "style": "anime", "steps": 2})).await;
    // The photo disappears between the request and the GPU: every attempt fails.
    delete_object(&photo).await;

    let worker = worker(&app, "w-dead", 3, Duration::from_secs(60)).await;
    for attempt in 1..=3 {
        match step_until_busy(&worker, Duration::from_secs(10)).await {
            Step::Retrying { job_id: id, error } if attempt < 3 => {
                assert_eq!(id, job_id);
                assert!(error.contains("not found"), "{error}");
            }
            Step::DeadLettered { job_id: id, error } if attempt == 3 => {
                assert_eq!(id, job_id);
                assert!(error.contains("not found"), "{error}");
            }
            other => panic!("attempt {attempt}: {other:?}"),
        }
    }
    let failed = app.job(&job_id).await;
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["attempts"], 3);
    assert!(
        failed["error"].as_str().unwrap().contains("reading the photo"),
        "{failed}"
    );
    let queue = app.queue(3);
    let dead = queue.dead_letter_entries().await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].0.as_str(), dead[0].2), (job_id.as_str(), 3));
    assert_eq!(queue.depth().await.unwrap(), 0);
}

/// The `gpu-job` binary on the app's queue, the tiny model and a port of its own.
fn spawn_worker_process(app: &TestApp) -> Child {
    Command::new(env!("CARGO_BIN_EXE_gpu-job"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REDIS_URL", redis_url())
        .env("STORAGE_EMULATOR_HOST", storage_emulator())
        .env("ONGI_CACHE_PREFIX", &app.prefix)
        .env("ONGI_MODEL_DIR", tiny_model_dir())
        .env("ONGI_STYLE_DEVICE", "cpu")
        .env("ONGI_HOST", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start gpu-job")
}

/// A job long enough on the tiny model to catch it running (30 steps at 512×384, a few
/// seconds), short enough to finish within the 60 s SIGTERM grace on a loaded machine.
fn long_job(photo: &str) -> Value {
    json!({"image": photo, "style": "oil painting", "steps": 30, "strength": 1.0, "seed": 3})
}

#[tokio::test]
async fn a_worker_killed_mid_job_is_reclaimed_and_the_job_finishes_exactly_once() {
    let app = spawn_app(&[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;
    let job_id = submitted(&app, long_job(&photo)).await;

    let mut process = spawn_worker_process(&app);
    let running = wait_for_job(&app, &job_id, Duration::from_secs(60), |j| j["status"] == "running").await;
    process.kill().expect("SIGKILL the worker"); // no chance to release or finish
    let _ = process.wait();
    let dead_worker = running["attempts"].clone();
    assert_eq!(dead_worker, 1);

    // Another worker finds nothing while the dead one's claim is fresh, then takes it over.
    let survivor = worker(&app, "w-survivor", 3, Duration::from_secs(1)).await;
    let step = step_until_busy(&survivor, Duration::from_secs(30)).await;
    assert!(
        matches!(&step, Step::Done { job_id: id, .. } if *id == job_id),
        "{step:?}"
    );
    let done = app.job(&job_id).await;
    assert_eq!(done["status"], "done");
    assert_eq!(done["attempts"], 2, "{done}");
    assert!(
        store
            .get(&results(), &format!("style/{job_id}.png"), 50 << 20)
            .await
            .is_ok()
    );

    // Exactly once: nothing is left to run, nothing was dead-lettered.
    let queue = app.queue(3);
    assert_eq!(queue.depth().await.unwrap(), 0);
    assert_eq!(queue.dead_letters().await.unwrap(), 0);
    let (_tx, mut stop) = watch::channel(false);
    assert_eq!(survivor.step(&mut stop).await.unwrap(), Step::Idle);
    assert_eq!(queue.get(&job_id).await.unwrap().unwrap().status, JobStatus::Done);
}

#[tokio::test]
async fn sigterm_lets_the_worker_finish_its_job_then_exit() {
    let app = spawn_app(&[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;
    let job_id = submitted(&app, long_job(&photo)).await;

    let mut process = spawn_worker_process(&app);
    wait_for_job(&app, &job_id, Duration::from_secs(60), |j| j["status"] == "running").await;
    let killed = Command::new("kill")
        .args(["-TERM", &process.id().to_string()])
        .status()
        .expect("kill -TERM");
    assert!(killed.success());
    let exit = tokio::task::spawn_blocking(move || process.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "gpu-job exited with {exit}");
    let done = app.job(&job_id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 1);
}

#[tokio::test]
async fn a_stop_past_the_grace_releases_the_job_without_spending_an_attempt() {
    let app = spawn_app(&[]).await;
    let store = store().await;
    let photo = upload_photo(&store).await;
    let job_id = submitted(&app, long_job(&photo)).await;
    let config = gpu_job::worker::WorkerConfig {
        shutdown_grace: Duration::ZERO,
        ..worker_config(Duration::from_secs(60))
    };
    let worker = worker_with(&app, "w-release", tiny_model(), config).await;
    let (tx, mut stop) = watch::channel(false);
    let stepping = tokio::spawn(async move { worker.step(&mut stop).await });
    wait_for_job(&app, &job_id, Duration::from_secs(30), |j| j["status"] == "running").await;
    tx.send(true).unwrap();
    let step = stepping.await.unwrap().unwrap();
    assert_eq!(step, Step::Released { job_id: job_id.clone() });
    let job = app.job(&job_id).await;
    assert_eq!(
        (job["status"].as_str(), job["attempts"].as_u64()),
        (Some("queued"), Some(0))
    );
    assert_eq!(app.queue(3).depth().await.unwrap(), 1);
}

/// A renderer that hangs (no denoising step, no beat) until released: a stuck GPU call.
struct Hanging {
    release: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl gpu_job::render::Renderer for Hanging {
    fn render(
        &self,
        input: &image::RgbImage,
        _job: &ongi_shared::queue::JobSpec,
        cancel: &std::sync::atomic::AtomicBool,
        _alive: &gpu_job::liveness::Liveness,
    ) -> Result<image::RgbImage, gpu_job::render::RenderError> {
        use std::sync::atomic::Ordering;
        while !self.release.load(Ordering::Relaxed) {
            if cancel.load(Ordering::Relaxed) {
                return Err(gpu_job::render::RenderError::Cancelled);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(input.clone())
    }

    fn device(&self) -> String {
        "test".to_owned()
    }
}

async fn healthz(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("healthz answers");
    let status = r.status().as_u16();
    (status, r.json().await.expect("json"))
}

#[tokio::test]
async fn healthz_fails_while_the_job_loop_is_stuck_and_recovers_when_it_moves_again() {
    let app = spawn_app(&[]).await;
    let store = store().await;
    let release = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stall_after = Duration::from_secs(1);
    let config = gpu_job::worker::WorkerConfig {
        heartbeat_every: Duration::from_millis(200),
        shutdown_grace: Duration::ZERO,
        stall_after,
        ..worker_config(Duration::from_secs(60))
    };
    let hanging = std::sync::Arc::new(Hanging {
        release: release.clone(),
    });
    let worker = worker_with(&app, "w-stuck", hanging, config).await;
    let health = gpu_job::service::Health {
        device: "test".to_owned(),
        queue: app.queue(3),
        liveness: worker.liveness(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/healthz", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, gpu_job::service::router(health)).await });
    let (stop_tx, stop) = watch::channel(false);
    let running = tokio::spawn(async move { worker.run(stop).await });

    // Idle for several stall periods: the loop turns (a claim every 300 ms), so it is alive.
    tokio::time::sleep(stall_after * 3).await;
    let (status, body) = healthz(&url).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")), "{body}");

    // A job whose render hangs: the heartbeats keep its entry claimed, but the loop stalls.
    let photo = upload_photo(&store).await;
    let job_id = submitted(&app, json!({"image": photo, "style": "oil painting", "steps": 2})).await;
    wait_for_job(&app, &job_id, Duration::from_secs(30), |j| j["status"] == "running").await;
    let started = Instant::now();
    let body = loop {
        let (status, body) = healthz(&url).await;
        if status == 503 {
            break body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "healthz still {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(body["status"], "stalled", "{body}");
    assert!(body["loop"]["silent_s"].as_f64().unwrap() > 1.0, "{body}");

    // Unstuck: the job finishes and the worker is healthy again.
    release.store(true, std::sync::atomic::Ordering::Relaxed);
    wait_for_job(&app, &job_id, Duration::from_secs(30), |j| j["status"] == "done").await;
    let (status, body) = healthz(&url).await;
    assert_eq!(status, 200, "{body}");
    stop_tx.send(true).unwrap();
    running.await.unwrap();
}
