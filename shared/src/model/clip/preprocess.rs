//! Standard CLIP preprocessing, bit-exact with Hugging Face's `CLIPImageProcessor`:
//! shortest side to 224 with Pillow's BICUBIC, centre crop 224×224, x/255, (x − mean)/std,
//! RGB planes (NCHW). The anchor squashed photos to 224×224 instead, which distorts them and
//! moves the embeddings away from what CLIP was trained on.
//!
//! Why a hand-written resampler: embeddings must match the Python reference within 1e-4, and
//! a one-level difference in a few thousand pixels already breaks that. No crate reproduces
//! Pillow's 8-bit two-pass convolution (its coefficient normalisation, 22-bit fixed point,
//! rounding and clipping between the passes). This is a port of Pillow's `Resample.c`, and it
//! computes only the rows and columns inside the centre crop, which is identical to resizing
//! the whole image and cropping afterwards, at a fraction of the cost.

use image::RgbImage;

pub const CLIP_SIZE: u32 = 224;
// The constants exactly as OpenAI and Hugging Face publish them (f32 rounds them the same way).
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

/// Floats per preprocessed image: 3 × 224 × 224.
pub const PIXELS_PER_IMAGE: usize = 3 * (CLIP_SIZE as usize) * (CLIP_SIZE as usize);

/// Pillow's `PRECISION_BITS` for 8-bit images.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Where the resize and the crop fall, as `CLIPImageProcessor` computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub resize_width: u32,
    pub resize_height: u32,
    pub crop_left: u32,
    pub crop_top: u32,
}

/// Shortest side → 224, the long side `int(224 * long / short)`; crop `(size − 224) // 2`.
pub fn geometry(width: u32, height: u32) -> Geometry {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let short = short.max(1);
    let new_long = ((f64::from(CLIP_SIZE) * f64::from(long) / f64::from(short)) as u32).max(CLIP_SIZE);
    let (resize_width, resize_height) = if width <= height {
        (CLIP_SIZE, new_long)
    } else {
        (new_long, CLIP_SIZE)
    };
    Geometry {
        resize_width,
        resize_height,
        crop_left: (resize_width - CLIP_SIZE) / 2,
        crop_top: (resize_height - CLIP_SIZE) / 2,
    }
}

