//! Test helpers: the servers `.ci/run` starts, ONNX Runtime and the face detector it
//! provides, and spawning the real application.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ongi_shared::config::Settings;
use ongi_shared::http::Application;
use ongi_shared::model::face::DetectOptions;
use ongi_shared::model::face::mtcnn::Mtcnn;
use ongi_shared::model::runtime::{self, SessionConfig};
use ongi_shared::modules::Modules;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A setting the integration tests need from `.ci/run`; fails with one clear line if absent.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the tests through .ci/run, which starts Redis and fake-gcs-server")
    })
}

pub fn redis_url() -> String {
    required_env("REDIS_URL")
}

pub fn storage_emulator() -> String {
    let host = required_env("STORAGE_EMULATOR_HOST");
    if host.starts_with("http") {
        host
    } else {
        format!("http://{host}")
    }
}

/// A key prefix no other test uses, so tests can share one Redis.
pub fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4())
}

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

/// Waits until something accepts connections on `port`, failing the test after `limit`.
pub fn wait_for_port(port: u16, limit: std::time::Duration, what: &str) {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < limit,
            "{what} did not start listening on port {port}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A port nothing listens on (bound, read, released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
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

    /// Triggers the same graceful shutdown SIGTERM does.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the real application on port 0 with a temporary data folder, local storage and
/// the in-process cache, plus any `extra` settings.
pub async fn spawn_app(modules: Modules, extra: &[(&str, &str)]) -> TestApp {
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
    let app = Application::build(settings, modules).await.expect("the app builds");
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
