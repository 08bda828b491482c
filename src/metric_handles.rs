//! Metric handles found once per label set and kept per thread, so a labelled update on the
//! request path is one small map lookup on borrowed labels, not the `metrics` facade's key build
//! (label strings copied into a fresh key), registry hash and lock on every update.
//!
//! Handles stay valid for the life of the process: the Prometheus recorder is installed once at
//! start and never expires series. Label values must be bounded sets (providers, models through
//! `telemetry::model_label`, endpoints, outcomes), as they already are for the registry.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::thread::LocalKey;

use hashbrown::{Equivalent, HashMap};

/// The labels a handle was registered with, owned.
#[derive(PartialEq, Eq)]
pub struct Labels<const N: usize>([Box<str>; N]);

impl<const N: usize> Hash for Labels<N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for label in &self.0 {
            state.write(label.as_bytes());
            state.write_u8(0xff);
        }
    }
}

/// The same labels, borrowed: hashes exactly as [`Labels`] does, so lookups allocate nothing.
struct Query<'a, const N: usize>(&'a [&'a str; N]);

impl<const N: usize> Hash for Query<'_, N> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for label in self.0 {
            state.write(label.as_bytes());
            state.write_u8(0xff);
        }
    }
}

impl<const N: usize> Equivalent<Labels<N>> for Query<'_, N> {
    fn equivalent(&self, key: &Labels<N>) -> bool {
        self.0
            .iter()
            .zip(&key.0)
            .all(|(query, owned)| *query == &**owned)
    }
}

/// One thread's handles for one metric, by label values.
pub type Cache<const N: usize, H> = RefCell<HashMap<Labels<N>, H>>;

/// The handle for `labels` from this thread's `cache`, registered with `register` the first time.
pub fn get<const N: usize, H: Clone>(
    cache: &'static LocalKey<Cache<N, H>>,
    labels: [&str; N],
    register: impl FnOnce() -> H,
) -> H {
    cache.with(|cache| {
        if let Some(handle) = cache.borrow().get(&Query(&labels)) {
            return handle.clone();
        }
        let handle = register();
        cache
            .borrow_mut()
            .insert(Labels(labels.map(Box::from)), handle.clone());
        handle
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    thread_local! {
        static CACHE: Cache<2, u32> = RefCell::default();
    }

    #[test]
    fn registers_once_per_label_set() {
        let registered = Cell::new(0);
        let next = || {
            registered.set(registered.get() + 1);
            registered.get()
        };
        assert_eq!(get(&CACHE, ["openai", "success"], next), 1);
        assert_eq!(get(&CACHE, ["openai", "success"], next), 1);
        assert_eq!(get(&CACHE, ["openai", "failed_over"], next), 2);
        // Label boundaries count: ("ab", "c") is not ("a", "bc").
        assert_eq!(get(&CACHE, ["ab", "c"], next), 3);
        assert_eq!(get(&CACHE, ["a", "bc"], next), 4);
        assert_eq!(get(&CACHE, ["openai", "success"], next), 1);
        assert_eq!(registered.get(), 4);
    }
}
