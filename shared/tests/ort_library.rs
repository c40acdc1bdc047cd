//! The ONNX Runtime library fetched and found as on a user's machine: the real library
//! (`ORT_DYLIB_PATH`, which `.ci/run` provides) packed at test time into an archive laid out
//! as the official release is, served by a local HTTP server, installed into a model folder,
//! found there by the search, and loaded by ONNX Runtime.
//!
//! A test binary of its own: one process loads one ONNX Runtime library, and here it must
//! be the fetched copy, not the one the other tests load.

use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use ongi_shared::model::manifest::FetchOptions;
use ongi_shared::model::ort_library::{self, FoundIn, OrtRelease, Search};
use ongi_shared::model::runtime;
use ongi_test_support::{file_names, required_env, serve_files};
use sha2::{Digest, Sha256};

/// `<stem>/lib/libonnxruntime.so.<version>` holding `library`, with the links
/// `libonnxruntime.so.1` and `libonnxruntime.so` beside it, and a header that is not taken.
fn release_archive(stem: &str, version: &str, library: &[u8]) -> Vec<u8> {
    let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), Compression::fast()));
    let file = |tar: &mut tar::Builder<_>, path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_cksum();
        tar.append_data(&mut header, path, data).unwrap();
    };
    let link = |tar: &mut tar::Builder<_>, path: &str, target: &str| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, path, target).unwrap();
    };
    file(
        &mut tar,
        &format!("{stem}/include/onnxruntime_c_api.h"),
        b"/* header */",
    );
    let real = format!("libonnxruntime.so.{version}");
    file(&mut tar, &format!("{stem}/lib/{real}"), library);
    link(&mut tar, &format!("{stem}/lib/libonnxruntime.so.1"), &real);
    link(
        &mut tar,
        &format!("{stem}/lib/libonnxruntime.so"),
        "libonnxruntime.so.1",
    );
    tar.into_inner().unwrap().finish().unwrap()
}

fn only_the_model_folder(model_dir: &Path) -> Search {
    Search {
        explicit: None,
        model_dir: model_dir.to_owned(),
        python: Vec::new(),
        python_timeout: ort_library::PYTHON_TIMEOUT,
        python_roots: Vec::new(),
        library_dirs: Vec::new(),
    }
}

#[tokio::test]
async fn the_release_archive_is_fetched_into_the_model_folder_found_there_and_loaded() {
    let real = required_env("ORT_DYLIB_PATH");
    let library = std::fs::read(&real).unwrap_or_else(|e| panic!("{real}: {e}"));
    let version = "1.32.0";
    let release = OrtRelease {
        version: version.into(),
        stem: format!("onnxruntime-linux-x64-{version}"),
        sha256: String::new(),
    };
    let archive = release_archive(&release.stem, version, &library);
    // The pin of this test's archive; the real pin stays in the code.
    let release = OrtRelease {
        sha256: hex::encode(Sha256::digest(&archive)),
        ..release
    };
    let (base, hits) = serve_files(vec![(&format!("v{version}/{}", release.archive()), archive)]);
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");

    let mut events = Vec::new();
    let installed = ort_library::fetch_library(&release, &base, &models, &FetchOptions::default(), |e| {
        events.push(
            format!("{e:?}")
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned(),
        )
    })
    .await
    .unwrap();
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(events.iter().any(|e| e == "DownloadProgress"), "{events:?}");
    assert!(events.iter().any(|e| e == "Installed"), "{events:?}");
    assert_eq!(installed, models.join("onnxruntime/lib/libonnxruntime.so.1.32.0"));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        library,
        "the library unpacked whole"
    );
    // Only the library: no archive, no temporary folder, no header.
    assert_eq!(file_names(&models), ["onnxruntime"]);
    assert_eq!(
        file_names(&models.join("onnxruntime/lib")),
        ["libonnxruntime.so", "libonnxruntime.so.1", "libonnxruntime.so.1.32.0"]
    );

    let loaded = ort_library::load_first(&only_the_model_folder(&models)).unwrap();
    assert_eq!(loaded.found_in, FoundIn::ModelFolder);
    assert_eq!(std::fs::canonicalize(&loaded.path).unwrap(), installed);
    assert_eq!(loaded.version, Some(vec![1, 32, 0]));
    // ONNX Runtime was initialised from the fetched copy: a session can be built on it.
    let env = runtime::environment(None, "the test").unwrap();
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/clip-vit-b32-textual.onnx");
    runtime::load_session(env, &model, runtime::SessionConfig::threads(1)).unwrap();

    // A second fetch never touches the installed library.
    let again = ort_library::fetch_library(&release, &base, &models, &FetchOptions::default(), |_| {}).await;
    assert!(
        matches!(again, Err(ort_library::OrtFetchError::Occupied(_))),
        "{again:?}"
    );
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 1);
}
