//! `cv::resize(INTER_AREA)` for 8-bit gray, bit-exact, with OpenCV's three code paths
//! (integer factor, fractional down-scale, up-scale): the resize of the blur metric.

use image::GrayImage;

/// `INTER_RESIZE_COEF_BITS`: the fixed-point precision of OpenCV's 8-bit (non-exact) resize.
const RESIZE_COEF_SCALE: f32 = 2048.0;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::features::gray_from_fn;

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
}
