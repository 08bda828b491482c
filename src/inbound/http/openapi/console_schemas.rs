//! Wire schemas of the console's data endpoints (issue 20): `GET /admin/stats` and the records of
//! `GET /admin/requests/live` (same conventions as `schemas`: doc comments are the descriptions).

use salvo::oapi::{Components, ToSchema};
use serde::{Deserialize, Serialize};

/// Registers the schemas of this module.
pub fn all(components: &mut Components) {
    let _ = ConsoleStats::to_schema(components);
    let _ = LiveRequest::to_schema(components);
}

/// The proxied traffic of the last 15 minutes, one sample every 2 s, oldest first.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ConsoleStats", example = json!({
    "interval_seconds": 2, "window_seconds": 900,
    "samples": [{"at": 1765130000000_u64, "requests_per_second": 12.5, "error_rate": 0.02,
        "overhead_ms": {"p50": 0.41, "p99": 1.2}, "upstream_ms": {"p50": 210.0, "p99": 900.0},
        "tokens_per_minute": 5400.0, "cost_per_hour_usd": 0.12}]
})))]
pub struct ConsoleStats {
    /// Seconds between two samples (2).
    pub interval_seconds: u64,
    /// Seconds of samples kept (900).
    pub window_seconds: u64,
    /// At most 450; none when the process has no metrics recorder.
    pub samples: Vec<TrafficSample>,
}

/// The proxied requests (chat completions, responses, messages, Gemini generateContent) of one
/// interval, as rates.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "TrafficSample"))]
pub struct TrafficSample {
    /// Unix milliseconds at the end of the interval.
    pub at: u64,
    /// Requests answered in the interval, per second.
    pub requests_per_second: f64,
    /// Share (0 to 1) of them answered with a status >= 500 or 429; 0 when there were none.
    pub error_rate: f64,
    /// The gateway's own time (`apiproxy_gateway_overhead_seconds`) in the interval.
    pub overhead_ms: Percentiles,
    /// Time spent waiting on upstreams (`apiproxy_upstream_duration_seconds`) in the interval.
    pub upstream_ms: Percentiles,
    /// Prompt and completion tokens (`apiproxy_tokens_total`) in the interval, per minute.
    pub tokens_per_minute: f64,
    /// Cost (`apiproxy_cost_nano_usd_total`) in the interval, per hour, in USD.
    pub cost_per_hour_usd: f64,
}

/// Milliseconds, interpolated inside the histogram's buckets; `null` when nothing was measured in
/// the interval.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "Percentiles"))]
pub struct Percentiles {
    #[salvo(schema(required))]
    pub p50: Option<f64>,
    #[salvo(schema(required))]
    pub p99: Option<f64>,
}

/// One finished proxied request: the `data` of a `request` event of `GET /admin/requests/live`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "LiveRequest", example = json!({
    "at": 1765130000123_u64, "request_id": "req_0f3c9a8e2b7d4c1a9e8f7a6b5c4d3e2f",
    "endpoint": "/v1/chat/completions", "key": "ci-bot", "logical_model": "gpt-4o",
    "provider": "openai", "model": "gpt-4o-2024-08-06", "status": 200, "stream": false,
    "attempts": 1, "failovers": 0, "latency_ms": 12.3,
    "tokens": {"prompt": 10, "completion": 20}, "cost_usd": 0.00012
})))]
pub struct LiveRequest {
    /// Unix milliseconds when it finished (a stream: when it ended).
    pub at: u64,
    /// The `X-Request-Id` it was answered with.
    pub request_id: String,
    /// `/v1/chat/completions`, `/v1/responses`, `/v1/messages`, or
    /// `/v1beta/models/{model}:generateContent` (`streamGenerateContent`; also under `/v1/models`).
    pub endpoint: String,
    /// The virtual key's name; `gateway` for the gateway or admin token.
    pub key: String,
    /// The logical model asked for (the one routed to once known); `null` when the request was
    /// refused before its body was read.
    #[salvo(schema(required))]
    pub logical_model: Option<String>,
    /// The provider that answered; `null` when none did.
    #[salvo(schema(required))]
    pub provider: Option<String>,
    /// The provider's model that answered; `null` when none did.
    #[salvo(schema(required))]
    pub model: Option<String>,
    /// The HTTP status the client got.
    pub status: u16,
    pub stream: bool,
    /// Upstream attempts made (0 when none was).
    pub attempts: u32,
    /// Attempts after the first: times the request moved on to another candidate.
    pub failovers: u32,
    /// Until the answer; for a stream, until its end.
    pub latency_ms: f64,
    /// What the upstream reported; `null` when it reported no usage.
    #[salvo(schema(required))]
    pub tokens: Option<TokenCounts>,
    /// What the request was charged; `null` when the upstream has no price.
    #[salvo(schema(required))]
    pub cost_usd: Option<f64>,
}

// `LiveRequest.tokens`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct TokenCounts {
    pub prompt: u64,
    pub completion: u64,
}
