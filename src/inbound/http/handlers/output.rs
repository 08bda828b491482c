//! Writing answers, shared by every inference handler: the served-by headers, event streams
//! (the domain's stream pieces written in the client's format), and one table from `ChatError` to
//! status, type, code and message, rendered in the OpenAI or the Anthropic error shape.

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use salvo::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use salvo::http::{HeaderName, HeaderValue, StatusCode};
use salvo::prelude::*;
use serde_json::{Value, json};

use crate::domain::exchange::Dialect;
use crate::domain::failover::AllFailed;
use crate::domain::metering::{Allowance, Limit};
use crate::domain::service::chat::{ChatError, KeyRefusal, Relayed, ServedBy};
use crate::domain::watch::{Answered, Watch};
use crate::inbound::http::ApiError;
use crate::inbound::http::header_names as names;
use crate::protocol::{self as wire, anthropic, gemini, openai};

/// Tells the console's record of a watched request how it was answered: the status and who
/// answered, read back from the response (every answer and error writes them the same way). The
/// record is published when its last holder lets go (a stream's, when the stream ends).
pub fn watched(watch: Option<std::sync::Arc<Watch>>, res: &Response) {
    let Some(watch) = watch else {
        return;
    };
    let header = |name: HeaderName| res.headers().get(name).and_then(|v| v.to_str().ok());
    watch.answered(Answered {
        status: res.status_code.map_or(200, |s| s.as_u16()),
        provider: header(names::X_APIPROXY_PROVIDER).map(str::to_string),
        model: header(names::X_APIPROXY_MODEL).map(str::to_string),
        attempts: header(names::X_APIPROXY_ATTEMPTS)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    });
}

pub fn served_headers(res: &mut Response, served: &ServedBy) {
    let span = tracing::Span::current();
    span.record("provider", served.provider_id.as_str());
    span.record("attempts", served.attempts);
    let headers = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&served.provider_id) {
        headers.insert(names::X_APIPROXY_PROVIDER, v);
    }
    if let Ok(v) = HeaderValue::from_str(&served.model_id) {
        headers.insert(names::X_APIPROXY_MODEL, v);
    }
    headers.insert(names::X_APIPROXY_ATTEMPTS, served.attempts.into());
    // Lets clients (and the overhead histogram) tell the gateway's own time apart.
    if let Ok(value) = HeaderValue::from_str(&millis_text(served.upstream_ms)) {
        headers.insert(names::X_APIPROXY_UPSTREAM_MS, value);
    }
    if let Some(allowance) = &served.limits {
        limit_headers(res, allowance);
    }
}

/// Milliseconds with three decimals (`12.345`), on every answer: written by hand, since `{:.3}`
/// was about 1,200 instructions a call. Out-of-range values (never seen) go through `format!`.
fn millis_text(ms: f64) -> String {
    if !(0.0..1e12).contains(&ms) {
        return format!("{ms:.3}");
    }
    let micros = (ms * 1000.0).round() as u64;
    let (whole, fraction) = (micros / 1000, micros % 1000);
    let mut digits = [0u8; 16];
    let mut start = digits.len();
    let mut rest = whole;
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let mut text = String::with_capacity(digits.len() - start + 4);
    text.extend(digits[start..].iter().map(|&d| char::from(d)));
    text.push('.');
    text.extend(
        [fraction / 100, fraction / 10, fraction].map(|n| char::from(b'0' + (n % 10) as u8)),
    );
    text
}

