//! A private `redis-server` of a test's own, for what the shared one cannot show: an
//! outage (killed, then started again on the same port) or a password.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Killed, wait_for_port};

/// A `redis-server` on `port`, optionally with a password (`--requirepass`, as
/// Memorystore's AUTH string); killed on drop.
pub struct RedisServer {
    process: Option<Killed>,
    pub port: u16,
    password: Option<String>,
}

impl RedisServer {
    pub fn start(port: u16) -> Self {
        Self::spawn(port, None)
    }

    pub fn start_with_password(port: u16, password: &str) -> Self {
        Self::spawn(port, Some(password.to_owned()))
    }

    fn spawn(port: u16, password: Option<String>) -> Self {
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]);
        if let Some(p) = &password {
            command.args(["--requirepass", p]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is on PATH (.ci/run installs it)");
        let process = Killed(child);
        wait_for_port(port, Duration::from_secs(10), "redis-server");
        Self {
            process: Some(process),
            port,
            password,
        }
    }

    /// `redis://127.0.0.1:PORT` (without the password).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The number of keys, asked over RESP by hand (a client crate for one command is not
    /// worth it), after `AUTH` when the server has a password.
    pub fn dbsize(&self) -> u64 {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reader = BufReader::new(s.try_clone().unwrap());
        let mut line = String::new();
        if let Some(p) = &self.password {
            write!(s, "AUTH {p}\r\n").unwrap();
            reader.read_line(&mut line).unwrap();
            assert!(line.starts_with("+OK"), "AUTH: {line}");
            line.clear();
        }
        s.write_all(b"DBSIZE\r\n").unwrap();
        reader.read_line(&mut line).unwrap();
        line.trim()
            .trim_start_matches(':')
            .parse()
            .unwrap_or_else(|_| panic!("DBSIZE: {line}"))
    }

    /// Stops the server now (an outage); the port is free again once this returns.
    pub fn kill(&mut self) {
        self.process.take();
    }
}
