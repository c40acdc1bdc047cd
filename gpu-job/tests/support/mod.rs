//! Test helpers for the style flow: the real app (style module) and a real worker on the
//! tiny random-weight model, both against the Redis and fake-gcs-server that `.ci/run`
//! starts, plus a local fake of Gemini's HTTP API (the one stand-in the project allows:
//! Gemini cannot run here).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use gpu_job::diffusion::{Architecture, DeviceChoice, StyleModel, write_random_model};
use gpu_job::render::Renderer;
use gpu_job::worker::{Worker, WorkerConfig};
use ongi_shared::config::{IngestLimits, Settings};
use ongi_shared::domain::BucketName;
use ongi_shared::events::publish::LogPublisher;
use ongi_shared::functions::{Function, Functions};
use ongi_shared::http::Application;
use ongi_shared::queue::StyleQueue;
use ongi_shared::storage::ObjectStore;
use ongi_shared::storage::gcs::GcsStore;
use tokio::sync::oneshot;

pub use ongi_test_support::{free_port, redis_url, storage_emulator, unique_prefix};

pub fn uploads() -> BucketName {
    BucketName::parse("uploads").expect("bucket")
}

pub fn results() -> BucketName {
    BucketName::parse("results").expect("bucket")
}

pub async fn store() -> Arc<dyn ObjectStore> {
    Arc::new(
        GcsStore::emulator(&storage_emulator(), None)
            .await
            .expect("the GCS emulator client"),
    )
}

/// A 640×480 PNG gradient, uploaded under a fresh name; returns the name.
pub async fn upload_photo(store: &Arc<dyn ObjectStore>) -> String {
    let name = format!("tests/{}.png", uuid::Uuid::new_v4());
    let img = image::RgbImage::from_fn(640, 480, |x, y| image::Rgb([(x / 3) as u8, (y / 2) as u8, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png).expect("encode");
    store
        .put(&uploads(), &name, Bytes::from(png.into_inner()), "image/png")
        .await
        .expect("upload");
    name
}

/// Deletes an object straight through the emulator's JSON API (the store has no delete).
pub async fn delete_object(name: &str) {
    let url = format!(
        "{}/storage/v1/b/uploads/o/{}",
        storage_emulator(),
        name.replace('/', "%2F")
    );
    let status = reqwest::Client::new()
        .delete(url)
        .send()
        .await
        .expect("delete")
        .status();
    assert!(status.is_success(), "delete answered {status}");
}

/// The model folder (`<dir>/sd15`) with the tiny random-weight model, written once per run.
pub fn tiny_model_dir() -> &'static Path {
    static DIR: LazyLock<PathBuf> = LazyLock::new(|| {
        let dir = std::env::temp_dir().join(format!("ongi-tiny-sd-{}", std::process::id()));
        write_random_model(&dir.join("sd15"), &Architecture::tiny(), 0).expect("write the tiny model");
        dir
    });
    &DIR
}

pub fn tiny_model() -> Arc<dyn Renderer> {
    static MODEL: LazyLock<Arc<StyleModel>> = LazyLock::new(|| {
        Arc::new(StyleModel::load(&tiny_model_dir().join("sd15"), DeviceChoice::Cpu).expect("load the tiny model"))
    });
    MODEL.clone()
}

/// What the fake Gemini answers.
#[derive(Clone)]
pub enum GeminiMode {
    /// 200 with this positive and negative prompt as the JSON text.
    Prompt(&'static str, &'static str),
    /// Always this HTTP status.
    Status(u16),
    /// 200 with text that is not the JSON asked for.
    Junk,
}

#[derive(Clone)]
pub struct FakeGemini {
    pub address: SocketAddr,
    mode: Arc<Mutex<GeminiMode>>,
    /// Every request: (its `x-goog-api-key`, its JSON body).
    pub requests: Arc<Mutex<Vec<(String, serde_json::Value)>>>,
}

impl FakeGemini {
    pub async fn start(mode: GeminiMode) -> Self {
        let fake = Self {
            address: "127.0.0.1:0".parse().expect("addr"),
            mode: Arc::new(Mutex::new(mode)),
            requests: Arc::new(Mutex::new(Vec::new())),
        };
        let app = axum::Router::new()
            .route("/v1beta/models/{model}", axum::routing::post(generate))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { address, ..fake }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    pub fn set(&self, mode: GeminiMode) {
        *self.mode.lock().expect("lock") = mode;
    }

    pub fn calls(&self) -> usize {
        self.requests.lock().expect("lock").len()
    }
}

async fn generate(
    State(fake): State<FakeGemini>,
    headers: HeaderMap,
    body: axum::Json<serde_json::Value>,
) -> impl IntoResponse {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    fake.requests.lock().expect("lock").push((key, body.0));
    let mode = fake.mode.lock().expect("lock").clone();
    let text = match mode {
        GeminiMode::Status(code) => {
            return (StatusCode::from_u16(code).expect("status"), "unavailable".to_owned()).into_response();
        }
        GeminiMode::Prompt(positive, negative) => {
            serde_json::json!({"positive": positive, "negative": negative}).to_string()
        }
        GeminiMode::Junk => "Sure! Here is a lovely prompt for you.".to_owned(),
    };
    axum::Json(serde_json::json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}]
    }))
    .into_response()
}

