//! The admission limits (SPEC 2) and the count of requests in progress: plain data the state
//! holds; the hoops that enforce them are in `admission.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// `MAX_IN_FLIGHT` and `CLIENT_BODY_TIMEOUT`, and the count of requests in progress.
#[derive(Debug, Clone)]
pub struct Admission {
    /// Requests in progress (a stream until its last byte) beyond which new ones get 503.
    pub max_in_flight: usize,
    /// How long a client may take to send its whole request body.
    pub client_body_timeout: Duration,
    in_flight: Arc<AtomicUsize>,
}

impl Admission {
    pub fn new(max_in_flight: usize, client_body_timeout: Duration) -> Self {
        Admission {
            max_in_flight,
            client_body_timeout,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Requests in progress now (for `/metrics`).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// A place among the requests in progress, or `None` when all are taken.
    pub(super) fn take(&self) -> Option<Place> {
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let place = Place(self.in_flight.clone());
        (previous < self.max_in_flight).then_some(place)
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(usize::MAX, Duration::from_secs(30))
    }
}

/// One request in progress; gives its place back when dropped.
pub(super) struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_refused_past_the_limit_and_given_back_when_dropped() {
        let admission = Admission::new(2, Duration::from_secs(1));
        let first = admission.take().expect("first place");
        let second = admission.take().expect("second place");
        assert!(admission.take().is_none(), "a third request is refused");
        assert_eq!(admission.in_flight(), 2);
        drop(first);
        let third = admission.take().expect("a freed place is taken again");
        drop((second, third));
        assert_eq!(admission.in_flight(), 0);
    }
}
