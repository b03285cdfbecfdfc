//! Call counters: requests received per action, and the busiest second per action — the most
//! requests of one action that arrived within any one second (a sliding window, the way a
//! per-second quota is judged), so a benchmark can tell whether a client stayed under a rate.
//! Pure: callers pass the arrival instant.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Distinct counter keys at most (unknown actions share one key, so this is never reached in
/// practice; it bounds the maps anyway).
const MAX_COUNTER_KEYS: usize = 64;

/// Arrivals of one action kept for the sliding window at most: a client sending more than
/// this many calls of one action within a second is reported at this figure (a flood that
/// size is far past any quota anyway), so memory stays bounded.
pub const MAX_WINDOW_CALLS: usize = 100_000;

const SECOND: Duration = Duration::from_secs(1);

/// One action's counts.
#[derive(Default)]
struct ActionCalls {
    total: u64,
    /// Arrivals within the last second, oldest first.
    window: VecDeque<Instant>,
    busiest: u64,
}

/// Per-action call counts and busiest seconds.
#[derive(Default)]
pub(crate) struct CallCounters {
    by_action: BTreeMap<String, ActionCalls>,
}

impl CallCounters {
    /// Counts one request of `key` arriving at `at`.
    pub(crate) fn count(&mut self, key: &str, at: Instant) {
        if self.by_action.len() >= MAX_COUNTER_KEYS && !self.by_action.contains_key(key) {
            return;
        }
        let a = self.by_action.entry(key.to_string()).or_default();
        a.total += 1;
        while a
            .window
            .front()
            .is_some_and(|t| at.saturating_duration_since(*t) >= SECOND)
        {
            a.window.pop_front();
        }
        if a.window.len() >= MAX_WINDOW_CALLS {
            a.window.pop_front();
        }
        a.window.push_back(at);
        a.busiest = a.busiest.max(a.window.len() as u64);
    }

    fn per_action(&self, f: impl Fn(&ActionCalls) -> u64) -> BTreeMap<String, u64> {
        self.by_action
            .iter()
            .map(|(k, a)| (k.clone(), f(a)))
            .collect()
    }

    /// Requests per action.
    pub(crate) fn totals(&self) -> BTreeMap<String, u64> {
        self.per_action(|a| a.total)
    }

    /// Requests of one action.
    pub(crate) fn total(&self, key: &str) -> u64 {
        self.by_action.get(key).map_or(0, |a| a.total)
    }

    /// The most requests of each action that arrived within one second.
    pub(crate) fn busiest_seconds(&self) -> BTreeMap<String, u64> {
        self.per_action(|a| a.busiest)
    }

    /// The most requests of `key` that arrived within one second (0 if none).
    pub(crate) fn busiest_second(&self, key: &str) -> u64 {
        self.by_action.get(key).map_or(0, |a| a.busiest)
    }

    /// Zeroes every counter.
    pub(crate) fn clear(&mut self) {
        self.by_action.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busiest_second_is_a_sliding_window() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut c = CallCounters::default();
        // At 1,250 ms the last second holds the calls of 300, 400, 1,200 and 1,250 ms.
        for t in [0, 300, 400, 1_200, 1_250] {
            c.count("A", ms(t));
        }
        c.count("B", ms(0));
        assert_eq!(c.total("A"), 5);
        assert_eq!(c.busiest_second("A"), 4);
        assert_eq!(c.busiest_second("B"), 1);
        assert_eq!(c.busiest_second("C"), 0);
        // Calls a second or more apart never share a window.
        let mut spaced = CallCounters::default();
        for t in [0, 1_000, 2_000, 3_000] {
            spaced.count("A", ms(t));
        }
        assert_eq!(spaced.busiest_second("A"), 1);
        c.clear();
        assert_eq!(c.busiest_seconds(), BTreeMap::new());
    }
}
