//! Face embeddings: the tiny SFace stand-in on real ONNX Runtime, against the values Python
//! printed (`fixtures/faces/make_tiny_sface.py`).

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use ongi_shared::model::ModelError;
use ongi_shared::model::face_embed::{FACE_EMBED_DIM, FACE_EMBED_FILE, FACE_SIDE, FaceEmbedder};
use ongi_shared::model::runtime;

use crate::support::required_env;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn ort_env() -> &'static ort::environment::Environment {
    let lib = required_env("ORT_DYLIB_PATH");
    runtime::environment(Some(Path::new(&lib)), "tests").expect("ONNX Runtime loads")
}

/// The reference face of `make_tiny_sface.py`: (R, G, B) = (2x, 255 − 2y, (x + y) mod 256).
fn reference_face() -> RgbImage {
    RgbImage::from_fn(FACE_SIDE, FACE_SIDE, |x, y| {
        Rgb([(2 * x) as u8, (255 - 2 * y) as u8, ((x + y) % 256) as u8])
    })
}

#[test]
fn the_tiny_sface_embeds_a_batch_as_python_does() {
    let embedder = FaceEmbedder::load(ort_env(), &fixtures().join("faces").join(FACE_EMBED_FILE), 1).unwrap();
    let reference = reference_face();
    let mut swapped = reference.clone();
    swapped.pixels_mut().for_each(|p| p.0.swap(0, 2));
    let flat = RgbImage::from_pixel(FACE_SIDE, FACE_SIDE, Rgb([90, 120, 200]));
    let faces = vec![reference.clone(), swapped, flat, reference];
    let out = embedder.embed(&faces).unwrap();
    assert_eq!(out.len(), 4);
    for e in &out {
        assert_eq!(e.len(), FACE_EMBED_DIM);
        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // Printed by make_tiny_sface.py with onnxruntime on an RGB, 0–255 blob.
    let want = [0.036082f32, 0.0962491, -0.0883709, 0.145829, 0.120301, 0.0825434];
    for (got, want) in out[0].iter().zip(want) {
        assert!((got - want).abs() < 2e-5, "{:?} vs {want:?}", &out[0][..6]);
    }
    // Channel order matters (BGR gives another embedding); the batch is per face.
    let differs = out[0]
        .iter()
        .zip(&out[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(differs > 1e-3, "BGR and RGB embed alike ({differs})");
    assert_eq!(out[0], out[3]);
    assert!(embedder.embed(&[]).unwrap().is_empty());
}

#[test]
fn a_wrong_crop_or_model_is_a_typed_error() {
    let embedder = FaceEmbedder::load(ort_env(), &fixtures().join("faces").join(FACE_EMBED_FILE), 1).unwrap();
    let err = embedder.embed(&[RgbImage::new(96, 112)]).err();
    assert!(matches!(err, Some(ModelError::Inference { .. })), "{err:?}");
    let clip = fixtures().join("models/clip-vit-b32-visual.onnx");
    let err = FaceEmbedder::load(ort_env(), &clip, 1).err();
    assert!(matches!(err, Some(ModelError::Contract { .. })), "{err:?}");
    let err = FaceEmbedder::load(ort_env(), &fixtures().join("faces/missing.onnx"), 1).err();
    assert!(matches!(err, Some(ModelError::Missing(_))), "{err:?}");
}
