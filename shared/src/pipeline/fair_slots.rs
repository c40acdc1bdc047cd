//! The process's compute slots (one photo being downloaded, decoded and embedded each),
//! handed out fairly between callers.
//!
//! A call of four photos beside calls of hundreds must not wait for all of theirs. So when a
//! slot is free it goes to the waiting caller ([`super::decode_lanes`]) that holds the fewest
//! slots, the earliest among equals: a small call's photos are served as soon as a slot
//! turns over, and callers with many photos share what is left.
//!
//! Written by hand because tokio's semaphore serves its waiters first come, first served
//! only: a list of waiters under a mutex, each granted through a oneshot channel.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use super::decode_lanes;

#[derive(Clone)]
pub struct FairSlots {
    state: Arc<Mutex<State>>,
}

struct State {
    free: usize,
    waiting: Vec<Waiter>,
    tickets: u64,
}

struct Waiter {
    ticket: u64,
    lane_slots: Arc<AtomicUsize>,
    grant: oneshot::Sender<()>,
}

/// A compute slot, given back when dropped.
pub struct Slot {
    state: Arc<Mutex<State>>,
    lane_slots: Arc<AtomicUsize>,
}

impl FairSlots {
    pub fn new(slots: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                free: slots.max(1),
                waiting: Vec::new(),
                tickets: 0,
            })),
        }
    }

    /// Waits for a slot for the current caller.
    pub async fn acquire(&self) -> Slot {
        let lane_slots = decode_lanes::current().slots;
        let granted = {
            let mut state = lock(&self.state);
            if state.free > 0 {
                state.free -= 1;
                lane_slots.fetch_add(1, Ordering::Relaxed);
                None
            } else {
                let (grant, granted) = oneshot::channel();
                state.tickets += 1;
                let ticket = state.tickets;
                state.waiting.push(Waiter {
                    ticket,
                    lane_slots: lane_slots.clone(),
                    grant,
                });
                Some(granted)
            }
        };
        if let Some(granted) = granted {
            // Given back if this future is dropped between the grant and this await's end.
            let mut pending = Pending {
                granted: Some(granted),
                state: self.state.clone(),
                lane_slots: lane_slots.clone(),
            };
            if let Some(granted) = pending.granted.as_mut() {
                // The sender is only dropped unsent when it was granted to nobody; it is not.
                let _ = granted.await;
            }
            pending.granted = None;
        }
        Slot {
            state: self.state.clone(),
            lane_slots,
        }
    }

    /// Slots free right now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        lock(&self.state).free
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // Nothing panics under this lock; a poisoned one still holds consistent state.
    state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Gives a slot to the waiting caller holding the fewest (earliest first among equals), or
/// back to the free ones.
fn hand_over(state: &Mutex<State>) {
    let mut state = lock(state);
    loop {
        let next = state
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| (w.lane_slots.load(Ordering::Relaxed), w.ticket))
            .map(|(i, _)| i);
        let Some(i) = next else {
            state.free += 1;
            return;
        };
        let waiter = state.waiting.swap_remove(i);
        waiter.lane_slots.fetch_add(1, Ordering::Relaxed);
        if waiter.grant.send(()).is_ok() {
            return;
        }
        // That caller had gone: the next one.
        waiter.lane_slots.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.lane_slots.fetch_sub(1, Ordering::Relaxed);
        hand_over(&self.state);
    }
}

/// A waiter's grant, still to be received: if the waiting future is dropped after the grant
/// was sent, the slot is given back.
struct Pending {
    granted: Option<oneshot::Receiver<()>>,
    state: Arc<Mutex<State>>,
    lane_slots: Arc<AtomicUsize>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(mut granted) = self.granted.take()
            && granted.try_recv().is_ok()
        {
            self.lane_slots.fetch_sub(1, Ordering::Relaxed);
            hand_over(&self.state);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::pipeline::decode_lanes::in_own_lane;

    #[tokio::test]
    async fn a_free_slot_goes_to_the_caller_holding_the_fewest() {
        let slots = FairSlots::new(2);
        let order = Arc::new(Mutex::new(Vec::new()));
        let served = |who: &'static str| {
            let (slots, order) = (slots.clone(), order.clone());
            async move {
                let _slot = slots.acquire().await;
                order.lock().unwrap().push(who);
            }
        };
        // A big caller takes both slots and queues three more photos; it gives its slots
        // back one at a time.
        let big = tokio::spawn(in_own_lane({
            let slots = slots.clone();
            let queued = futures::future::join_all((0..3).map(|_| served("big")));
            async move {
                let (first, second) = (slots.acquire().await, slots.acquire().await);
                let release = async move {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drop(first);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    drop(second);
                };
                tokio::join!(queued, release);
            }
        }));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A small caller queues after the big one's three: the first slot given back is its.
        in_own_lane(served("small")).await;
        big.await.unwrap();
        assert_eq!(*order.lock().unwrap(), ["small", "big", "big", "big"]);
        assert_eq!(slots.available(), 2);
    }

    #[tokio::test]
    async fn a_caller_that_gives_up_waiting_takes_no_slot() {
        let slots = FairSlots::new(1);
        let held = slots.acquire().await;
        let gave_up = tokio::time::timeout(Duration::from_millis(20), slots.acquire()).await;
        assert!(gave_up.is_err());
        drop(held);
        assert_eq!(
            slots.available(),
            1,
            "the slot went back, not to the caller that had gone"
        );
        let _again = slots.acquire().await;
        assert_eq!(slots.available(), 0);
    }
}
