//! Bookkeeping that must not make the client wait (recorded attempts, settled spending).

/// Runs bookkeeping without making the client wait: a write that completes at once (the
/// in-memory stores) is done inline, saving a task and a cross-thread wake-up per request; one
/// that would wait (a Redis round trip) continues as a background task.
pub(super) fn settle_or_spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if work.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(work);
    }
}
