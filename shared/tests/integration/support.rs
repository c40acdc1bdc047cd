//! Test helpers: the servers `.ci/run` starts, and spawning the real application.

use std::collections::HashMap;
use std::net::SocketAddr;

use ongi_shared::config::Settings;
use ongi_shared::http::Application;
use ongi_shared::modules::Modules;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use ongi_test_support::{
    Killed, free_port, redis_url, required_env, storage_emulator, unique_prefix, wait_for_port,
};

pub fn unique_name(ext: &str) -> String {
    format!("tests/{}.{ext}", uuid::Uuid::new_v4())
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
