//! The operators' console's own data (issue 20), admin only: `GET /admin/stats` (the overview's
//! traffic samples) and `GET /admin/requests/live` (finished proxied requests, as server-sent
//! events).

use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::json;

use super::input::state_or_500;
use crate::domain::console::{SAMPLE_SECONDS, WINDOW_SECONDS};
use crate::domain::ports::FeedItem;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::{console_schemas, schemas};

/// How often an idle feed sends a comment, so that proxies and the browser keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Traffic samples for the console
///
/// The proxied requests (chat completions, responses, messages, Gemini generateContent) of the
/// last 15 minutes, one sample every 2 s, oldest first: requests per second, error rate, the
/// gateway's overhead and the upstream latency (p50 and p99, interpolated inside the `/metrics`
/// histograms' buckets), tokens per minute and cost per hour. The samples are taken from the
/// process's own metrics by a background task, whether or not anyone reads them; the request
/// path pays nothing for them. `since` returns only the samples after it (a page polling every
/// 2 s asks for what it has not seen).
#[endpoint(
    operation_id = "getConsoleStats",
    tags("console"),
    parameters(
        ("since" = Option<u64>, Query, description = "Unix milliseconds: only the samples whose `at` is later.", example = json!(1765130000000_u64)),
    ),
    responses(
        (status_code = 200, description = "The samples.", body = console_schemas::ConsoleStats),
        (status_code = 400, description = "`since` is not a whole number of milliseconds (`param: since`).", body = schemas::Error),
    ),
)]
pub async fn stats(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let since = match req.query::<String>("since") {
        None => None,
        Some(text) => match text.trim().parse::<u64>() {
            Ok(since) => Some(since),
            Err(_) => {
                return ApiError::bad_request(
                    format!("since: '{text}' is not a time in unix milliseconds"),
                    Some("since"),
                )
                .write(res);
            }
        },
    };
    res.render(Json(json!({
        "interval_seconds": SAMPLE_SECONDS,
        "window_seconds": WINDOW_SECONDS,
        "samples": state.traffic.samples_since(since),
    })));
}

/// Live feed of finished requests
///
/// Server-sent events: one `request` event per proxied request that finishes while the feed is
/// open (`data`: a `LiveRequest` object, on one line); a stream's event is sent when the stream
/// ends. Nothing is kept for later: a subscriber sees the requests that finish after it
/// connected. A `: keep-alive` comment comes at once and every 15 s; a subscriber that falls
/// more than 1024 requests behind skips the oldest and gets a `: skipped <n> requests` comment.
/// While nobody subscribes, the proxy path builds no record at all. Browsers' `EventSource`
/// cannot send the admin token: read it with `fetch()` and a stream reader.
#[endpoint(
    operation_id = "getLiveRequests",
    tags("console"),
    responses(
        (status_code = 200, description = "The event stream; each event's `data` is a `LiveRequest`.", content(("text/event-stream" = String, example = json!(": keep-alive\n\nevent: request\ndata: {\"at\":1765130000123,\"request_id\":\"req_0f3c9a8e2b7d4c1a9e8f7a6b5c4d3e2f\",\"endpoint\":\"/v1/chat/completions\",\"key\":\"gateway\",\"logical_model\":\"gpt-4o\",\"provider\":\"openai\",\"model\":\"gpt-4o-2024-08-06\",\"status\":200,\"stream\":false,\"attempts\":1,\"failovers\":0,\"latency_ms\":12.3,\"tokens\":{\"prompt\":10,\"completion\":20},\"cost_usd\":0.00012}\n\n")))),
    ),
)]
pub async fn live(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    // The subscription lives in the body: when the client goes away, the server drops the body,
    // and with it the subscription.
    let records = state.feed.subscribe().map(|item| match item {
        FeedItem::Request(record) => match serde_json::to_string(&*record) {
            Ok(json) => Bytes::from(format!("event: request\ndata: {json}\n\n")),
            Err(e) => Bytes::from(format!(": a record could not be written: {e}\n\n")),
        },
        FeedItem::Skipped(n) => Bytes::from(format!(
            ": skipped {n} requests (this subscriber fell behind)\n\n"
        )),
    });
    let keep_alive = stream::unfold(tokio::time::interval(KEEP_ALIVE), |mut ticks| async move {
        ticks.tick().await;
        Some((Bytes::from_static(b": keep-alive\n\n"), ticks))
    });
    super::output::send_events(res, stream::select(records, keep_alive));
}