/// Pillow's bicubic kernel, a = −0.5.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// One output coordinate's taps: the first input index and fixed-point weights.
struct Taps {
    first: usize,
    weights: Vec<i32>,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for output indices `outputs`
/// of a resize from `in_size` to `out_size`.
fn taps(in_size: u32, out_size: u32, outputs: std::ops::Range<u32>) -> Vec<Taps> {
    let scale = f64::from(in_size) / f64::from(out_size);
    let filter_scale = scale.max(1.0);
    let support = 2.0 * filter_scale;
    let inv = 1.0 / filter_scale;
    outputs
        .map(|xx| {
            let center = (f64::from(xx) + 0.5) * scale;
            // `(int)` in C truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(i64::from(in_size));
            let count = (xmax - xmin).max(0);
            let raw: Vec<f64> = (0..count)
                .map(|x| bicubic(((x + xmin) as f64 - center + 0.5) * inv))
                .collect();
            let total: f64 = raw.iter().sum();
            let weights = raw
                .iter()
                .map(|&w| {
                    let k = if total != 0.0 { w / total } else { w };
                    let fixed = k * f64::from(1u32 << PRECISION_BITS);
                    (if fixed < 0.0 { fixed - 0.5 } else { fixed + 0.5 }) as i32
                })
                .collect();
            Taps {
                first: xmin as usize,
                weights,
            }
        })
        .collect()
}

#[inline]
fn clip8(acc: i64) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes as Pillow's `Image.resize((w, h), BICUBIC)` would and returns only the
/// `CLIP_SIZE`² crop at (`crop_left`, `crop_top`), as interleaved RGB.
pub fn resize_and_crop(image: &RgbImage, g: Geometry) -> Vec<u8> {
    let (in_w, in_h) = image.dimensions();
    let size = CLIP_SIZE as usize;
    let src = image.as_raw();
    let need_horizontal = g.resize_width != in_w;
    let need_vertical = g.resize_height != in_h;

    let cols = g.crop_left..g.crop_left + CLIP_SIZE;
    let rows = g.crop_top..g.crop_top + CLIP_SIZE;
    let h_taps = need_horizontal.then(|| taps(in_w, g.resize_width, cols.clone()));
    let v_taps = need_vertical.then(|| taps(in_h, g.resize_height, rows.clone()));

    // The source rows the vertical pass reads.
    let (row_first, row_end) = match &v_taps {
        Some(t) => (
            t.iter().map(|t| t.first).min().unwrap_or(0),
            t.iter().map(|t| t.first + t.weights.len()).max().unwrap_or(0),
        ),
        None => (rows.start as usize, rows.end as usize),
    };

    // Horizontal pass: source rows [row_first, row_end) → 224 columns, rounded to u8 as Pillow does.
    let temp_rows = row_end - row_first;
    let mut temp = vec![0u8; temp_rows * size * 3];
    for (r, y) in (row_first..row_end).enumerate() {
        let src_row = &src[y * in_w as usize * 3..(y + 1) * in_w as usize * 3];
        let out_row = &mut temp[r * size * 3..(r + 1) * size * 3];
        match &h_taps {
            Some(h_taps) => {
                for (x, t) in h_taps.iter().enumerate() {
                    let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                    for (i, &w) in t.weights.iter().enumerate() {
                        let p = &src_row[(t.first + i) * 3..(t.first + i) * 3 + 3];
                        for c in 0..3 {
                            acc[c] += i64::from(p[c]) * i64::from(w);
                        }
                    }
                    for c in 0..3 {
                        out_row[x * 3 + c] = clip8(acc[c]);
                    }
                }
            }
            None => {
                let start = g.crop_left as usize * 3;
                out_row.copy_from_slice(&src_row[start..start + size * 3]);
            }
        }
    }

    // Vertical pass over the temporary rows.
    let mut out = vec![0u8; size * size * 3];
    match &v_taps {
        Some(v_taps) => {
            for (y, t) in v_taps.iter().enumerate() {
                let out_row = &mut out[y * size * 3..(y + 1) * size * 3];
                for (x, px) in out_row.chunks_exact_mut(3).enumerate() {
                    let mut acc = [1i64 << (PRECISION_BITS - 1); 3];
                    for (i, &w) in t.weights.iter().enumerate() {
                        let row = t.first + i - row_first;
                        let p = &temp[(row * size + x) * 3..(row * size + x) * 3 + 3];
                        for c in 0..3 {
                            acc[c] += i64::from(p[c]) * i64::from(w);
                        }
                    }
                    for c in 0..3 {
                        px[c] = clip8(acc[c]);
                    }
                }
            }
        }
        None => out.copy_from_slice(&temp[..size * size * 3]),
    }
    out
}

/// The model input for one photo: `[3, 224, 224]` f32, appended to `dst`.
pub fn preprocess_into(image: &RgbImage, dst: &mut Vec<f32>) {
    let g = geometry(image.width(), image.height());
    let rgb = resize_and_crop(image, g);
    let plane = (CLIP_SIZE * CLIP_SIZE) as usize;
    let start = dst.len();
    dst.resize(start + 3 * plane, 0.0);
    let out = &mut dst[start..];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            // The same two float32 steps as the Python processor: rescale, then normalise.
            let v = f32::from(px[c]) * (1.0 / 255.0);
            out[c * plane + i] = (v - CLIP_MEAN[c]) / CLIP_STD[c];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_matches_the_processor() {
        assert_eq!(
            geometry(320, 240),
            Geometry {
                resize_width: 298,
                resize_height: 224,
                crop_left: 37,
                crop_top: 0
            }
        );
        assert_eq!(geometry(181, 301).resize_height, 372);
        assert_eq!(geometry(50, 37).resize_width, 302);
        assert_eq!(geometry(1, 1).resize_width, 224);
    }

    #[test]
    fn a_flat_image_stays_flat_and_tiny_images_do_not_panic() {
        let img = RgbImage::from_pixel(500, 300, image::Rgb([10, 200, 90]));
        let out = resize_and_crop(&img, geometry(500, 300));
        assert!(out.chunks_exact(3).all(|p| p == [10, 200, 90]));
        for (w, h) in [(1, 1), (1, 500), (3, 2), (224, 224)] {
            let mut v = Vec::new();
            preprocess_into(&RgbImage::new(w, h), &mut v);
            assert_eq!(v.len(), PIXELS_PER_IMAGE);
        }
    }
}
