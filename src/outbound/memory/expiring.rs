//! A map whose entries expire, shared by the in-memory stores that have TTLs, with a bound on
//! its size: past it, the entries closest to expiry (for one TTL, the least recently written) go
//! first, so a stream of new keys cannot grow the process without limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::domain::ports::Clock;

pub struct ExpiringMap<V> {
    entries: Mutex<HashMap<String, (V, f64)>>,
    clock: Arc<dyn Clock>,
    max_entries: usize,
}

impl<V: Clone> ExpiringMap<V> {
    /// A map of at most `max_entries` keys.
    pub fn new(clock: Arc<dyn Clock>, max_entries: usize) -> Self {
        ExpiringMap {
            entries: Mutex::new(HashMap::new()),
            clock,
            max_entries: max_entries.max(1),
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Makes room for one new key: expired entries go, then, if the map is still full, the
    /// eighth closest to expiry (so the work is done once per many inserts, not on each).
    fn make_room(&self, entries: &mut HashMap<String, (V, f64)>, now: f64) {
        if entries.len() < self.max_entries {
            return;
        }
        entries.retain(|_, (_, expires_at)| *expires_at > now);
        if entries.len() < self.max_entries {
            return;
        }
        let mut expiries: Vec<f64> = entries.values().map(|(_, at)| *at).collect();
        let evict = (self.max_entries / 8).max(1).min(expiries.len());
        let (_, cutoff, _) = expiries.select_nth_unstable_by(evict - 1, f64::total_cmp);
        let cutoff = *cutoff;
        let mut left = evict;
        entries.retain(|_, (_, at)| {
            if left > 0 && *at <= cutoff {
                left -= 1;
                false
            } else {
                true
            }
        });
    }

    pub fn get(&self, key: &str) -> Option<V> {
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some((value, expires_at)) if *expires_at > now => Some(value.clone()),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn put(&self, key: &str, value: V, ttl: Duration) {
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        // Sweep expired entries now and then so abandoned keys do not pile up.
        if entries.len() >= 1024 && entries.len().is_power_of_two() {
            entries.retain(|_, (_, expires_at)| *expires_at > now);
        }
        if !entries.contains_key(key) {
            self.make_room(&mut entries, now);
        }
        entries.insert(key.to_string(), (value, now + ttl.as_secs_f64()));
    }

    /// Replaces the value with `f(current)` under one lock, so concurrent updates are not lost.
    pub fn update(&self, key: &str, ttl: Duration, f: impl FnOnce(Option<V>) -> V) {
        let now = self.clock.now();
        let mut entries = self.entries.lock();
        let current = entries
            .remove(key)
            .filter(|(_, expires_at)| *expires_at > now)
            .map(|(v, _)| v);
        if current.is_none() {
            self.make_room(&mut entries, now);
        }
        entries.insert(key.to_string(), (f(current), now + ttl.as_secs_f64()));
    }

    pub fn remove(&self, key: &str) -> bool {
        let now = self.clock.now();
        self.entries
            .lock()
            .remove(key)
            .is_some_and(|(_, expires_at)| expires_at > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ports::MockClock;

    fn map(max: usize, now: f64) -> ExpiringMap<u32> {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(now);
        ExpiringMap::new(Arc::new(clock), max)
    }

    #[test]
    fn new_keys_beyond_the_bound_push_out_the_oldest_writes() {
        let m = map(80, 1000.0);
        for i in 0..80u32 {
            m.put(&format!("k{i}"), i, Duration::from_secs(100 + u64::from(i)));
        }
        assert_eq!(m.len(), 80);
        for i in 80..10_000u32 {
            m.put(&format!("k{i}"), i, Duration::from_secs(100 + u64::from(i)));
            assert!(m.len() <= 80, "{} entries after {i}", m.len());
        }
        assert_eq!(m.get("k9999"), Some(9999), "the newest stays");
        assert_eq!(m.get("k0"), None, "the oldest went");
        // Rewriting a key that is there takes no room.
        let before = m.len();
        m.put("k9999", 1, Duration::from_secs(5));
        assert_eq!(m.len(), before);
    }

    #[test]
    fn updates_of_new_keys_are_bounded_too() {
        let m = map(16, 0.0);
        for i in 0..1000u32 {
            m.update(
                &format!("k{i}"),
                Duration::from_secs(u64::from(i) + 1),
                |_| i,
            );
            assert!(m.len() <= 16);
        }
    }
}
