//! The cheap pixel features of a photo, computed in pure Rust and bit-compatible with the
//! OpenCV code the analysis anchor uses: gray conversion, the 64-bit perceptual hash
//! (`cv::img_hash::PHash`), the Laplacian-variance blur metric and luma exposure statistics.
//!
//! Why not call OpenCV: it is a large native dependency for four small computations that
//! run on every upload. Why bit-compatible: hashes and blur scores are stored and compared
//! with values the anchor computed, so "close" is not enough where exactness is possible.
//! Each function follows the OpenCV source step by step (fixed-point formats, rounding
//! rules, border handling), and `tests/integration/pixel_features.rs` checks the results
//! against real OpenCV output (`tests/fixtures/pixel/make_pixel_reference.py`).
//!
//! - [`to_gray`] is `cv::cvtColor(COLOR_RGB2GRAY)` for 8 bits. Current OpenCV (4.x, 5.x)
//!   uses 15-bit coefficients, `(R*9798 + G*19235 + B*3735 + (1<<14)) >> 15`
//!   (`RGB2Gray<uchar>` in `color_rgb.simd.hpp`), not the older 14-bit
//!   `4899/9617/1868`; the two differ by one level for about 0.26% of colours.
//! - [`resize_linear_exact`] is `cv::resize(INTER_LINEAR_EXACT)`, OpenCV's bit-exact
//!   bilinear (`resize_bitExact` in `resize.cpp`): 8-bit fixed-point coefficients, 16-bit
//!   fixed-point sums, round half up.
//! - [`phash`] is `PHash::compute`: that resize to 32x32, a float DCT, the top-left 8x8 with
//!   [0,0] zeroed, each value compared to their mean. OpenCV's DCT is float32 and its
//!   last bits depend on the build (with IPP and without it differ by ~3e-5); here it is
//!   computed in f64 by an even/odd split that keeps OpenCV's exact zeros (constant rows,
//!   mirror-symmetric images) exactly zero. A bit can therefore differ from a given OpenCV
//!   build only where a coefficient lies within float rounding (~1e-4) of the mean.
//! - [`laplacian_variance`] is the anchor's `cv2.Laplacian(cv2.resize(gray, long side 300,
//!   INTER_AREA), CV_64F).var()`, with OpenCV's three INTER_AREA code paths (integer
//!   factor, fractional down-scale in float32, and the fixed-point up-scale).
//! - [`exposure`] needs no OpenCV: one histogram pass.
//!
//! All functions take any size, including empty and 1x1 images, without panicking, and
//! run in time linear in the pixel count with a few row-sized buffers.

use image::{GrayImage, RgbImage};

/// OpenCV's 15-bit RGB to gray weights (`RY15`, `GY15`, `BY15`; they sum to 1 << 15).
const GRAY_R: u32 = 9798;
const GRAY_G: u32 = 19235;
const GRAY_B: u32 = 3735;
const GRAY_SHIFT: u32 = 15;

/// The side of the square the pHash resizes to, and of the DCT block it keeps.
const PHASH_SIZE: u32 = 32;
const PHASH_BLOCK: usize = 8;

/// The long side of the image the blur metric is measured on.
const BLUR_LONG_SIDE: f64 = 300.0;

/// `INTER_RESIZE_COEF_BITS`: the fixed-point precision of OpenCV's 8-bit (non-exact) resize.
const RESIZE_COEF_SCALE: f32 = 2048.0;

/// `cv::cvtColor(rgb, COLOR_RGB2GRAY)` for 8-bit pixels, bit-exact.
pub fn to_gray(rgb: &RgbImage) -> GrayImage {
    let (width, height) = rgb.dimensions();
    let mut gray = GrayImage::new(width, height);
    for (out, px) in gray.iter_mut().zip(rgb.as_raw().chunks_exact(3)) {
        let y = (u32::from(px[0]) * GRAY_R
            + u32::from(px[1]) * GRAY_G
            + u32::from(px[2]) * GRAY_B
            + (1 << (GRAY_SHIFT - 1)))
            >> GRAY_SHIFT;
        *out = y.min(255) as u8;
    }
    gray
}