pub const GEMINI_KEY: &str = "test-key-never-logged-0123";

pub struct TestApp {
    pub address: SocketAddr,
    pub prefix: String,
    pub client: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn submit(&self, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url("/api/albums/style"))
            .json(&body)
            .send()
            .await
            .expect("the server answers")
    }

    pub async fn job(&self, id: &str) -> serde_json::Value {
        let r = self
            .client
            .get(self.url(&format!("/api/albums/style/{id}")))
            .send()
            .await
            .expect("answers");
        assert_eq!(r.status(), 200);
        r.json::<serde_json::Value>().await.expect("json")["data"].clone()
    }

    /// The queue this app submits to (same Redis, same prefix).
    pub fn queue(&self, max_attempts: u32) -> StyleQueue {
        StyleQueue::new(&redis_url(), &self.prefix, max_attempts, Duration::from_secs(600)).expect("queue")
    }
}

/// The real application serving the style module, on Redis and fake-gcs-server.
pub async fn spawn_app(extra: &[(&str, &str)]) -> TestApp {
    let prefix = unique_prefix();
    let mut env: HashMap<String, String> = HashMap::from([
        ("PORT".into(), "0".into()),
        ("ONGI_HOST".into(), "127.0.0.1".into()),
        ("REDIS_URL".into(), redis_url()),
        ("STORAGE_EMULATOR_HOST".into(), storage_emulator()),
        ("ONGI_CACHE_PREFIX".into(), prefix.clone()),
    ]);
    for (k, v) in extra {
        if v.is_empty() {
            env.remove(*k);
        } else {
            env.insert((*k).into(), (*v).into());
        }
    }
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings are valid");
    let app = Application::build(settings, Functions::only(Function::Style))
        .await
        .expect("the app builds");
    let address = app.address();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        prefix,
        client: reqwest::Client::new(),
        stop: Some(tx),
    }
}

/// The worker settings the tests start from: `reclaim_after`, and defaults for the rest.
pub fn worker_config(reclaim_after: Duration) -> WorkerConfig {
    WorkerConfig {
        results_bucket: results(),
        reclaim_after,
        heartbeat_every: WorkerConfig::heartbeat_for(reclaim_after),
        shutdown_grace: Duration::from_secs(30),
        limits: IngestLimits::default(),
        stall_after: Duration::from_secs(300),
    }
}

/// An in-process worker on the app's queue (3 attempts) with `renderer` and `config`.
pub async fn worker_with(app: &TestApp, name: &str, renderer: Arc<dyn Renderer>, config: WorkerConfig) -> Worker {
    let queue = app
        .queue(3)
        .worker(name, Duration::from_millis(300))
        .await
        .expect("worker queue");
    Worker::new(queue, store().await, Arc::new(LogPublisher), renderer, config)
}

/// An in-process worker on the app's queue with the tiny model.
pub async fn worker(app: &TestApp, name: &str, max_attempts: u32, reclaim_after: Duration) -> Worker {
    let queue = app
        .queue(max_attempts)
        .worker(name, Duration::from_millis(300))
        .await
        .expect("worker queue");
    Worker::new(
        queue,
        store().await,
        Arc::new(LogPublisher),
        tiny_model(),
        worker_config(reclaim_after),
    )
}

/// Polls the job until `pred` holds, or fails after `limit`.
pub async fn wait_for_job(
    app: &TestApp,
    id: &str,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let job = app.job(id).await;
        if pred(&job) {
            return job;
        }
        assert!(
            started.elapsed() < limit,
            "job {id} did not reach the state within {limit:?}: {job}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
