//! A byte budget for what callers' free text writes to the shared cache. A caller can send
//! any text, and each new one would otherwise be a new Redis key for a day (45 s of the text
//! route once wrote 471 MB). Free text is still embedded and answered; past the budget its
//! embedding is just not shared through Redis (this process's own bounded memo keeps it).
//!
//! A token bucket: `per_minute` bytes a minute, refilled continuously, holding at most one
//! minute's worth, so a burst can write at most a minute's budget. One bucket per process
//! bounds every caller of that process together, hence each of them.

use std::sync::Mutex;
use std::time::Instant;

pub struct WriteBudget {
    per_minute: u64,
    /// Bytes that may still be written, and when that was last brought up to date.
    state: Mutex<(f64, Instant)>,
}

impl WriteBudget {
    /// A budget of `bytes` a minute; 0 writes nothing.
    pub fn per_minute(bytes: u64) -> Self {
        Self {
            per_minute: bytes,
            state: Mutex::new((bytes as f64, Instant::now())),
        }
    }

    /// Takes `bytes` from the budget if it holds them all.
    pub fn try_take(&self, bytes: u64) -> bool {
        self.try_take_at(bytes, Instant::now())
    }

    fn try_take_at(&self, bytes: u64, now: Instant) -> bool {
        let full = self.per_minute as f64;
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (left, since) = &mut *state;
        let refill = now.saturating_duration_since(*since).as_secs_f64() / 60.0 * full;
        *left = (*left + refill).min(full);
        *since = now.max(*since);
        if (bytes as f64) <= *left {
            *left -= bytes as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_minute_holds_its_budget_and_no_more() {
        let budget = WriteBudget::per_minute(6000);
        let start = Instant::now();
        assert!(budget.try_take_at(4000, start));
        assert!(!budget.try_take_at(4000, start), "only 2000 left");
        assert!(budget.try_take_at(2000, start));
        assert!(!budget.try_take_at(1, start));
        // 10 s refill a sixth of the minute's budget.
        let later = start + Duration::from_secs(10);
        assert!(budget.try_take_at(1000, later));
        assert!(!budget.try_take_at(100, later));
        // An hour of silence still holds one minute's worth.
        let much_later = start + Duration::from_secs(3600);
        assert!(budget.try_take_at(6000, much_later));
        assert!(!budget.try_take_at(1, much_later));
        assert!(!WriteBudget::per_minute(0).try_take(1));
        assert!(WriteBudget::per_minute(0).try_take(0));
    }
}
