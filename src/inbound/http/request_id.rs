//! Around every request: `X-Request-Id` (the client's when it sent a sane one, else a fresh one),
//! request metrics (count, latency, the gateway's own overhead) and the DEBUG access log with
//! credentials redacted.

use std::time::Instant;

use metrics::{Counter, Histogram};
use salvo::http::HeaderValue;
use salvo::prelude::*;
use tracing::Instrument;

use super::header_names as names;
use crate::metric_handles::{self, Cache};

/// Headers whose values are credentials: never logged.
const SENSITIVE: [&str; 6] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

/// `req_` and 32 random hex digits, written by hand (`format!` was about 900 instructions on
/// every request that brought no id of its own).
fn fresh_id() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = rand::random::<u128>();
    let mut id = String::with_capacity(36);
    id.push_str("req_");
    id.extend(
        (0..32)
            .rev()
            .map(|i| char::from(HEX[((random >> (i * 4)) & 0xf) as usize])),
    );
    id
}

fn is_sane(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's headers for the log, credentials replaced by `[redacted]`.
pub fn redacted_headers(headers: &salvo::http::HeaderMap) -> String {
    headers
        .iter()
        .map(|(name, value)| {
            let shown = if SENSITIVE.contains(&name.as_str()) {
                "[redacted]".to_string()
            } else {
                String::from_utf8_lossy(value.as_bytes())
                    .chars()
                    .take(200)
                    .collect()
            };
            format!("{name}: {shown}")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[handler]
pub async fn request_id(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let id = req
        .headers()
        .get(names::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_string)
        .unwrap_or_else(fresh_id);
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(names::X_REQUEST_ID, value);
    }
    let started = Instant::now();
    // Off the hot path unless DEBUG is on.
    let headers = tracing::enabled!(tracing::Level::DEBUG).then(|| redacted_headers(req.headers()));
    // One span per request; the chat handlers fill in the model, provider and attempts.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        logical_model = tracing::field::Empty,
        provider = tracing::field::Empty,
        attempts = tracing::field::Empty
    );
    ctrl.call_next(req, depot, res).instrument(span).await;
    record(req.uri().path(), res, started);
    if let Some(headers) = headers {
        tracing::debug!(
            request_id = %id,
            method = %req.method(),
            path = req.uri().path(),
            status = res.status_code.map_or(200, |s| s.as_u16()),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            headers = %headers,
            "request"
        );
    }
}

/// Gemini's generation paths (`/v1beta/models/{model}:generateContent`, also under `/v1/`): one
/// label each, the model left out, apart from the model lists they share a prefix with.
const GEMINI_GENERATE: &str = "/v1beta/models/*:generateContent";
const GEMINI_STREAM: &str = "/v1beta/models/*:streamGenerateContent";

/// A low-cardinality name for the endpoint (ids in paths would explode the label set).
fn endpoint(path: &str) -> &'static str {
    if path.starts_with("/v1beta/models/") || path.starts_with("/v1/models/") {
        if path.ends_with(":generateContent") {
            return GEMINI_GENERATE;
        }
        if path.ends_with(":streamGenerateContent") {
            return GEMINI_STREAM;
        }
    }
    const KNOWN: [&str; 17] = [
        "/v1beta/models",
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/messages",
        "/v1/models",
        "/v1/usage",
        "/models",
        "/keys",
        "/usage",
        "/health",
        "/metrics",
        "/providers",
        "/logical-models",
        "/routing/decide",
        "/routing/sessions",
        "/context",
        "/admin/reload",
    ];
    KNOWN
        .into_iter()
        .find(|known| {
            path.strip_prefix(known)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        .unwrap_or("other")
}

thread_local! {
    static REQUESTS: Cache<2, Counter> = Default::default();
    static DURATION: Cache<1, Histogram> = Default::default();
    static UPSTREAM: Cache<1, Histogram> = Default::default();
    static OVERHEAD: Cache<1, Histogram> = Default::default();
}

fn record(path: &str, res: &Response, started: Instant) {
    let endpoint = endpoint(path);
    let elapsed = started.elapsed().as_secs_f64();
    let status = res.status_code.unwrap_or(StatusCode::OK);
    metric_handles::get(&REQUESTS, [endpoint, status.as_str()], || {
        metrics::counter!("apiproxy_requests_total", "endpoint" => endpoint, "status" => status.as_str().to_string())
    })
    .increment(1);
    metric_handles::get(
        &DURATION,
        [endpoint],
        || metrics::histogram!("apiproxy_request_duration_seconds", "endpoint" => endpoint),
    )
    .record(elapsed);
    // Until the answer (or a stream's first byte) minus the time spent waiting on upstreams.
    let upstream_ms = res
        .headers()
        .get(names::X_APIPROXY_UPSTREAM_MS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<f64>().ok());
    if let Some(upstream_ms) = upstream_ms {
        metric_handles::get(
            &UPSTREAM,
            [endpoint],
            || metrics::histogram!("apiproxy_upstream_duration_seconds", "endpoint" => endpoint),
        )
        .record(upstream_ms / 1000.0);
        let overhead = (elapsed - upstream_ms / 1000.0).max(0.0);
        metric_handles::get(
            &OVERHEAD,
            [endpoint],
            || metrics::histogram!("apiproxy_gateway_overhead_seconds", "endpoint" => endpoint),
        )
        .record(overhead);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_id_is_req_and_32_hex_digits_and_differs_each_time() {
        let (a, b) = (fresh_id(), fresh_id());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 36, "{id}");
            let hex = id.strip_prefix("req_").expect("req_ prefix");
            assert!(
                hex.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
                "{id}"
            );
            assert!(is_sane(&id));
        }
    }

    #[test]
    fn endpoints_are_named_without_their_ids() {
        assert_eq!(endpoint("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(endpoint("/providers/openai/health"), "/providers");
        assert_eq!(endpoint("/routing/sessions/abc"), "/routing/sessions");
        assert_eq!(endpoint("/keys/key_1/rotate"), "/keys");
        assert_eq!(endpoint("/admin/reload"), "/admin/reload");
        assert_eq!(
            endpoint("/v1beta/models/gemini-2.5-pro:generateContent"),
            "/v1beta/models/*:generateContent"
        );
        assert_eq!(
            endpoint("/v1/models/gemini-2.5-pro:streamGenerateContent"),
            "/v1beta/models/*:streamGenerateContent"
        );
        assert_eq!(endpoint("/v1beta/models/gemini-2.5-pro"), "/v1beta/models");
        assert_eq!(endpoint("/v1/chat/completionsX"), "other");
        assert_eq!(endpoint("/nothing"), "other");
    }

    #[test]
    fn credentials_are_redacted_in_logged_headers() {
        let mut headers = salvo::http::HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer secret-token"),
        );
        headers.insert("x-api-key", HeaderValue::from_static("secret-key"));
        headers.insert("x-goog-api-key", HeaderValue::from_static("secret-goog"));
        headers.insert("cookie", HeaderValue::from_static("session=secret"));
        headers.insert("user-agent", HeaderValue::from_static("curl/8"));
        let shown = redacted_headers(&headers);
        assert!(!shown.contains("secret"), "{shown}");
        assert!(
            shown.contains("user-agent: curl/8") && shown.contains("authorization: [redacted]"),
            "{shown}"
        );
    }
}