/// OpenAI's `x-ratelimit-*` headers for a key with a requests or tokens limit (SPEC 3.1). Names
/// are made once and numbers written without `fmt`: this runs on every answer to such a key.
fn limit_headers(res: &mut Response, allowance: &Allowance) {
    use salvo::http::HeaderName;
    const LIMIT_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-limit-requests");
    const REMAINING_REQUESTS: HeaderName =
        HeaderName::from_static("x-ratelimit-remaining-requests");
    const RESET_REQUESTS: HeaderName = HeaderName::from_static("x-ratelimit-reset-requests");
    const LIMIT_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-limit-tokens");
    const REMAINING_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-remaining-tokens");
    const RESET_TOKENS: HeaderName = HeaderName::from_static("x-ratelimit-reset-tokens");
    let headers = res.headers_mut();
    if let Some(rpm) = allowance.rpm {
        headers.insert(LIMIT_REQUESTS, u64::from(rpm).into());
        headers.insert(REMAINING_REQUESTS, allowance.requests_remaining.into());
        if let Ok(value) = HeaderValue::from_str(&reset(allowance.requests_reset)) {
            headers.insert(RESET_REQUESTS, value);
        }
    }
    if let Some(tpm) = allowance.tpm {
        headers.insert(LIMIT_TOKENS, tpm.into());
        headers.insert(REMAINING_TOKENS, allowance.tokens_remaining.into());
        if let Ok(value) = HeaderValue::from_str(&reset(allowance.tokens_reset)) {
            headers.insert(RESET_TOKENS, value);
        }
    }
}

/// A reset time the way OpenAI writes it: `20ms`, `12s`, `6m0s`.
fn reset(seconds: f64) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    match ms {
        0..1000 => format!("{ms}ms"),
        1000..60_000 => format!("{}s", ms.div_ceil(1000)),
        _ => {
            let secs = ms.div_ceil(1000);
            format!("{}m{}s", secs / 60, secs % 60)
        }
    }
}

/// A whole JSON answer with the upstream's status.
pub fn json_answer(res: &mut Response, served: &ServedBy, status: u16, body: Bytes) {
    served_headers(res, served);
    res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    res.body(body);
}

/// Starts an event stream: the served-by headers, the SSE headers, then the events.
pub fn stream_events(res: &mut Response, served: &ServedBy, events: BoxStream<'static, Bytes>) {
    served_headers(res, served);
    send_events(res, events);
}

/// Answers with a server-sent event stream: never cached, never buffered by a proxy in front
/// (`X-Accel-Buffering: no` for nginx).
pub fn send_events(res: &mut Response, events: impl Stream<Item = Bytes> + Send + 'static) {
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(names::X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    res.stream(events.map(Ok::<_, std::convert::Infallible>));
}

/// A stream the client gets in the upstream's own dialect: events as they are, a failure as that
/// dialect's error event (SPEC 5.5).
pub fn verbatim(
    pieces: BoxStream<'static, Relayed>,
    dialect: Dialect,
) -> BoxStream<'static, Bytes> {
    pieces
        .map(move |piece| match piece {
            Relayed::Event(bytes) => bytes,
            Relayed::Failed(reason) => wire::error_event(dialect, &reason),
            Relayed::Resumed {
                provider_id,
                attempts,
            } => resumed_marker(&provider_id, attempts),
        })
        .boxed()
}

/// What tells the client that its stream was resumed on another upstream (SPEC 5.5): an SSE
/// comment, which every SSE client skips, sent once just before the stream's end.
pub fn resumed_marker(provider_id: &str, attempts: u32) -> Bytes {
    // Provider ids come from configuration; a control character would still end the comment.
    let provider: String = provider_id.chars().filter(|c| !c.is_control()).collect();
    Bytes::from(format!(
        ": apiproxy-resumed provider={provider} attempts={attempts}\n\n"
    ))
}

/// Turns hub chunk events into another client format's events.
pub trait EventWriter: Send + 'static {
    fn push(&mut self, event: &[u8]) -> Vec<Bytes>;
    /// The hub stream ended: whatever closes the other format's stream.
    fn finish(&mut self) -> Vec<Bytes>;
}

impl EventWriter for crate::protocol::responses::ResponsesStreamWriter {
    fn push(&mut self, event: &[u8]) -> Vec<Bytes> {
        crate::protocol::responses::ResponsesStreamWriter::push(self, event)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        crate::protocol::responses::ResponsesStreamWriter::finish(self)
    }
}

