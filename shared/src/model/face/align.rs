//! Face alignment onto the ArcFace 112×112 template, and the scores that pick a cluster's
//! representative face.
//!
//! The anchor used `cv2.estimateAffine2D` (a full affine with RANSAC), which can shear a
//! face; here the 5 landmarks are fitted with a **similarity** (rotation, uniform scale,
//! translation) by least squares, Umeyama's solution, which in 2-D has the closed form
//! below. The warp samples bilinearly, pixels outside the photo are black, like
//! `cv2.warpAffine` with `BORDER_CONSTANT`.

use image::{Rgb, RgbImage};

/// The side of an aligned face.
pub const ALIGNED_SIDE: u32 = 112;

/// The ArcFace 5-point template for 112×112 crops (left eye, right eye, nose, left and
/// right mouth corners as seen in the image), in pixel-index coordinates (pixel `i`'s
/// centre is at `i`), as `cv2.warpAffine` uses them.
pub const TEMPLATE: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// Landmarks closer together than this (root-mean-square distance from their centroid,
/// in pixels) are not a face.
const MIN_SPREAD_PX: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlignError {
    #[error("cannot align the face: {0}")]
    Degenerate(&'static str),
}

/// The least-squares similarity taking `src` onto `dst`, as a 2×3 matrix
/// `[[a, -b, tx], [b, a, ty]]` (`dst ≈ M · [x, y, 1]`).
pub fn similarity_transform(src: &[[f32; 2]; 5], dst: &[[f32; 2]; 5]) -> Result<[[f32; 3]; 2], AlignError> {
    if !src.iter().chain(dst).flatten().all(|v| v.is_finite()) {
        return Err(AlignError::Degenerate("a landmark is not a finite number"));
    }
    let n = src.len() as f64;
    let mean = |p: &[[f32; 2]; 5]| {
        let (sx, sy) = p
            .iter()
            .fold((0.0f64, 0.0f64), |(x, y), q| (x + f64::from(q[0]), y + f64::from(q[1])));
        (sx / n, sy / n)
    };
    let (msx, msy) = mean(src);
    let (mdx, mdy) = mean(dst);
    // With points as complex numbers, the best z = a + ib in dst' ≈ z · src' (centred) is
    // Σ conj(src')·dst' / Σ |src'|².
    let (mut var, mut re, mut im) = (0.0f64, 0.0f64, 0.0f64);
    for (s, d) in src.iter().zip(dst) {
        let (sx, sy) = (f64::from(s[0]) - msx, f64::from(s[1]) - msy);
        let (dx, dy) = (f64::from(d[0]) - mdx, f64::from(d[1]) - mdy);
        var += sx * sx + sy * sy;
        re += sx * dx + sy * dy;
        im += sx * dy - sy * dx;
    }
    if !(var / n).sqrt().ge(&MIN_SPREAD_PX) {
        return Err(AlignError::Degenerate("the landmarks (nearly) coincide"));
    }
    let (a, b) = (re / var, im / var);
    let scale = a.hypot(b);
    if !(scale.is_finite() && scale > 1e-4 && scale < 1e4) {
        return Err(AlignError::Degenerate("the fitted scale is (nearly) zero"));
    }
    let tx = mdx - (a * msx - b * msy);
    let ty = mdy - (b * msx + a * msy);
    let m = [[a as f32, -b as f32, tx as f32], [b as f32, a as f32, ty as f32]];
    if !m.iter().flatten().all(|v| v.is_finite()) {
        return Err(AlignError::Degenerate("the fitted transform is not finite"));
    }
    Ok(m)
}

/// Warps the face with these landmarks (continuous coordinates of `image`, as
/// [`super::Face::landmarks`]) onto the template: a 112×112 crop, black outside the photo.
pub fn align_face(image: &RgbImage, landmarks: &[[f32; 2]; 5]) -> Result<RgbImage, AlignError> {
    // Continuous → pixel-index coordinates, the template's convention.
    let src = landmarks.map(|[x, y]| [x - 0.5, y - 0.5]);
    let m = similarity_transform(&src, &TEMPLATE)?;
    let (a, b) = (f64::from(m[0][0]), f64::from(m[1][0]));
    let (tx, ty) = (f64::from(m[0][2]), f64::from(m[1][2]));
    let det = a * a + b * b;
    let (w, h) = (i64::from(image.width()), i64::from(image.height()));
    let raw = image.as_raw();
    let px = |x: i64, y: i64, c: usize| -> f64 {
        if x < 0 || y < 0 || x >= w || y >= h {
            0.0
        } else {
            f64::from(raw[((y * w + x) * 3) as usize + c])
        }
    };
    let mut out = RgbImage::new(ALIGNED_SIDE, ALIGNED_SIDE);
    for (u, v, p) in out.enumerate_pixels_mut() {
        // Inverse similarity: src = R⁻¹ (dst − t), R⁻¹ = [[a, b], [−b, a]] / (a² + b²).
        let (du, dv) = (f64::from(u) - tx, f64::from(v) - ty);
        let x = (a * du + b * dv) / det;
        let y = (-b * du + a * dv) / det;
        if !(x.is_finite() && y.is_finite()) || x < -1.0 || y < -1.0 || x > w as f64 || y > h as f64 {
            continue;
        }
        let (x0, y0) = (x.floor(), y.floor());
        let (fx, fy) = (x - x0, y - y0);
        let (x0, y0) = (x0 as i64, y0 as i64);
        let mut rgb = [0u8; 3];
        for (c, out) in rgb.iter_mut().enumerate() {
            let top = px(x0, y0, c) * (1.0 - fx) + px(x0 + 1, y0, c) * fx;
            let bottom = px(x0, y0 + 1, c) * (1.0 - fx) + px(x0 + 1, y0 + 1, c) * fx;
            *out = (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8;
        }
        *p = Rgb(rgb);
    }
    Ok(out)
}

/// The variance of the Laplacian of the face in gray: higher is sharper. 0 for images
/// smaller than 3×3.
pub fn sharpness(aligned: &RgbImage) -> f32 {
    let (w, h) = (aligned.width() as usize, aligned.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let gray: Vec<f64> = aligned
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let (mut sum, mut sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let lap = gray[i - 1] + gray[i + 1] + gray[i - w] + gray[i + w] - 4.0 * gray[i];
            sum += lap;
            sq += lap * lap;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sq / n - mean * mean).max(0.0) as f32
}

/// How frontal a face looks from its landmarks, in `[0, 1]`: 1 when the eyes are level and
/// the nose sits midway between them, falling to 0 as the face turns (the nose reaches an
/// eye) or tilts (90° roll). Swapped or coincident eyes and non-finite values give 0.
pub fn frontalness(landmarks: &[[f32; 2]; 5]) -> f32 {
    let [le, re, nose, _, _] = landmarks.map(|[x, y]| [f64::from(x), f64::from(y)]);
    let (ex, ey) = (re[0] - le[0], re[1] - le[1]);
    let dist = ex.hypot(ey);
    if !(dist.is_finite() && dist > 1e-6 && nose.iter().all(|v| v.is_finite())) {
        return 0.0;
    }
    // Level: the cosine of the roll (0 for eyes vertical or swapped).
    let level = (ex / dist).max(0.0);
    // Centred: the nose's offset from the eyes' midpoint along the eye axis, in half eye
    // distances.
    let (mx, my) = ((le[0] + re[0]) / 2.0, (le[1] + re[1]) / 2.0);
    let along = ((nose[0] - mx) * ex + (nose[1] - my) * ey) / dist;
    let centred = (1.0 - along.abs() / (dist / 2.0)).max(0.0);
    (level * centred).clamp(0.0, 1.0) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_maps_onto_itself() {
        let m = similarity_transform(&TEMPLATE, &TEMPLATE).unwrap();
        assert!((m[0][0] - 1.0).abs() < 1e-5 && m[1][0].abs() < 1e-5);
        assert!(m[0][2].abs() < 1e-3 && m[1][2].abs() < 1e-3);
        assert!((frontalness(&TEMPLATE) - 1.0).abs() < 0.05);
    }

    #[test]
    fn degenerate_landmarks_are_errors() {
        assert!(similarity_transform(&[[5.0, 5.0]; 5], &TEMPLATE).is_err());
        let mut nan = TEMPLATE;
        nan[2][0] = f32::NAN;
        assert!(similarity_transform(&nan, &TEMPLATE).is_err());
        assert_eq!(frontalness(&nan.map(|_| [f32::INFINITY, 0.0])), 0.0);
        assert_eq!(sharpness(&RgbImage::new(2, 2)), 0.0);
    }
}
