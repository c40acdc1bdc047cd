//! RGB to gray, bit-exact with OpenCV's 8-bit `cvtColor(COLOR_RGB2GRAY)`.

use image::{GrayImage, RgbImage};

/// OpenCV's 15-bit RGB to gray weights (`RY15`, `GY15`, `BY15`; they sum to 1 << 15).
const GRAY_R: u32 = 9798;
const GRAY_G: u32 = 19235;
const GRAY_B: u32 = 3735;
const GRAY_SHIFT: u32 = 15;

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

#[cfg(test)]
mod tests {
    use image::Rgb;

    use super::*;

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
}
