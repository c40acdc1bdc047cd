//! `ongi analyze` as a user runs it: the real binary on a folder of photos made here (an
//! original and a resized, re-encoded copy of it, a blurred photo, a dark one, a corrupt
//! file, the real group photo that ships in the `rustface` crate and a smaller copy of it),
//! with the tiny generated CLIP and SFace models, the real MTCNN weights and ONNX Runtime.
//! `report.json` is checked, then `report.html` is opened in headless Chromium and what it
//! shows is checked: the DOM after its script ran, and a screenshot.
//!
//! Needs `ORT_DYLIB_PATH`, `ONGI_MTCNN_DIR` (both set by `.ci/run`) and Chromium
//! (`ONGI_CHROMIUM`, default `/usr/bin/chromium`; `.ci/run` installs it).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{full_model_folder, run_with_timeout, save, scene};
use image::ImageFormat;
use image::imageops::FilterType;
use ongi_test_support::required_env;
use serde_json::Value;

fn chromium() -> PathBuf {
    let path = PathBuf::from(std::env::var("ONGI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.is_file(),
        "Chromium not found at {}: install the Debian package `chromium` (.ci/run does) or set ONGI_CHROMIUM",
        path.display()
    );
    path
}

/// The rustface crate's folder in Cargo's registry (a dev-dependency of this crate, so Cargo
/// has unpacked it before this test was built).
fn rustface_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let src = home.join("registry/src");
    std::fs::read_dir(&src)
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()))
        .filter_map(|e| e.ok().map(|e| e.path().join("rustface-0.1.7")))
        .find(|p| p.join("test.png").is_file())
        .unwrap_or_else(|| panic!("rustface-0.1.7 (with test.png) not found under {}", src.display()))
}

/// The album: returns its folder.
fn photo_folder(with_people: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let original = scene(1, 800, 600);
    save(&original, &p.join("original.png"), ImageFormat::Png);
    // Resized and re-encoded in another format: the same photo to a person, other bytes.
    let small = image::imageops::resize(&original, 560, 420, FilterType::Triangle);
    save(&small, &p.join("trip/original-small.webp"), ImageFormat::WebP);
    save(
        &image::imageops::blur(&scene(2, 800, 600), 6.0),
        &p.join("blurry.png"),
        ImageFormat::Png,
    );
    let mut dark = scene(3, 800, 600);
    dark.pixels_mut().for_each(|px| px.0 = px.0.map(|c| c / 64));
    save(&dark, &p.join("dark.png"), ImageFormat::Png);
    // A name that must be escaped in the page.
    save(&scene(4, 640, 480), &p.join("odd <name> & \"q\".png"), ImageFormat::Png);
    std::fs::write(p.join("broken.jpg"), b"\xFF\xD8\xFF\xE0 this is not the rest of a JPEG").unwrap();
    std::fs::write(p.join("notes.txt"), "not a photo").unwrap();
    if with_people {
        let group = std::fs::read(rustface_dir().join("test.png")).unwrap();
        std::fs::write(p.join("group.png"), &group).unwrap();
        // The same people in a second photo, so they can be clustered.
        let pixels = image::load_from_memory(&group).unwrap().to_rgb8();
        let (w, h) = pixels.dimensions();
        let smaller = image::imageops::resize(&pixels, w * 3 / 4, h * 3 / 4, FilterType::Triangle);
        save(&smaller, &p.join("trip/group-small.webp"), ImageFormat::WebP);
    }
    dir
}

