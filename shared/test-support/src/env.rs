//! The settings `.ci/run` provides to tests, and names no other test uses.

use ongi_shared::config::parse::with_http_scheme;

/// A setting `.ci/run` provides; fails the test with one clear line if absent.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the tests through .ci/run, which provides it (and starts Redis and fake-gcs-server)"
        )
    })
}

/// The shared Redis `.ci/run` starts.
pub fn redis_url() -> String {
    required_env("REDIS_URL")
}

/// The fake-gcs-server `.ci/run` starts, as a URL.
pub fn storage_emulator() -> String {
    with_http_scheme(&required_env("STORAGE_EMULATOR_HOST"))
}

/// A cache key prefix no other test uses, so tests can share one Redis.
pub fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4())
}
