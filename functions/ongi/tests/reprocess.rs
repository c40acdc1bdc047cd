//! `ongi reprocess` as a user runs it: the real binary on a local folder of generated photos,
//! with the cursor and the results in the real Redis (`REDIS_URL`, as `.ci/run` starts it),
//! so a second process finds the first one's work.

use std::path::Path;
use std::process::{Command, Output};

use ongi_test_support::redis_url;

/// Runs `ongi reprocess ARGS` in `dir` with only the settings given (and PATH).
fn reprocess(dir: &Path, cache_prefix: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ongi"))
        .arg("reprocess")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("REDIS_URL", redis_url())
        .env("ONGI_CACHE_PREFIX", cache_prefix)
        .current_dir(dir)
        .output()
        .expect("the ongi binary runs")
}

/// The JSON report on stdout of a run that succeeded.
fn report(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "ongi reprocess failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is the JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

fn write_photo(path: &Path, seed: u32) {
    let img = image::RgbImage::from_fn(48, 36, |x, y| {
        image::Rgb([(x * 5 + seed * 31) as u8, (y * 7 + seed * 11) as u8, (seed * 53) as u8])
    });
    img.save(path).unwrap();
}

#[test]
fn reprocess_walks_a_local_folder_once_and_then_skips_it() {
    let home = tempfile::tempdir().unwrap();
    let photos = home.path().join("photos");
    let album = photos.join("uploads/trip");
    std::fs::create_dir_all(&album).unwrap();
    for i in 0..6 {
        write_photo(&album.join(format!("{i}.png")), i);
    }
    std::fs::write(album.join("broken.jpg"), b"not a photo").unwrap();
    std::fs::write(album.join("list.txt"), b"not a photo either").unwrap();
    // A key prefix of its own, so runs of this test never see each other's cursor or results.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("test:cli:{}:{nanos}:", std::process::id());
    let folder = photos.display().to_string();
    let args = ["--data-dir", folder.as_str(), "--prefix", "trip/"];

    let dry = report(&reprocess(home.path(), &prefix, &[&args[..], &["--dry-run"]].concat()));
    assert_eq!(dry["would_process"], 7, "{dry}");
    assert_eq!(dry["processed"], 0);

    // Small pages and a one-page budget per call: the command chains calls to the end.
    let first_out = reprocess(
        home.path(),
        &prefix,
        &[&args[..], &["--page-size", "2", "--budget-secs", "1e-9"]].concat(),
    );
    let first = report(&first_out);
    assert_eq!(first["complete"], true, "{first}");
    assert_eq!(first["processed"], 6);
    assert_eq!(first["failed_by_reason"]["corrupt"], 1);
    assert_eq!(first["skipped_by_reason"]["not_image"], 1);
    assert_eq!(first["steps"], serde_json::json!(["embedding", "quality"]));
    assert!(
        first["calls"].as_u64().unwrap() > 1,
        "a tiny budget takes several calls: {first}"
    );
    let stderr = String::from_utf8_lossy(&first_out.stderr);
    assert!(stderr.contains("6 processed"), "a summary line: {stderr}");

    let second = report(&reprocess(home.path(), &prefix, &args));
    assert_eq!(second["processed"], 0, "{second}");
    assert_eq!(second["skipped_by_reason"]["current"], 6);
    assert_eq!(second["skipped_by_reason"]["failed_before"], 1);
}

#[test]
fn a_bad_option_stops_with_one_line_naming_it() {
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("data/uploads")).unwrap();
    let out = reprocess(home.path(), "test:bad:", &["--since", "yesterday"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.lines().any(|l| l.contains("since") && l.contains("RFC 3339")),
        "{stderr}"
    );
    let out = reprocess(home.path(), "test:bad:", &["--steps", "people"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"people\" is not a step"));
}
