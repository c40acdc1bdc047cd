//! Fairness between calls in the decode pool.
//!
//! The decode threads take decodes in the order they were queued, and the decode memory is
//! handed out in the order it was asked for. Without more, a call of forty heavy photos would
//! queue forty decodes before a later call's one small photo, which would wait for all of
//! them. So each call decodes in a *lane* of its own, and a lane may have one photo waiting
//! (for memory, then for a thread) at a time: the queues then hold at most one photo per
//! call, and they serve the calls in turn. A call still runs as many decodes at once as
//! there are free threads and memory; it only cannot queue ahead of the others.
//!
//! The same lanes share the compute slots fairly (`fair_slots.rs`): a free slot goes to the
//! waiting caller that holds the fewest.
//!
//! A request to the HTTP service and a reprocessing run are each a lane
//! ([`in_own_lane`]); work outside any lane (the CLI, a test) is a lane of its own.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use tokio::sync::{Mutex, OwnedMutexGuard};

/// One caller's place in the queues: whoever holds `turn` has the caller's one photo queued
/// for decoding (tokio's mutex is fair, so the caller's own photos keep their order), and
/// `slots` counts the compute slots the caller holds.
#[derive(Clone, Default)]
pub(super) struct Lane {
    turn: Arc<Mutex<()>>,
    pub(super) slots: Arc<AtomicUsize>,
}

/// The current caller's lane (a new one outside any).
pub(super) fn current() -> Lane {
    LANE.try_with(Lane::clone).unwrap_or_default()
}

tokio::task_local! {
    static LANE: Lane;
}

/// Runs `work` with every decode it starts in one lane of its own, one queued photo at a time.
pub async fn in_own_lane<F: Future>(work: F) -> F::Output {
    LANE.scope(Lane::default(), work).await
}

/// Waits until the current lane may queue a photo. Hold the turn until the photo's decode
/// has started on a thread; dropping it lets the lane's next photo queue.
pub(super) async fn queue_turn() -> OwnedMutexGuard<()> {
    current().turn.lock_owned().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lane_queues_one_photo_at_a_time_and_lanes_do_not_wait_for_each_other() {
        in_own_lane(async {
            let first = queue_turn().await;
            let second = tokio::time::timeout(std::time::Duration::from_millis(50), queue_turn()).await;
            assert!(second.is_err(), "the lane's second photo waits for the first to start");
            // Another lane is not held back.
            let other = in_own_lane(queue_turn()).await;
            drop(other);
            drop(first);
            let _second = queue_turn().await;
        })
        .await;
        // Outside any lane, every photo is a lane of its own.
        let a = queue_turn().await;
        let _b = queue_turn().await;
        drop(a);
    }
}