/// The 64-bit perceptual hash of OpenCV contrib's `img_hash::PHash`.
///
/// OpenCV returns 8 bytes; byte `j` holds DCT row `j` (elements `8j..8j+7` of the row-major
/// 8x8 block), least significant bit first. The u64 here is `u64::from_le_bytes` of those
/// bytes, so bit `i` (LSB = 0) is element `i` = (row `i / 8`, column `i % 8`), and
/// [`phash_bytes`] gives OpenCV's bytes back. An empty image hashes to 0.
pub fn phash(gray: &GrayImage) -> u64 {
    if gray.width() == 0 || gray.height() == 0 {
        return 0;
    }
    let small = resize_linear_exact(gray, PHASH_SIZE, PHASH_SIZE);
    let block = dct_top_left(small.as_raw());

    let mut values = [0f32; PHASH_BLOCK * PHASH_BLOCK];
    for (value, coefficient) in values.iter_mut().zip(block.iter()) {
        // OpenCV's DCT output is float32.
        *value = *coefficient as f32;
    }
    values[0] = 0.0;
    // `cv::mean` sums in double; the mean is then cast to float.
    let mean = (values.iter().map(|&v| f64::from(v)).sum::<f64>() / values.len() as f64) as f32;
    values
        .iter()
        .enumerate()
        .filter(|&(_, &v)| v > mean)
        .fold(0u64, |hash, (i, _)| hash | (1u64 << i))
}

/// The 8 bytes OpenCV's `PHash::compute` returns for a hash from [`phash`].
pub fn phash_bytes(h: u64) -> [u8; 8] {
    h.to_le_bytes()
}

/// The number of differing bits: OpenCV's `PHash::compare` (`NORM_HAMMING`).
pub fn hamming(a: u64, b: u64) -> u32 {
    (a ^ b).count_ones()
}

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

/// The top-left 8x8 of the orthonormal 2-D DCT-II (what `cv::dct` computes) of a 32x32
/// block, row-major, in f64.
fn dct_top_left(pixels: &[u8]) -> [f64; PHASH_BLOCK * PHASH_BLOCK] {
    let tables = DctTables::new();
    let mut input = [0f64; DCT_N];

    // Rows first (as OpenCV does), keeping only the 8 lowest horizontal frequencies.
    let mut rows = [[0f64; PHASH_BLOCK]; DCT_N];
    for (r, row) in rows.iter_mut().enumerate() {
        for (c, value) in input.iter_mut().enumerate() {
            *value = f64::from(pixels.get(r * DCT_N + c).copied().unwrap_or(0));
        }
        row.copy_from_slice(&tables.dct(&input)[..PHASH_BLOCK]);
    }
    // Then the 8 kept columns, keeping the 8 lowest vertical frequencies.
    let mut block = [0f64; PHASH_BLOCK * PHASH_BLOCK];
    for c in 0..PHASH_BLOCK {
        for (value, row) in input.iter_mut().zip(rows.iter()) {
            *value = row[c];
        }
        let column = tables.dct(&input);
        for (r, &value) in column.iter().take(PHASH_BLOCK).enumerate() {
            block[r * PHASH_BLOCK + c] = value;
        }
    }
    block
}

/// Cosine tables for an exact-zero-preserving orthonormal DCT-II of length [`DCT_N`].
///
/// The even outputs of a length-`len` DCT are the DCT of `x[i] + x[len-1-i]` (length
/// `len/2`), and the odd outputs are sums over `x[i] - x[len-1-i]`. A mirror-symmetric input
/// therefore gives odd coefficients that are exactly 0.0, and a constant input gives exactly
/// 0.0 for every coefficient but the first, as OpenCV's DCT does; a plain cosine sum would
/// leave ~1e-13 there, which decides a pHash bit when it is compared with a mean of 0.
struct DctTables {
    /// For each level (length 32, 16, ..., 2): the `len/2 x len/2` odd-output cosines
    /// `cos(pi * (2i + 1) * (2k + 1) / (2 len))`, row `k`.
    odd: Vec<Vec<f64>>,
}

