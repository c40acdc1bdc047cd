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
//!
//! One module per feature (`gray`, `phash` with the `resize_linear` it starts from, `blur`
//! with its `resize_area`, `exposure`), their functions re-exported here.

mod blur;
mod exposure;
mod gray;
mod phash;
mod resize_area;
mod resize_linear;

pub use blur::laplacian_variance;
pub use exposure::{Exposure, exposure};
pub use gray::to_gray;
pub use phash::{hamming, phash, phash_bytes};
pub use resize_area::resize_area;
pub use resize_linear::resize_linear_exact;

/// A gray test image whose pixel (x, y) is `f(x, y)`.
#[cfg(test)]
fn gray_from_fn(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> image::GrayImage {
    image::GrayImage::from_fn(w, h, |x, y| image::Luma([f(x, y)]))
}
