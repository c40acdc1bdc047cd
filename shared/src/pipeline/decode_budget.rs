//! The process-wide bound on memory spent decoding photos.
//!
//! Every decode of the process (features, faces, the style thumbnail) goes through one
//! [`DecodeBudget`]: the photo's cost is estimated from its header alone
//! ([`crate::image::estimate`]), a photo whose decode alone would exceed the budget is
//! refused as `too_large`, and the others wait until their estimate fits beside the decodes
//! already running. So memory for pixels is bounded in bytes whatever the photos and however
//! many calls arrive at once: a small file that declares a huge 16-bit image (a
//! "decompression bomb") is refused or waits its turn; it never multiplies.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::service::PhotoError;
use crate::config::IngestLimits;
use crate::image::{DecodeOptions, DecodedImage, ImageError, decode, estimate};

/// Permits are MiB of estimated decode memory.
const PERMIT_BYTES: u64 = 1 << 20;

#[derive(Clone)]
pub struct DecodeBudget {
    limits: IngestLimits,
    permits: Arc<Semaphore>,
    /// Decodes started (past the header) since the process started.
    decodes: Arc<AtomicU64>,
}

impl DecodeBudget {
    /// A budget of `limits.max_decode_bytes`, which is also the most one photo may take.
    pub fn new(limits: IngestLimits) -> Self {
        let total = limits.max_decode_bytes.div_ceil(PERMIT_BYTES).max(1);
        Self {
            limits,
            permits: Arc::new(Semaphore::new(usize::try_from(total).unwrap_or(usize::MAX >> 4))),
            decodes: Arc::default(),
        }
    }

    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// How many decodes have started (past the header checks) since the process started.
    pub fn decodes(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// MiB of the budget not taken by a decode right now.
    pub fn available_mib(&self) -> usize {
        self.permits.available_permits()
    }

    /// Decodes `bytes` and runs `work` on the pixels, on the blocking pool, holding the
    /// decode's estimated memory from before the first pixel is decoded until `work` returns.
    /// A photo that cannot be decoded (or may not: over the limits) is a permanent
    /// [`PhotoError`] with the decoder's reason; `work` should return small results, since
    /// whatever it keeps is no longer counted.
    pub async fn decode_then<T: Send + 'static>(
        &self,
        bytes: Bytes,
        options: DecodeOptions,
        work: impl FnOnce(DecodedImage) -> T + Send + 'static,
    ) -> Result<T, PhotoError> {
        let limits = self.limits;
        let header = bytes.clone();
        let cost = blocking(move || estimate(&header, &limits, options))
            .await?
            .map_err(failed)?;
        let wanted = u32::try_from(cost.peak_bytes.div_ceil(PERMIT_BYTES).max(1)).unwrap_or(u32::MAX);
        let waited = Instant::now();
        let held = self
            .permits
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(|_| PhotoError::transient("shutting_down", "the process is stopping"))?;
        metrics::histogram!("ongi_decode_wait_seconds").record(waited.elapsed().as_secs_f64());
        let started = Instant::now();
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let result = blocking(move || {
            let _held = held;
            decode(&bytes, &limits, options).map(work)
        })
        .await?;
        metrics::histogram!("ongi_decode_seconds").record(started.elapsed().as_secs_f64());
        result.map_err(failed)
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, PhotoError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PhotoError::permanent("internal", format!("the decoder task failed: {e}")))
}

fn failed(e: ImageError) -> PhotoError {
    metrics::counter!("ongi_photos_failed_total", "reason" => e.reason()).increment(1);
    PhotoError::permanent(e.reason(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, color: image::ColorType) -> Bytes {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::new(width, height, color)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        Bytes::from(out.into_inner())
    }

    #[tokio::test]
    async fn a_photo_over_the_whole_budget_is_refused_from_its_header() {
        let budget = DecodeBudget::new(IngestLimits {
            max_decode_bytes: 16 << 20,
            ..IngestLimits::default()
        });
        // 2000x2000 16-bit RGBA: 32 MB of decoder output alone.
        let bomb = png(2000, 2000, image::ColorType::Rgba16);
        let err = budget
            .decode_then(bomb, DecodeOptions::default(), |d| d.pixels.width())
            .await
            .unwrap_err();
        assert_eq!(err.reason, "too_large");
        assert!(!err.transient);
        assert!(err.detail.contains("ONGI_DECODE_MEMORY_MB"), "{}", err.detail);
        // A small photo still decodes, and its memory is given back.
        let small = png(64, 48, image::ColorType::Rgb8);
        let width = budget
            .decode_then(small, DecodeOptions::default(), |d| d.pixels.width())
            .await
            .unwrap();
        assert_eq!(width, 64);
        assert_eq!(budget.available_mib(), 16);
    }

    #[tokio::test]
    async fn decodes_wait_while_the_budget_is_taken() {
        let budget = DecodeBudget::new(IngestLimits {
            max_decode_bytes: 16 << 20,
            ..IngestLimits::default()
        });
        // Hold most of the budget, as a long decode would.
        let held = budget.permits.clone().acquire_many_owned(15).await.unwrap();
        let photo = png(1000, 1000, image::ColorType::Rgb8); // ~12 MB estimated
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .decode_then(photo, DecodeOptions::default(), |d| d.pixels.height())
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the decode must wait for memory");
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap(), 1000);
    }
}
