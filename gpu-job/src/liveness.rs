//! Whether the job loop still moves, for `/healthz`.
//!
//! The managed instance group replaces a VM whose health check fails. A process that answers
//! HTTP while its job loop is stuck (a hung GPU call, a deadlock, a claim that never returns)
//! would otherwise be kept for ever with the queue growing behind it. The loop beats at every
//! turn, and a running job at every denoising step and between its stages; the heartbeats
//! that keep a job's stream entry claimed do *not* beat, since they run on their own task
//! and would go on while the job itself hangs. A loop waiting out a Redis outage still turns
//! (with backoff), so it stays alive: a new VM would not bring Redis back.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Liveness {
    origin: Instant,
    /// Milliseconds from `origin` to the last beat.
    last_beat_ms: AtomicU64,
    stall_after: Duration,
}

impl Liveness {
    /// Alive now; stalled once nothing beats for `stall_after`.
    pub fn new(stall_after: Duration) -> Self {
        Self {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
            stall_after,
        }
    }

    /// The loop (or the job it runs) made progress.
    pub fn beat(&self) {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_beat_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Time since the last beat.
    pub fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_beat_ms.load(Ordering::Relaxed));
        self.origin.elapsed().saturating_sub(last)
    }

    /// `Some(silence)` once the loop has been silent for longer than the stall time.
    pub fn stalled(&self) -> Option<Duration> {
        let silent = self.silent_for();
        (silent > self.stall_after).then_some(silent)
    }

    pub fn stall_after(&self) -> Duration {
        self.stall_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_beating_is_stalled_and_a_beat_revives_it() {
        let alive = Liveness::new(Duration::from_millis(50));
        assert_eq!(alive.stalled(), None);
        std::thread::sleep(Duration::from_millis(80));
        assert!(alive.stalled().is_some_and(|d| d >= Duration::from_millis(50)));
        alive.beat();
        assert_eq!(alive.stalled(), None);
        assert!(alive.silent_for() < Duration::from_millis(50));
    }
}
