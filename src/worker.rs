//! Which serving worker the current thread is, and every worker runtime, for thread-per-core
//! serving: each worker is one thread with its own single-threaded runtime, its own listening
//! socket and its own upstream connection pool, so a request is accepted, proxied and answered
//! on one thread, without waking another (bench/NOTES.md, "Thread per core").

use std::cell::Cell;
use std::sync::{Mutex, OnceLock};

use tokio::runtime::Handle;

thread_local! {
    /// The worker this thread serves as; threads that are no worker (tests, helpers) count as 0.
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

fn runtimes() -> &'static Mutex<Vec<Handle>> {
    static RUNTIMES: OnceLock<Mutex<Vec<Handle>>> = OnceLock::new();
    RUNTIMES.get_or_init(|| Mutex::new(Vec::new()))
}

/// Marks the calling thread as worker `index`, running on `runtime`.
pub fn enter(index: usize, runtime: Handle) {
    INDEX.with(|cell| cell.set(index));
    if let Ok(mut all) = runtimes().lock() {
        all.push(runtime);
    }
}

/// The calling thread's worker index (0 off the workers).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Tasks alive on every worker runtime (the calling runtime's alone when no worker registered),
/// for the `apiproxy_runtime_alive_tasks` gauge.
pub fn alive_tasks() -> usize {
    let registered: Option<usize> = runtimes()
        .lock()
        .ok()
        .filter(|all| !all.is_empty())
        .map(|all| all.iter().map(|h| h.metrics().num_alive_tasks()).sum());
    registered.unwrap_or_else(|| Handle::try_current().map_or(0, |h| h.metrics().num_alive_tasks()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_is_the_worker_it_entered_as() {
        assert_eq!(index(), 0);
        let seen = std::thread::spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            enter(3, runtime.handle().clone());
            (index(), alive_tasks())
        })
        .join()
        .expect("thread");
        assert_eq!(seen, (3, 0));
        assert_eq!(index(), 0, "other threads keep their own index");
    }
}
