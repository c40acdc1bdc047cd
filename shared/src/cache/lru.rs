//! A map that keeps at most `capacity` entries and `max_weight` units of weight (bytes, for
//! the near cache), and drops the least recently used entries to make room: the near cache
//! in front of Redis, and the memo of callers' concept embeddings, whose keys are whatever
//! callers send. Written here rather than taken from a crate: it is sixty lines over std's
//! maps, and the two users need only get, insert and a bound.

use std::collections::{BTreeMap, HashMap};

pub struct Lru<V> {
    capacity: usize,
    max_weight: usize,
    weight: usize,
    /// Bumped on every use; an entry's stamp is the time of its last use.
    clock: u64,
    /// Value, stamp of last use, weight.
    entries: HashMap<String, (V, u64, usize)>,
    /// Keys by the stamp of their last use: the first is the least recently used.
    order: BTreeMap<u64, String>,
}

impl<V: Clone> Lru<V> {
    /// At most `capacity` entries, whatever their weight.
    pub fn new(capacity: usize) -> Self {
        Self::with_weight(capacity, usize::MAX)
    }

    /// At most `capacity` entries and `max_weight` in all (see [`Lru::insert_weighted`]).
    pub fn with_weight(capacity: usize, max_weight: usize) -> Self {
        Self {
            capacity,
            max_weight,
            weight: 0,
            clock: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The value, marked as just used.
    pub fn get(&mut self, key: &str) -> Option<V> {
        let (value, used, _) = self.entries.get_mut(key)?;
        self.clock += 1;
        self.order.remove(used);
        *used = self.clock;
        self.order.insert(self.clock, key.to_owned());
        Some(value.clone())
    }

    /// Inserts or replaces `key` with weight 1.
    pub fn insert(&mut self, key: String, value: V) {
        self.insert_weighted(key, value, 1);
    }

    /// Inserts or replaces `key`, first dropping least recently used entries until both bounds
    /// hold. An entry heavier than the whole bound is not kept.
    pub fn insert_weighted(&mut self, key: String, value: V, weight: usize) {
        self.remove(&key);
        if self.capacity == 0 || weight > self.max_weight {
            return;
        }
        while self.entries.len() >= self.capacity || self.weight + weight > self.max_weight {
            match self.order.first_key_value().map(|(_, k)| k.clone()) {
                Some(oldest) => self.remove(&oldest),
                None => break,
            }
        }
        self.clock += 1;
        self.order.insert(self.clock, key.clone());
        self.entries.insert(key, (value, self.clock, weight));
        self.weight += weight;
    }

    fn remove(&mut self, key: &str) {
        if let Some((_, used, weight)) = self.entries.remove(key) {
            self.order.remove(&used);
            self.weight -= weight;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The weight of every entry held.
    pub fn weight(&self) -> usize {
        self.weight
    }
}

#[cfg(test)]
mod tests {
    use super::Lru;

    #[test]
    fn never_holds_more_than_its_capacity_and_drops_the_least_recently_used() {
        let mut lru = Lru::new(3);
        for k in ["a", "b", "c"] {
            lru.insert(k.to_owned(), k.len());
        }
        assert_eq!(lru.get("a"), Some(1), "a is now the most recently used");
        lru.insert("d".to_owned(), 1);
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.get("b"), None, "b was the least recently used");
        assert!(lru.get("a").is_some() && lru.get("c").is_some() && lru.get("d").is_some());
        lru.insert("c".to_owned(), 9);
        assert_eq!((lru.len(), lru.get("c")), (3, Some(9)), "replacing is not growing");
        for i in 0..10_000 {
            lru.insert(format!("k{i}"), i);
        }
        assert_eq!(lru.len(), 3);
        assert_eq!(lru.get("k9999"), Some(9999));
        let mut none: Lru<u8> = Lru::new(0);
        none.insert("x".to_owned(), 1);
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn never_holds_more_than_its_weight() {
        let mut lru = Lru::with_weight(100, 10);
        lru.insert_weighted("a".into(), 'a', 4);
        lru.insert_weighted("b".into(), 'b', 4);
        lru.get("a");
        lru.insert_weighted("c".into(), 'c', 4);
        assert_eq!((lru.len(), lru.weight()), (2, 8));
        assert_eq!(lru.get("b"), None, "b was the least recently used");
        lru.insert_weighted("a".into(), 'A', 1);
        assert_eq!(
            (lru.get("a"), lru.weight()),
            (Some('A'), 5),
            "a replaced entry gives back its weight"
        );
        lru.insert_weighted("huge".into(), 'h', 11);
        assert_eq!(
            (lru.get("huge"), lru.len()),
            (None, 2),
            "heavier than the bound: not kept, nothing dropped"
        );
        for i in 0..1_000 {
            lru.insert_weighted(format!("k{i}"), 'k', 3);
            assert!(lru.weight() <= 10);
        }
    }
}
