//! A map whose entries expire, shared by the in-memory stores that have TTLs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::domain::ports::Clock;

pub struct ExpiringMap<V> {
    entries: Mutex<HashMap<String, (V, f64)>>,
    clock: Arc<dyn Clock>,
}

impl<V: Clone> ExpiringMap<V> {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        ExpiringMap {
            entries: Mutex::new(HashMap::new()),
            clock,
        }
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
