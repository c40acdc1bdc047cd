//! `ongi serve` as a user runs it: the real binary, no settings at all, in an empty folder.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::run_with_timeout;
use ongi_test_support::{file_names, serve_files};
use sha2::{Digest, Sha256};

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `ongi serve --port 0` with an empty environment (PATH only) in `dir`, and waits
/// for the line that names its address.
fn start(dir: &std::path::Path) -> Server {
    start_with(dir, &[], &[]).0
}

/// [`start`] with more arguments and settings; also returns what it printed on stdout
/// before the address line.
fn start_with(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> (Server, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ongi"))
        .args(["serve", "--port", "0"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the ongi binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let base = loop {
        let line = lines
            .next()
            .expect("ongi serve printed its address before exiting")
            .expect("stdout is text");
        if let Some(url) = line.strip_prefix("ongi serve: listening on ") {
            break url.trim().to_owned();
        }
        printed.push(line);
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (Server { child, base }, printed)
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

#[tokio::test]
async fn serve_starts_with_no_settings_answers_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    assert!(
        server.base.starts_with("http://127.0.0.1:"),
        "loopback by default: {}",
        server.base
    );

    let health: serde_json::Value = reqwest::get(format!("{}/healthz", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["service"], "ongi");
    let ready = reqwest::get(format!("{}/readyz", server.base)).await.unwrap();
    assert_eq!(
        ready.status(),
        200,
        "embedded defaults are ready: local folder, in-process cache"
    );
    assert!(
        dir.path().join("data").is_dir(),
        "the local buckets folder ./data is created"
    );

    sigterm(&server.child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(12),
            "ongi serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean exit after SIGTERM: {status}");
}

#[test]
fn a_malformed_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_ongi"))
        .args(["serve", "--port", "0"])
        .env_clear()
        .env("REDIS_URL", "localhost:6379")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].contains("REDIS_URL"), "{stderr}");
}

#[test]
fn serving_beyond_loopback_needs_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ongi"))
        .args(["serve", "--port", "0", "--host", "0.0.0.0", "--no-fetch"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir.path())
        .output()
        .expect("the ongi binary runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ONGI_API_TOKEN"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn a_setting_out_of_its_range_stops_start_up_with_one_line_naming_it() {
    for (name, value) in [
        ("ONGI_QUALITY_BLUR", "NaN"),
        ("ONGI_QUALITY_DARK_FRACTION", "5"),
        ("ONGI_DUPLICATE_COSINE", "NaN"),
        ("ONGI_CATEGORY_FLOOR", "inf"),
        ("ONGI_HIGHLIGHTS", "0"),
        ("ONGI_STYLE_MAX_QUEUE", "0"),
        ("ONGI_CACHE_PREFIX", ""),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_ongi"));
        command
            .args(["serve", "--port", "0", "--no-fetch"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(name, value)
            .current_dir(dir.path());
        // A process that starts anyway would serve forever: the deadline turns that into a failure.
        let output = run_with_timeout(command, Duration::from_secs(30));
        assert!(!output.status.success(), "{name}={value:?} must stop start-up");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{name}={value:?}: one line: {stderr}");
        assert!(lines[0].contains(name), "{name}={value:?}: {stderr}");
    }
}

/// The series in a Prometheus text page (every line that is not a comment).
fn series(page: &str) -> usize {
    page.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count()
}

#[tokio::test]
async fn random_methods_and_paths_leave_the_metric_series_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let token = "a-metrics-test-token-0123456789";
    let (server, _) = start_with(dir.path(), &["--no-fetch"], &[("ONGI_API_TOKEN", token)]);
    let client = reqwest::Client::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut sent: Vec<String> = Vec::new();
    // Every shape of request a caller can make up: a made-up or a standard method, an unknown
    // path or a real route, no token, a wrong one or the right one.
    let methods = ["random", "GET", "PUT", "DELETE", "PATCH"];
    let paths = ["random", "/api/albums/quality"];
    let auths = [None, Some("not-the-token-at-all-0000"), Some(token)];
    let shapes: Vec<(usize, usize, usize)> = (0..methods.len())
        .flat_map(|m| (0..paths.len()).flat_map(move |p| (0..auths.len()).map(move |a| (m, p, a))))
        .collect();
    let mut send = async |(m, p, a): (usize, usize, usize), next: &mut dyn FnMut() -> u64| {
        let word = |n: u64| -> String { (0..10).map(|i| (b'A' + ((n >> (i * 5)) % 26) as u8) as char).collect() };
        let method = if methods[m] == "random" {
            let w = word(next());
            sent.push(w.clone());
            w
        } else {
            methods[m].to_owned()
        };
        let path = if paths[p] == "random" {
            let w = format!("/r{}/{}", next() % 1000, word(next()).to_lowercase());
            sent.push(w.clone());
            w
        } else {
            paths[p].to_owned()
        };
        let mut request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", server.base),
        );
        if let Some(t) = auths[a] {
            request = request.bearer_auth(t);
        }
        let status = request.send().await.unwrap().status().as_u16();
        assert!([401, 404, 405].contains(&status), "{method} {path}: {status}");
    };
    for &shape in &shapes {
        send(shape, &mut next).await;
    }
    let metrics = async || {
        client
            .get(format!("{}/metrics", server.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    // Twice: a scrape's own request is recorded after its page was rendered.
    metrics().await;
    let before = metrics().await;
    for _ in 0..400 {
        let shape = shapes[(next() % shapes.len() as u64) as usize];
        send(shape, &mut next).await;
    }
    let after = metrics().await;
    println!(
        "{} series, {} bytes after {} requests; {} series, {} bytes after {} more",
        series(&before),
        before.len(),
        shapes.len(),
        series(&after),
        after.len(),
        400
    );
    assert!(
        after.contains("method=\"other\""),
        "made-up methods are counted as other:\n{after}"
    );
    assert!(after.contains("route=\"unmatched\""), "{after}");
    assert_eq!(
        series(&after),
        series(&before),
        "new series from random requests:\n{after}"
    );
    assert!(
        after.len() < before.len() + 4096,
        "{} → {} bytes",
        before.len(),
        after.len()
    );
    for word in &sent {
        assert!(!after.contains(word.as_str()), "{word} became a label:\n{after}");
    }
}

#[test]
fn a_users_model_file_that_differs_from_the_pin_survives_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let own = b"the user's own CLIP graph, not the production one".to_vec();
    std::fs::write(models.join("clip-vit-b32-visual.onnx"), &own).unwrap();

    // No model hub is reachable here: the start-up download of the missing files fails.
    let (server, printed) = start_with(dir.path(), &[], &[]);
    assert_eq!(
        std::fs::read(models.join("clip-vit-b32-visual.onnx")).unwrap(),
        own,
        "the user's file is untouched"
    );
    let line = printed
        .iter()
        .find(|l| l.contains("clip-vit-b32-visual.onnx"))
        .unwrap_or_else(|| panic!("one line says why the file is not replaced: {printed:?}"));
    assert!(line.contains("ongi models fetch"), "and how to fix it: {line}");
    drop(server);
}

#[test]
fn start_up_installs_what_is_missing_and_never_touches_a_file_that_is_there() {
    let missing = b"a model that is missing".to_vec();
    let pinned = b"the pinned bytes of m.onnx".to_vec();
    let (base, hits) = serve_files(vec![("n.onnx", missing.clone()), ("m.onnx", pinned.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let entry = |role: &str, file: &str, bytes: &[u8]| {
        format!(
            "[[model]]\nrole = \"{role}\"\nfile = \"{file}\"\nsha256 = \"{}\"\nbytes = {}\n\
             licence = \"MIT\"\nsource = \"{base}/{file}\"\nrequired = true\n\n",
            hex(&Sha256::digest(bytes)),
            bytes.len()
        )
    };
    let manifest = format!("{}{}", entry("m", "m.onnx", &pinned), entry("n", "n.onnx", &missing));
    std::fs::write(models.join("manifest.toml"), &manifest).unwrap();
    let own = b"the user's edit of m.onnx".to_vec();
    std::fs::write(models.join("m.onnx"), &own).unwrap();

    let (server, printed) = start_with(dir.path(), &[], &[]);
    assert_eq!(std::fs::read(models.join("n.onnx")).unwrap(), missing, "{printed:?}");
    assert_eq!(std::fs::read(models.join("m.onnx")).unwrap(), own, "{printed:?}");
    assert_eq!(
        std::fs::read_to_string(models.join("manifest.toml")).unwrap(),
        manifest,
        "the folder's own manifest is kept"
    );
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "only n.onnx was downloaded"
    );
    assert_eq!(
        file_names(&models),
        [".ongi-sha256", "m.onnx", "manifest.toml", "n.onnx"]
    );
    let line = printed
        .iter()
        .find(|l| l.contains("m.onnx") && !l.contains("n.onnx"))
        .unwrap_or_else(|| panic!("one line says m.onnx is left as it is: {printed:?}"));
    assert!(line.contains("ongi models fetch"), "{line}");
    drop(server);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The README's run command on a machine with an installed Python `onnxruntime` package and
/// the models in the model folder: no `ORT_DYLIB_PATH`, and CLIP loads. The package is the
/// wheel's layout (`onnxruntime/capi/libonnxruntime.so.1.32.0`, the real library) under a
/// folder on `PYTHONPATH`, found by asking the real `python3`.
#[tokio::test]
async fn serve_finds_onnx_runtime_in_the_python_package_and_loads_clip() {
    let real = ongi_test_support::required_env("ORT_DYLIB_PATH");
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site-packages");
    let capi = site.join("onnxruntime/capi");
    std::fs::create_dir_all(&capi).unwrap();
    std::fs::write(site.join("onnxruntime/__init__.py"), "").unwrap();
    let library = capi.join("libonnxruntime.so.1.32.0");
    std::os::unix::fs::symlink(&real, &library).unwrap();
    let models = common::clip_model_folder();

    let (server, printed) = start_with(
        dir.path(),
        &["--no-fetch"],
        &[
            ("PYTHONPATH", site.to_str().unwrap()),
            ("ONGI_MODEL_DIR", models.path().to_str().unwrap()),
        ],
    );
    let line = printed
        .iter()
        .find(|l| l.contains("ONNX Runtime"))
        .unwrap_or_else(|| panic!("the start-up names the library: {printed:?}"));
    assert!(line.contains("the Python onnxruntime package"), "{line}");
    assert!(line.contains(library.to_str().unwrap()), "{line}");
    let ready: serde_json::Value = reqwest::get(format!("{}/readyz", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let clip = ready["models"]["clip"].as_str().unwrap_or_default();
    assert!(clip.starts_with("clip-vit-b32@"), "CLIP is loaded: {ready}");
    let missing = ready["models"]["missing"].to_string();
    assert!(!missing.contains("ONNX Runtime"), "{missing}");
}

/// Where no library is found, start-up downloads the pinned release archive from
/// `ONGI_ORT_DOWNLOAD_URL`; bytes that are not the pinned archive are refused, nothing is
/// left in the model folder, and the service starts all the same.
#[tokio::test]
async fn start_up_refuses_a_runtime_archive_that_is_not_the_pinned_one_and_serves_anyway() {
    let Some(release) = ongi_shared::model::ort_library::OrtRelease::pinned() else {
        return;
    };
    let route = format!("v{}/{}", release.version, release.archive());
    let (base, hits) = serve_files(vec![(&route, b"not the release archive".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    // Every model the folder's manifest lists is there: only the library is fetched.
    let body = b"a tiny model".to_vec();
    std::fs::write(models.join("m.onnx"), &body).unwrap();
    std::fs::write(
        models.join("manifest.toml"),
        format!(
            "[[model]]\nrole = \"m\"\nfile = \"m.onnx\"\nsha256 = \"{}\"\nbytes = {}\nlicence = \"MIT\"\n\
             source = \"\"\nrequired = true\n",
            hex(&Sha256::digest(&body)),
            body.len()
        ),
    )
    .unwrap();

    let (server, printed) = start_with(
        dir.path(),
        &[],
        &[
            ("ONGI_MODEL_DIR", models.to_str().unwrap()),
            ("ONGI_ORT_DOWNLOAD_URL", &base),
        ],
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1, "{printed:?}");
    let line = printed
        .iter()
        .find(|l| l.contains(&release.archive()))
        .unwrap_or_else(|| panic!("one line says the archive was refused: {printed:?}"));
    assert!(
        line.contains(&hex(&Sha256::digest(b"not the release archive"))),
        "{line}"
    );
    // Nothing of the archive: the only new file is the hash stamp of m.onnx's start-up check.
    assert_eq!(file_names(&models), [".ongi-sha256", "m.onnx", "manifest.toml"]);
    let health = reqwest::get(format!("{}/healthz", server.base)).await.unwrap();
    assert_eq!(health.status(), 200);
}
