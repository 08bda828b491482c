//! `X-Request-Id` on every response (the client's when it sent a sane one, else a fresh one), and
//! the DEBUG access log with credentials redacted.

use std::time::Instant;

use salvo::http::HeaderValue;
use salvo::prelude::*;

pub const HEADER: &str = "x-request-id";

/// Headers whose values are credentials: never logged.
const SENSITIVE: [&str; 6] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
    "set-cookie",
    "proxy-authorization",
];

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
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_sane(v))
        .map(str::to_string)
        .unwrap_or_else(|| format!("req_{:032x}", rand::random::<u128>()));
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HEADER, value);
    }
    // Off the hot path unless DEBUG is on.
    let debug = tracing::enabled!(tracing::Level::DEBUG);
    let started = debug.then(Instant::now);
    let headers = debug.then(|| redacted_headers(req.headers()));
    ctrl.call_next(req, depot, res).await;
    if let (Some(started), Some(headers)) = (started, headers) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
