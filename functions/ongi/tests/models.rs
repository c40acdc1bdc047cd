//! `ongi models verify | fetch` as a user runs them: the real binary, an empty environment,
//! no network (downloads come from a tiny HTTP server started by the test, or fail against a
//! closed local port).

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::Ordering;

use ongi_test_support::{file_names, serve_files};
use sha2::{Digest, Sha256};

const VISUAL: &str = "clip-vit-b32-visual.onnx";
const TEXTUAL: &str = "clip-vit-b32-textual.onnx";
const SD15: [&str; 3] = [
    "sd15/unet.safetensors",
    "sd15/vae.safetensors",
    "sd15/text_encoder.safetensors",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tests/fixtures/models")
}

/// Runs `ongi <args>` with only PATH (and `extra_env`) in its environment.
async fn ongi(args: &[&str], extra_env: &[(&str, &Path)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ongi"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    for (name, value) in extra_env {
        command.env(name, value);
    }
    command.output().await.expect("the ongi binary runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The non-empty lines of stderr.
fn stderr_lines(output: &Output) -> Vec<String> {
    String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest of one required file `m.onnx`.
fn one_model_manifest(dir: &Path, sha256: &str, bytes: usize, source: &str) -> PathBuf {
    let path = dir.join("test-manifest.toml");
    std::fs::write(
        &path,
        format!(
            "[[model]]\nrole = \"test\"\nfile = \"m.onnx\"\nsha256 = \"{sha256}\"\nbytes = {bytes}\n\
             licence = \"MIT\"\nsource = \"{source}\"\nrequired = true\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn verify_passes_on_the_fixture_folder_and_lists_licences() {
    let folder = fixtures();
    let output = ongi(&["models", "verify", "--models", folder.to_str().unwrap()], &[]).await;
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{:?}", stderr_lines(&output));
    for file in [VISUAL, TEXTUAL] {
        let line = out.lines().find(|l| l.contains(file)).expect("one line per model");
        assert!(line.starts_with("ok "), "{line}");
        assert!(line.contains("bytes") && line.contains("Apache-2.0"), "{line}");
    }
}

#[tokio::test]
async fn verify_reads_the_folder_from_ongi_model_dir() {
    let folder = fixtures();
    let output = ongi(&["models", "verify"], &[("ONGI_MODEL_DIR", &folder)]).await;
    assert!(output.status.success(), "{}", stdout(&output));
}

#[tokio::test]
async fn verify_fails_in_one_line_on_a_corrupted_model() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["manifest.toml", VISUAL, TEXTUAL] {
        std::fs::copy(fixtures().join(name), dir.path().join(name)).unwrap();
    }
    let path = dir.path().join(VISUAL);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let output = ongi(&["models", "verify", "--models", dir.path().to_str().unwrap()], &[]).await;
    assert!(!output.status.success());
    let out = stdout(&output);
    let line = out.lines().find(|l| l.contains(VISUAL)).unwrap();
    assert!(line.starts_with("wrong-hash"), "{line}");
    assert!(line.contains(&sha256_hex(&bytes)), "{line}");
    let errors = stderr_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(VISUAL), "{errors:?}");
}

#[tokio::test]
async fn verify_of_a_folder_without_manifest_checks_the_production_files() {
    let dir = tempfile::tempdir().unwrap();
    let output = ongi(&["models", "verify", "--models", dir.path().to_str().unwrap()], &[]).await;
    assert!(!output.status.success());
    let out = stdout(&output);
    for file in [
        VISUAL,
        TEXTUAL,
        "aesthetic-vit-b32-linear.safetensors",
        "face-detect-yunet.onnx",
        "face-detect-mtcnn-pnet.onnx",
        "face-embed-sface.onnx",
    ] {
        let line = out
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file}: {out}"));
        assert!(line.starts_with("missing"), "{line}");
    }
    // The GPU worker's files are not the functions': checked only when asked for.
    assert!(!out.contains("sd15/"), "{out}");
    assert_eq!(stderr_lines(&output).len(), 1, "{:?}", stderr_lines(&output));

    let output = ongi(
        &[
            "models",
            "verify",
            "--models",
            dir.path().to_str().unwrap(),
            "--for",
            "all",
        ],
        &[],
    )
    .await;
    assert!(!output.status.success());
    let out = stdout(&output);
    for file in SD15 {
        let line = out
            .lines()
            .find(|l| l.contains(file))
            .unwrap_or_else(|| panic!("{file}: {out}"));
        assert!(
            line.starts_with("missing") && line.contains("CreativeML-OpenRAIL-M"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn verify_of_a_folder_that_does_not_exist_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let output = ongi(&["models", "verify", "--models", missing.to_str().unwrap()], &[]).await;
    assert!(!output.status.success());
    let errors = stderr_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("no model folder"), "{errors:?}");
}

#[tokio::test]
async fn fetch_from_an_unreachable_host_fails_in_one_line_and_installs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = one_model_manifest(dir.path(), &sha256_hex(b"model"), 5, "http://127.0.0.1:9/x");
    let folder = dir.path().join("models");
    let output = ongi(
        &[
            "models",
            "fetch",
            "--models",
            folder.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!output.status.success());
    let errors = stderr_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("cannot download m.onnx from 127.0.0.1"),
        "{errors:?}"
    );
    assert!(errors[0].contains("ongi models verify"), "{errors:?}");
    assert_eq!(file_names(&folder), ["manifest.toml"]);
}

#[tokio::test]
async fn fetch_installs_a_verified_file_and_skips_it_the_second_time() {
    let body = b"a tiny model".to_vec();
    let (base, hits) = serve_files(vec![("m.onnx", body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = one_model_manifest(dir.path(), &sha256_hex(&body), body.len(), &format!("{base}/m.onnx"));
    let folder = dir.path().join("models");
    let args = [
        "models",
        "fetch",
        "--models",
        folder.to_str().unwrap(),
        "--manifest",
        manifest.to_str().unwrap(),
    ];

    let first = ongi(&args, &[]).await;
    assert!(first.status.success(), "{}\n{:?}", stdout(&first), stderr_lines(&first));
    assert!(stdout(&first).contains("installed  m.onnx"), "{}", stdout(&first));
    assert_eq!(std::fs::read(folder.join("m.onnx")).unwrap(), body);
    assert_eq!(
        file_names(&folder),
        [".ongi-sha256", "m.onnx", "manifest.toml"],
        "the verified download is stamped"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let second = ongi(&args, &[]).await;
    assert!(second.status.success(), "{:?}", stderr_lines(&second));
    assert!(stdout(&second).contains("skipped    m.onnx"), "{}", stdout(&second));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");

    let verify = ongi(&["models", "verify", "--models", folder.to_str().unwrap()], &[]).await;
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[tokio::test]
async fn fetch_refuses_bytes_with_the_wrong_hash_and_installs_nothing() {
    let (base, _) = serve_files(vec![("m.onnx", b"tampered!".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = one_model_manifest(dir.path(), &sha256_hex(b"original!"), 9, &format!("{base}/m.onnx"));
    let folder = dir.path().join("models");
    let output = ongi(
        &[
            "models",
            "fetch",
            "--models",
            folder.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &[],
    )
    .await;
    assert!(!output.status.success());
    let errors = stderr_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("m.onnx") && errors[0].contains(&sha256_hex(b"tampered!")),
        "{errors:?}"
    );
    assert_eq!(file_names(&folder), ["manifest.toml"]);
}

/// `ongi models fetch --models FOLDER --manifest MANIFEST`.
async fn fetch(folder: &Path, manifest: &Path) -> Output {
    ongi(
        &[
            "models",
            "fetch",
            "--models",
            folder.to_str().unwrap(),
            "--manifest",
            manifest.to_str().unwrap(),
        ],
        &[],
    )
    .await
}

#[tokio::test]
async fn fetch_replaces_a_mismatching_file_only_with_a_verified_download_and_keeps_the_old_one_aside() {
    let body = b"the pinned model".to_vec();
    let (base, hits) = serve_files(vec![("m.onnx", body.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = one_model_manifest(dir.path(), &sha256_hex(&body), body.len(), &format!("{base}/m.onnx"));
    let folder = dir.path().join("models");
    std::fs::create_dir_all(&folder).unwrap();
    let users = b"the user's own model, not the pinned one".to_vec();
    std::fs::write(folder.join("m.onnx"), &users).unwrap();

    let output = fetch(&folder, &manifest).await;
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{:?}", stderr_lines(&output));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    assert_eq!(
        std::fs::read(folder.join("m.onnx")).unwrap(),
        body,
        "the verified download is in place"
    );
    assert_eq!(
        std::fs::read(folder.join("m.onnx.replaced")).unwrap(),
        users,
        "the user's file is kept, byte for byte"
    );
    assert_eq!(
        file_names(&folder),
        [".ongi-sha256", "m.onnx", "m.onnx.replaced", "manifest.toml"]
    );
    let line = out
        .lines()
        .find(|l| l.contains("m.onnx.replaced"))
        .unwrap_or_else(|| panic!("one line says where the old file went: {out}"));
    assert!(line.contains("m.onnx"), "{line}");

    // A second mismatching file later is kept too, under a name of its own.
    std::fs::write(folder.join("m.onnx"), b"edited again").unwrap();
    let again = fetch(&folder, &manifest).await;
    assert!(again.status.success(), "{:?}", stderr_lines(&again));
    assert_eq!(std::fs::read(folder.join("m.onnx.replaced")).unwrap(), users);
    assert_eq!(
        std::fs::read(folder.join("m.onnx.replaced.2")).unwrap(),
        b"edited again"
    );
    assert_eq!(std::fs::read(folder.join("m.onnx")).unwrap(), body);
}

#[tokio::test]
async fn a_download_that_fails_verification_leaves_the_existing_file_and_no_partial_one() {
    let (base, hits) = serve_files(vec![("m.onnx", b"tampered!".to_vec())]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = one_model_manifest(dir.path(), &sha256_hex(b"original!"), 9, &format!("{base}/m.onnx"));
    let folder = dir.path().join("models");
    std::fs::create_dir_all(&folder).unwrap();
    let users = b"a file the user put here".to_vec();
    std::fs::write(folder.join("m.onnx"), &users).unwrap();

    let output = fetch(&folder, &manifest).await;
    assert!(!output.status.success());
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the download was tried");
    let errors = stderr_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(&sha256_hex(b"tampered!")), "{errors:?}");
    assert_eq!(
        std::fs::read(folder.join("m.onnx")).unwrap(),
        users,
        "the existing file is untouched"
    );
    assert_eq!(
        file_names(&folder),
        ["m.onnx", "manifest.toml"],
        "no partial download is left"
    );
}

/// A manifest of a functions' file `m.onnx` and a GPU worker's file `sd15/unet.safetensors`,
/// downloaded from `base`.
fn two_deployables_manifest(dir: &Path, base: &str, m: &[u8], unet: &[u8]) -> PathBuf {
    let path = dir.join("test-manifest.toml");
    std::fs::write(
        &path,
        format!(
            "[[model]]\nrole = \"test\"\nfile = \"m.onnx\"\nsha256 = \"{}\"\nbytes = {}\n\
             licence = \"MIT\"\nsource = \"{base}/m.onnx\"\nrequired = true\n\n\
             [[model]]\nrole = \"unet\"\nfile = \"sd15/unet.safetensors\"\nused_by = \"gpu-job\"\n\
             sha256 = \"{}\"\nbytes = {}\nlicence = \"CreativeML-OpenRAIL-M\"\nsource = \"{base}/unet\"\n\
             required = true\n",
            sha256_hex(m),
            m.len(),
            sha256_hex(unet),
            unet.len()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn fetch_takes_the_functions_files_by_default_and_the_gpu_workers_only_when_asked() {
    let (m, unet) = (b"a tiny model".to_vec(), b"a tiny unet".to_vec());
    let (base, hits) = serve_files(vec![("m.onnx", m.clone()), ("unet", unet.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_deployables_manifest(dir.path(), &base, &m, &unet);
    let folder = dir.path().join("models");
    let fetch_for = |which: Option<&'static str>| {
        let (folder, manifest) = (folder.clone(), manifest.clone());
        async move {
            let mut args = vec![
                "models".to_owned(),
                "fetch".to_owned(),
                "--models".to_owned(),
                folder.display().to_string(),
                "--manifest".to_owned(),
                manifest.display().to_string(),
            ];
            if let Some(which) = which {
                args.extend(["--for".to_owned(), which.to_owned()]);
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ongi(&args, &[]).await
        }
    };

    let first = fetch_for(None).await;
    let out = stdout(&first);
    assert!(first.status.success(), "{out}\n{:?}", stderr_lines(&first));
    assert!(out.contains("1 files (the functions')"), "{out}");
    assert!(out.contains("installed  m.onnx") && !out.contains("sd15"), "{out}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the GPU worker's file is not downloaded"
    );
    assert_eq!(file_names(&folder), [".ongi-sha256", "m.onnx", "manifest.toml"]);

    let gpu = fetch_for(Some("gpu-job")).await;
    let out = stdout(&gpu);
    assert!(gpu.status.success(), "{out}\n{:?}", stderr_lines(&gpu));
    assert!(
        out.contains("installed  sd15/unet.safetensors") && !out.contains("m.onnx"),
        "{out}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    assert_eq!(std::fs::read(folder.join("sd15/unet.safetensors")).unwrap(), unet);
    assert_eq!(
        file_names(&folder.join("sd15")),
        [".ongi-sha256", "unet.safetensors"],
        "installed under the folder, stamped there, no partial download left"
    );

    let all = fetch_for(Some("all")).await;
    let out = stdout(&all);
    assert!(all.status.success(), "{out}\n{:?}", stderr_lines(&all));
    assert!(
        out.contains("skipped    m.onnx") && out.contains("skipped    sd15/unet.safetensors"),
        "{out}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2, "valid files are not downloaded again");
}

#[tokio::test]
async fn verify_checks_the_functions_files_by_default_and_the_gpu_workers_when_asked() {
    let (m, unet) = (b"a tiny model".to_vec(), b"a tiny unet".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let manifest = two_deployables_manifest(dir.path(), "http://127.0.0.1:9", &m, &unet);
    let folder = dir.path().join("models");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&manifest, folder.join("manifest.toml")).unwrap();
    std::fs::write(folder.join("m.onnx"), &m).unwrap();
    let verify_for = |which: &str| {
        let folder = folder.display().to_string();
        let which = which.to_owned();
        async move {
            let mut args = vec!["models", "verify", "--models", &folder];
            if !which.is_empty() {
                args.extend(["--for", &which]);
            }
            ongi(&args, &[]).await
        }
    };

    let functions = verify_for("").await;
    assert!(functions.status.success(), "{}", stdout(&functions));
    assert!(!stdout(&functions).contains("sd15"), "{}", stdout(&functions));

    for which in ["gpu-job", "all"] {
        let output = verify_for(which).await;
        assert!(!output.status.success(), "{which}: {}", stdout(&output));
        let line = stdout(&output)
            .lines()
            .find(|l| l.contains("sd15/unet.safetensors"))
            .map(str::to_owned)
            .unwrap_or_default();
        assert!(line.starts_with("missing"), "{which}: {line}");
        let errors = stderr_lines(&output);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("sd15/unet.safetensors")
                && errors[0].contains(&format!("ongi models fetch --for {which}")),
            "{errors:?}"
        );
    }

    std::fs::create_dir_all(folder.join("sd15")).unwrap();
    std::fs::write(folder.join("sd15/unet.safetensors"), &unet).unwrap();
    for which in ["gpu-job", "all"] {
        let output = verify_for(which).await;
        assert!(output.status.success(), "{which}: {}", stdout(&output));
    }
    // A damaged GPU worker file fails only the checks that cover it.
    std::fs::write(folder.join("sd15/unet.safetensors"), b"a tiny UNET").unwrap();
    assert!(verify_for("").await.status.success());
    let gpu = verify_for("gpu-job").await;
    assert!(!gpu.status.success());
    assert!(
        stdout(&gpu).contains("wrong-hash sd15/unet.safetensors"),
        "{}",
        stdout(&gpu)
    );

    // A manifest without any GPU worker file: `--for gpu-job` has nothing to check, and says so.
    let fixtures = fixtures();
    let output = ongi(
        &[
            "models",
            "verify",
            "--models",
            fixtures.to_str().unwrap(),
            "--for",
            "gpu-job",
        ],
        &[],
    )
    .await;
    assert!(!output.status.success());
    let errors = stderr_lines(&output);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("lists no file used by gpu-job"), "{errors:?}");
}

/// The `.pth` test files of `shared/tests/fixtures/pth/` (LAION's layout, random values).
fn pth(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/tests/fixtures/pth")
            .join(name),
    )
    .unwrap()
}

/// SHA-256 and size of the conversion of `head.pth` (checked value by value in
/// `shared/src/model/manifest/convert.rs`).
const HEAD_SAFETENSORS: (&str, usize) = ("d29d2a91f24f30f51727f7ae595864452369ccb5a3fbefa495c08766db98f97f", 2188);

/// A manifest of the aesthetic head converted from `source`, served at `url`.
fn converted_head_manifest(dir: &Path, url: &str, source: &[u8]) -> PathBuf {
    let path = dir.join("test-manifest.toml");
    let (sha256, bytes) = HEAD_SAFETENSORS;
    std::fs::write(
        &path,
        format!(
            "[[model]]\nrole = \"aesthetic-head\"\nfile = \"aesthetic-vit-b32-linear.safetensors\"\n\
             sha256 = \"{sha256}\"\nbytes = {bytes}\nlicence = \"MIT\"\nsource = \"{url}\"\nrequired = true\n\n\
             [model.convert]\nfrom = \"pytorch-state-dict\"\nsource_sha256 = \"{}\"\nsource_bytes = {}\n\n\
             [[model.tensors]]\nname = \"weight\"\ndtype = \"f32\"\nshape = [1, 512]\n\n\
             [[model.tensors]]\nname = \"bias\"\ndtype = \"f32\"\nshape = [1]\n",
            sha256_hex(source),
            source.len()
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn fetch_downloads_the_heads_pth_converts_it_and_installs_the_pinned_safetensors_once() {
    let source = pth("head.pth");
    let (base, hits) = serve_files(vec![("sa_0_4_vit_b_32_linear.pth", source.clone())]);
    let dir = tempfile::tempdir().unwrap();
    let manifest = converted_head_manifest(dir.path(), &format!("{base}/sa_0_4_vit_b_32_linear.pth"), &source);
    let folder = dir.path().join("models");

    let first = fetch(&folder, &manifest).await;
    let out = stdout(&first);
    assert!(first.status.success(), "{out}\n{:?}", stderr_lines(&first));
    assert!(
        out.contains(
            "installed  aesthetic-vit-b32-linear.safetensors (MIT, 2188 bytes, converted from \
             sa_0_4_vit_b_32_linear.pth, sha256 verified)"
        ),
        "{out}"
    );
    let installed = std::fs::read(folder.join("aesthetic-vit-b32-linear.safetensors")).unwrap();
    assert_eq!(sha256_hex(&installed), HEAD_SAFETENSORS.0);
    assert_eq!(
        file_names(&folder),
        [".ongi-sha256", "aesthetic-vit-b32-linear.safetensors", "manifest.toml"],
        "the .pth is not kept"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    let second = fetch(&folder, &manifest).await;
    assert!(second.status.success(), "{:?}", stderr_lines(&second));
    assert!(
        stdout(&second).contains("skipped    aesthetic-vit-b32-linear.safetensors: already present and valid"),
        "{}",
        stdout(&second)
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "a valid file is not downloaded again");

    let verify = ongi(&["models", "verify", "--models", folder.to_str().unwrap()], &[]).await;
    assert!(verify.status.success(), "{}", stdout(&verify));
}

#[tokio::test]
async fn fetch_refuses_a_pth_that_is_not_the_heads_layout_and_installs_nothing() {
    for (file, expected) in [
        ("wrong-name.pth", "no tensor \"weight\""),
        ("wrong-shape.pth", "f32 [1,256], the manifest says weight f32 [1,512]"),
        ("not-zip.pth", "not a PyTorch state dict in torch's zip format"),
    ] {
        let source = pth(file);
        let (base, _) = serve_files(vec![("head.pth", source.clone())]);
        let dir = tempfile::tempdir().unwrap();
        let manifest = converted_head_manifest(dir.path(), &format!("{base}/head.pth"), &source);
        let folder = dir.path().join("models");
        let output = fetch(&folder, &manifest).await;
        assert!(!output.status.success(), "{file}");
        let errors = stderr_lines(&output);
        assert_eq!(errors.len(), 1, "{file}: {errors:?}");
        assert!(
            errors[0].contains(
                "cannot install aesthetic-vit-b32-linear.safetensors: cannot convert the downloaded head.pth"
            ) && errors[0].contains(expected),
            "{file}: {errors:?}"
        );
        assert_eq!(
            file_names(&folder),
            ["manifest.toml"],
            "{file}: nothing installed, nothing left"
        );
    }
}
