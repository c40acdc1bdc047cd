//! Luma exposure statistics: mean, spread, clipped shares and percentiles, from one
//! histogram pass.

use image::GrayImage;

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
    use crate::image::features::gray_from_fn;

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