fn analyze(photos: &Path, out: &Path, models: &Path, ort: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ongi"));
    cmd.arg("analyze")
        .arg(photos)
        .arg("--out")
        .arg(out)
        .arg("--models")
        .arg(models)
        .env("ONGI_FACE_DETECTOR", "mtcnn")
        // The tiny CLIP has random weights: its embeddings of different scenes are close, so
        // the CLIP `similar` duplicate tier would group unrelated photos. Above 1 turns it off;
        // the pHash tiers (what this album is about) are unaffected.
        .env("ONGI_DUPLICATE_COSINE", "1.01")
        .env_remove("RUST_LOG")
        .env_remove("ONGI_MODEL_DIR");
    match ort {
        Some(lib) => cmd.env("ORT_DYLIB_PATH", lib),
        None => cmd.env_remove("ORT_DYLIB_PATH"),
    };
    let output = run_with_timeout(cmd, Duration::from_secs(300));
    assert!(
        output.status.success(),
        "ongi analyze failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Chromium with every flag that keeps it off the network (it floods a closed one otherwise).
fn chromium_command(profile: &Path) -> Command {
    let mut cmd = Command::new(chromium());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// The part of the DOM from `<section id="{id}"` to its `</section>` (sections do not nest).
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("<section id=\"{id}\""))
        .unwrap_or_else(|| panic!("no section {id} in the page"));
    let end = dom[start..].find("</section>").map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// Every `<img …>` tag's `src`, or `None` for one without.
fn img_sources(html: &str) -> Vec<Option<String>> {
    html.match_indices("<img")
        .map(|(at, _)| {
            let tag = &html[at..at + html[at..].find('>').unwrap()];
            tag.find(" src=\"").map(|s| {
                let rest = &tag[s + 6..];
                rest[..rest.find('"').unwrap()].to_owned()
            })
        })
        .collect()
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect()
}

fn reasons_of<'a>(report: &'a Value, image: &str) -> Vec<&'a str> {
    report["low_quality"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["image"] == image)
        .unwrap_or_else(|| panic!("{image} is not among the low-quality photos: {}", report["low_quality"]))["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect()
}

#[test]
fn analyze_writes_a_report_that_shows_every_analysis_as_pictures() {
    chromium(); // fails first, in one line, if the browser is missing
    let ort = required_env("ORT_DYLIB_PATH");
    let models = full_model_folder();
    let photos = photo_folder(true);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("report");

    let started = Instant::now();
    let output = analyze(photos.path(), &out, models.path(), Some(&ort));
    eprintln!("ongi analyze took {:.1} s", started.elapsed().as_secs_f64());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("report.html"), "{stdout}");

    // ---- report.json
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["missing"],
        serde_json::json!([]),
        "every model is here: {}",
        report["missing"]
    );
    assert_eq!(report["summary"]["files"], 8, "{}", report["summary"]);
    assert_eq!(report["summary"]["photos"], 7);
    assert_eq!(report["skipped"], serde_json::json!(["notes.txt"]));
    let unreadable = report["unreadable"].as_array().unwrap();
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert_eq!(unreadable[0]["image"], "broken.jpg");
    assert_eq!(unreadable[0]["reason"], "corrupt");

    let groups = report["duplicates"].as_array().unwrap();
    let group = groups
        .iter()
        .find(|g| g["keeper"] == "original.png" || g["duplicates"].to_string().contains("\"original.png\""))
        .unwrap_or_else(|| panic!("no duplicate group holds original.png: {groups:?}"));
    let mut members: Vec<String> = vec![group["keeper"].as_str().unwrap().to_owned()];
    members.extend(
        group["duplicates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["image"].as_str().unwrap().to_owned()),
    );
    members.sort();
    assert_eq!(members, vec!["original.png", "trip/original-small.webp"]);
    let keeper = group["keeper"].as_str().unwrap().to_owned();
    assert_eq!(group["duplicates"][0]["tier"], "near");

    assert!(reasons_of(&report, "blurry.png").contains(&"blurry"));
    assert!(reasons_of(&report, "dark.png").contains(&"underexposed"));
    let original = report["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["image"] == "original.png")
        .unwrap();
    let reasons = names(&original["reasons"]);
    assert!(
        !reasons
            .iter()
            .any(|r| r == "blurry" || r == "underexposed" || r == "overexposed"),
        "the original passes the pixel tests: {original}"
    );

    let categories = report["categories"].as_array().unwrap();
    let categorised: usize = categories.iter().map(|c| c["images"].as_array().unwrap().len()).sum();
    assert_eq!(categorised, 7, "every readable photo has a category: {categories:?}");
    assert!(!report["highlights"].as_array().unwrap().is_empty());
    for c in report["highlights"].as_array().unwrap() {
        for h in names(&c["highlights"]) {
            assert_ne!(h, "blurry.png", "a low-quality photo is never a highlight");
        }
    }

    let people = &report["people"];
    let faces_found = people["faces_found"].as_u64().unwrap();
    assert!(faces_found >= 20, "faces in the two group photos: {faces_found}");
    let clusters = people["clusters"].as_array().unwrap();
    assert!(!clusters.is_empty(), "the same faces in two photos make people");
    // The tiny SFace has random weights, so who is clustered with whom means nothing here
    // (MTCNN may even find a "face" in a synthetic scene); what holds is the shape.
    assert!(
        clusters.iter().any(|c| {
            let imgs = names(&c["images"]);
            imgs.contains(&"group.png".to_owned()) && imgs.contains(&"trip/group-small.webp".to_owned())
        }),
        "someone is seen in both group photos: {clusters:?}"
    );
    for c in clusters {
        let imgs = names(&c["images"]);
        assert!(imgs.contains(&c["representative_face"]["image"].as_str().unwrap().to_owned()));
        assert_eq!(
            c["faces"].as_array().unwrap().len(),
            imgs.len(),
            "one face per photo: {c}"
        );
    }

    // ---- report.html, as Chromium shows it
    let html_path = out.join("report.html");
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(!html.contains("<name>"), "file names are escaped");
    for external in ["src=\"http", "href=\"http", "<link", "url(http", "@import"] {
        assert!(
            !html.contains(external),
            "the page loads nothing from outside: {external}"
        );
    }
    let url = format!("file://{}", html_path.display());
    let mut dump = chromium_command(&work.path().join("profile-dom"));
    dump.arg("--dump-dom").arg(&url);
    let dumped = run_with_timeout(dump, Duration::from_secs(90));
    assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
    let dom = String::from_utf8(dumped.stdout).unwrap();
    assert!(dom.contains("</html>"), "a whole page: {}", &dom[..dom.len().min(500)]);

    let sources = img_sources(&dom);
    assert!(sources.len() >= 10, "pictures on the page: {}", sources.len());
    for src in &sources {
        let src = src.as_deref().expect("every <img> has a src once the script ran");
        assert!(
            src.starts_with("data:image/webp;base64,"),
            "{}",
            &src[..src.len().min(80)]
        );
    }

    let duplicates = section(&dom, "duplicates");
    let group_at = duplicates
        .find(r#"data-image="original.png""#)
        .expect("original.png is shown among the duplicates");
    let group_start = duplicates[..group_at].rfind(r#"<div class="dup-group""#).unwrap();
    let group_end = duplicates[group_start + 1..]
        .find(r#"<div class="dup-group""#)
        .map_or(duplicates.len(), |e| group_start + 1 + e);
    let dom_group = &duplicates[group_start..group_end];
    assert!(
        dom_group.starts_with(r#"<div class="dup-group" data-size="2""#),
        "{dom_group}"
    );
    assert_eq!(dom_group.matches(r#"<figure class="photo"#).count(), 2);
    assert_eq!(
        dom_group.matches(r#"class="photo keeper""#).count(),
        1,
        "one keeper, marked"
    );
    assert!(
        dom_group.contains(&format!(r#"<figure class="photo keeper" data-image="{keeper}">"#)),
        "the marked keeper is report.json's: {dom_group}"
    );
    assert_eq!(img_sources(dom_group).len(), 2, "both photos are pictures");

    let low = section(&dom, "low-quality");
    assert!(low.contains(r#"data-image="blurry.png""#) && low.contains(r#"data-image="dark.png""#));
    assert!(low.contains(r#"<span class="reason">blurry</span>"#));
    assert!(low.contains(r#"<span class="reason">underexposed</span>"#));

    let people_html = section(&dom, "people");
    assert_eq!(people_html.matches(r#"<div class="person""#).count(), clusters.len());
    assert_eq!(
        people_html
            .matches(r#"<img class="face representative" src="data:image/webp;base64,"#)
            .count(),
        clusters.len(),
        "each person's representative face, as a crop"
    );
    assert!(people_html.matches(r#"<img class="face" src="data:"#).count() + clusters.len() >= 2 * clusters.len());

    let categories_html = section(&dom, "categories");
    assert_eq!(
        categories_html.matches(r#"<div class="category""#).count(),
        categories.len()
    );
    assert!(!img_sources(categories_html).is_empty());
    assert!(section(&dom, "highlights").contains(r#"class="photo highlight""#));
    let unreadable_html = section(&dom, "unreadable");
    assert!(unreadable_html.contains("broken.jpg") && unreadable_html.contains("corrupt"));
    assert!(dom.contains("odd &lt;name&gt; &amp;"), "the odd name is shown, as text");

    // ---- a screenshot: the page is drawn, with pictures (not one flat colour)
    let shot = work.path().join("report.png");
    let mut screenshot = chromium_command(&work.path().join("profile-shot"));
    screenshot
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url);
    let shot_run = run_with_timeout(screenshot, Duration::from_secs(90));
    assert!(
        shot_run.status.success(),
        "{}",
        String::from_utf8_lossy(&shot_run.stderr)
    );
    let png = image::open(&shot).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), (1280, 2000));
    let colours: std::collections::HashSet<[u8; 3]> = png.pixels().map(|p| p.0).collect();
    assert!(colours.len() > 1000, "photos make many colours; got {}", colours.len());
    if let Ok(keep) = std::env::var("ONGI_KEEP_REPORT") {
        // For a person to look at: the page and its screenshot.
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&shot, Path::new(&keep).join("report.png")).unwrap();
        std::fs::copy(&html_path, Path::new(&keep).join("report.html")).unwrap();
    }
}

#[test]
fn without_models_the_pixel_analyses_run_and_the_report_says_what_is_missing() {
    let photos = photo_folder(false);
    let models = tempfile::tempdir().unwrap();
    // The default report folder, inside the photo folder: it must not be analysed itself.
    let output = analyze(photos.path(), &photos.path().join("ongi-report"), models.path(), None);
    let again = analyze(photos.path(), &photos.path().join("ongi-report"), models.path(), None);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line says what is missing: {stderr}");
    assert!(
        lines[0].contains("ORT_DYLIB_PATH") && lines[0].contains("ongi models fetch"),
        "{stderr}"
    );
    assert!(again.status.success());

    let out = photos.path().join("ongi-report");
    let report: Value = serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["summary"]["photos"], 5,
        "the report folder is not scanned: {}",
        report["summary"]
    );
    let missing: Vec<&str> = report["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["section"].as_str().unwrap())
        .collect();
    assert_eq!(missing, vec!["categories", "highlights", "people"]);
    for m in report["missing"].as_array().unwrap() {
        let why = m["why"].as_str().unwrap();
        assert!(!why.is_empty() && !why.contains('\n'), "one line: {why}");
    }
    assert!(report["missing"][0]["why"].as_str().unwrap().contains("ORT_DYLIB_PATH"));
    assert!(report["categories"].is_null() && report["highlights"].is_null() && report["people"].is_null());
    // The pixel analyses still ran.
    let group = &report["duplicates"][0];
    let mut members = vec![group["keeper"].as_str().unwrap().to_owned()];
    members.push(group["duplicates"][0]["image"].as_str().unwrap().to_owned());
    members.sort();
    assert_eq!(members, vec!["original.png", "trip/original-small.webp"]);
    assert!(reasons_of(&report, "blurry.png").contains(&"blurry"));
    assert!(reasons_of(&report, "dark.png").contains(&"underexposed"));
    assert_eq!(report["unreadable"][0]["image"], "broken.jpg");

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    for id in ["categories", "highlights", "people"] {
        let s = section(&html, id);
        assert!(
            s.contains(r#"class="missing""#) && s.contains("Not computed: needs"),
            "{s}"
        );
    }
    assert!(section(&html, "duplicates").contains(r#"class="photo keeper""#));
}
