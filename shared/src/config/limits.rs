//! [`IngestLimits`]: what a photo may cost before any pixel is decoded.

use super::error::SettingsError;
use super::parse;
use super::read::setting;

/// Limits checked on every photo before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    pub max_bytes: u64,
    pub max_pixels: u64,
    /// The memory that decoding photos may take at once in the whole process, in bytes
    /// (`ONGI_DECODE_MEMORY_MB`); a photo whose decode alone would need more is refused
    /// from its header as `too_large`, before any pixel is decoded.
    pub max_decode_bytes: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_bytes: 50 * 1024 * 1024,
            max_pixels: 100_000_000,
            max_decode_bytes: 512 * 1024 * 1024,
        }
    }
}

impl IngestLimits {
    /// `ONGI_MAX_IMAGE_BYTES`, `ONGI_MAX_IMAGE_PIXELS` and `ONGI_DECODE_MEMORY_MB` (in MiB).
    pub(super) fn read(get: &impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let defaults = Self::default();
        Ok(Self {
            max_bytes: setting(get, "ONGI_MAX_IMAGE_BYTES", defaults.max_bytes, parse::positive)?,
            max_pixels: setting(get, "ONGI_MAX_IMAGE_PIXELS", defaults.max_pixels, parse::positive)?,
            max_decode_bytes: setting(get, "ONGI_DECODE_MEMORY_MB", defaults.max_decode_bytes, |v| {
                parse::count(v, 16u64..=65536).map(|mib| mib << 20)
            })?,
        })
    }
}
