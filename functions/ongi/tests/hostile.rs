//! `ongi bench hostile` on the real `ongi serve` (tiny CLIP, the real MTCNN, the tiny SFace,
//! ONNX Runtime, Redis for the style route): every bomb at once on every route, trickled
//! bodies and distinct texts beside them, a well-behaved caller timed, the server's memory
//! sampled. The figures in docs/reliability.md come from the same command on a release
//! build in a 2 GiB cgroup; CI runs fewer copies of each bomb and smaller floods, and bounds
//! the well-behaved caller's p99 loosely (a debug build, beside the other tests).
//!
//! Needs `REDIS_URL`, `ORT_DYLIB_PATH` and `ONGI_MTCNN_DIR` (set by `.ci/run`).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{full_model_folder, run_with_timeout};
use ongi_test_support::required_env;
use serde_json::Value;

#[test]
fn memory_bombs_on_every_route_are_refused_and_the_server_stays_within_its_memory() {
    let models = full_model_folder();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ongi"));
    cmd.args(["bench", "hostile", "--variants", "2", "--concurrency", "2"])
        .args([
            "--body-flood",
            "200",
            "--text-flood",
            "1",
            "--max-p99-s",
            "20",
            "--models",
        ])
        .arg(models.path())
        .env("REDIS_URL", required_env("REDIS_URL"))
        .env("ORT_DYLIB_PATH", required_env("ORT_DYLIB_PATH"))
        .env("ONGI_FACE_DETECTOR", "mtcnn")
        .env("ONGI_CACHE_PREFIX", format!("test-hostile-{}:", std::process::id()))
        .env_remove("ONGI_MODEL_DIR")
        .env_remove("RUST_LOG");
    let out = run_with_timeout(cmd, Duration::from_secs(600));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stdout
        .lines()
        .find(|l| l.contains("\"config\":\"hostile\""))
        .unwrap_or_else(|| panic!("no report:\n{stdout}\n{stderr}"));
    let report: Value = serde_json::from_str(line).unwrap();
    assert!(out.status.success(), "{report}\n{stderr}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["server_exited"], Value::Null);
    assert!(report["rss_peak_mib"].as_f64().unwrap() <= 1536.0, "{report}");
    // The well-behaved caller was served all along, every photo analysed.
    let steady = &report["steady"];
    assert!(steady["calls"].as_u64().unwrap() >= 1, "{steady}");
    assert_eq!(steady["not_analysed"], 0, "{steady}");
    // The floods ran: trickled bodies were cut or still open, never answered 503 for memory.
    let endings = report["body_flood"]["endings"].as_object().unwrap();
    assert!(!endings.is_empty() && !endings.contains_key("503"), "{endings:?}");
    assert!(report["text_flood"]["texts"].as_u64().unwrap() >= 64, "{report}");
    let routes = report["routes"].as_object().unwrap();
    for route in [
        "embedding",
        "categories",
        "duplicates",
        "quality",
        "score",
        "people",
        "style",
    ] {
        let r = &routes[route];
        assert_eq!(r["held"], true, "{route}: {r}");
        // 4 kinds of bomb that must be refused, 2 copies each, in each of 2 calls (style: 1 call per copy).
        let refused: u64 = r["refused_by_reason"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        let expected = if route == "style" { 8 } else { 16 };
        assert!(refused >= expected, "{route}: {r}");
    }
}
