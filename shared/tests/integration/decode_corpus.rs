//! The decoder on the committed corpus of bad and odd files (`fixtures/images`, made by
//! `make_corpus.py` with Pillow): each file gives the right typed error or the right pixels.

use std::path::PathBuf;

use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodeOptions, ImageError, decode};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/images")
}

fn corpus() -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join("corpus.json")).expect("corpus.json");
    let v: Value = serde_json::from_str(&text).expect("corpus.json parses");
    v["files"].as_array().expect("files").clone()
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_corpus_file_gives_its_expected_error_or_pixels() {
    let entries = corpus();
    assert!(entries.len() >= 25, "the corpus lists {} files", entries.len());
    let mut failures = Vec::new();
    for entry in &entries {
        let name = entry["file"].as_str().expect("file");
        let result = decode(&read(name), &IngestLimits::default(), DecodeOptions::default());
        match (entry["expect"].as_str(), result) {
            (Some("error"), Err(e)) => {
                // HEIC and AVIF are decoded only in a build with the `heif` feature.
                let want = match entry["reason_without_heif"].as_str() {
                    Some(without) if !cfg!(feature = "heif") => without,
                    _ => entry["reason"].as_str().expect("reason"),
                };
                if e.reason() != want {
                    failures.push(format!("{name}: reason {} ({e}), want {want}", e.reason()));
                }
                if let Some(format) = entry["format"].as_str()
                    && want == "unsupported_format"
                {
                    let expected = match format {
                        "GIF" => ImageError::UnsupportedFormat("GIF"),
                        "BMP" => ImageError::UnsupportedFormat("BMP"),
                        "HEIC" => ImageError::NotBuiltIn("HEIC"),
                        other => panic!("unexpected format {other} in corpus.json"),
                    };
                    if e != expected {
                        failures.push(format!("{name}: {e:?}, want {expected:?}"));
                    }
                }
            }
            (Some("error"), Ok(img)) => failures.push(format!(
                "{name}: decoded to {}x{}, want error {}",
                img.pixels.width(),
                img.pixels.height(),
                entry["reason"]
            )),
            (Some("ok"), Err(e)) => failures.push(format!("{name}: {e}, want pixels")),
            (Some("ok"), Ok(img)) => {
                let (w, h) = (
                    entry["width"].as_u64().unwrap() as u32,
                    entry["height"].as_u64().unwrap() as u32,
                );
                if (img.pixels.width(), img.pixels.height()) != (w, h)
                    || (img.source_width, img.source_height) != (w, h)
                {
                    failures.push(format!(
                        "{name}: {}x{} (source {}x{}), want {w}x{h}",
                        img.pixels.width(),
                        img.pixels.height(),
                        img.source_width,
                        img.source_height
                    ));
                    continue;
                }
                if let Some(o) = entry["orientation"].as_u64()
                    && u64::from(img.exif_orientation) != o
                {
                    failures.push(format!("{name}: orientation {}, want {o}", img.exif_orientation));
                }
                let tol = entry["tolerance"].as_i64().unwrap();
                for s in entry["samples"].as_array().unwrap() {
                    let s: Vec<i64> = s.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
                    let px = img.pixels.get_pixel(s[0] as u32, s[1] as u32).0;
                    let off = (0..3).map(|c| (i64::from(px[c]) - s[2 + c]).abs()).max().unwrap();
                    if off > tol {
                        failures.push(format!(
                            "{name}: pixel ({},{}) = {px:?}, want {:?} ±{tol}",
                            s[0],
                            s[1],
                            &s[2..]
                        ));
                    }
                }
            }
            (other, _) => panic!("{name}: unknown expectation {other:?}"),
        }
    }
    assert!(
        failures.is_empty(),
        "decoder disagrees with the corpus:\n{}",
        failures.join("\n")
    );
}

