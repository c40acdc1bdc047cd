//! A real `ongi serve` as a child process, for the benchmarks that measure it from outside
//! (`bench load`, `bench hostile`): loopback, a port of its own, `--no-fetch`, local storage
//! over a data folder the benchmark prepared, the caller's environment otherwise
//! (`REDIS_URL`, `ORT_DYLIB_PATH`, …), and its resident memory read from /proc.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::album::readyz;

/// The server process; stopped (SIGTERM, then SIGKILL) when dropped, and its data folder
/// removed.
pub struct ServeChild {
    pub child: Child,
    pub port: u16,
    data: PathBuf,
}

impl ServeChild {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Whether the process has exited (crashed, or killed for memory).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for ServeChild {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_dir_all(&self.data);
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data);
    }
}

/// Starts `server_bin serve` (this binary when `None`) over `data` (whose `uploads/` the
/// caller filled) with `models`, plus `env`, and waits until `/readyz` answers 200.
pub fn start(
    server_bin: Option<&Path>,
    models: &Path,
    data: PathBuf,
    env: &[(&str, String)],
    log_path: &Path,
) -> anyhow::Result<ServeChild> {
    let exe = match server_bin {
        Some(bin) => bin.to_path_buf(),
        None => std::env::current_exe().context("cannot find the ongi binary")?,
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let log = std::fs::File::create(log_path).with_context(|| format!("cannot create {}", log_path.display()))?;
    let mut command = Command::new(&exe);
    command
        .args(["serve", "--no-fetch", "--port", &port.to_string()])
        .env("ONGI_MODEL_DIR", models)
        .env("ONGI_DATA_DIR", &data)
        .env("ONGI_STORAGE", "local")
        .env_remove("STORAGE_EMULATOR_HOST")
        .env_remove("PUBSUB_EMULATOR_HOST")
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command
        .spawn()
        .with_context(|| format!("cannot start {} serve", exe.display()))?;
    let mut server = ServeChild { child, port, data };
    let started = Instant::now();
    while readyz(port) != Some(200) {
        if let Some(exit) = server.exited() {
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            bail!("ongi serve exited with {exit} before it was ready:\n{log}");
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("ongi serve was not ready within 180 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(server)
}

/// Resident memory of a process in MiB, from /proc (Linux).
pub fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}
