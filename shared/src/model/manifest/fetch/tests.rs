//! Tests of `fetch.rs`: downloads from a local test server, conversions, and the manifest
//! kept aside. Kept apart so `fetch.rs` holds only the fetch itself.

use std::sync::atomic::Ordering;

use super::super::schema::UsedBy;
use super::super::test_support::{assert_one_line, listing, one_model_manifest, serve, sha256_hex};
use super::super::verify::verify;
use super::*;

#[tokio::test]
async fn fetch_from_an_unreachable_host_fails_in_one_line_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = one_model_manifest("m.onnx", &sha256_hex(b"model"), Some(5), "http://127.0.0.1:9/x", true);
    let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, FetchError::Unreachable { .. }), "{e:?}");
    let message = e.to_string();
    assert_one_line(&message);
    assert!(
        message.starts_with("cannot download m.onnx from 127.0.0.1: "),
        "{message}"
    );
    assert!(message.contains("ongi models verify"), "{message}");
    // Only the manifest was written: no model file, no partial download.
    assert_eq!(listing(dir.path()), [MANIFEST_FILE]);
}

#[tokio::test]
async fn fetch_installs_a_file_whose_hash_matches_and_skips_it_the_second_time() {
    let body = b"tiny model bytes".to_vec();
    let (base, hits) = serve(vec![("m.onnx", body.clone())]).await;
    let manifest = one_model_manifest(
        "m.onnx",
        &sha256_hex(&body),
        Some(body.len() as u64),
        &format!("{base}/m.onnx"),
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("models");
    let report = fetch_with(&manifest, &folder, &FetchOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(report.installed, ["m.onnx"]);
    assert_eq!(std::fs::read(folder.join("m.onnx")).unwrap(), body);
    assert_eq!(listing(&folder), ["m.onnx", MANIFEST_FILE]);
    assert_eq!(
        std::fs::read_to_string(folder.join(MANIFEST_FILE)).unwrap(),
        manifest.as_toml()
    );
    // The verified download is stamped: a start-up will not read it again.
    let stamps = std::fs::read_to_string(folder.join(super::super::STAMP_FILE)).unwrap();
    assert!(
        stamps.starts_with(&sha256_hex(&body)) && stamps.ends_with(" m.onnx\n"),
        "{stamps}"
    );
    assert!(verify(&folder).unwrap().is_ok());
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let again = fetch_with(&manifest, &folder, &FetchOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.present, ["m.onnx"]);
    assert!(again.installed.is_empty());
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");
}

#[tokio::test]
async fn fetch_replaces_a_corrupt_file_and_reports_http_errors_per_file() {
    let good = b"good".to_vec();
    let (base, _) = serve(vec![("a.onnx", good.clone())]).await;
    let text = format!(
        "[[model]]\nrole = \"a\"\nfile = \"a.onnx\"\nsha256 = \"{}\"\nbytes = 4\nlicence = \"MIT\"\n\
         source = \"{base}/a.onnx\"\nrequired = true\n\n\
         [[model]]\nrole = \"b\"\nfile = \"b.onnx\"\nsha256 = \"{}\"\nbytes = 4\nlicence = \"MIT\"\n\
         source = \"{base}/b.onnx\"\nrequired = true\n\n\
         [[model]]\nrole = \"c\"\nfile = \"c.onnx\"\nsha256 = \"\"\nlicence = \"MIT\"\nsource = \"\"\n\
         required = false\nnote = \"copy it by hand\"\n\n\
         [[model]]\nrole = \"d\"\nfile = \"d.onnx\"\nsha256 = \"{}\"\nlicence = \"MIT\"\nsource = \"\"\n\
         required = false\n",
        sha256_hex(&good),
        sha256_hex(b"gone"),
        sha256_hex(b"hand-made"),
    );
    let manifest = Manifest::from_toml_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.onnx"), b"bad!").unwrap();
    std::fs::write(dir.path().join("d.onnx"), b"hand-made, but wrong").unwrap();
    let replace = FetchOptions {
        mismatched: Mismatched::ReplaceKeepingAside,
        ..FetchOptions::default()
    };
    let e = fetch_with(&manifest, dir.path(), &replace, |_| {}).await.unwrap_err();
    let FetchError::Incomplete { total, failures } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*total, 4);
    let failed: Vec<&str> = failures.iter().map(|(file, _)| file.as_str()).collect();
    assert_eq!(failed, ["b.onnx", "d.onnx"]);
    assert!(failures[0].1.contains("HTTP 404"), "{}", failures[0].1);
    assert!(failures[1].1.contains("wrong hash"), "{}", failures[1].1);
    // The corrupt a.onnx was replaced by the verified download and kept aside; the
    // hand-installed d.onnx, with no source, was left as it is.
    assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), good);
    assert_eq!(std::fs::read(dir.path().join("a.onnx.replaced")).unwrap(), b"bad!");
    assert_eq!(
        listing(dir.path()),
        ["a.onnx", "a.onnx.replaced", "d.onnx", MANIFEST_FILE]
    );
    assert_one_line(&e.to_string());
}

