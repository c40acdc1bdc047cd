//! The 64-bit perceptual hash of OpenCV contrib's `img_hash::PHash`, its byte layout and
//! the Hamming distance between two hashes.

use image::GrayImage;

use super::resize_linear::resize_linear_exact;

/// The side of the square the pHash resizes to, and of the DCT block it keeps.
const PHASH_SIZE: u32 = 32;
const PHASH_BLOCK: usize = 8;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::features::gray_from_fn;

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
}