impl EventWriter for anthropic::MessagesStreamWriter {
    fn push(&mut self, event: &[u8]) -> Vec<Bytes> {
        anthropic::MessagesStreamWriter::push(self, event)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        anthropic::MessagesStreamWriter::finish(self)
    }
}

/// A hub stream rewritten by `writer`; a failure reaches the writer as the hub's error event, and
/// the writer's closing events follow the last piece.
pub fn rewritten(
    pieces: BoxStream<'static, Relayed>,
    writer: impl EventWriter,
) -> BoxStream<'static, Bytes> {
    pieces
        .map(Some)
        .chain(stream::once(async { None }))
        .scan(writer, |writer, piece| {
            let out = match piece {
                Some(Relayed::Event(event)) => writer.push(&event),
                Some(Relayed::Failed(reason)) => writer.push(&openai::error_event(None, &reason)),
                // Not the writer's: a comment in any SSE format.
                Some(Relayed::Resumed {
                    provider_id,
                    attempts,
                }) => vec![resumed_marker(&provider_id, attempts)],
                None => writer.finish(),
            };
            std::future::ready(Some(stream::iter(out)))
        })
        .flatten()
        .boxed()
}

/// What a gateway error is, whatever format the client speaks.
struct ErrorRow {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    param: Option<String>,
    retry_after: Option<u64>,
}

impl ErrorRow {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        ErrorRow {
            status,
            kind,
            code,
            message,
            param: None,
            retry_after: None,
        }
    }
}

/// The table of SPEC 4.6 for the chat use case's errors; `None` for an upstream's own error,
/// which is relayed instead.
fn error_row(error: &ChatError) -> Option<ErrorRow> {
    let invalid = |message: String, param: Option<String>| ErrorRow {
        param,
        ..ErrorRow::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message,
        )
    };
    Some(match error {
        ChatError::InvalidName(e) => invalid(e.to_string(), Some(e.field.to_string())),
        ChatError::Untranslatable(reason) => invalid(
            format!(
                "{reason} (only Anthropic providers can serve this request, and none is a candidate)"
            ),
            None,
        ),
        ChatError::ModelNotFound(model) => ErrorRow {
            param: Some("model".into()),
            ..ErrorRow::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model '{model}' does not exist or no provider offers it"),
            )
        },
        ChatError::ModelDisabled(model) => ErrorRow::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "model_disabled",
            format!("the logical model '{model}' is disabled"),
        ),
        ChatError::NoCandidates(model) => ErrorRow::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "no_available_upstream",
            format!("no configured upstream is available for the logical model '{model}'"),
        ),
        ChatError::AllFailed {
            verdict:
                AllFailed::RateLimited {
                    retry_after,
                    message,
                },
            ..
        } => ErrorRow {
            retry_after: Some(*retry_after),
            ..ErrorRow::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "rate_limit_exceeded",
                message.clone(),
            )
        },
        ChatError::AllFailed {
            verdict: AllFailed::Upstream { message, .. },
            ..
        } => ErrorRow::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "all_upstreams_failed",
            message.clone(),
        ),
        ChatError::KeyRefused(refusal) => key_refusal_row(refusal),
        ChatError::UpstreamRejected { .. } => return None,
    })
}

