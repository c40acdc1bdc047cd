//! The threads decodes run on (see [`super::decode_budget`] for why they have their own), and
//! the order in which they take work.
//!
//! Two queues: short work (header estimates, content hashes), which takes milliseconds, goes
//! before decodes, which may take seconds, so that no photo's estimate waits behind other
//! calls' decodes; but only by a head start of [`QUICK_HEAD_START`], so that a stream of
//! short work (hundreds of large files hashed) cannot starve the decodes either: a decode
//! queued longer ago than that goes first. Decodes are taken in the order they were queued; [`super::decode_lanes`] makes that order fair between calls
//! by letting each call queue one decode at a time. A job that panics costs its photo
//! (`internal`), never the thread.
//!
//! Written by hand because no queue in the dependency tree has both a priority and blocking
//! threads: this is a `VecDeque` pair under a mutex and a condition variable.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::photo_error::PhotoError;
use crate::domain::Reason;

type Job = (Instant, Box<dyn FnOnce() + Send>);

/// How much earlier than a decode queued at the same moment short work is taken.
const QUICK_HEAD_START: Duration = Duration::from_millis(100);

/// Which queue a job waits in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Queue {
    /// Short work (a photo's header estimate): taken first.
    Quick,
    /// A decode and the work on its pixels.
    Decode,
}

#[derive(Default)]
struct Queues {
    quick: VecDeque<Job>,
    decodes: VecDeque<Job>,
    /// Set when the pool is dropped: the threads finish what is queued, then end.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queues: Mutex<Queues>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        // A job never runs under the lock, so a poisoned lock still holds consistent queues.
        self.queues.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The next job, quick ones first (within their head start); `None` once the pool is
    /// closed and empty.
    fn next(&self) -> Option<Box<dyn FnOnce() + Send>> {
        let mut queues = self.lock();
        loop {
            let decode_first = match (queues.quick.front(), queues.decodes.front()) {
                (Some((quick, _)), Some((decode, _))) => *decode + QUICK_HEAD_START < *quick,
                (None, Some(_)) => true,
                _ => false,
            };
            let next = if decode_first {
                queues.decodes.pop_front()
            } else {
                queues.quick.pop_front()
            };
            if let Some((_, job)) = next {
                return Some(job);
            }
            if queues.closed {
                return None;
            }
            queues = self.ready.wait(queues).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

pub(super) struct DecodeThreads {
    shared: Arc<Shared>,
}

impl DecodeThreads {
    pub(super) fn new(count: usize) -> Self {
        let shared = Arc::new(Shared::default());
        for i in 0..count.max(1) {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ongi-decode-{i}"))
                .spawn(move || {
                    while let Some(job) = shared.next() {
                        job();
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a decode thread");
            }
        }
        Self { shared }
    }

    /// Runs `f` on a decode thread, from `queue`, and waits for its result. `f` is given the
    /// flag that is set once nobody waits any more (this future was dropped); a job whose flag
    /// is set before it starts does not run. Either way a job whose caller had gone is counted
    /// (`ongi_decodes_abandoned_total`).
    pub(super) async fn run<T: Send + 'static>(
        &self,
        queue: Queue,
        f: impl FnOnce(Arc<AtomicBool>) -> T + Send + 'static,
    ) -> Result<T, PhotoError> {
        let abandoned = Arc::new(AtomicBool::new(false));
        let _on_drop = SetOnDrop(abandoned.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Box<dyn FnOnce() + Send> = Box::new(move || {
            let delivered =
                !abandoned.load(Ordering::Relaxed) && tx.send(catch_unwind(AssertUnwindSafe(|| f(abandoned)))).is_ok();
            if !delivered {
                metrics::counter!("ongi_decodes_abandoned_total").increment(1);
            }
        });
        {
            let mut queues = self.shared.lock();
            let queued = (Instant::now(), job);
            match queue {
                Queue::Quick => queues.quick.push_back(queued),
                Queue::Decode => queues.decodes.push_back(queued),
            }
        }
        self.shared.ready.notify_one();
        let internal = |what: &str| PhotoError::permanent(Reason::Internal, format!("the decoder task {what}"));
        match rx.await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(internal("panicked")),
            Err(_) => Err(internal("was dropped")),
        }
    }
}

impl Drop for DecodeThreads {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// Sets its flag when dropped: when the future holding it completes or is dropped.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On one thread, held until `release_after`: a decode queued at once and short work
    /// queued after `quick_after`. The order in which they ran.
    async fn order_of(quick_after: Duration, release_after: Duration) -> Vec<&'static str> {
        let threads = DecodeThreads::new(1);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, held) = std::sync::mpsc::channel::<()>();
        let holding = threads.run(Queue::Decode, move |_| held.recv().ok());
        let log = |name: &'static str| {
            let order = order.clone();
            move |_: Arc<AtomicBool>| order.lock().unwrap().push(name)
        };
        let decode = threads.run(Queue::Decode, log("decode"));
        let quick = async {
            tokio::time::sleep(quick_after).await;
            threads.run(Queue::Quick, log("quick")).await
        };
        let releasing = async {
            tokio::time::sleep(release_after).await;
            release.send(()).unwrap();
        };
        let (holding, decode, quick, ()) = tokio::join!(holding, decode, quick, releasing);
        holding.unwrap();
        decode.unwrap();
        quick.unwrap();
        order.lock().unwrap().clone()
    }

    #[tokio::test]
    async fn quick_jobs_go_before_queued_decodes() {
        assert_eq!(order_of(Duration::ZERO, QUICK_HEAD_START).await, ["quick", "decode"]);
    }

    #[tokio::test]
    async fn a_decode_queued_past_the_head_start_goes_before_newer_short_work() {
        assert_eq!(
            order_of(QUICK_HEAD_START * 2, QUICK_HEAD_START * 3).await,
            ["decode", "quick"]
        );
    }

    #[tokio::test]
    async fn a_panicking_job_costs_its_result_not_the_thread() {
        let threads = DecodeThreads::new(1);
        let err = threads
            .run(Queue::Decode, |_| -> u32 { panic!("a bug") })
            .await
            .unwrap_err();
        assert_eq!(err.reason, "internal");
        assert_eq!(threads.run(Queue::Quick, |_| 7).await.unwrap(), 7);
    }
}
