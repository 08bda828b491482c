//! `GET /metrics`: Prometheus text format (authenticated, like every management endpoint).

use salvo::http::HeaderValue;
use salvo::oapi::endpoint;
use salvo::prelude::*;

use super::input::state_or_500;

/// Prometheus metrics
///
/// Prometheus text exposition format: requests by endpoint and status, request-duration and
/// gateway-overhead and upstream-latency histograms, upstream attempts by provider/vendor/outcome, failovers,
/// cool-downs entered, QPS rejections, tokens in and out, store errors, open streams.
#[endpoint(
    operation_id = "getMetrics",
    tags("observability"),
    responses(
        (status_code = 200, description = "The metrics.", content(("text/plain; version=0.0.4; charset=utf-8" = String, example = json!("# TYPE apiproxy_store_errors_total counter\napiproxy_store_errors_total 0\n")))),
    ),
)]
pub async fn render(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    // Store failures are counted by the store itself; published at scrape time.
    metrics::counter!("apiproxy_store_errors_total").absolute(state.store.errors());
    // Gauges read at scrape time, so the request path pays nothing for them.
    metrics::gauge!("apiproxy_in_flight_requests").set(state.admission.in_flight() as f64);
    metrics::gauge!("apiproxy_console_subscribers").set(state.feed.subscribers() as f64);
    metrics::gauge!("apiproxy_runtime_alive_tasks").set(crate::worker::alive_tasks() as f64);
    let text = state
        .metrics_handle
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    res.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res.body(text);
}
