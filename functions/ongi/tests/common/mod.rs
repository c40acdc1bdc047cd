//! Helpers the `ongi` binary's tests share (beside `ongi_test_support`): the fixtures, synthetic
//! photos, the tiny models, and running the binary with a deadline.
#![allow(dead_code)] // each test file uses some of them

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use image::{ImageFormat, Rgb, RgbImage};
use ongi_test_support::required_env;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/tests/fixtures")
}

/// A deterministic synthetic photo: a gradient, a fine checker texture and many coloured
/// rectangles (sharp edges everywhere), laid out by `seed`.
pub fn scene(seed: u64, w: u32, h: u32) -> RgbImage {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let base = [next() % 200, next() % 200, next() % 200].map(|v| v as u8 + 30);
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let g = ((x + y) * 60 / (w + h)) as u8;
        let checker = if (x / 6 + y / 6) % 2 == 0 { 25 } else { 0 };
        Rgb(base.map(|c| c.saturating_add(g).saturating_sub(checker)))
    });
    for _ in 0..40 {
        let (x0, y0) = ((next() % u64::from(w)) as u32, (next() % u64::from(h)) as u32);
        let (rw, rh) = ((next() % 160 + 20) as u32, (next() % 120 + 20) as u32);
        let colour = Rgb([next() as u8, next() as u8, next() as u8]);
        for y in y0..(y0 + rh).min(h) {
            for x in x0..(x0 + rw).min(w) {
                img.put_pixel(x, y, colour);
            }
        }
    }
    img
}

pub fn save(img: &RgbImage, path: &Path, format: ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, format).unwrap();
}

/// Runs a command with a deadline, capturing stdout and stderr.
pub fn run_with_timeout(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} ran past {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// A model folder with the tiny CLIP (visual, textual) and aesthetic head, as symlinks.
pub fn clip_model_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "clip-vit-b32-visual.onnx",
        "clip-vit-b32-textual.onnx",
        "aesthetic-vit-b32-linear.safetensors",
    ] {
        let from = fixtures().join("models").join(f);
        assert!(from.is_file(), "{} is missing", from.display());
        std::os::unix::fs::symlink(&from, dir.path().join(f)).unwrap();
    }
    dir
}

/// A model folder with the tiny CLIP (visual, textual, aesthetic head), the real MTCNN and
/// the tiny SFace, as symlinks.
pub fn full_model_folder() -> tempfile::TempDir {
    let dir = clip_model_folder();
    let link = |from: PathBuf| {
        assert!(from.is_file(), "{} is missing", from.display());
        std::os::unix::fs::symlink(&from, dir.path().join(from.file_name().unwrap())).unwrap();
    };
    for net in ["pnet", "rnet", "onet"] {
        link(Path::new(&required_env("ONGI_MTCNN_DIR")).join(format!("face-detect-mtcnn-{net}.onnx")));
    }
    link(fixtures().join("faces/face-embed-sface.onnx"));
    dir
}
