//! What the operators' console shows of the traffic (issue 20): the overview's samples
//! (`TrafficSample`, through the `TrafficStats` port) and one record per finished proxied request
//! for the live feed (`FinishedRequest`, through the `RequestFeed` port, filled in by a
//! `watch::Watch` as the request goes).

use serde::Serialize;

/// Seconds between two samples of the overview.
pub const SAMPLE_SECONDS: u64 = 2;
/// Seconds of samples kept: 15 minutes.
pub const WINDOW_SECONDS: u64 = 900;

/// Two percentiles of a latency in one interval; `None` when nothing was measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// The proxied traffic of one sampling interval, as rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrafficSample {
    /// Unix milliseconds at the end of the interval.
    pub at: u64,
    pub requests_per_second: f64,
    /// Share of the interval's requests answered with a status >= 500 or 429 (0 when none).
    pub error_rate: f64,
    pub overhead_ms: Percentiles,
    pub upstream_ms: Percentiles,
    pub tokens_per_minute: f64,
    pub cost_per_hour_usd: f64,
}

/// Prompt and completion tokens the upstream reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TokenCounts {
    pub prompt: u64,
    pub completion: u64,
}

/// One finished proxied request, as the live feed shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FinishedRequest {
    /// Unix milliseconds when it finished (a stream: when it ended).
    pub at: u64,
    pub request_id: String,
    /// The endpoint's route, e.g. `/v1/chat/completions`.
    pub endpoint: &'static str,
    /// The virtual key's name, or `gateway` for the gateway or admin token.
    pub key: String,
    /// The logical model asked for; `None` when the request was refused before naming one.
    pub logical_model: Option<String>,
    /// The provider that answered (`None`: nobody did).
    pub provider: Option<String>,
    pub model: Option<String>,
    pub status: u16,
    pub stream: bool,
    pub attempts: u32,
    pub failovers: u32,
    /// Until the answer, or until a stream's end.
    pub latency_ms: f64,
    pub tokens: Option<TokenCounts>,
    pub cost_usd: Option<f64>,
}

impl FinishedRequest {
    /// A request that has not finished: only what is known at its start.
    pub(crate) fn pending(request_id: String, endpoint: &'static str, key: String) -> Self {
        FinishedRequest {
            at: 0,
            request_id,
            endpoint,
            key,
            logical_model: None,
            provider: None,
            model: None,
            status: 0,
            stream: false,
            attempts: 0,
            failovers: 0,
            latency_ms: 0.0,
            tokens: None,
            cost_usd: None,
        }
    }
}