/// The DCT length the pHash uses.
const DCT_N: usize = PHASH_SIZE as usize;

impl DctTables {
    fn new() -> Self {
        let mut odd = Vec::new();
        let mut len = DCT_N;
        while len >= 2 {
            let half = len / 2;
            let mut table = Vec::with_capacity(half * half);
            for k in 0..half {
                for i in 0..half {
                    let angle = std::f64::consts::PI * ((2 * i + 1) * (2 * k + 1)) as f64 / (2 * len) as f64;
                    table.push(angle.cos());
                }
            }
            odd.push(table);
            len = half;
        }
        Self { odd }
    }

    /// The orthonormal DCT-II of `input`.
    fn dct(&self, input: &[f64; DCT_N]) -> [f64; DCT_N] {
        // `work[..len]` is the current level's input; the odd coefficients of each level go
        // straight to their final index `(2k + 1) * stride`.
        let mut work = *input;
        let mut out = [0f64; DCT_N];
        let mut diffs = [0f64; DCT_N / 2];
        let mut len = DCT_N;
        let mut stride = 1;
        for table in &self.odd {
            let half = len / 2;
            for i in 0..half {
                let (a, b) = (work[i], work[len - 1 - i]);
                diffs[i] = a - b;
                work[i] = a + b;
            }
            for (k, cosines) in table.chunks_exact(half).enumerate() {
                let sum: f64 = cosines.iter().zip(diffs.iter()).map(|(c, d)| c * d).sum();
                out[(2 * k + 1) * stride] = sum;
            }
            len = half;
            stride *= 2;
        }
        out[0] = work[0] * (1.0 / DCT_N as f64).sqrt();
        let ac_scale = (2.0 / DCT_N as f64).sqrt();
        for value in out.iter_mut().skip(1) {
            *value *= ac_scale;
        }
        out
    }
}

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

/// `cv::resize(gray, (w, h), INTER_AREA)` for 8-bit gray, bit-exact.
///
/// OpenCV has three code paths and this follows each: an integer factor on both axes
/// (`resizeAreaFast_`: `(a+b+c+d+2)>>2` for 2x2, else `sum * (1.f/area)` rounded half to
/// even), any other down-scale (`resizeArea_`: float32 pixel-coverage weights from
/// `computeResizeAreaTab`), and an up-scale on either axis (the 11-bit fixed-point linear
/// resize with INTER_AREA's coefficients). A zero target size gives an empty image, an empty
/// source a black one.
pub fn resize_area(gray: &GrayImage, w: u32, h: u32) -> GrayImage {
    let (src_w, src_h) = gray.dimensions();
    if w == 0 || h == 0 || src_w == 0 || src_h == 0 {
        return GrayImage::new(w, h);
    }
    if (w, h) == (src_w, src_h) {
        return gray.clone();
    }
    let inv_scale_x = f64::from(w) / f64::from(src_w);
    let inv_scale_y = f64::from(h) / f64::from(src_h);
    let scale_x = 1.0 / inv_scale_x;
    let scale_y = 1.0 / inv_scale_y;
    if scale_x >= 1.0 && scale_y >= 1.0 {
        // `saturate_cast<int>(double)` rounds half to even.
        let iscale_x = scale_x.round_ties_even();
        let iscale_y = scale_y.round_ties_even();
        let is_area_fast = (scale_x - iscale_x).abs() < f64::EPSILON && (scale_y - iscale_y).abs() < f64::EPSILON;
        if is_area_fast {
            return resize_area_fast(gray, w, h, iscale_x as usize, iscale_y as usize);
        }
        return resize_area_fractional(gray, w, h, scale_x, scale_y);
    }
    resize_area_upscale(gray, w, h, inv_scale_x, inv_scale_y, scale_x, scale_y)
}