#[tokio::test]
async fn by_default_a_file_that_does_not_match_is_left_as_it_is_and_reported() {
    let good = b"good".to_vec();
    let (base, hits) = serve(vec![("a.onnx", good.clone())]).await;
    let manifest = one_model_manifest("a.onnx", &sha256_hex(&good), Some(4), &format!("{base}/a.onnx"), true);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.onnx"), b"the user's own").unwrap();
    let mut record: Vec<String> = Vec::new();
    let on_event = |event: FetchEvent<'_>| {
        if let FetchEvent::Kept { model, why } = event {
            record.push(format!("{}: {why}", model.file));
        }
    };
    let report = fetch_with(&manifest, dir.path(), &FetchOptions::default(), on_event)
        .await
        .unwrap();
    assert_eq!(report.kept, ["a.onnx"]);
    assert!(report.installed.is_empty() && report.moved_aside.is_empty());
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was downloaded");
    assert_eq!(std::fs::read(dir.path().join("a.onnx")).unwrap(), b"the user's own");
    assert_eq!(listing(dir.path()), ["a.onnx", MANIFEST_FILE]);
    assert_eq!(record.len(), 1);
    assert_one_line(&record[0]);
    assert!(
        record[0].contains("wrong size") && record[0].contains("ongi models fetch"),
        "{}",
        record[0]
    );
}

#[tokio::test]
async fn a_file_in_a_folder_is_installed_there_and_only_when_its_deployable_is_asked_for() {
    let unet = b"unet weights".to_vec();
    let clip = b"clip weights".to_vec();
    let (base, hits) = serve(vec![("unet", unet.clone()), ("clip", clip.clone())]).await;
    let text = format!(
        "[[model]]\nrole = \"clip\"\nfile = \"clip.onnx\"\nsha256 = \"{}\"\nbytes = {}\nlicence = \"MIT\"\n\
         source = \"{base}/clip\"\nrequired = true\n\n\
         [[model]]\nrole = \"unet\"\nfile = \"sd15/unet.safetensors\"\nused_by = \"gpu-job\"\nsha256 = \"{}\"\n\
         bytes = {}\nlicence = \"MIT\"\nsource = \"{base}/unet\"\nrequired = true\n",
        sha256_hex(&clip),
        clip.len(),
        sha256_hex(&unet),
        unet.len()
    );
    let manifest = Manifest::from_toml_str(&text).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let report = fetch_with(
        &manifest.only_used_by(UsedBy::Functions),
        dir.path(),
        &FetchOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.installed, ["clip.onnx"]);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(listing(dir.path()), ["clip.onnx", MANIFEST_FILE], "no sd15/ yet");
    // The whole manifest is written, whatever was selected.
    assert_eq!(std::fs::read_to_string(dir.path().join(MANIFEST_FILE)).unwrap(), text);

    let report = fetch_with(
        &manifest.only_used_by(UsedBy::GpuJob),
        dir.path(),
        &FetchOptions::default(),
        |_| {},
    )
    .await
    .unwrap();
    assert_eq!(report.installed, ["sd15/unet.safetensors"]);
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(std::fs::read(dir.path().join("sd15/unet.safetensors")).unwrap(), unet);
    // No partial download left in the folder, and the stamp is the folder's own.
    assert_eq!(listing(&dir.path().join("sd15")), ["unet.safetensors"]);
    assert!(dir.path().join("sd15").join(super::super::STAMP_FILE).is_file());
    assert!(verify(dir.path()).unwrap().is_ok());

    let again = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.present, ["clip.onnx", "sd15/unet.safetensors"]);
    assert_eq!(hits.load(Ordering::SeqCst), 2, "nothing downloaded again");
}

/// A manifest of one converted file, the aesthetic head's contract, downloaded from `url`.
fn converted_manifest(url: &str, source: &[u8], installed: Option<&[u8]>) -> Manifest {
    let pins = installed
        .map(|b| format!("sha256 = \"{}\"\nbytes = {}\n", sha256_hex(b), b.len()))
        .unwrap_or_else(|| "sha256 = \"\"\n".to_owned());
    Manifest::from_toml_str(&format!(
        "[[model]]\nrole = \"aesthetic-head\"\nfile = \"head.safetensors\"\n{pins}licence = \"MIT\"\n\
         source = \"{url}\"\nrequired = true\n\n\
         [model.convert]\nfrom = \"pytorch-state-dict\"\nsource_sha256 = \"{}\"\nsource_bytes = {}\n\n\
         [[model.tensors]]\nname = \"weight\"\ndtype = \"f32\"\nshape = [1, 512]\n\n\
         [[model.tensors]]\nname = \"bias\"\ndtype = \"f32\"\nshape = [1]\n",
        sha256_hex(source),
        source.len()
    ))
    .unwrap()
}

fn pth(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/pth")
            .join(name),
    )
    .unwrap()
}

