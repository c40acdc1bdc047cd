//! `cv::resize(INTER_LINEAR_EXACT)`: OpenCV's bit-exact bilinear resize of an 8-bit gray
//! image, the first step of the pHash.

use image::GrayImage;

/// `cv::resize(gray, (w, h), INTER_LINEAR_EXACT)`, bit-exact.
///
/// OpenCV's `resize_bitExact<uchar, interpolationLinear>`: source coordinate
/// `(d + 0.5) * src/dst - 0.5` in double, weights rounded to 8 fractional bits (half to even),
/// a horizontal pass into 8.8 fixed point, a vertical pass into 16.16, then
/// `(v + 2^15) >> 16`; destination pixels left of / above the first source pixel centre
/// copy the first pixel, those past the last centre copy the last. A zero target size gives
/// an empty image, and an empty source gives a black one.
pub fn resize_linear_exact(gray: &GrayImage, w: u32, h: u32) -> GrayImage {
    let (src_w, src_h) = gray.dimensions();
    if w == 0 || h == 0 || src_w == 0 || src_h == 0 {
        return GrayImage::new(w, h);
    }
    if (w, h) == (src_w, src_h) {
        return gray.clone();
    }
    let src = gray.as_raw();
    let stride = src_w as usize;
    let xs = ExactAxis::new(src_w, w);
    let ys = ExactAxis::new(src_h, h);

    let mut out = GrayImage::new(w, h);
    let mut line0 = vec![0u32; w as usize];
    let mut line1 = vec![0u32; w as usize];
    for (dy, row_out) in out.chunks_exact_mut(w as usize).enumerate() {
        let tap = ys.taps[dy];
        let row = |sy: usize| &src[sy * stride..(sy + 1) * stride];
        if tap.interpolate {
            xs.horizontal(row(tap.offset), &mut line0);
            xs.horizontal(row(tap.offset + 1), &mut line1);
            for ((out, &a), &b) in row_out.iter_mut().zip(line0.iter()).zip(line1.iter()) {
                let v = (a * tap.c0 + b * tap.c1 + (1 << 15)) >> 16;
                *out = v.min(255) as u8;
            }
        } else {
            xs.horizontal(row(tap.offset), &mut line0);
            for (out, &a) in row_out.iter_mut().zip(line0.iter()) {
                *out = ((a + (1 << 7)) >> 8).min(255) as u8;
            }
        }
    }
    out
}

/// One destination coordinate of the bit-exact linear resize.
#[derive(Debug, Clone, Copy)]
struct ExactTap {
    /// The first source index; with `interpolate`, `offset + 1` is the second.
    offset: usize,
    /// Whether this is a blend of two source samples (else a copy of `offset`).
    interpolate: bool,
    /// The weights in 8-bit fixed point (`c0 + c1 == 256`).
    c0: u32,
    c1: u32,
}

/// OpenCV's `interpolationLinear::getCoeffs` for one axis.
struct ExactAxis {
    taps: Vec<ExactTap>,
}

impl ExactAxis {
    fn new(src: u32, dst: u32) -> Self {
        // `inv_scale = dst / src` as cv::resize computes it, and `scale = 1 / inv_scale`.
        let scale = 1.0 / (f64::from(dst) / f64::from(src));
        let last = src as usize - 1;
        let taps = (0..dst)
            .map(|d| {
                let f = scale * (f64::from(d) + 0.5) - 0.5;
                let i = f.floor();
                if i < 0.0 || src <= 1 {
                    // Left of the first sample centre (or a one-sample axis): the first sample.
                    ExactTap {
                        offset: 0,
                        interpolate: false,
                        c0: 256,
                        c1: 0,
                    }
                } else if i < f64::from(src - 1) {
                    let c1 = ((f - i) * 256.0).round_ties_even() as u32;
                    let c1 = c1.min(256);
                    ExactTap {
                        offset: (i as usize).min(last.saturating_sub(1)),
                        interpolate: true,
                        c0: 256 - c1,
                        c1,
                    }
                } else {
                    ExactTap {
                        offset: last,
                        interpolate: false,
                        c0: 256,
                        c1: 0,
                    }
                }
            })
            .collect();
        Self { taps }
    }

    /// One source row into 8.8 fixed point (`hlineResize`).
    fn horizontal(&self, row: &[u8], out: &mut [u32]) {
        for (value, tap) in out.iter_mut().zip(self.taps.iter()) {
            let a = u32::from(row.get(tap.offset).copied().unwrap_or(0));
            *value = if tap.interpolate {
                let b = u32::from(row.get(tap.offset + 1).copied().unwrap_or(0));
                a * tap.c0 + b * tap.c1
            } else {
                a << 8
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::features::gray_from_fn;

    #[test]
    fn resize_linear_exact_copies_same_size_and_handles_degenerate_sizes() {
        let img = gray_from_fn(5, 3, |x, y| (x * 40 + y) as u8);
        assert_eq!(resize_linear_exact(&img, 5, 3), img);
        assert_eq!(resize_linear_exact(&img, 0, 3).dimensions(), (0, 3));
        assert_eq!(resize_linear_exact(&GrayImage::new(0, 0), 4, 4), GrayImage::new(4, 4));
        let one = gray_from_fn(1, 1, |_, _| 99);
        assert!(resize_linear_exact(&one, 32, 32).iter().all(|&v| v == 99));
        let up = resize_linear_exact(&gray_from_fn(2, 1, |x, _| (x * 100) as u8), 4, 1);
        // (d + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, 1.25: clamp, 0.25, 0.75, clamp.
        assert_eq!(up.as_raw(), &vec![0, 25, 75, 100]);
    }

    #[test]
    fn resize_linear_exact_halving_is_the_rounded_2x2_mean() {
        let img = gray_from_fn(64, 64, |x, y| ((x * 7 + y * 13) % 256) as u8);
        let half = resize_linear_exact(&img, 32, 32);
        for y in 0..32 {
            for x in 0..32 {
                let s: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|&(dx, dy)| u32::from(img.get_pixel(2 * x + dx, 2 * y + dy)[0]))
                    .sum();
                assert_eq!(u32::from(half.get_pixel(x, y)[0]), (s + 2) >> 2);
            }
        }
    }
}