/// A virtual key's request refused before any upstream was asked (SPEC 3.1).
fn key_refusal_row(refusal: &KeyRefusal) -> ErrorRow {
    match refusal {
        KeyRefusal::ModelNotAllowed(model) => ErrorRow {
            param: Some("model".into()),
            ..ErrorRow::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "model_not_allowed",
                format!("this API key may not use the model '{model}'"),
            )
        },
        KeyRefusal::Limited {
            limit: Limit::Budget,
            retry_after,
            ..
        } => ErrorRow {
            retry_after: *retry_after,
            ..ErrorRow::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                "insufficient_quota",
                "this API key has used up its budget for the current period".into(),
            )
        },
        KeyRefusal::Limited {
            limit, retry_after, ..
        } => {
            let what = match limit {
                Limit::Requests => "requests per minute (rpm)",
                Limit::Tokens => "tokens per minute (tpm)",
                _ => "requests in progress at once (max_parallel)",
            };
            ErrorRow {
                retry_after: *retry_after,
                ..ErrorRow::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "rate_limit_exceeded",
                    format!("this API key is over its limit of {what}; retry after the Retry-After seconds"),
                )
            }
        }
        KeyRefusal::LedgerUnavailable => ErrorRow::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "store_unavailable",
            "this API key's limits cannot be checked right now (the store is unreachable); retry shortly".into(),
        ),
    }
}

/// Headers every rendering of an error carries: who answered, how many attempts were made.
fn error_headers(res: &mut Response, error: &ChatError) {
    match error {
        ChatError::UpstreamRejected { served, .. } => served_headers(res, served),
        ChatError::AllFailed { attempts, .. } => {
            res.headers_mut()
                .insert(names::X_APIPROXY_ATTEMPTS, (*attempts).into());
        }
        ChatError::KeyRefused(KeyRefusal::Limited { allowance, .. }) => {
            limit_headers(res, allowance);
        }
        _ => {}
    }
}

/// A chat error in the OpenAI shape. An upstream's OpenAI-shaped error body is relayed as it is;
/// anything else it sent is wrapped.
pub fn write_chat_error(res: &mut Response, error: ChatError) {
    error_headers(res, &error);
    let api_error = match (error_row(&error), error) {
        (Some(row), _) => ApiError {
            param: row.param,
            retry_after: row.retry_after,
            ..ApiError::new(row.status, row.kind, row.code, row.message)
        },
        (
            None,
            ChatError::UpstreamRejected {
                status,
                body,
                message,
                ..
            },
        ) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            let relayable = serde_json::from_slice::<Value>(&body)
                .is_ok_and(|v| v.get("error").is_some_and(|e| e.is_object()));
            if relayable {
                res.status_code(status);
                res.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                res.body(body);
                return;
            }
            ApiError::new(status, "upstream_error", "upstream_rejected", message)
        }
        (None, _) => ApiError::internal(),
    };
    api_error.write(res);
}

/// Anthropic's error shape, with the status.
pub fn anthropic_error(res: &mut Response, status: StatusCode, kind: &str, message: &str) {
    res.status_code(status);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    res.render(Json(
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    ));
}

/// Anthropic's error type for a status.
fn anthropic_kind(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        _ => "api_error",
    }
}

/// A gateway error (an `ApiError`) in Anthropic's shape.
pub fn write_anthropic_api_error(res: &mut Response, error: &ApiError) {
    anthropic_error(
        res,
        error.status,
        anthropic_kind(error.status),
        &error.message,
    );
}

/// A chat error in Anthropic's shape. An upstream's own Anthropic error is relayed as it is; a hub
/// error is mapped by status.
pub fn write_anthropic_chat_error(res: &mut Response, error: ChatError) {
    error_headers(res, &error);
    match (error_row(&error), error) {
        (Some(row), _) => {
            if let Some(seconds) = row.retry_after {
                res.headers_mut().insert("retry-after", seconds.into());
            }
            // The field at fault leads the message, as Anthropic writes it.
            let message = param_first(&row.message, row.param.as_deref());
            anthropic_error(res, row.status, anthropic_kind(row.status), &message);
        }
        (
            None,
            ChatError::UpstreamRejected {
                status,
                body,
                dialect,
                ..
            },
        ) => relay_own_error(
            res,
            status,
            &body,
            dialect == Dialect::Anthropic,
            anthropic::error_from_chat,
        ),
        (None, _) => write_anthropic_api_error(res, &ApiError::internal()),
    }
}