/// What the conversion of `head.pth` gives (checked value by value in `convert`'s tests).
fn converted_head() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.pth");
    std::fs::write(&path, pth("head.pth")).unwrap();
    let tensors = Manifest::production()
        .by_role("aesthetic-head")
        .unwrap()
        .tensors
        .clone();
    super::super::convert::convert(super::super::ConvertFrom::PytorchStateDict, &path, &tensors).unwrap()
}

#[tokio::test]
async fn a_converted_file_is_downloaded_checked_converted_checked_and_installed_once() {
    let source = pth("head.pth");
    let (base, hits) = serve(vec![("head.pth", source.clone())]).await;
    let installed = converted_head();
    let manifest = converted_manifest(&format!("{base}/head.pth"), &source, Some(&installed));
    let dir = tempfile::tempdir().unwrap();
    let mut events: Vec<String> = Vec::new();
    let report = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |event| {
        if let FetchEvent::DownloadStarted { total, .. } = event {
            events.push(format!("started {total:?}"));
        }
    })
    .await
    .unwrap();
    assert_eq!(report.installed, ["head.safetensors"]);
    assert_eq!(events, [format!("started Some({})", source.len())], "the .pth's size");
    assert_eq!(std::fs::read(dir.path().join("head.safetensors")).unwrap(), installed);
    // Neither the download nor a partial conversion is left.
    assert_eq!(listing(dir.path()), ["head.safetensors", MANIFEST_FILE]);
    assert!(verify(dir.path()).unwrap().is_ok());
    crate::model::aesthetic::AestheticHead::load(&dir.path().join("head.safetensors")).unwrap();

    let again = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
        .await
        .unwrap();
    assert_eq!(again.present, ["head.safetensors"]);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");
}

#[tokio::test]
async fn a_converted_file_is_refused_when_the_download_or_the_conversion_does_not_match() {
    let good = pth("head.pth");
    let wrong_shape = pth("wrong-shape.pth");
    let (base, hits) = serve(vec![
        ("head.pth", good.clone()),
        ("wrong-shape.pth", wrong_shape.clone()),
    ])
    .await;
    let installed = converted_head();
    let fetch = |manifest: Manifest| async move {
        let dir = tempfile::tempdir().unwrap();
        let e = fetch_with(&manifest, dir.path(), &FetchOptions::default(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(listing(dir.path()), [MANIFEST_FILE], "nothing installed, nothing left");
        let message = e.to_string();
        assert_one_line(&message);
        message
    };

    // The server's .pth is not the pinned one: refused before it is read (by its size, before
    // the body is downloaded; by its hash, before it is converted).
    let message = fetch(converted_manifest(
        &format!("{base}/head.pth"),
        b"another .pth",
        Some(&installed),
    ))
    .await;
    assert!(message.contains("offers"), "{message}");
    let mut same_size = good.clone();
    same_size[100] ^= 1;
    let message = fetch(converted_manifest(
        &format!("{base}/head.pth"),
        &same_size,
        Some(&installed),
    ))
    .await;
    assert!(
        message.contains(&format!(
            "the manifest pins {} for the download",
            sha256_hex(&same_size)
        )),
        "{message}"
    );

    // Pinned, but not the head's layout: the conversion refuses it.
    let message = fetch(converted_manifest(
        &format!("{base}/wrong-shape.pth"),
        &wrong_shape,
        Some(&installed),
    ))
    .await;
    assert!(
        message.starts_with("cannot install head.safetensors: cannot convert the downloaded wrong-shape.pth: ")
            && message.contains("weight")
            && message.contains("nothing installed"),
        "{message}"
    );

    // Converted, but the result is not the pinned file.
    let mut other = installed.clone();
    other[installed.len() - 1] ^= 1;
    let message = fetch(converted_manifest(&format!("{base}/head.pth"), &good, Some(&other))).await;
    assert!(
        message.contains(&format!("converted to a file with sha256 {}", sha256_hex(&installed))),
        "{message}"
    );

    // The installed file is not pinned yet: its hash is said, and it is refused.
    let message = fetch(converted_manifest(&format!("{base}/head.pth"), &good, None)).await;
    assert!(
        message.contains(&format!(
            "pin sha256 = \"{}\" and bytes = {}",
            sha256_hex(&installed),
            installed.len()
        )),
        "{message}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 5, "one request per fetch");
}

#[test]
fn a_different_manifest_is_kept_aside_or_left_never_lost() {
    let manifest = one_model_manifest("a.onnx", &sha256_hex(b"x"), Some(1), "", false);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(MANIFEST_FILE);
    std::fs::write(&path, "# the user's own manifest\n").unwrap();
    write_manifest(&manifest, dir.path(), Mismatched::Keep).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "# the user's own manifest\n");
    write_manifest(&manifest, dir.path(), Mismatched::ReplaceKeepingAside).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), manifest.as_toml());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("manifest.toml.replaced")).unwrap(),
        "# the user's own manifest\n"
    );
}
