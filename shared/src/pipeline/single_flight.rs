//! Work done once: calls that need the same thing at the same time (a photo's features, by
//! content hash) share the first one's result instead of each computing it.
//!
//! The first caller of a key leads: it does the work and hands the result over with
//! [`Leader::finish`]. Callers that arrive meanwhile follow: they wait for that result, holding
//! nothing else (no download, no compute slot). A leader dropped before it finishes (its call
//! was cancelled: the client went away) wakes its followers with nothing, and they try again,
//! one of them leading. The map holds only keys in flight, so it is bounded by the work in
//! progress, not by what callers send.
//!
//! Written here rather than taken from a crate: it is a map of `tokio::sync::watch` channels
//! and a drop guard, and it must hand over the leader's cancellation, which the single-flight
//! crates on crates.io either do not (they share one future, run by whichever caller polls it)
//! or do with more machinery than this.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

type Flights<K, V> = Arc<Mutex<HashMap<K, watch::Receiver<Option<V>>>>>;

/// The keys in flight, each with the channel its result will come on.
pub struct SingleFlight<K, V> {
    flights: Flights<K, V>,
}

/// What [`SingleFlight::join`] makes of a caller.
pub enum Turn<K: Eq + Hash + Clone, V: Clone> {
    /// No one is working on the key: this caller does, and must [`Leader::finish`].
    Lead(Leader<K, V>),
    /// Someone is: wait for their result.
    Follow(Follower<V>),
}

pub struct Leader<K: Eq + Hash + Clone, V> {
    key: K,
    sender: watch::Sender<Option<V>>,
    flights: Flights<K, V>,
}

pub struct Follower<V> {
    receiver: watch::Receiver<Option<V>>,
}

fn lock<K, V>(flights: &Flights<K, V>) -> MutexGuard<'_, HashMap<K, watch::Receiver<Option<V>>>> {
    // Every critical section is one map insert, lookup or remove: a panic elsewhere cannot
    // leave the map half-changed, so a poisoned lock is still safe to use.
    flights.lock().unwrap_or_else(|p| p.into_inner())
}

impl<K: Eq + Hash + Clone, V: Clone> SingleFlight<K, V> {
    pub fn new() -> Self {
        Self {
            flights: Arc::default(),
        }
    }

    /// Leads the work on `key`, or follows whoever already does.
    pub fn join(&self, key: K) -> Turn<K, V> {
        let mut flights = lock(&self.flights);
        if let Some(receiver) = flights.get(&key) {
            return Turn::Follow(Follower {
                receiver: receiver.clone(),
            });
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(key.clone(), receiver);
        Turn::Lead(Leader {
            key,
            sender,
            flights: self.flights.clone(),
        })
    }

    /// Keys in flight now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.flights).len()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone, V> Leader<K, V> {
    /// Hands `value` to every follower, present and arriving until the key is released
    /// (which happens right after, when the leader is dropped).
    pub fn finish(self, value: V) {
        self.sender.send_replace(Some(value));
    }
}

impl<K: Eq + Hash + Clone, V> Drop for Leader<K, V> {
    fn drop(&mut self) {
        lock(&self.flights).remove(&self.key);
    }
}

impl<V: Clone> Follower<V> {
    /// The leader's result, or `None` when the leader was dropped without one (try again).
    pub async fn result(mut self) -> Option<V> {
        if let Ok(value) = self.receiver.wait_for(Option::is_some).await {
            return value.clone();
        }
        // The sender is gone: its last value is still there if it finished in time.
        self.receiver.borrow().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// Computes `key` once however many callers ask at once, as the feature service does.
    async fn computed_once(flights: &SingleFlight<u32, u32>, key: u32, work_done: &AtomicUsize) -> u32 {
        loop {
            match flights.join(key) {
                Turn::Lead(leader) => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    work_done.fetch_add(1, Ordering::SeqCst);
                    leader.finish(key * 10);
                    return key * 10;
                }
                Turn::Follow(follower) => {
                    if let Some(value) = follower.result().await {
                        return value;
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn concurrent_callers_of_one_key_share_one_computation() {
        let flights = SingleFlight::new();
        let work_done = AtomicUsize::new(0);
        let results = futures::future::join_all((0..16).map(|i| computed_once(&flights, i % 2, &work_done))).await;
        assert_eq!(results, (0..16).map(|i| (i % 2) * 10).collect::<Vec<_>>());
        assert_eq!(work_done.load(Ordering::SeqCst), 2, "one computation per key");
        assert_eq!(flights.len(), 0, "finished keys are released");
        // Later callers compute again: the map is not a cache.
        computed_once(&flights, 0, &work_done).await;
        assert_eq!(work_done.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn followers_of_a_cancelled_leader_take_over() {
        let flights: SingleFlight<u32, u32> = SingleFlight::new();
        let Turn::Lead(leader) = flights.join(7) else {
            panic!("the first caller leads")
        };
        let Turn::Follow(follower) = flights.join(7) else {
            panic!("the second caller follows")
        };
        let waiting = tokio::spawn(follower.result());
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(leader);
        assert_eq!(waiting.await.unwrap(), None, "woken with nothing: try again");
        assert!(matches!(flights.join(7), Turn::Lead(_)), "the next caller leads");
    }

    #[tokio::test]
    async fn a_follower_that_arrives_after_the_result_gets_it() {
        let flights: SingleFlight<u32, u32> = SingleFlight::new();
        let Turn::Lead(leader) = flights.join(1) else {
            panic!("the first caller leads")
        };
        let Turn::Follow(follower) = flights.join(1) else {
            panic!("the second caller follows")
        };
        leader.finish(42);
        assert_eq!(follower.result().await, Some(42));
    }
}
