//! YuNet's decoding on two tiny generated models with its I/O contract
//! (`fixtures/faces/make_tiny_yunet.py`): one with random weights, one whose outputs the tests
//! control exactly; and what both detectors do with blank, tiny and oddly scaled images and
//! how much memory a detection reserves.

use image::imageops::{FilterType, resize};
use image::{Rgb, RgbImage};
use ongi_shared::config::IngestLimits;
use ongi_shared::image::{DecodedImage, ImageFormat};
use ongi_shared::model::face::yunet::YuNet;
use ongi_shared::model::face::{DetectOptions, FaceDetector, Overlap, detect_in_original, overlap};

use crate::face_detect::group_photo;
use crate::support::{face_fixtures, mtcnn, ort_env, session_config};

#[test]
fn tiny_and_blank_images_give_no_faces() {
    let detector = mtcnn(DetectOptions::MTCNN);
    let tiny_yunet = YuNet::load(
        ort_env(),
        &face_fixtures().join("face-detect-yunet-tiny.onnx"),
        session_config(),
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
        &face_fixtures().join("face-detect-yunet-probe.onnx"),
        session_config(),
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
            &face_fixtures().join("face-detect-yunet-tiny.onnx"),
            session_config(),
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
