//! One module per endpoint family.

pub mod chat;
pub mod context;
pub mod docs;
pub mod health;
pub mod logical_models;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod providers;
pub mod responses;
pub mod routing;

use salvo::prelude::*;

use super::{ApiError, AppState};

/// Starts an event stream: the served-by headers, the SSE headers, then the events.
pub fn stream_events(
    res: &mut Response,
    served: &crate::domain::service::chat::ServedBy,
    events: futures_util::stream::BoxStream<'static, bytes::Bytes>,
) {
    use futures_util::StreamExt;
    use salvo::http::HeaderValue;
    chat::served_headers(res, served);
    let headers = res.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    res.stream(events.map(Ok::<_, std::convert::Infallible>));
}

/// Turns hub chunk events into another client format's events.
pub trait EventWriter: Send + 'static {
    fn push(&mut self, event: &[u8]) -> Vec<bytes::Bytes>;
    /// The hub stream ended: whatever closes the other format's stream.
    fn finish(&mut self) -> Vec<bytes::Bytes>;
}

impl EventWriter for crate::protocol::responses::ResponsesStreamWriter {
    fn push(&mut self, event: &[u8]) -> Vec<bytes::Bytes> {
        crate::protocol::responses::ResponsesStreamWriter::push(self, event)
    }
    fn finish(&mut self) -> Vec<bytes::Bytes> {
        crate::protocol::responses::ResponsesStreamWriter::finish(self)
    }
}

impl EventWriter for crate::protocol::anthropic::MessagesStreamWriter {
    fn push(&mut self, event: &[u8]) -> Vec<bytes::Bytes> {
        crate::protocol::anthropic::MessagesStreamWriter::push(self, event)
    }
    fn finish(&mut self) -> Vec<bytes::Bytes> {
        crate::protocol::anthropic::MessagesStreamWriter::finish(self)
    }
}

/// The hub events rewritten by `writer`, its closing events after the last one.
pub fn rewritten(
    events: futures_util::stream::BoxStream<'static, bytes::Bytes>,
    writer: impl EventWriter,
) -> futures_util::stream::BoxStream<'static, bytes::Bytes> {
    use futures_util::{StreamExt, stream};
    events
        .map(Some)
        .chain(stream::once(async { None }))
        .scan(writer, |writer, event| {
            let out = match event {
                Some(event) => writer.push(&event),
                None => writer.finish(),
            };
            std::future::ready(Some(stream::iter(out)))
        })
        .flatten()
        .boxed()
}

/// The client's own Anthropic headers, forwarded on native pass-through.
pub fn anthropic_headers(req: &Request) -> Vec<(String, String)> {
    ["anthropic-version", "anthropic-beta"]
        .iter()
        .filter_map(|name| {
            Some((
                name.to_string(),
                req.headers().get(*name)?.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

/// An id that becomes a store key (a path id, a session or conversation id), or a 400 naming
/// the field and the problem (SPEC 4.1).
pub fn checked_id<'a>(field: &str, id: &'a str) -> Result<&'a str, ApiError> {
    crate::domain::names::check_id(field, id)
        .map(|()| id)
        .map_err(|e| ApiError::bad_request(e.to_string(), Some(field)))
}

/// The `id` path parameter, checked like every id that reaches the store.
pub fn path_id(req: &Request) -> Result<String, ApiError> {
    let id: String = req.param("id").unwrap_or_default();
    checked_id("id", &id)?;
    Ok(id)
}

/// The shared state, or a 500 written to the response (only a mis-wired router lacks it).
pub fn state_or_500(depot: &Depot, res: &mut Response) -> Option<std::sync::Arc<AppState>> {
    let state = AppState::from_depot(depot);
    if state.is_none() {
        ApiError::internal().write(res);
    }
    state
}

/// Reads a JSON body within the size limit, as a 400 or 413 naming the problem otherwise.
pub async fn json_body(req: &mut Request, max_bytes: usize) -> Result<serde_json::Value, ApiError> {
    use salvo::http::errors::ParseError;
    let bytes = req
        .payload_with_max_size(max_bytes)
        .await
        .map_err(|e| match e {
            ParseError::PayloadTooLarge => ApiError::new(
                salvo::http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!("request body is larger than {max_bytes} bytes (MAX_REQUEST_BODY_BYTES)"),
            ),
            other => {
                ApiError::bad_request(format!("request body could not be read: {other}"), None)
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
            None,
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}"), None))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "request body must be a JSON object",
            None,
        ));
    }
    Ok(value)
}
