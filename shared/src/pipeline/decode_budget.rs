//! The process-wide bound on memory spent decoding photos.
//!
//! Every decode of the process (features, faces, the style thumbnail) goes through one
//! [`DecodeBudget`]: the photo's cost is estimated from its header alone
//! ([`crate::image::estimate`]), a photo whose decode alone would exceed the budget is
//! refused as `too_large`, and the others wait until their estimate fits beside the decodes
//! already running. So memory for pixels is bounded in bytes whatever the photos and however
//! many calls arrive at once: a small file that declares a huge 16-bit image (a
//! "decompression bomb") is refused or waits its turn; it never multiplies.
//!
//! A decode started is bounded in time too: past [`IngestLimits::max_decode_time`] the photo
//! is refused as `decode_timeout`, and a decode whose caller has gone (the call hung up, the
//! future was dropped) stops at its decoder's next read; one still queued never starts
//! (`image/deadline.rs`). So a photo built to cost CPU holds a decode thread for at most that
//! long, and only while someone waits for it.
//!
//! Calls take turns: each queues one photo at a time, so one call's heavy photos never
//! queue ahead of another call's (`decode_lanes.rs`), and header estimates go before queued
//! decodes (`decode_threads.rs`).
//!
//! Decodes and the work on their pixels run on a few threads of their own (one per core),
//! not on tokio's blocking pool: glibc's malloc gives each thread that allocates its own
//! arena and keeps what that thread freed in it, so large pixel buffers freed on dozens of
//! blocking threads stayed in the process (`ongi bench hostile` peaked at 1,373 MiB with
//! them, against 665 MiB when glibc had two arenas). Decoding is CPU-bound: more threads
//! than cores would not decode faster.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Semaphore;

use super::decode_lanes::queue_turn;
use super::decode_threads::{DecodeThreads, Queue};
use super::photo_error::PhotoError;
use crate::config::IngestLimits;
use crate::domain::Reason;
use crate::image::{DecodeCost, DecodeOptions, DecodedImage, ImageError, Stop, decode_until, estimate};

/// Permits are MiB of estimated decode memory.
const PERMIT_BYTES: u64 = 1 << 20;

#[derive(Clone)]
pub struct DecodeBudget {
    limits: IngestLimits,
    permits: Arc<Semaphore>,
    /// Held by the one photo needing more than half of the budget that may wait for it.
    large: Arc<Semaphore>,
    /// Decodes started (past the header) since the process started.
    decodes: Arc<AtomicU64>,
    threads: Arc<DecodeThreads>,
}

impl DecodeBudget {
    /// A budget of `limits.max_decode_bytes`, which is also the most one photo may take.
    pub fn new(limits: IngestLimits) -> Self {
        let total = limits.max_decode_bytes.div_ceil(PERMIT_BYTES).max(1);
        Self {
            limits,
            permits: Arc::new(Semaphore::new(usize::try_from(total).unwrap_or(usize::MAX >> 4))),
            large: Arc::new(Semaphore::new(1)),
            decodes: Arc::default(),
            threads: Arc::new(DecodeThreads::new(
                std::thread::available_parallelism().map_or(2, usize::from),
            )),
        }
    }

    pub fn limits(&self) -> &IngestLimits {
        &self.limits
    }

    /// How many decodes have started (past the header checks) since the process started.
    pub fn decodes(&self) -> u64 {
        self.decodes.load(Ordering::Relaxed)
    }

    /// Runs short CPU work (a content hash) on the decode threads, before queued decodes.
    pub(super) async fn quick<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PhotoError> {
        self.threads.run(Queue::Quick, move |_| f()).await
    }

    /// MiB of the budget not taken by a decode right now.
    pub fn available_mib(&self) -> usize {
        self.permits.available_permits()
    }

