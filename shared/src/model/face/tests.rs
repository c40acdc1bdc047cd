//! Tests of the shared face-detection helpers: NMS, box overlap and resampling.
//! Kept apart so `mod.rs` holds only the detector-facing code.

use super::*;

fn face(bbox: [f32; 4], score: f32) -> Face {
    Face {
        bbox,
        score,
        landmarks: [[0.0; 2]; 5],
    }
}

#[test]
fn nms_keeps_the_best_of_overlapping_boxes() {
    let faces = vec![
        face([0.0, 0.0, 10.0, 10.0], 0.8),
        face([1.0, 1.0, 11.0, 11.0], 0.9),
        face([20.0, 20.0, 30.0, 30.0], 0.5),
        face([2.0, 2.0, 8.0, 8.0], f32::NAN),
    ];
    let kept = nms(faces, 0.3, Overlap::Union);
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[0].score, 0.9);
    assert_eq!(kept[1].score, 0.5);
}

#[test]
fn min_overlap_drops_a_box_inside_another() {
    let a = [0.0, 0.0, 100.0, 100.0];
    let b = [10.0, 10.0, 30.0, 30.0];
    assert!(overlap(&a, &b, Overlap::Union) < 0.1);
    assert!((overlap(&a, &b, Overlap::Min) - 1.0).abs() < 1e-6);
    assert_eq!(overlap(&a, &[f32::NAN; 4], Overlap::Union), 0.0);
}

#[test]
fn resample_averages_when_shrinking_and_interpolates_when_growing() {
    let src: Vec<f32> = [0.0, 10.0, 20.0, 30.0].iter().flat_map(|&v| [v; 3]).collect();
    let half = resample(&src, 4, 1, 2, 1);
    assert_eq!(half, vec![5.0, 5.0, 5.0, 25.0, 25.0, 25.0]);
    let grown = resample(&src[..6], 2, 1, 4, 1);
    let r: Vec<f32> = grown.chunks(3).map(|p| p[0]).collect();
    assert_eq!(r, vec![0.0, 2.5, 7.5, 10.0]);
    assert!(resample(&[], 0, 0, 3, 3).iter().all(|&v| v == 0.0));
    // A region hanging off the left edge: the outside half is black.
    let off = resample_region(&src, 4, 1, (-2, 0, 4, 1), 2, 1);
    assert_eq!(off, vec![0.0, 0.0, 0.0, 5.0, 5.0, 5.0]);
}
