//! Face alignment to the embedder's template, and the landmark quality measures
//! (frontalness, sharpness). Pure geometry and pixels: no model runs here.

use image::{Rgb, RgbImage};
use ongi_shared::model::face::align::{ALIGNED_SIDE, TEMPLATE};
use ongi_shared::model::face::{AlignError, align_face, frontalness, sharpness, similarity_transform};

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