    /// Decodes `bytes` and runs `work` on the pixels, on the blocking pool, holding the
    /// larger of the decode's estimated peak and the decoded pixels plus what `work` itself
    /// needs beside them (`work_bytes`, from the photo's cost), from before the first pixel
    /// is decoded until `work` returns. A photo that
    /// cannot be decoded (or may not: over the limits) is a permanent [`PhotoError`] with the
    /// decoder's reason; `work` should return small results, since whatever it keeps is no
    /// longer counted.
    pub async fn decode_then<T: Send + 'static>(
        &self,
        bytes: Bytes,
        options: DecodeOptions,
        work_bytes: impl FnOnce(&DecodeCost) -> u64,
        work: impl FnOnce(DecodedImage) -> T + Send + 'static,
    ) -> Result<T, PhotoError> {
        let limits = self.limits;
        let header = bytes.clone();
        let cost = self
            .threads
            .run(Queue::Quick, move |_| estimate(&header, &limits, options))
            .await?
            .map_err(failed)?;
        let needed = cost.peak_bytes.max(cost.output_bytes.saturating_add(work_bytes(&cost)));
        if needed > limits.max_decode_bytes {
            return Err(failed(ImageError::TooLarge(format!(
                "decoding and analysing this {}x{} photo needs about {} MiB, over the {} MiB decode limit (ONGI_DECODE_MEMORY_MB)",
                cost.width,
                cost.height,
                needed.div_ceil(PERMIT_BYTES),
                limits.max_decode_bytes / PERMIT_BYTES
            ))));
        }
        let wanted = u32::try_from(needed.div_ceil(PERMIT_BYTES).max(1)).unwrap_or(u32::MAX);
        let waited = Instant::now();
        let stopping = |_| PhotoError::transient(Reason::ShuttingDown, "the process is stopping");
        // Photos that need more than half of the memory take turns before they queue for it:
        // two of them could never decode at once, and one waiting at the head of the memory
        // queue (first come, first served) would hold back every smaller photo behind it.
        let _large_turn = if needed > limits.max_decode_bytes / 2 {
            Some(self.large.clone().acquire_owned().await.map_err(stopping)?)
        } else {
            None
        };
        // This call's turn to queue a photo, held until its decode starts on a thread.
        let turn = queue_turn().await;
        let held = self
            .permits
            .clone()
            .acquire_many_owned(wanted)
            .await
            .map_err(stopping)?;
        metrics::histogram!("ongi_decode_wait_seconds").record(waited.elapsed().as_secs_f64());
        let started = Instant::now();
        self.decodes.fetch_add(1, Ordering::Relaxed);
        let result = self
            .threads
            .run(Queue::Decode, move |abandoned| {
                drop(turn);
                let _held = held;
                let stop = Stop::after(limits.max_decode_time, abandoned);
                decode_until(&bytes, &limits, options, &stop).map(work)
            })
            .await?;
        metrics::histogram!("ongi_decode_seconds").record(started.elapsed().as_secs_f64());
        result.map_err(failed)
    }
}

