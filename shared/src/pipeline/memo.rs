//! A map that keeps at most `capacity` entries and drops the least recently used one to make
//! room: the in-process memo of callers' concept embeddings, whose keys are whatever callers
//! send. No LRU crate is in the dependency tree, and this is forty lines; a crate would be one
//! more to vet and keep current for them.

use std::collections::{BTreeMap, HashMap};

pub struct Lru<V> {
    capacity: usize,
    /// Bumped on every use; an entry's stamp is the time of its last use.
    clock: u64,
    entries: HashMap<String, (V, u64)>,
    /// Keys by the stamp of their last use: the first is the least recently used.
    order: BTreeMap<u64, String>,
}

impl<V: Clone> Lru<V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            clock: 0,
            entries: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    /// The value, marked as just used.
    pub fn get(&mut self, key: &str) -> Option<V> {
        let (value, used) = self.entries.get_mut(key)?;
        self.clock += 1;
        self.order.remove(used);
        *used = self.clock;
        self.order.insert(self.clock, key.to_owned());
        Some(value.clone())
    }

    /// Inserts or replaces `key`, first dropping least recently used entries while full.
    pub fn insert(&mut self, key: String, value: V) {
        self.clock += 1;
        if let Some((old, used)) = self.entries.get_mut(&key) {
            self.order.remove(used);
            *old = value;
            *used = self.clock;
            self.order.insert(self.clock, key);
            return;
        }
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity {
            match self.order.pop_first() {
                Some((_, oldest)) => {
                    self.entries.remove(&oldest);
                }
                None => break,
            }
        }
        self.order.insert(self.clock, key.clone());
        self.entries.insert(key, (value, self.clock));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
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
}
