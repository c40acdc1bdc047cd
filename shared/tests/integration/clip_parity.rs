//! Parity of Rust CLIP preprocessing and inference with the Python reference
//! (`fixtures/models/reference_outputs.json`, written by `make_test_models.py` with Hugging
//! Face's `CLIPImageProcessor` and onnxruntime on the same tiny ONNX files).

use std::path::{Path, PathBuf};

use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodeOptions, decode};
use ongi_shared::model::clip::preprocess::{PIXELS_PER_IMAGE, geometry, preprocess_into, resize_and_crop};
use ongi_shared::model::clip::{ClipTextual, ClipVisual, TEXTUAL_FILE, VISUAL_FILE};
use ongi_shared::model::runtime;
use serde_json::Value;

use crate::support::required_env;

pub fn models_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(models_dir().join("reference_outputs.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

pub fn ort_env() -> &'static ort::environment::Environment {
    let lib = required_env("ORT_DYLIB_PATH");
    runtime::environment(Some(Path::new(&lib)), "the parity tests").expect("ONNX Runtime loads")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn preprocessing_and_image_embeddings_match_the_python_reference() {
    let reference = reference();
    let visual = ClipVisual::load(ort_env(), &models_dir().join(VISUAL_FILE), 1).unwrap();
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for img in reference["images"].as_array().unwrap() {
        let file = img["file"].as_str().unwrap();
        let bytes = std::fs::read(models_dir().join(file)).unwrap();
        let decoded = decode(&bytes, &IngestLimits::default(), DecodeOptions::default()).unwrap();
        let g = geometry(decoded.pixels.width(), decoded.pixels.height());
        let want_wh = floats(&img["resize_to_wh"]);
        assert_eq!(
            [g.resize_width as f32, g.resize_height as f32],
            [want_wh[0], want_wh[1]],
            "{file}"
        );
        let want_crop = floats(&img["crop_left_top"]);
        assert_eq!(
            [g.crop_left as f32, g.crop_top as f32],
            [want_crop[0], want_crop[1]],
            "{file}"
        );

        // Byte for byte what Pillow's resize + crop gives (the processor's first step).
        let pillow = std::fs::read(models_dir().join(img["pillow_resized_crop"].as_str().unwrap())).unwrap();
        let pillow = decode(&pillow, &IngestLimits::default(), DecodeOptions::default()).unwrap();
        let ours = resize_and_crop(&decoded.pixels, g);
        let differing = ours.iter().zip(pillow.pixels.as_raw()).filter(|(a, b)| a != b).count();
        assert_eq!(
            differing, 0,
            "{file}: {differing} channel values differ from Pillow's resize"
        );

        let mut pv = Vec::new();
        preprocess_into(&decoded.pixels, &mut pv);
        assert_eq!(pv.len(), PIXELS_PER_IMAGE);
        let stats = &img["pixel_values"];
        let mut worst = 0.0f32;
        for s in stats["samples_c_y_x_value"].as_array().unwrap() {
            let s = floats(s);
            let (c, y, x) = (s[0] as usize, s[1] as usize, s[2] as usize);
            worst = worst.max((pv[c * 224 * 224 + y * 224 + x] - s[3]).abs());
        }
        assert!(
            worst <= 1e-5,
            "{file}: pixel_values differ by {worst} at the sampled points"
        );

        let want = floats(&img["image_embeds"]);
        let got = visual.embed(pv.clone(), 1).unwrap().remove(0);
        let diff = max_abs(&got, &want);
        assert!(diff <= 1e-4, "{file}: image_embeds differ by {diff} (max abs)");
        batch.extend(pv);
        expected.push(want);
    }
    // The same images in one batch give the same embeddings.
    let got = visual.embed(batch, expected.len()).unwrap();
    for (g, w) in got.iter().zip(&expected) {
        assert!(max_abs(g, w) <= 1e-4);
    }
}

#[test]
fn tokens_and_text_embeddings_match_the_python_reference() {
    let reference = reference();
    let textual = ClipTextual::load(ort_env(), &models_dir().join(TEXTUAL_FILE), 1).unwrap();
    for t in reference["texts"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        let ids: Vec<i64> = t["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(textual.tokenize(text).to_vec(), ids, "{text:?}");
        let got = textual.embed(&[text]).unwrap().remove(0);
        let diff = max_abs(&got, &floats(&t["text_embeds"]));
        assert!(diff <= 1e-4, "{text:?}: text_embeds differ by {diff}");
    }
    // Long texts are cut to the context and still end with <end_of_text>.
    let ids = textual.tokenize(&"word ".repeat(200));
    assert_eq!(ids[76], 49407);
}

#[test]
fn a_missing_library_or_model_is_an_error_not_a_panic() {
    let env = ort_env();
    let err = ClipVisual::load(env, Path::new("/nonexistent/clip.onnx"), 1)
        .err()
        .unwrap();
    assert!(err.to_string().contains("missing"), "{err}");
    let not_onnx = models_dir().join("reference_outputs.json");
    let err = ClipVisual::load(env, &not_onnx, 1).err().unwrap();
    assert!(err.to_string().contains("cannot load model"), "{err}");
    // The textual model does not have the visual contract.
    let err = ClipVisual::load(env, &models_dir().join(TEXTUAL_FILE), 1)
        .err()
        .unwrap();
    assert!(err.to_string().contains("I/O contract"), "{err}");
}