#[test]
fn jpeg_is_decoded_at_a_reduced_dct_scale_when_asked() {
    let entry = corpus()
        .into_iter()
        .find(|e| e["file"] == "large.jpg")
        .expect("large.jpg in corpus.json");
    let reduced = &entry["reduced"];
    let min_side = reduced["min_short_side"].as_u64().unwrap() as u32;
    let bytes = read("large.jpg");
    let full = decode(&bytes, &IngestLimits::default(), DecodeOptions::default()).unwrap();
    let small = decode(
        &bytes,
        &IngestLimits::default(),
        DecodeOptions {
            min_short_side: Some(min_side),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        (small.pixels.width(), small.pixels.height()),
        (
            reduced["width"].as_u64().unwrap() as u32,
            reduced["height"].as_u64().unwrap() as u32
        )
    );
    assert_eq!(
        u64::from(small.scale_denominator),
        reduced["denominator"].as_u64().unwrap()
    );
    assert!(small.pixels.width().min(small.pixels.height()) >= min_side);
    assert_eq!((small.source_width, small.source_height), (1024, 768));
    assert_eq!(full.scale_denominator, 1);
    // The reduced decode shows the same picture: compare a few points at matching positions.
    for (x, y) in [(100u32, 100u32), (512, 384), (900, 700)] {
        let a = full.pixels.get_pixel(x, y).0;
        let b = small.pixels.get_pixel(x / 4, y / 4).0;
        let off = (0..3).map(|c| (i32::from(a[c]) - i32::from(b[c])).abs()).max().unwrap();
        assert!(off <= 8, "({x},{y}): full {a:?} vs reduced {b:?}");
    }
    // Never below the requested short side, even when the request is awkward.
    let opts = |short, long| DecodeOptions {
        min_short_side: short,
        min_long_side: long,
    };
    let odd = decode(&bytes, &IngestLimits::default(), opts(Some(97), None)).unwrap();
    assert!(odd.pixels.height() >= 97, "{}", odd.pixels.height());
    // Both minimums: the long side decides here (300 px long needs 1/2 scale: 512x384).
    let both = decode(&bytes, &IngestLimits::default(), opts(Some(97), Some(300))).unwrap();
    assert_eq!((both.pixels.width(), both.pixels.height()), (512, 384));
    let long_only = decode(&bytes, &IngestLimits::default(), opts(None, Some(100))).unwrap();
    assert_eq!((long_only.pixels.width(), long_only.pixels.height()), (128, 96));
}

#[test]
fn limits_are_checked_before_decoding() {
    let bytes = read("large.jpg");
    let tight_bytes = IngestLimits {
        max_bytes: 1000,
        ..IngestLimits::default()
    };
    assert_eq!(
        decode(&bytes, &tight_bytes, DecodeOptions::default())
            .unwrap_err()
            .reason(),
        "too_large"
    );
    let tight_pixels = IngestLimits {
        max_pixels: 1024 * 768 - 1,
        ..IngestLimits::default()
    };
    let err = decode(&bytes, &tight_pixels, DecodeOptions::default()).unwrap_err();
    assert_eq!(err.reason(), "too_large");
    assert!(err.to_string().contains("1024x768"), "{err}");
}

#[test]
fn no_prefix_or_bit_flip_of_a_valid_file_panics() {
    // A cheap, deterministic stand-in for fuzzing until the fuzz targets land: every
    // truncation of a few files, and single-byte corruptions through the header.
    for name in [
        "baseline.jpg",
        "progressive.jpg",
        "cmyk.jpg",
        "gray16.png",
        "lossless.webp",
        "orientation-6.png",
    ] {
        let bytes = read(name);
        for cut in 0..bytes.len() {
            let _ = decode(&bytes[..cut], &IngestLimits::default(), DecodeOptions::default());
        }
        for i in 0..bytes.len().min(400) {
            let mut b = bytes.clone();
            b[i] ^= 0xA5;
            let _ = decode(
                &b,
                &IngestLimits::default(),
                DecodeOptions {
                    min_short_side: Some(8),
                    ..Default::default()
                },
            );
        }
    }
}