fn failed(e: ImageError) -> PhotoError {
    metrics::counter!("ongi_photos_failed_total", "reason" => e.reason().as_str()).increment(1);
    PhotoError::permanent(e.reason(), e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A budget of `max_decode_bytes`, the other limits at their defaults.
    /// A deadline no decode of these tests reaches, however loaded the machine: a 12 MP
    /// decode in the unoptimised test build takes seconds, and the tests that are not about
    /// the deadline must not fail on it.
    const UNHURRIED: std::time::Duration = std::time::Duration::from_secs(300);

    fn budget_of(max_decode_bytes: u64) -> DecodeBudget {
        DecodeBudget::new(IngestLimits {
            max_decode_bytes,
            max_decode_time: UNHURRIED,
            ..IngestLimits::default()
        })
    }

    fn png(width: u32, height: u32, color: image::ColorType) -> Bytes {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::new(width, height, color)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        Bytes::from(out.into_inner())
    }

    /// A 4000x3000 baseline JPEG of noise: its full-size decode takes a good part of a second.
    fn slow_jpeg() -> Bytes {
        let mut state = 0x9e37_79b9_u32;
        let noise = image::RgbImage::from_fn(4000, 3000, |_, _| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let [r, g, b, _] = state.to_le_bytes();
            image::Rgb([r, g, b])
        });
        let fields = ongi_test_support::ExifFields {
            orientation: Some(1),
            ..Default::default()
        };
        Bytes::from(ongi_test_support::jpeg_with_exif(&noise, fields))
    }

    #[tokio::test]
    async fn a_decode_past_its_deadline_is_refused_as_decode_timeout() {
        let hurried = DecodeBudget::new(IngestLimits {
            max_decode_time: std::time::Duration::from_millis(1),
            ..IngestLimits::default()
        });
        let photo = slow_jpeg();
        let err = hurried
            .decode_then(photo.clone(), DecodeOptions::default(), |_| 0, |d| d.pixels.width())
            .await
            .unwrap_err();
        assert_eq!(err.reason, "decode_timeout");
        assert!(!err.transient, "the same photo would take as long again");
        assert!(err.detail.contains("0.001 s"), "{}", err.detail);
        assert_eq!(hurried.available_mib(), 512, "a stopped decode gives its memory back");
        // With time enough, the same photo decodes.
        let width = budget_of(IngestLimits::default().max_decode_bytes)
            .decode_then(photo, DecodeOptions::default(), |_| 0, |d| d.pixels.width())
            .await
            .unwrap();
        assert_eq!(width, 4000);
    }

    #[tokio::test]
    async fn decodes_nobody_waits_for_stop_and_free_their_threads() {
        // Memory for every decode at once, so that each one queues for a thread.
        let budget = budget_of(16 << 30);
        let slow = slow_jpeg();
        let decode_width = |budget: &DecodeBudget, photo: Bytes| {
            let budget = budget.clone();
            async move {
                budget
                    .decode_then(photo, DecodeOptions::default(), |_| 0, |d| d.pixels.width())
                    .await
            }
        };
        // The yardstick: one full decode, waited for.
        let started = Instant::now();
        assert_eq!(decode_width(&budget, slow.clone()).await.unwrap(), 4000);
        let one = started.elapsed();
        // Twice as many callers as there are decode threads, and two more, all hanging up
        // once their decodes are under way or queued.
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let callers: Vec<_> = (0..2 * threads + 2)
            .map(|_| tokio::time::timeout(one / 4, decode_width(&budget, slow.clone())))
            .collect();
        for outcome in futures::future::join_all(callers).await {
            assert!(outcome.is_err(), "a caller hung up before its decode ended");
        }
        // A small photo now waits for no abandoned decode: those running stop at their next
        // read, those queued never start.
        let started = Instant::now();
        assert_eq!(
            decode_width(&budget, png(64, 48, image::ColorType::Rgb8))
                .await
                .unwrap(),
            64
        );
        let waited = started.elapsed();
        assert!(
            waited < one / 2,
            "a small photo waited {waited:?} behind abandoned decodes (one full decode: {one:?})"
        );
        // Their memory comes back as each one ends.
        let deadline = Instant::now() + one;
        while budget.available_mib() < 16 << 10 && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(budget.available_mib(), 16 << 10, "abandoned decodes kept their memory");
    }

    #[tokio::test]
    async fn one_calls_queued_decodes_do_not_hold_back_another_calls_photo() {
        use crate::pipeline::decode_lanes::in_own_lane;
        // Memory for every decode at once: what is tested is the order of the thread queue.
        let budget = budget_of(16 << 30);
        let slow = slow_jpeg();
        let started = Instant::now();
        budget
            .decode_then(slow.clone(), DecodeOptions::default(), |_| 0, |_| ())
            .await
            .unwrap();
        let one = started.elapsed();
        // One call queues four slow decodes per thread at once.
        let threads = std::thread::available_parallelism().map_or(2, usize::from);
        let heavy_call = tokio::spawn(in_own_lane({
            let budget = budget.clone();
            async move {
                let photos = (0..4 * threads)
                    .map(|_| budget.decode_then(slow.clone(), DecodeOptions::default(), |_| 0, |d| d.pixels.width()));
                futures::future::join_all(photos).await
            }
        }));
        tokio::time::sleep(one / 4).await;
        // Another call's small photo waits for the decodes running, not for all those queued:
        let started = Instant::now();
        let small = in_own_lane(budget.decode_then(
            png(64, 48, image::ColorType::Rgb8),
            DecodeOptions::default(),
            |_| 0,
            |d| d.pixels.width(),
        ))
        .await;
        let waited = started.elapsed();
        assert_eq!(small.unwrap(), 64);
        // Taking turns, it waits for the two running (three quarters of a decode from now) and
        // at most one more of the other call's, queued first: under two decodes. First come,
        // first served, it waited for about four.
        assert!(
            waited < one * 5 / 2,
            "a small photo waited {waited:?} behind another call's queue (one slow decode: {one:?})"
        );
        // The heavy call is served in full all the same.
        for width in heavy_call.await.unwrap() {
            assert_eq!(width.unwrap(), 4000);
        }
    }

    #[tokio::test]
    async fn a_small_photo_is_not_held_back_by_a_large_one_waiting_for_memory() {
        let budget = budget_of(16 << 20);
        let photo = png(64, 48, image::ColorType::Rgb8);
        let large = |budget: &DecodeBudget, hold: Option<std::sync::mpsc::Receiver<()>>| {
            let (budget, photo) = (budget.clone(), photo.clone());
            // Over half the budget, with the work it reserves.
            tokio::spawn(async move {
                let work = move |_| hold.map(|h| h.recv());
                budget
                    .decode_then(photo, DecodeOptions::default(), |_| 9 << 20, work)
                    .await
            })
        };
        let (release, hold) = std::sync::mpsc::channel();
        let running = large(&budget, Some(hold));
        while budget.available_mib() > 8 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let queued = large(&budget, None);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        // 6 MiB are free: the small photo decodes now, not after both large ones.
        let small = budget.decode_then(photo.clone(), DecodeOptions::default(), |_| 0, |d| d.pixels.width());
        let small = tokio::time::timeout(std::time::Duration::from_secs(5), small).await;
        release.send(()).unwrap();
        assert_eq!(small.expect("the small photo waited behind a large one").unwrap(), 64);
        running.await.unwrap().unwrap();
        queued.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_photo_over_the_whole_budget_is_refused_from_its_header() {
        let budget = budget_of(16 << 20);
        // 2000x2000 16-bit RGBA: 32 MB of decoder output alone.
        let bomb = png(2000, 2000, image::ColorType::Rgba16);
        let err = budget
            .decode_then(bomb, DecodeOptions::default(), |_| 0, |d| d.pixels.width())
            .await
            .unwrap_err();
        assert_eq!(err.reason, "too_large");
        assert!(!err.transient);
        assert!(err.detail.contains("ONGI_DECODE_MEMORY_MB"), "{}", err.detail);
        // A small photo still decodes, and its memory is given back.
        let small = png(64, 48, image::ColorType::Rgb8);
        let width = budget
            .decode_then(small, DecodeOptions::default(), |_| 0, |d| d.pixels.width())
            .await
            .unwrap();
        assert_eq!(width, 64);
        assert_eq!(budget.available_mib(), 16);
    }

    #[tokio::test]
    async fn the_work_after_the_decode_is_reserved_with_it() {
        let budget = budget_of(16 << 20);
        let photo = png(64, 48, image::ColorType::Rgb8);
        let err = budget
            .decode_then(photo.clone(), DecodeOptions::default(), |_| 20 << 20, |_| ())
            .await
            .unwrap_err();
        assert_eq!(err.reason, "too_large");
        assert!(err.detail.contains("decoding and analysing"), "{}", err.detail);
        let during = budget
            .decode_then(photo, DecodeOptions::default(), |_| 8 << 20, {
                let budget = budget.clone();
                move |_| budget.available_mib()
            })
            .await
            .unwrap();
        assert!(
            during <= 8,
            "the work's memory is held while it runs: {during} MiB left"
        );
        assert_eq!(budget.available_mib(), 16);
    }

    #[tokio::test]
    async fn work_that_panics_costs_its_photo_not_the_decode_threads() {
        let budget = DecodeBudget::new(IngestLimits::default());
        let photo = png(64, 48, image::ColorType::Rgb8);
        for _ in 0..4 {
            let err = budget
                .decode_then(
                    photo.clone(),
                    DecodeOptions::default(),
                    |_| 0,
                    |_| -> u32 { panic!("a bug") },
                )
                .await
                .unwrap_err();
            assert_eq!(err.reason, "internal");
        }
        let width = budget
            .decode_then(photo, DecodeOptions::default(), |_| 0, |d| d.pixels.width())
            .await
            .unwrap();
        assert_eq!(width, 64);
        assert_eq!(budget.available_mib(), 512, "a panic gives its memory back");
    }

    #[tokio::test]
    async fn decodes_wait_while_the_budget_is_taken() {
        let budget = budget_of(16 << 20);
        // Hold most of the budget, as a long decode would.
        let held = budget.permits.clone().acquire_many_owned(15).await.unwrap();
        let photo = png(1000, 1000, image::ColorType::Rgb8); // ~12 MB estimated
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move {
                budget
                    .decode_then(photo, DecodeOptions::default(), |_| 0, |d| d.pixels.height())
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "the decode must wait for memory");
        drop(held);
        assert_eq!(waiting.await.unwrap().unwrap(), 1000);
    }
}