/// `saturate_cast<uchar>(float)`: round half to even, then clamp.
fn saturate_u8(v: f32) -> u8 {
    let r = v.round_ties_even();
    if r.is_nan() || r <= 0.0 {
        0
    } else if r >= 255.0 {
        255
    } else {
        r as u8
    }
}

/// OpenCV's `resizeAreaFast_` for an integer factor on both axes.
fn resize_area_fast(gray: &GrayImage, w: u32, h: u32, sx: usize, sy: usize) -> GrayImage {
    let (src_w, src_h) = (gray.width() as usize, gray.height() as usize);
    let src = gray.as_raw();
    let at = |x: usize, y: usize| u64::from(src.get(y * src_w + x).copied().unwrap_or(0));
    let area = sx * sy;
    let scale = 1.0f32 / area as f32;
    let full_w = src_w / sx.max(1);
    let two_by_two = sx == 2 && sy == 2;

    let mut out = GrayImage::new(w, h);
    for (dy, row) in out.chunks_exact_mut(w as usize).enumerate() {
        let y0 = dy * sy;
        if y0 >= src_h {
            row.fill(0);
            continue;
        }
        let full = if y0 + sy <= src_h { full_w.min(row.len()) } else { 0 };
        for (dx, value) in row.iter_mut().enumerate() {
            let x0 = dx * sx;
            if dx < full {
                let mut sum = 0u64;
                for y in y0..y0 + sy {
                    for x in x0..x0 + sx {
                        sum += at(x, y);
                    }
                }
                *value = if two_by_two {
                    ((sum + 2) >> 2).min(255) as u8
                } else {
                    saturate_u8(sum as f32 * scale)
                };
            } else {
                // A partial cell at the right or bottom edge: the mean of what exists.
                let (mut sum, mut count) = (0u64, 0u64);
                for y in (y0..y0 + sy).take_while(|&y| y < src_h) {
                    for x in (x0..x0 + sx).take_while(|&x| x < src_w) {
                        sum += at(x, y);
                        count += 1;
                    }
                }
                *value = if count == 0 {
                    0
                } else {
                    saturate_u8(sum as f32 / count as f32)
                };
            }
        }
    }
    out
}

/// One entry of OpenCV's `DecimateAlpha` table: destination index, source index, weight.
#[derive(Debug, Clone, Copy)]
struct AreaWeight {
    dst: usize,
    src: usize,
    alpha: f32,
}

/// OpenCV's `computeResizeAreaTab`: which source pixels cover each destination pixel, and
/// how much, for a fractional down-scale along one axis.
fn area_weights(src_size: usize, dst_size: usize, scale: f64) -> Vec<AreaWeight> {
    let mut tab = Vec::with_capacity(src_size * 2);
    let last = src_size as i64 - 1;
    for d in 0..dst_size {
        let fsx1 = d as f64 * scale;
        let fsx2 = fsx1 + scale;
        let cell = scale.min(src_size as f64 - fsx1);
        let mut sx2 = fsx2.floor() as i64;
        sx2 = sx2.min(last);
        let sx1 = (fsx1.ceil() as i64).min(sx2);
        let index = |s: i64| s.clamp(0, last) as usize;
        if sx1 as f64 - fsx1 > 1e-3 {
            tab.push(AreaWeight {
                dst: d,
                src: index(sx1 - 1),
                alpha: ((sx1 as f64 - fsx1) / cell) as f32,
            });
        }
        for s in sx1..sx2 {
            tab.push(AreaWeight {
                dst: d,
                src: index(s),
                alpha: (1.0 / cell) as f32,
            });
        }
        if fsx2 - sx2 as f64 > 1e-3 {
            let alpha = ((fsx2 - sx2 as f64).min(1.0).min(cell) / cell) as f32;
            tab.push(AreaWeight {
                dst: d,
                src: index(sx2),
                alpha,
            });
        }
    }
    tab
}

