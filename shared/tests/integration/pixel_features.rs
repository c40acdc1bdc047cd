//! The pure-Rust pixel features against real OpenCV (`fixtures/pixel/pixel_reference.json`,
//! made by `fixtures/pixel/make_pixel_reference.py` with opencv-contrib-python).
//!
//! Each image is decoded with the service's own decoder, then every step is compared so a
//! mismatch says where it starts: the gray sum (`cvtColor RGB2GRAY`), the 32x32
//! `INTER_LINEAR_EXACT` resize (pixel by pixel), the DCT block (within float rounding), the
//! pHash (bit-identical), the INTER_AREA 300-px resize (size and sum) and the Laplacian
//! variance (1e-6 relative), then the Hamming distances between pairs.

use std::collections::HashMap;
use std::path::PathBuf;

use ongi_shared::config::IngestLimits;
use ongi_shared::image::features::{
    hamming, laplacian_variance, phash, phash_bytes, resize_area, resize_linear_exact, to_gray,
};
use ongi_shared::image::{DecodeOptions, decode};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn reference() -> Value {
    let path = fixtures().join("pixel/pixel_reference.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("pixel_reference.json parses")
}

fn gray_of(file: &str) -> image::GrayImage {
    let bytes = std::fs::read(fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let decoded = decode(&bytes, &IngestLimits::default(), DecodeOptions::default())
        .unwrap_or_else(|e| panic!("{file}: decode: {e}"));
    to_gray(&decoded.pixels)
}

fn u64_field(entry: &Value, key: &str) -> u64 {
    entry[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} is not a u64 in {entry}"))
}

fn f64_field(entry: &Value, key: &str) -> f64 {
    entry[key].as_f64().unwrap_or_else(|| panic!("{key} is not a number"))
}

/// The top-left 8x8 of the DCT, recomputed here in f64 straight from the definition (an
/// independent check that the pHash compares the right numbers; OpenCV's float32 DCT
/// differs from it only by rounding).
fn dct8x8(small: &image::GrayImage) -> Vec<f64> {
    let n = 32usize;
    let px = small.as_raw();
    let basis = |k: usize, i: usize| {
        let s = if k == 0 {
            (1.0 / n as f64).sqrt()
        } else {
            (2.0 / n as f64).sqrt()
        };
        s * (std::f64::consts::PI * ((2 * i + 1) * k) as f64 / (2 * n) as f64).cos()
    };
    let mut out = Vec::with_capacity(64);
    for u in 0..8 {
        for v in 0..8 {
            let mut sum = 0.0;
            for y in 0..n {
                for x in 0..n {
                    sum += f64::from(px[y * n + x]) * basis(u, y) * basis(v, x);
                }
            }
            out.push(sum);
        }
    }
    out
}

#[test]
fn pixel_features_match_opencv() {
    let doc = reference();
    let images = doc["images"].as_array().expect("images");
    assert!(images.len() >= 8, "the reference lists {} images", images.len());
    let mut failures = Vec::new();
    let mut hashes = HashMap::new();

    for entry in images {
        let file = entry["file"].as_str().expect("file");
        let gray = gray_of(file);
        assert_eq!(
            (u64::from(gray.width()), u64::from(gray.height())),
            (u64_field(entry, "width"), u64_field(entry, "height")),
            "{file}: size"
        );

        let gray_sum: u64 = gray.iter().map(|&v| u64::from(v)).sum();
        if gray_sum != u64_field(entry, "gray_sum") {
            failures.push(format!("{file}: gray sum {gray_sum}, OpenCV {}", entry["gray_sum"]));
        }

        let small = resize_linear_exact(&gray, 32, 32);
        let want: Vec<u64> = entry["resize32"]
            .as_array()
            .expect("resize32")
            .iter()
            .filter_map(Value::as_u64)
            .collect();
        assert_eq!(want.len(), 1024, "{file}: resize32 has {} values", want.len());
        let diffs: Vec<String> = small
            .iter()
            .zip(want.iter())
            .enumerate()
            .filter(|(_, (got, want))| u64::from(**got) != **want)
            .map(|(i, (got, want))| format!("({},{}) {got} vs {want}", i % 32, i / 32))
            .collect();
        if !diffs.is_empty() {
            failures.push(format!(
                "{file}: 32x32 resize differs at {} pixels: {:?}",
                diffs.len(),
                &diffs[..diffs.len().min(8)]
            ));
        }

        let cv_dct: Vec<f64> = entry["dct8x8"]
            .as_array()
            .expect("dct8x8")
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        for (i, (got, want)) in dct8x8(&small).iter().zip(cv_dct.iter()).enumerate() {
            // float32 DCT rounding: ~1e-7 relative to the largest coefficient (the DC, <= 8160).
            if (got - want).abs() > 2e-3 {
                failures.push(format!("{file}: DCT ({},{}) {got} vs OpenCV {want}", i / 8, i % 8));
            }
        }

        let hash = phash(&gray);
        let want_hash = u64_field(entry, "phash_u64");
        let hex: String = phash_bytes(hash).iter().map(|b| format!("{b:02x}")).collect();
        if hash != want_hash || hex != entry["phash_hex"].as_str().unwrap_or_default() {
            failures.push(format!(
                "{file}: pHash {hex} ({hash:#018x}), OpenCV {} ({want_hash:#018x}), {} bits differ; \
                 closest coefficient to the mean in OpenCV: {}",
                entry["phash_hex"],
                hamming(hash, want_hash),
                entry["phash_margin"]
            ));
        }
        hashes.insert(file.to_string(), hash);

        let area = &entry["area300"];
        let scale = 300.0 / f64::from(gray.width().max(gray.height()));
        let (w, h) = (
            ((f64::from(gray.width()) * scale) as u32).max(1),
            ((f64::from(gray.height()) * scale) as u32).max(1),
        );
        let small300 = resize_area(&gray, w, h);
        let area_sum: u64 = small300.iter().map(|&v| u64::from(v)).sum();
        if (u64::from(w), u64::from(h), area_sum)
            != (
                u64_field(area, "width"),
                u64_field(area, "height"),
                u64_field(area, "sum"),
            )
        {
            failures.push(format!(
                "{file}: INTER_AREA resize {w}x{h} sum {area_sum}, OpenCV {area}"
            ));
        }

        let lap = laplacian_variance(&gray);
        let want_lap = f64_field(entry, "laplacian_variance");
        if (lap - want_lap).abs() > 1e-6 * want_lap.abs().max(1e-12) && lap != want_lap {
            failures.push(format!("{file}: Laplacian variance {lap}, OpenCV {want_lap}"));
        }
    }

    let pairs = doc["pairs"].as_array().expect("pairs");
    assert!(!pairs.is_empty());
    for pair in pairs {
        let (a, b) = (pair["a"].as_str().expect("a"), pair["b"].as_str().expect("b"));
        let (ha, hb) = (hashes[a], hashes[b]);
        let want = u64_field(pair, "hamming");
        if u64::from(hamming(ha, hb)) != want {
            failures.push(format!("hamming({a}, {b}) = {}, OpenCV {want}", hamming(ha, hb)));
        }
    }

    assert!(
        failures.is_empty(),
        "{} mismatches with OpenCV:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn pixel_features_blur_lowers_laplacian_variance_and_keeps_the_hash_close() {
    let sharp = gray_of("pixel/photo_1000x750.png");
    let blurred = gray_of("pixel/photo_1000x750_blur.png");
    assert!(laplacian_variance(&sharp) > 10.0 * laplacian_variance(&blurred));
    assert!(hamming(phash(&sharp), phash(&blurred)) <= 10);
}
