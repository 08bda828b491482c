//! Admission at the door (SPEC 2): `MAX_IN_FLIGHT` refuses new work at once with 503 when the
//! gateway is full, rather than letting overload turn into latency for everyone; and
//! `CLIENT_BODY_TIMEOUT` cuts a client that sends its headers and then stalls mid-body, which would
//! otherwise hold its connection and a request slot for good.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use salvo::http::body::ResBody;
use salvo::http::{Method, StatusCode};
use salvo::prelude::*;

use super::auth::write_in_clients_shape;
use super::error::ApiError;
use super::handlers::input;

/// The limits this module enforces, and the count of requests in progress.
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

    /// The hoop that counts requests in progress against the limit.
    pub(super) fn hoop(&self) -> InFlight {
        InFlight {
            limit: self.max_in_flight,
            current: self.in_flight.clone(),
        }
    }
}

impl Default for Admission {
    fn default() -> Self {
        Admission::new(usize::MAX, Duration::from_secs(30))
    }
}

/// The in-flight counter and its limit; a hoop on every route but `/health`.
pub struct InFlight {
    limit: usize,
    current: Arc<AtomicUsize>,
}

impl InFlight {
    /// A place among the requests in progress, or `None` when all are taken.
    fn take(&self) -> Option<Place> {
        let previous = self.current.fetch_add(1, Ordering::AcqRel);
        let place = Place(self.current.clone());
        (previous < self.limit).then_some(place)
    }
}

/// One request in progress; gives its place back when dropped.
struct Place(Arc<AtomicUsize>);

impl Drop for Place {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl Handler for InFlight {
    async fn handle(
        &self,
        req: &mut Request,
        depot: &mut Depot,
        res: &mut Response,
        ctrl: &mut FlowCtrl,
    ) {
        // Health checks must answer while the gateway is full, or the orchestrator restarts it.
        if req.uri().path() == "/health" {
            return;
        }
        let Some(place) = self.take() else {
            metrics::counter!("apiproxy_shed_requests_total").increment(1);
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "overloaded",
                format!(
                    "the gateway is at its limit of {} requests in progress (MAX_IN_FLIGHT); retry shortly",
                    self.limit
                ),
            );
            error.retry_after = Some(1);
            write_in_clients_shape(req, res, &error);
            ctrl.skip_rest();
            return;
        };
        ctrl.call_next(req, depot, res).await;
        // A streamed answer keeps its place until its last byte is sent (or the client leaves):
        // the place moves into the body stream and is given back when the body is dropped.
        if let ResBody::Stream(_) = &res.body {
            if let ResBody::Stream(stream) = res.take_body() {
                let guarded = stream.into_inner().map(move |frame| {
                    let _held = &place;
                    frame
                });
                res.body(ResBody::stream(guarded));
            }
        }
    }
}

/// Reads the request body within `CLIENT_BODY_TIMEOUT` (and the size limit), so a stalled client
/// gets 408 instead of holding its connection; the handlers then find the body already read.
#[handler]
pub async fn read_body_in_time(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    if !matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH) {
        return;
    }
    let Some(state) = super::AppState::from_depot(depot) else {
        return;
    };
    let limit = state.admission.client_body_timeout;
    let error = match tokio::time::timeout(limit, input::payload(req, state.max_body_bytes)).await {
        Ok(Ok(_)) => return,
        Ok(Err(error)) => error,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request_error",
            "request_timeout",
            format!(
                "the request body was not received within {} s (CLIENT_BODY_TIMEOUT)",
                limit.as_secs_f64()
            ),
        ),
    };
    write_in_clients_shape(req, res, &error);
    if error.status == StatusCode::REQUEST_TIMEOUT {
        // The rest of the body may still come: the connection cannot carry another request.
        res.headers_mut().insert(
            salvo::http::header::CONNECTION,
            salvo::http::HeaderValue::from_static("close"),
        );
    }
    ctrl.skip_rest();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_refused_past_the_limit_and_given_back_when_dropped() {
        let in_flight = Admission::new(2, Duration::from_secs(1)).hoop();
        let first = in_flight.take().expect("first place");
        let second = in_flight.take().expect("second place");
        assert!(in_flight.take().is_none(), "a third request is refused");
        assert_eq!(in_flight.current.load(Ordering::Acquire), 2);
        drop(first);
        let third = in_flight.take().expect("a freed place is taken again");
        drop((second, third));
        assert_eq!(in_flight.current.load(Ordering::Acquire), 0);
    }
}
