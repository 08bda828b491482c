//! `GET /metrics`: Prometheus text format (authenticated, like every management endpoint).

use salvo::http::HeaderValue;
use salvo::prelude::*;

use super::state_or_500;

#[handler]
pub async fn render(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    // Store failures are counted by the store itself; published at scrape time.
    metrics::counter!("apiproxy_store_errors_total").absolute(state.store.errors());
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