/// `message` led by the field at fault, unless it already names it.
fn param_first(message: &str, param: Option<&str>) -> String {
    match param {
        Some(param) if !message.starts_with(param) => format!("{param}: {message}"),
        _ => message.to_string(),
    }
}

/// An upstream's non-retryable error, with its status: its own body when it is in the client's
/// format (`own_format`: the upstream speaks the client's dialect and sent an `error` object),
/// else the hub error mapped by `map` into the client's shape.
fn relay_own_error(
    res: &mut Response,
    status: u16,
    body: &[u8],
    own_format: bool,
    map: fn(u16, &[u8]) -> Value,
) {
    res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    let own = own_format
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten()
        .filter(|v| v.get("error").is_some_and(Value::is_object));
    res.render(Json(own.unwrap_or_else(|| map(status, body))));
}

/// Google's error shape, with the status.
pub fn google_error(res: &mut Response, status: StatusCode, message: &str) {
    res.status_code(status);
    res.render(Json(gemini::google_error(status.as_u16(), message)));
}

/// A gateway error (an `ApiError`) in Google's shape.
pub fn write_google_api_error(res: &mut Response, error: &ApiError) {
    let message = param_first(&error.message, error.param.as_deref());
    if let Some(seconds) = error.retry_after {
        res.headers_mut().insert("retry-after", seconds.into());
    }
    google_error(res, error.status, &message);
}

/// A chat error in Google's shape (SPEC 4.7). A Gemini upstream's own error is relayed as it is;
/// another upstream's error is mapped by status.
pub fn write_google_chat_error(res: &mut Response, error: ChatError) {
    error_headers(res, &error);
    match (error_row(&error), error) {
        (Some(row), _) => write_google_api_error(
            res,
            &ApiError {
                param: row.param,
                retry_after: row.retry_after,
                ..ApiError::new(row.status, row.kind, row.code, row.message)
            },
        ),
        (
            None,
            ChatError::UpstreamRejected {
                status,
                body,
                dialect,
                ..
            },
        ) => relay_own_error(
            res,
            status,
            &body,
            dialect == Dialect::Gemini,
            gemini::error_from_chat,
        ),
        (None, _) => write_google_api_error(res, &ApiError::internal()),
    }
}

impl EventWriter for gemini::GeminiStreamWriter {
    fn push(&mut self, event: &[u8]) -> Vec<Bytes> {
        gemini::GeminiStreamWriter::push(self, event)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        gemini::GeminiStreamWriter::finish(self)
    }
}

/// One model in Gemini's list shape.
pub fn gemini_model(id: &str) -> Value {
    json!({
        "name": format!("models/{id}"),
        "baseModelId": id,
        "displayName": id,
        "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"],
    })
}

/// The model list in Gemini's shape.
pub fn gemini_model_list<'a>(ids: impl Iterator<Item = &'a str>) -> Value {
    json!({"models": ids.map(gemini_model).collect::<Vec<_>>()})
}

#[cfg(test)]
mod tests {
    use super::millis_text;

    #[test]
    fn millis_are_written_with_three_decimals_as_format_writes_them() {
        for ms in [
            0.0,
            0.0004,
            0.0005,
            0.25,
            1.0,
            9.9995,
            12.345,
            999.999,
            1234.5678,
            86_400_000.0,
        ] {
            let expected: f64 = format!("{ms:.3}").parse().expect("a number");
            let written = millis_text(ms);
            assert_eq!(
                written.split_once('.').map(|(_, f)| f.len()),
                Some(3),
                "{written}"
            );
            let parsed: f64 = written.parse().expect("a number");
            assert!((parsed - expected).abs() <= 0.001, "{ms}: {written}");
        }
        assert_eq!(millis_text(12.3456), "12.346");
        assert_eq!(millis_text(0.0), "0.000");
        assert_eq!(millis_text(-1.0), "-1.000");
        assert_eq!(millis_text(f64::NAN), "NaN");
    }
}
