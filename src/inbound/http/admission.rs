//! Admission at the door (SPEC 2): `MAX_IN_FLIGHT` refuses new work at once with 503 when the
//! gateway is full, rather than letting overload turn into latency for everyone; and
//! `CLIENT_BODY_TIMEOUT` cuts a client that sends its headers and then stalls mid-body, which would
//! otherwise hold its connection and a request slot for good.

use futures_util::StreamExt;
use salvo::http::body::ResBody;
use salvo::http::{Method, StatusCode};
use salvo::prelude::*;

use super::auth::write_in_clients_shape;
use super::error::ApiError;
use super::handlers::input;
use super::limits::Admission;

/// The in-flight hoop: a place per request, on every route but `/health`.
pub struct InFlight(pub Admission);

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
        let Some(place) = self.0.take() else {
            metrics::counter!("apiproxy_shed_requests_total").increment(1);
            let mut error = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "overloaded",
                format!(
                    "the gateway is at its limit of {} requests in progress (MAX_IN_FLIGHT); retry shortly",
                    self.0.max_in_flight
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
        if matches!(res.body, ResBody::Stream(_))
            && let ResBody::Stream(stream) = res.take_body()
        {
            let guarded = stream.into_inner().map(move |frame| {
                let _held = &place;
                frame
            });
            res.body(ResBody::stream(guarded));
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