/// OpenCV's `resizeArea_<uchar, float>` for a fractional down-scale.
fn resize_area_fractional(gray: &GrayImage, w: u32, h: u32, scale_x: f64, scale_y: f64) -> GrayImage {
    let (src_w, src_h) = (gray.width() as usize, gray.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let src = gray.as_raw();
    let xtab = area_weights(src_w, w, scale_x);
    let ytab = area_weights(src_h, h, scale_y);

    let mut out = GrayImage::new(w as u32, h as u32);
    let mut buf = vec![0f32; w];
    let mut sum = vec![0f32; w];
    let mut current: Option<usize> = None;
    let flush = |out: &mut GrayImage, dy: usize, sum: &[f32]| {
        if let Some(row) = out.chunks_exact_mut(w).nth(dy) {
            for (value, &s) in row.iter_mut().zip(sum.iter()) {
                *value = saturate_u8(s);
            }
        }
    };
    for weight in &ytab {
        let row = &src[weight.src * src_w..(weight.src + 1) * src_w];
        buf.fill(0.0);
        for x in &xtab {
            if let (Some(b), Some(&s)) = (buf.get_mut(x.dst), row.get(x.src)) {
                *b += f32::from(s) * x.alpha;
            }
        }
        let beta = weight.alpha;
        if current == Some(weight.dst) {
            for (s, &b) in sum.iter_mut().zip(buf.iter()) {
                *s += beta * b;
            }
        } else {
            if let Some(dy) = current {
                flush(&mut out, dy, &sum);
            }
            for (s, &b) in sum.iter_mut().zip(buf.iter()) {
                *s = beta * b;
            }
            current = Some(weight.dst);
        }
    }
    if let Some(dy) = current {
        flush(&mut out, dy, &sum);
    }
    out
}

/// INTER_AREA where at least one axis is enlarged: OpenCV runs its 8-bit linear resize
/// (11-bit fixed-point weights) with INTER_AREA's coefficients.
fn resize_area_upscale(
    gray: &GrayImage,
    w: u32,
    h: u32,
    inv_scale_x: f64,
    inv_scale_y: f64,
    scale_x: f64,
    scale_y: f64,
) -> GrayImage {
    let (src_w, src_h) = (gray.width() as usize, gray.height() as usize);
    let (w, h) = (w as usize, h as usize);
    let src = gray.as_raw();

    // Horizontal taps: source index and the two weights.
    let mut xofs = Vec::with_capacity(w);
    let mut xmax = w;
    for dx in 0..w {
        let (mut sx, mut fx) = area_coordinate(dx, scale_x, inv_scale_x);
        if sx < 0 {
            fx = 0.0;
            sx = 0;
        }
        if sx + 1 >= src_w as i64 {
            xmax = xmax.min(dx);
            if sx >= src_w as i64 - 1 {
                fx = 0.0;
                sx = src_w as i64 - 1;
            }
        }
        let (a0, a1) = linear_weights(fx);
        xofs.push((sx.clamp(0, src_w as i64 - 1) as usize, a0, a1));
    }

    let hresize = |sy: usize, line: &mut [i32]| {
        let row = &src[sy * src_w..(sy + 1) * src_w];
        for (dx, (value, &(sx, a0, a1))) in line.iter_mut().zip(xofs.iter()).enumerate() {
            let s0 = i32::from(row.get(sx).copied().unwrap_or(0));
            *value = if dx < xmax {
                let s1 = i32::from(row.get(sx + 1).copied().unwrap_or(0));
                s0 * a0 + s1 * a1
            } else {
                s0 * RESIZE_COEF_SCALE as i32
            };
        }
    };

    let mut out = GrayImage::new(w as u32, h as u32);
    let mut line0 = vec![0i32; w];
    let mut line1 = vec![0i32; w];
    let clip = |y: i64| y.clamp(0, src_h as i64 - 1) as usize;
    for (dy, row) in out.chunks_exact_mut(w).enumerate() {
        let (sy, fy) = area_coordinate(dy, scale_y, inv_scale_y);
        let (b0, b1) = linear_weights(fy);
        hresize(clip(sy), &mut line0);
        hresize(clip(sy + 1), &mut line1);
        for ((value, &s0), &s1) in row.iter_mut().zip(line0.iter()).zip(line1.iter()) {
            // `VResizeLinear<uchar, int, short, ...>`: the SIMD rounding, also used by the
            // scalar tail.
            let v = (((b0 * (s0 >> 4)) >> 16) + ((b1 * (s1 >> 4)) >> 16) + 2) >> 2;
            *value = v.clamp(0, 255) as u8;
        }
    }
    out
}

/// INTER_AREA's source coordinate and fraction for destination index `d` of an enlarged
/// axis (`sx = floor(d * scale)`, `fx = (d+1) - (sx+1) * inv_scale`, wrapped into [0, 1)).
fn area_coordinate(d: usize, scale: f64, inv_scale: f64) -> (i64, f32) {
    let s = (d as f64 * scale).floor() as i64;
    let mut f = ((d as f64 + 1.0) - (s as f64 + 1.0) * inv_scale) as f32;
    f = if f <= 0.0 { 0.0 } else { f - f.floor() };
    (s, f)
}

/// The two 11-bit fixed-point weights `saturate_cast<short>((1 - f) * 2048)`, `(f * 2048)`.
fn linear_weights(f: f32) -> (i32, i32) {
    let w0 = ((1.0f32 - f) * RESIZE_COEF_SCALE).round_ties_even() as i32;
    let w1 = (f * RESIZE_COEF_SCALE).round_ties_even() as i32;
    (w0, w1)
}

/// Luma exposure statistics of a gray image (values 0..255).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exposure {
    /// Mean luma.
    pub mean: f32,
    /// Population standard deviation of luma.
    pub std: f32,
    /// Fraction (0..1) of pixels at or below 5.
    pub shadows_clipped: f32,
    /// Fraction (0..1) of pixels at or above 250.
    pub highlights_clipped: f32,
    /// 5th percentile: the smallest value with at least 5% of pixels at or below it.
    pub p05: u8,
    /// 95th percentile: the smallest value with at least 95% of pixels at or below it.
    pub p95: u8,
}

