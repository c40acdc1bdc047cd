//! Tests of `locate.rs`: each place the library may be, set up in temporary folders.
//! Kept apart so `locate.rs` holds only the search itself.

use super::*;

/// A search that looks only at the model folder and the given places.
fn search(model_dir: &Path) -> Search {
    Search {
        explicit: None,
        model_dir: model_dir.to_owned(),
        python: Vec::new(),
        python_timeout: PYTHON_TIMEOUT,
        python_roots: Vec::new(),
        library_dirs: Vec::new(),
    }
}

fn touch(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"not really a library").unwrap();
}

#[test]
fn a_set_path_is_the_only_candidate_and_a_wrong_one_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    touch(&dir.path().join("models/libonnxruntime.so.1.32.0"));
    let mut s = search(&dir.path().join("models"));
    s.explicit = Some(dir.path().join("nowhere/libonnxruntime.so"));
    let e = locate(&s).unwrap_err();
    assert!(e.to_string().contains("nowhere/libonnxruntime.so"), "{e}");
    assert!(e.to_string().contains("ORT_DYLIB_PATH"), "{e}");

    let own = dir.path().join("own/libonnxruntime.so.1.30.0");
    touch(&own);
    s.explicit = Some(own.clone());
    let found = locate(&s).unwrap();
    assert_eq!(found.candidates.len(), 1);
    assert_eq!(found.candidates[0].path, own);
    assert_eq!(found.candidates[0].found_in, FoundIn::Setting);
}

#[test]
fn the_model_folder_wins_and_the_highest_version_comes_first() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let lib = models.join(MODEL_FOLDER_RUNTIME).join("lib");
    touch(&lib.join("libonnxruntime.so.1.31.0"));
    std::os::unix::fs::symlink("libonnxruntime.so.1.31.0", lib.join("libonnxruntime.so")).unwrap();
    touch(&models.join("libonnxruntime.so.1.40.2"));
    let system = dir.path().join("usr-lib");
    touch(&system.join("libonnxruntime.so.1.50.0"));
    let mut s = search(&models);
    s.library_dirs = vec![system.clone()];
    let found = locate(&s).unwrap();
    let order: Vec<(String, FoundIn, Option<Vec<u32>>)> = found
        .candidates
        .iter()
        .map(|c| {
            (
                c.path.file_name().unwrap().to_string_lossy().into_owned(),
                c.found_in.clone(),
                c.version.clone(),
            )
        })
        .collect();
    assert_eq!(
        order,
        [
            (
                "libonnxruntime.so.1.40.2".into(),
                FoundIn::ModelFolder,
                Some(vec![1, 40, 2])
            ),
            // The link and its target are one candidate, found under the link's name.
            ("libonnxruntime.so".into(), FoundIn::ModelFolder, Some(vec![1, 31, 0])),
            (
                "libonnxruntime.so.1.50.0".into(),
                FoundIn::LibraryPath,
                Some(vec![1, 50, 0])
            ),
        ]
    );
}

#[test]
fn a_library_too_old_for_the_api_level_is_passed_over_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let system = dir.path().join("lib");
    touch(&system.join("libonnxruntime.so.1.16.3"));
    touch(&system.join("libonnxruntime.so.1.32.0"));
    let mut s = search(&dir.path().join("models"));
    s.library_dirs = vec![system];
    let found = locate(&s).unwrap();
    assert_eq!(found.candidates.len(), 1);
    assert!(found.candidates[0].path.ends_with("libonnxruntime.so.1.32.0"));
    assert_eq!(found.skipped.len(), 1);
    assert!(
        found.skipped[0].contains("1.16.3") && found.skipped[0].contains(&format!("1.{MIN_MINOR}")),
        "{:?}",
        found.skipped
    );
}

#[test]
fn a_python_package_is_found_by_asking_python_and_by_scanning_site_packages() {
    let dir = tempfile::tempdir().unwrap();
    // A package Python can import, outside any place scanned without Python.
    let site = dir.path().join("site");
    touch(&site.join("onnxruntime/capi/libonnxruntime.so.1.32.0"));
    std::fs::write(site.join("onnxruntime/__init__.py"), "").unwrap();
    let mut s = search(&dir.path().join("models"));
    s.python = vec![
        "env".into(),
        format!("PYTHONPATH={}", site.display()).into(),
        "python3".into(),
    ];
    let found = locate(&s).unwrap();
    assert_eq!(found.candidates.len(), 1, "{found:?}");
    assert_eq!(found.candidates[0].found_in, FoundIn::PythonPackage);
    assert_eq!(
        found.candidates[0].path,
        site.join("onnxruntime/capi/libonnxruntime.so.1.32.0")
    );

    // The same layout under a pip root, with no Python to ask.
    let root = dir.path().join("usr-local-lib");
    touch(&root.join("python3.11/dist-packages/onnxruntime/capi/libonnxruntime.so.1.31.1"));
    let mut s = search(&dir.path().join("models"));
    s.python_roots = vec![root.clone()];
    let found = locate(&s).unwrap();
    assert_eq!(found.candidates.len(), 1, "{found:?}");
    assert_eq!(found.candidates[0].found_in, FoundIn::PythonPackage);
    assert_eq!(found.candidates[0].version, Some(vec![1, 31, 1]));
}

#[test]
fn a_python_that_hangs_is_given_up_on_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = search(&dir.path().join("models"));
    // `sh -c "exec sleep 30" -c …`: a "Python" that never answers.
    s.python = vec!["sh".into(), "-c".into(), "exec sleep 30".into()];
    s.python_timeout = Duration::from_millis(300);
    let started = Instant::now();
    let found = locate(&s).unwrap();
    assert!(found.candidates.is_empty());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn no_python_at_all_finds_nothing_and_fails_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = search(&dir.path().join("models"));
    s.python = vec!["/nonexistent/python3".into()];
    let found = locate(&s).unwrap();
    assert!(found.candidates.is_empty() && found.skipped.is_empty());
}
