//! Image ingest: untrusted bytes → decode within limits → every pixel feature, exactly as
//! the pipeline runs it ([`pixel_features`]). Any input must give a record or an `ImageError`;
//! a panic, an abort or a runaway allocation is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ongi_shared::config::IngestLimits;
use ongi_shared::image::estimate;
use ongi_shared::pipeline::pixels::{DECODE_FOR_FEATURES, pixel_features};

fuzz_target!(|data: &[u8]| {
    // Tighter than production (50 MB, 100 MP, 512 MiB) so one input stays within libFuzzer's
    // memory limit; the checks are the same code either way.
    let limits = IngestLimits {
        max_bytes: 4 * 1024 * 1024,
        max_pixels: 16_000_000,
        max_decode_bytes: 256 * 1024 * 1024,
        ..IngestLimits::default()
    };
    if let Ok(pixels) = pixel_features(data, &limits, true) {
        // What decoded was estimated from its header first, within the memory limit.
        let cost = estimate(data, &limits, DECODE_FOR_FEATURES).expect("a decoded photo has an estimate");
        assert!(cost.peak_bytes <= limits.max_decode_bytes);
        let record = pixels.record;
        assert!(record.width > 0 && record.height > 0);
        assert!(u64::from(record.width) * u64::from(record.height) <= limits.max_pixels);
        assert!(record.blur_variance.is_finite() && record.blur_variance >= 0.0);
        let clip = pixels.clip_input.expect("asked for the CLIP input");
        assert_eq!(clip.len(), 3 * 224 * 224);
        assert!(clip.iter().all(|v| v.is_finite()));
    }
});
