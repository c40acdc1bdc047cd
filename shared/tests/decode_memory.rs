//! The decode memory estimate ([`ongi_shared::image::estimate`]) must be an upper bound of
//! the heap a decode really takes: the process-wide decode budget is only as good as it.
//! This test binary counts every allocation (its own global allocator) and checks, for
//! photos of every format and path, that the peak heap of `decode` plus the caller's grey
//! copy stays under the estimate.
//!
//! It is its own test binary, with one test, so nothing else allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ongi_shared::config::IngestLimits;
use ongi_shared::image::features::to_gray;
use ongi_shared::image::{DecodeOptions, decode, estimate};
use ongi_shared::pipeline::pixels::DECODE_FOR_FEATURES;

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; the counters are only arithmetic.
// (A global allocator cannot be written without `unsafe`; it lives in this test binary
// alone. The only other `unsafe` of the workspace is the libheif FFI in shared/heif.)
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // During a moving realloc both blocks exist: count the larger total.
            let now = IN_USE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(now, Ordering::Relaxed);
            IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(rel)).unwrap()
}

fn encoded(image: image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

#[test]
fn the_estimate_bounds_the_peak_heap_of_every_decode() {
    let full = DecodeOptions::default();
    let noise = |w: u32, h: u32| {
        image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) as u8;
            image::Rgb([v, v.wrapping_mul(3), v.wrapping_add(y as u8)])
        })
    };
    let cases: Vec<(&str, Vec<u8>, DecodeOptions)> = vec![
        (
            "RGB8 PNG 1000x750",
            fixture("pixel/photo_1000x750.png"),
            DECODE_FOR_FEATURES,
        ),
        (
            "RGBA16 PNG 900x700",
            encoded(
                image::DynamicImage::new(900, 700, image::ColorType::Rgba16),
                image::ImageFormat::Png,
            ),
            DECODE_FOR_FEATURES,
        ),
        (
            "L8 PNG 1200x900",
            encoded(
                image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(noise(1200, 900)).to_luma8()),
                image::ImageFormat::Png,
            ),
            full,
        ),
        (
            "lossless WebP 800x600",
            encoded(
                image::DynamicImage::ImageRgb8(noise(800, 600)),
                image::ImageFormat::WebP,
            ),
            full,
        ),
        ("lossy WebP", fixture("images/lossy.webp"), full),
        ("baseline JPEG 1024x768, full", fixture("images/large.jpg"), full),
        (
            "baseline JPEG 1024x768, features",
            fixture("images/large.jpg"),
            DECODE_FOR_FEATURES,
        ),
        (
            "progressive JPEG 1600x1200, full",
            fixture("images/large-progressive.jpg"),
            full,
        ),
        (
            "progressive JPEG 1600x1200, features",
            fixture("images/large-progressive.jpg"),
            DECODE_FOR_FEATURES,
        ),
        ("CMYK JPEG", fixture("images/cmyk.jpg"), full),
        ("JPEG with EXIF rotation", fixture("images/orientation-6.jpg"), full),
    ];
    let limits = IngestLimits::default();
    for (name, bytes, options) in cases {
        let cost = estimate(&bytes, &limits, options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let before = IN_USE.load(Ordering::Relaxed);
        PEAK.store(before, Ordering::Relaxed);
        let decoded = decode(&bytes, &limits, options).unwrap_or_else(|e| panic!("{name}: {e}"));
        let gray = to_gray(&decoded.pixels);
        let peak = (PEAK.load(Ordering::Relaxed) - before) as u64;
        drop((gray, decoded));
        println!(
            "{name}: peak {peak} B, estimate {} B ({:.1}x)",
            cost.peak_bytes,
            cost.peak_bytes as f64 / peak.max(1) as f64
        );
        assert!(
            peak <= cost.peak_bytes,
            "{name}: the decode took {peak} bytes at its peak, over its estimate of {}",
            cost.peak_bytes
        );
    }
}
