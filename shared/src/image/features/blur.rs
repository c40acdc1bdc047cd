//! The anchor's blur metric: the variance of the Laplacian at a 300 px long side.

use image::GrayImage;

use super::resize_area::resize_area;

/// The long side of the image the blur metric is measured on.
const BLUR_LONG_SIDE: f64 = 300.0;

/// The anchor's blur metric: the variance of the Laplacian of the gray image resized so its
/// long side is 300 px.
///
/// Exactly `cv2.Laplacian(cv2.resize(gray, (int(w*s), int(h*s)), interpolation=INTER_AREA),
/// cv2.CV_64F).var()` with `s = 300 / max(w, h)` (each side at least 1): the 3x3 kernel
/// `[[0,1,0],[1,-4,1],[0,1,0]]` (ksize 1), BORDER_REFLECT_101, population variance. The
/// Laplacian values are integers, so the variance is computed exactly and rounded once.
/// An empty image gives 0.
pub fn laplacian_variance(gray: &GrayImage) -> f64 {
    let (w, h) = gray.dimensions();
    if w == 0 || h == 0 {
        return 0.0;
    }
    let scale = BLUR_LONG_SIDE / f64::from(w.max(h));
    let new_w = ((f64::from(w) * scale) as u32).max(1);
    let new_h = ((f64::from(h) * scale) as u32).max(1);
    let small = resize_area(gray, new_w, new_h);
    laplacian_variance_of(&small)
}

/// Population variance of the ksize-1 Laplacian (BORDER_REFLECT_101), computed exactly.
fn laplacian_variance_of(img: &GrayImage) -> f64 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w == 0 || h == 0 {
        return 0.0;
    }
    let px = img.as_raw();
    let at = |x: usize, y: usize| i64::from(px.get(y * w + x).copied().unwrap_or(0));
    // BORDER_REFLECT_101 neighbours (a one-pixel axis reflects onto itself).
    let before = |i: usize, len: usize| if i > 0 { i - 1 } else { 1.min(len - 1) };
    let after = |i: usize, len: usize| if i + 1 < len { i + 1 } else { i.saturating_sub(1) };

    let mut sum: i128 = 0;
    let mut sum_sq: i128 = 0;
    for y in 0..h {
        let (up, down) = (before(y, h), after(y, h));
        for x in 0..w {
            let (left, right) = (before(x, w), after(x, w));
            let v = at(x, up) + at(x, down) + at(left, y) + at(right, y) - 4 * at(x, y);
            sum += i128::from(v);
            sum_sq += i128::from(v * v);
        }
    }
    let n = (w * h) as i128;
    // n^2 * variance = n * sum(v^2) - sum(v)^2, an exact integer.
    let numerator = n * sum_sq - sum * sum;
    numerator as f64 / (n * n) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::features::gray_from_fn;

    #[test]
    fn laplacian_variance_of_flat_and_tiny_images() {
        assert_eq!(laplacian_variance(&GrayImage::new(0, 0)), 0.0);
        assert_eq!(laplacian_variance(&gray_from_fn(1, 1, |_, _| 200)), 0.0);
        assert_eq!(laplacian_variance(&gray_from_fn(640, 480, |_, _| 17)), 0.0);
        let _ = laplacian_variance(&gray_from_fn(1, 1000, |_, y| (y % 256) as u8));
        let _ = laplacian_variance(&gray_from_fn(1000, 1, |x, _| (x % 256) as u8));
        let _ = laplacian_variance(&gray_from_fn(3, 2, |x, y| (x * 50 + y * 90) as u8));
    }

    #[test]
    fn laplacian_variance_drops_with_blur() {
        let sharp = gray_from_fn(600, 450, |x, y| if (x / 10 + y / 10) % 2 == 0 { 230 } else { 20 });
        let soft = gray_from_fn(600, 450, |x, y| {
            (128.0 + 100.0 * ((x as f64) / 40.0).sin() * ((y as f64) / 40.0).cos()) as u8
        });
        assert!(laplacian_variance(&sharp) > 10.0 * laplacian_variance(&soft));
    }

    #[test]
    fn laplacian_variance_of_a_known_image() {
        // 300x1 is its own resize; values 0, 100, 0, 100, ... give Laplacian +-200 inside
        // (vertical neighbours reflect onto the row itself), and 200 at both ends.
        let img = gray_from_fn(300, 1, |x, _| if x % 2 == 0 { 0 } else { 100 });
        let v: Vec<i64> = (0..300).map(|x| if x % 2 == 0 { 200 } else { -200 }).collect();
        let mean = v.iter().sum::<i64>() as f64 / 300.0;
        let want = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / 300.0;
        assert!((laplacian_variance(&img) - want).abs() < 1e-9);
    }
}
