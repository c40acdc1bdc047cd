//! A fake-gcs-server of a test's own (`FAKE_GCS_SERVER_BIN`, which `.ci/run` provides), for
//! what the shared one cannot show: a bucket laid out on disk, an outage, upload
//! notifications to a Pub/Sub topic.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::env::required_env;
use crate::process::{Killed, wait_for_port};

/// Starts fake-gcs-server on `127.0.0.1:port` (plain HTTP, the same public host) with the
/// extra `args` (its backend, `-log-level`, events) and `env`, waits up to `limit` for it
/// to listen, and kills it on drop.
pub fn start_fake_gcs(port: u16, args: &[&str], env: &[(&str, &str)], limit: Duration) -> Killed {
    let process = Killed(
        Command::new(required_env("FAKE_GCS_SERVER_BIN"))
            .args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string()])
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("fake-gcs-server starts"),
    );
    wait_for_port(port, limit, "fake-gcs-server");
    process
}