/// Exposure statistics from one histogram pass. Percentiles are nearest-rank (the smallest
/// value whose cumulative count reaches `ceil(q * n)`). An empty image gives all zeros.
pub fn exposure(gray: &GrayImage) -> Exposure {
    let mut histogram = [0u64; 256];
    for &v in gray.as_raw() {
        histogram[usize::from(v)] += 1;
    }
    let n: u64 = histogram.iter().sum();
    if n == 0 {
        return Exposure {
            mean: 0.0,
            std: 0.0,
            shadows_clipped: 0.0,
            highlights_clipped: 0.0,
            p05: 0,
            p95: 0,
        };
    }
    let total = n as f64;
    let sum: u64 = histogram.iter().enumerate().map(|(v, &c)| v as u64 * c).sum();
    let mean = sum as f64 / total;
    let variance = histogram
        .iter()
        .enumerate()
        .map(|(v, &c)| {
            let d = v as f64 - mean;
            d * d * c as f64
        })
        .sum::<f64>()
        / total;
    let shadows: u64 = histogram[..=5].iter().sum();
    let highlights: u64 = histogram[250..].iter().sum();
    Exposure {
        mean: mean as f32,
        std: variance.max(0.0).sqrt() as f32,
        shadows_clipped: (shadows as f64 / total) as f32,
        highlights_clipped: (highlights as f64 / total) as f32,
        p05: percentile(&histogram, n, 5),
        p95: percentile(&histogram, n, 95),
    }
}

