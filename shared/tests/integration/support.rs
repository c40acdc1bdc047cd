//! Test helpers: the servers `.ci/run` starts, the Pub/Sub emulator where there is one, ONNX
//! Runtime and the face detector it provides, and spawning the real application.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine;
use ongi_shared::config::Settings;
use ongi_shared::config::parse::with_http_scheme;
use ongi_shared::functions::Functions;
use ongi_shared::http::Application;
use ongi_shared::model::face::DetectOptions;
use ongi_shared::model::face::mtcnn::Mtcnn;
use ongi_shared::model::runtime::{self, SessionConfig};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use ongi_test_support::{
    Killed, free_port, redis_url, required_env, start_fake_gcs, storage_emulator, unique_prefix,
};

pub fn unique_name(ext: &str) -> String {
    format!("tests/{}.{ext}", uuid::Uuid::new_v4())
}

/// ONNX Runtime from `ORT_DYLIB_PATH` (which `.ci/run` sets), for the face detection tests.
pub fn ort_env() -> &'static ort::environment::Environment {
    let lib = required_env("ORT_DYLIB_PATH");
    runtime::environment(Some(Path::new(&lib)), "the face detection tests").expect("ONNX Runtime loads")
}

/// The session settings the face detectors run with in the tests.
pub fn session_config() -> SessionConfig {
    SessionConfig::threads(runtime::intra_op_threads())
}

/// `tests/fixtures/faces`: the tiny generated models and the Python reference.
pub fn face_fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces")
}

/// MTCNN with its real weights from `ONGI_MTCNN_DIR` (unpacked by `.ci/run`).
pub fn mtcnn(options: DetectOptions) -> Mtcnn {
    let dir = required_env("ONGI_MTCNN_DIR");
    Mtcnn::load(ort_env(), Path::new(&dir), session_config(), options).expect("the MTCNN networks load")
}

/// The Pub/Sub emulator at `PUBSUB_EMULATOR_HOST`, through its REST API, in one project.
pub struct PubSubEmulator {
    /// `host:port`, as the emulator's clients (and `PUBSUB_EMULATOR_HOST`) take it.
    pub host: String,
    project: String,
    url: String,
    http: reqwest::Client,
}

/// The Pub/Sub emulator, for `project`; `None`, after one line saying the test is skipped,
/// where `PUBSUB_EMULATOR_HOST` is not set (only machines with `gcloud` have the emulator).
pub fn pubsub_emulator(project: &str) -> Option<PubSubEmulator> {
    let Ok(host) = std::env::var("PUBSUB_EMULATOR_HOST") else {
        eprintln!("SKIPPED: PUBSUB_EMULATOR_HOST is not set (no gcloud on this machine, so no Pub/Sub emulator)");
        return None;
    };
    Some(PubSubEmulator {
        url: with_http_scheme(&host),
        host,
        project: project.to_owned(),
        http: reqwest::Client::new(),
    })
}

impl PubSubEmulator {
    /// `projects/P/topics/TOPIC`.
    pub fn topic(&self, topic: &str) -> String {
        format!("projects/{}/topics/{topic}", self.project)
    }

    /// Creates `path` (`topics/T` or `subscriptions/S`) with `body`, failing the test if the
    /// emulator refuses.
    pub async fn put(&self, path: &str, body: Value) {
        let resp = self
            .http
            .put(format!("{}/v1/projects/{}/{path}", self.url, self.project))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "PUT {path}: {} {}",
            resp.status(),
            resp.text().await.unwrap()
        );
    }

    /// One pull on subscription `sub` with `request` (`maxMessages`, …): the messages
    /// received, not acknowledged.
    pub async fn pull(&self, sub: &str, request: Value) -> Vec<Value> {
        let pulled: Value = self
            .http
            .post(format!(
                "{}/v1/projects/{}/subscriptions/{sub}:pull",
                self.url, self.project
            ))
            .json(&request)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pulled["receivedMessages"].as_array().cloned().unwrap_or_default()
    }

    /// Acknowledges `received` (from [`Self::pull`]) on subscription `sub`.
    pub async fn acknowledge(&self, sub: &str, received: &[Value]) {
        let ack_ids: Vec<Value> = received.iter().map(|m| m["ackId"].clone()).collect();
        self.http
            .post(format!(
                "{}/v1/projects/{}/subscriptions/{sub}:acknowledge",
                self.url, self.project
            ))
            .json(&json!({"ackIds": ack_ids}))
            .send()
            .await
            .unwrap();
    }
}

/// A received message's data (base64 JSON), parsed.
pub fn message_data<T: DeserializeOwned>(received: &Value) -> T {
    let data = base64::engine::general_purpose::STANDARD
        .decode(received["message"]["data"].as_str().unwrap_or_default())
        .unwrap();
    serde_json::from_slice(&data).expect("a JSON message")
}

pub struct TestApp {
    pub address: SocketAddr,
    /// The running application's state (its services), for what the HTTP answers do not show.
    pub state: ongi_shared::http::AppState,
    pub client: reqwest::Client,
    /// Kept alive for the app's lifetime; deleted on drop.
    pub _data_dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    pub handle: JoinHandle<Result<(), std::io::Error>>,
}

impl TestApp {
    /// The local buckets folder (`ONGI_DATA_DIR`).
    pub fn data_dir(&self) -> &std::path::Path {
        self._data_dir.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("the server answers")
    }

    /// `post_json`, and the answer's body as JSON (whatever its status).
    pub async fn post_for_json(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        self.post_json(path, body)
            .await
            .json()
            .await
            .expect("the answer is JSON")
    }

    /// Triggers the same graceful shutdown SIGTERM does.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the real application on port 0 with a temporary data folder, local storage and
/// the in-process cache, plus any `extra` settings.
pub async fn spawn_app(functions: Functions, extra: &[(&str, &str)]) -> TestApp {
    // Logs only when asked for: `TEST_LOG=1 cargo test …`.
    if std::env::var_os("TEST_LOG").is_some() {
        ongi_shared::telemetry::init_logging(ongi_shared::config::LogFormat::Text);
    }
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut env: HashMap<String, String> = HashMap::from([
        ("PORT".into(), "0".into()),
        ("ONGI_HOST".into(), "127.0.0.1".into()),
        ("ONGI_DATA_DIR".into(), data_dir.path().display().to_string()),
        ("ONGI_CACHE_PREFIX".into(), unique_prefix()),
    ]);
    for (k, v) in extra {
        env.insert((*k).into(), (*v).into());
    }
    let settings = Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings are valid");
    let app = Application::build(settings, functions).await.expect("the app builds");
    let address = app.address();
    let state = app.state().clone();
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        state,
        client: reqwest::Client::new(),
        _data_dir: data_dir,
        stop: Some(tx),
        handle,
    }
}
