//! [`IngestLimits`]: what a photo may cost before any pixel is decoded.

use std::time::Duration;

use super::error::SettingsError;
use super::parse;
use super::read::setting;

/// The largest `ONGI_MAX_IMAGE_BYTES`: 1 GiB. A photo is held in memory whole while it is
/// read, so the setting is a memory bound and 2^64 - 1 would be none.
pub const MAX_IMAGE_BYTES: u64 = 1 << 30;

/// The largest `ONGI_MAX_IMAGE_PIXELS`: 65535 x 65535, the most a JPEG header can declare
/// (the decode memory limit refuses far fewer).
pub const MAX_IMAGE_PIXELS: u64 = 65_535 * 65_535;

/// Limits checked on every photo before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    /// The memory that decoding photos may take at once in the whole process, in bytes
    /// (`ONGI_DECODE_MEMORY_MB`); a photo whose decode alone would need more is refused
    /// from its header as `too_large`, before any pixel is decoded.
    pub max_decode_bytes: u64,
    /// What a photo's metadata blocks (EXIF, ICC, XMP, text, JPEG APPn and COM) may add up
    /// to, compressed ones counted inflated; more is refused as `too_large` before any
    /// decoder reads them (`image/metadata.rs`). Fixed: real photos carry well under 1 MiB,
    /// a depth map in extended XMP a few MiB.
    pub max_metadata_bytes: u64,
    /// How long one photo's decode may take once it has started; past it the photo is
    /// refused as `decode_timeout` (`image/deadline.rs`). Fixed: a 100 MP photo decodes in
    /// about a second, so only a file built to cost more than its pixels reaches it.
    pub max_decode_time: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_decode_bytes: 512 * 1024 * 1024,
            max_metadata_bytes: 8 * 1024 * 1024,
            max_decode_time: Duration::from_secs(5),
        }
    }
}

impl IngestLimits {
    /// `ONGI_MAX_IMAGE_BYTES`, `ONGI_MAX_IMAGE_PIXELS` and `ONGI_DECODE_MEMORY_MB` (in MiB).
    pub(super) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let defaults = Self::default();
        Ok(Self {
            max_bytes: setting(get, "ONGI_MAX_IMAGE_BYTES", defaults.max_bytes, |v| {
                parse::count(v, 1..=MAX_IMAGE_BYTES)
            })?,
            max_pixels: setting(get, "ONGI_MAX_IMAGE_PIXELS", defaults.max_pixels, |v| {
                parse::count(v, 1..=MAX_IMAGE_PIXELS)
            })?,
            max_decode_bytes: setting(get, "ONGI_DECODE_MEMORY_MB", defaults.max_decode_bytes, |v| {
                parse::count(v, 16u64..=65536).map(|mib| mib << 20)
            })?,
            max_metadata_bytes: defaults.max_metadata_bytes,
            max_decode_time: defaults.max_decode_time,
        })
    }
}