/// The nearest-rank `percent`th percentile of a histogram holding `n > 0` values.
fn percentile(histogram: &[u64; 256], n: u64, percent: u64) -> u8 {
    let rank = (n * percent).div_ceil(100).max(1);
    let mut cumulative = 0u64;
    for (v, &c) in histogram.iter().enumerate() {
        cumulative += c;
        if cumulative >= rank {
            return v as u8;
        }
    }
    255
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Luma, Rgb};

    fn gray_from_fn(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> GrayImage {
        GrayImage::from_fn(w, h, |x, y| Luma([f(x, y)]))
    }

    #[test]
    fn hamming_counts_differing_bits() {
        assert_eq!(hamming(0, 0), 0);
        assert_eq!(hamming(0, u64::MAX), 64);
        assert_eq!(hamming(0b1011, 0b0110), 3);
        assert_eq!(hamming(1 << 63, 1), 2);
    }

    #[test]
    fn phash_of_a_constant_image_is_zero() {
        // Every AC coefficient is exactly 0, the mean is 0, and 0 > 0 is false.
        for v in [0u8, 1, 128, 255] {
            assert_eq!(phash(&gray_from_fn(50, 40, |_, _| v)), 0, "value {v}");
        }
    }

    #[test]
    fn phash_bytes_are_opencv_layout() {
        let h = 0x0123_4567_89ab_cdef_u64;
        assert_eq!(phash_bytes(h), [0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01]);
        assert_eq!(u64::from_le_bytes(phash_bytes(h)), h);
    }

    #[test]
    fn phash_bit_order_is_row_major_lsb_first() {
        // A left-to-right ramp: identical rows, so DCT rows 1..7 are exactly 0; its odd
        // horizontal coefficients are negative, so the mean is negative and every exact zero
        // is above it (bits 8..63 set).
        let img = gray_from_fn(64, 64, |x, _| (x * 4) as u8);
        // Row 0 alternates (odd coefficients of a ramp are below the mean, the even ones
        // and the zeroed DC are exactly 0, above it): byte 0 is 0x55. OpenCV gives the same.
        assert_eq!(phash(&img), 0xffff_ffff_ffff_ff55);
    }

    #[test]
    fn phash_of_tiny_and_empty_images_does_not_panic() {
        assert_eq!(phash(&GrayImage::new(0, 0)), 0);
        assert_eq!(phash(&GrayImage::new(0, 7)), 0);
        assert_eq!(phash(&gray_from_fn(1, 1, |_, _| 77)), 0);
        let _ = phash(&gray_from_fn(1, 9, |_, y| (y * 20) as u8));
        let _ = phash(&gray_from_fn(9, 1, |x, _| (x * 20) as u8));
        let _ = phash(&gray_from_fn(2, 2, |x, y| (x * 100 + y * 50) as u8));
    }

    #[test]
    fn similar_images_have_close_hashes() {
        let a = gray_from_fn(120, 90, |x, y| {
            ((x * 2 + y) % 256) as u8 ^ ((x / 16 + y / 16) % 2 * 60) as u8
        });
        let b = gray_from_fn(120, 90, |x, y| {
            (((x * 2 + y) % 256) as u8 ^ ((x / 16 + y / 16) % 2 * 60) as u8).saturating_add(3)
        });
        let c = gray_from_fn(120, 90, |x, y| ((y * 3) % 256) as u8 ^ ((x / 8) % 2 * 120) as u8);
        assert!(hamming(phash(&a), phash(&b)) <= 4);
        assert!(hamming(phash(&a), phash(&c)) > 10);
    }

    #[test]
    fn to_gray_uses_opencv_15_bit_weights() {
        let mut rgb = RgbImage::new(4, 1);
        rgb.put_pixel(0, 0, Rgb([255, 255, 255]));
        rgb.put_pixel(1, 0, Rgb([0, 0, 250])); // 14-bit weights would give 29
        rgb.put_pixel(2, 0, Rgb([201, 1, 0]));
        rgb.put_pixel(3, 0, Rgb([10, 20, 30]));
        let gray = to_gray(&rgb);
        assert_eq!(gray.as_raw(), &vec![255, 28, 61, 18]);
        assert_eq!(to_gray(&RgbImage::new(0, 0)).dimensions(), (0, 0));
    }

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

    #[test]
    fn dct_keeps_exact_zeros_for_symmetric_input() {
        let tables = DctTables::new();
        let mut input = [0f64; 32];
        for i in 0..16 {
            input[i] = (i * i % 17) as f64;
            input[31 - i] = input[i];
        }
        let output = tables.dct(&input);
        for k in (1..32).step_by(2) {
            assert_eq!(output[k], 0.0, "coefficient {k}");
        }
        // And it is the orthonormal DCT-II.
        for (k, &got) in output.iter().enumerate() {
            let s = if k == 0 {
                (1.0f64 / 32.0).sqrt()
            } else {
                (2.0f64 / 32.0).sqrt()
            };
            let want: f64 = (0..32)
                .map(|i| input[i] * (std::f64::consts::PI * ((2 * i + 1) * k) as f64 / 64.0).cos())
                .sum::<f64>()
                * s;
            assert!((got - want).abs() < 1e-9, "k {k}: {got} vs {want}");
        }
    }

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

    #[test]
    fn resize_area_paths_do_not_panic_on_odd_sizes() {
        let img = gray_from_fn(7, 5, |x, y| (x * 30 + y * 7) as u8);
        for (w, h) in [(1, 1), (3, 2), (7, 1), (1, 5), (14, 10), (300, 214), (21, 15), (6, 5)] {
            assert_eq!(resize_area(&img, w, h).dimensions(), (w, h));
        }
        // An integer factor of 2 is the rounded 2x2 mean.
        let img = gray_from_fn(4, 2, |x, _| [0, 1, 10, 11][x as usize]);
        assert_eq!(resize_area(&img, 2, 1).as_raw(), &vec![1, 11]);
    }

    #[test]
    fn exposure_of_known_images() {
        let black = exposure(&gray_from_fn(10, 10, |_, _| 0));
        assert_eq!(
            black,
            Exposure {
                mean: 0.0,
                std: 0.0,
                shadows_clipped: 1.0,
                highlights_clipped: 0.0,
                p05: 0,
                p95: 0
            }
        );

        // Half 0, half 255.
        let split = exposure(&gray_from_fn(10, 10, |x, _| if x < 5 { 0 } else { 255 }));
        assert_eq!(split.mean, 127.5);
        assert_eq!(split.std, 127.5);
        assert_eq!(split.shadows_clipped, 0.5);
        assert_eq!(split.highlights_clipped, 0.5);
        assert_eq!((split.p05, split.p95), (0, 255));

        // 0..=99, each once: p05 is the 5th smallest (4), p95 the 95th (94).
        let ramp = exposure(&gray_from_fn(100, 1, |x, _| x as u8));
        assert_eq!(ramp.mean, 49.5);
        assert!((ramp.std - 28.866_07).abs() < 1e-4);
        assert_eq!(ramp.shadows_clipped, 0.06);
        assert_eq!(ramp.highlights_clipped, 0.0);
        assert_eq!((ramp.p05, ramp.p95), (4, 94));

        let one = exposure(&gray_from_fn(1, 1, |_, _| 251));
        assert_eq!(
            (one.mean, one.std, one.highlights_clipped, one.p05, one.p95),
            (251.0, 0.0, 1.0, 251, 251)
        );

        let empty = exposure(&GrayImage::new(0, 0));
        assert_eq!(empty.mean, 0.0);
        assert_eq!((empty.p05, empty.p95), (0, 0));
    }
}
