//! A mock upstream that speaks the OpenAI, Anthropic and Gemini APIs with scripted faults. Used by the tests, the benchmark
//! and `apiproxy demo`; the `mock-upstream` binary runs it stand-alone.
//!
//! Faults are scripted over HTTP: `PUT /_mock/fault` with a [`Fault`] applies it to the next chat
//! requests (all of them, or `times` of them), `DELETE /_mock/fault` clears it, and
//! `GET /_mock/stats` tells how many requests arrived and what the last one looked like, and how
//! many streamed answers ran to their end or were dropped by the client before it.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use parking_lot::Mutex;
use salvo::http::{HeaderValue, StatusCode};
use salvo::prelude::*;
use serde::{Deserialize, Serialize};

mod dialect;

use dialect::Dialect;
use serde_json::{Value, json};

/// A scripted misbehaviour for chat requests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Fault {
    /// Answer with this status (and `body`, or an OpenAI-style error) instead of a completion.
    pub status: Option<u16>,
    pub body: Option<String>,
    pub retry_after: Option<u64>,
    /// Wait this long before sending the response headers.
    pub delay_ms: u64,
    /// Never answer.
    pub hang: bool,
    /// Streams: cut the connection after this many events. Non-streams: cut it mid-body.
    pub drop_after_events: Option<usize>,
    /// Streams: pause this long between events.
    pub event_delay_ms: u64,
    /// Answer 200 with a body that is not JSON.
    pub invalid_json: bool,
    /// Streams: send an error event as the first event.
    pub error_event_first: bool,
    /// Streams: put a line that is not an SSE event, a comment or a `data:` line that is not JSON
    /// (in turn) before each real event.
    pub garbage_lines: bool,
    /// Answer 200 with a reply whose text is this many MiB, sent in chunks without holding it in
    /// memory: the whole JSON answer, or for streams one content event that big (between the usual
    /// preamble and end events; `event_delay_ms`, `drop_after_events` and `garbage_lines` do not
    /// apply to it).
    pub huge_body_mib: Option<u64>,
    /// Read the request, then close the connection without sending a byte of the response.
    pub reset_before_headers: bool,
    /// Not a fault: report these token counts on top of the plain ones (5 prompt tokens, one
    /// output token per word), each in the vendor's own usage fields.
    pub usage: Option<ExtraUsage>,
    /// Apply to this many requests, then clear; `None` means until cleared.
    pub times: Option<u32>,
}

/// Token counts a mock answer reports on top of its plain ones: cache reads and writes inside the
/// prompt (OpenAI and Gemini name no cache writes: they stay plain prompt tokens there), reasoning
/// inside the completion (Anthropic names no reasoning: it stays plain output there).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExtraUsage {
    pub cache_read: u64,
    pub cache_write: u64,
    pub reasoning: u64,
}

#[derive(Debug, Clone)]
pub struct MockConfig {
    pub name: String,
    pub models: Vec<String>,
    /// Words in each reply, streamed one per event.
    pub reply_words: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        MockConfig {
            name: "mock".into(),
            models: vec!["mock-model".into()],
            reply_words: 8,
        }
    }
}

struct MockState {
    config: MockConfig,
    fault: Mutex<Option<Fault>>,
    chat_requests: AtomicU64,
    model_requests: AtomicU64,
    last_request: Mutex<Option<Value>>,
    last_headers: Mutex<Value>,
    /// Streamed answers whose last byte was handed to the connection.
    streams_completed: AtomicU64,
    /// Streamed answers dropped before their end: the client (the gateway) went away. A stream the
    /// mock cuts itself (`drop_after_events`) counts as neither.
    streams_cancelled: AtomicU64,
}

impl MockState {
    /// The fault for this request, counting down `times`.
    fn take_fault(&self) -> Option<Fault> {
        let mut slot = self.fault.lock();
        let fault = slot.clone()?;
        if let Some(times) = fault.times {
            if times <= 1 {
                *slot = None;
            } else if let Some(f) = slot.as_mut() {
                f.times = Some(times - 1);
            }
        }
        Some(fault)
    }
}

struct Inject(Arc<MockState>);

#[async_trait]
impl Handler for Inject {
    async fn handle(
        &self,
        _req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(self.0.clone());
    }
}

fn state(depot: &Depot) -> Arc<MockState> {
    match depot.get_typed::<Arc<MockState>>() {
        Ok(state) => state.clone(),
        // The Inject hoop always runs first; this only guards against a mis-wired router.
        Err(_) => Arc::new(MockState::new(MockConfig::default())),
    }
}

impl MockState {
    fn new(config: MockConfig) -> Self {
        MockState {
            config,
            fault: Mutex::new(None),
            chat_requests: AtomicU64::new(0),
            model_requests: AtomicU64::new(0),
            last_request: Mutex::new(None),
            last_headers: Mutex::new(json!({})),
            streams_completed: AtomicU64::new(0),
            streams_cancelled: AtomicU64::new(0),
        }
    }
}

/// Gemini's list shape: `{"models":[{"name":"models/..."}]}`.
#[handler]
async fn list_gemini_models(depot: &mut Depot, res: &mut Response) {
    let state = state(depot);
    state.model_requests.fetch_add(1, Ordering::Relaxed);
    let models: Vec<Value> = state
        .config
        .models
        .iter()
        .map(|id| json!({"name": format!("models/{id}"), "displayName": id, "inputTokenLimit": 1_048_576, "supportedGenerationMethods": ["generateContent", "streamGenerateContent"]}))
        .collect();
    res.render(Json(json!({"models": models})));
}

#[handler]
async fn list_models(depot: &mut Depot, res: &mut Response) {
    let state = state(depot);
    state.model_requests.fetch_add(1, Ordering::Relaxed);
    let data: Vec<Value> = state
        .config
        .models
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 1_700_000_000, "owned_by": state.config.name}))
        .collect();
    res.render(Json(json!({"object": "list", "data": data})));
}

#[handler]
async fn put_fault(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    match req.parse_json::<Fault>().await {
        Ok(fault) => {
            *state(depot).fault.lock() = Some(fault);
            res.status_code(StatusCode::NO_CONTENT);
        }
        Err(e) => {
            res.status_code(StatusCode::BAD_REQUEST);
            res.render(Json(json!({"error": {"message": e.to_string()}})));
        }
    }
}

#[handler]
async fn clear_fault(depot: &mut Depot, res: &mut Response) {
    *state(depot).fault.lock() = None;
    res.status_code(StatusCode::NO_CONTENT);
}

#[handler]
async fn stats(depot: &mut Depot, res: &mut Response) {
    let state = state(depot);
    res.render(Json(json!({
        "name": state.config.name,
        "chat_requests": state.chat_requests.load(Ordering::Relaxed),
        "model_requests": state.model_requests.load(Ordering::Relaxed),
        "last_request": state.last_request.lock().clone(),
        "last_headers": state.last_headers.lock().clone(),
        "streams_completed": state.streams_completed.load(Ordering::Relaxed),
        "streams_cancelled": state.streams_cancelled.load(Ordering::Relaxed),
    })));
}

/// The dialect and model of a chat request, from its path.
/// What the mock's token counters answer, for any request: Anthropic's `/v1/messages/count_tokens`
/// and Gemini's `:countTokens`.
pub const MOCK_TOKEN_COUNT: u64 = 4242;

fn dialect_of(req: &Request, body: &Value) -> Option<(Dialect, String)> {
    let path = req.uri().path();
    if path.ends_with("/messages/count_tokens") {
        return Some((Dialect::Anthropic, body_model_of(body)));
    }
    let body_model = || body_model_of(body);
    if path.ends_with("/chat/completions") {
        return Some((Dialect::OpenAi, body_model()));
    }
    if path.ends_with("/responses") {
        return Some((Dialect::Responses, body_model()));
    }
    if path.ends_with("/messages") {
        return Some((Dialect::Anthropic, body_model()));
    }
    // /v1beta/models/{model}:generateContent or :streamGenerateContent
    let rest = path.split("/models/").nth(1)?;
    let (model, action) = rest.split_once(':')?;
    matches!(
        action,
        "generateContent" | "streamGenerateContent" | "countTokens"
    )
    .then(|| (Dialect::Gemini, model.to_string()))
}

fn body_model_of(body: &Value) -> String {
    body.get("model")
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string()
}

/// The answer of a token counter, when the path is one.
fn token_count(path: &str) -> Option<Value> {
    if path.ends_with("/messages/count_tokens") {
        Some(json!({"input_tokens": MOCK_TOKEN_COUNT}))
    } else if path.ends_with(":countTokens") {
        Some(json!({"totalTokens": MOCK_TOKEN_COUNT}))
    } else {
        None
    }
}

#[handler]
async fn chat(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let state = state(depot);
    state.chat_requests.fetch_add(1, Ordering::Relaxed);
    // Every header as it arrived (the last value of a repeated one), so tests can check what the
    // gateway forwards and what it must not.
    let mut headers: serde_json::Map<String, Value> = req
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_string(), json!(value.to_str().ok()?))))
        .collect();
    headers.insert(":path".into(), json!(req.uri().to_string()));
    *state.last_headers.lock() = Value::Object(headers);
    let body: Value = match req.payload_with_max_size(64 * 1024 * 1024).await {
        Ok(bytes) => serde_json::from_slice(bytes).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    };
    *state.last_request.lock() = Some(body.clone());
    let Some((dialect, model)) = dialect_of(req, &body) else {
        res.status_code(StatusCode::NOT_FOUND);
        return res.render(Json(
            json!({"error": {"message": "mock: no such endpoint"}}),
        ));
    };
    let fault = state.take_fault().unwrap_or_default();
    if fault.hang {
        tokio::time::sleep(Duration::from_secs(24 * 3600)).await;
    }
    if fault.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
    }
    if fault.reset_before_headers {
        // A body whose first item is an error, ready at the first poll: hyper gives up the
        // connection before it flushes the status line, so the client reads an empty reply.
        res.stream(stream::iter([Err::<Bytes, _>(std::io::Error::other(
            "mock reset before headers",
        ))]));
        return;
    }
    if let Some(status) = fault.status {
        res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR));
        if let Some(seconds) = fault.retry_after {
            res.headers_mut().insert("retry-after", seconds.into());
        }
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        res.body(
            fault
                .body
                .clone()
                .unwrap_or_else(|| dialect::error_body(dialect, status, &state.config.name)),
        );
        return;
    }
    if let Some(count) = token_count(req.uri().path()) {
        return res.render(Json(count));
    }
    // Anthropic refuses fields it does not know, as OpenAI's usage ask would be.
    if dialect == Dialect::Anthropic && body.get("stream_options").is_some() {
        res.status_code(StatusCode::BAD_REQUEST);
        let message = "stream_options: Extra inputs are not permitted";
        return res.render(Json(
            json!({"type": "error", "error": {"type": "invalid_request_error", "message": message}}),
        ));
    }
    let streaming = match dialect {
        Dialect::Gemini => req.uri().path().ends_with(":streamGenerateContent"),
        _ => body.get("stream").and_then(Value::as_bool).unwrap_or(false),
    };
    if fault.invalid_json {
        let kind = if streaming {
            "text/event-stream"
        } else {
            "application/json"
        };
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static(kind));
        res.body("{not json");
        return;
    }
    let mut reply = dialect::plan(
        dialect,
        &body,
        &model,
        &state.config.name,
        state.config.reply_words,
    );
    reply.extra = fault.usage.unwrap_or_default();
    let huge = fault
        .huge_body_mib
        .map(|mib| mib.saturating_mul(1024 * 1024));
    if huge.is_some() {
        reply.words = vec![HUGE_MARKER.to_string()];
        reply.tool_call = None;
    }
    if !streaming {
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(size) = huge {
            let whole = dialect::full(dialect, &reply).to_string();
            res.stream(expand_marker(Bytes::from(whole), size));
            return;
        }
        let bytes = Bytes::from(dialect::full(dialect, &reply).to_string());
        match fault.drop_after_events {
            Some(_) => {
                let half = bytes.slice(..bytes.len() / 2);
                let parts: Vec<Result<Bytes, std::io::Error>> =
                    vec![Ok(half), Err(std::io::Error::other("mock drop"))];
                res.stream(stream::iter(parts));
            }
            None => {
                res.body(bytes);
            }
        }
        return;
    }
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let mut events: Vec<Bytes> = Vec::new();
    if fault.error_event_first {
        events.push(dialect::error_event(dialect));
    }
    events.extend(dialect::stream(dialect, &reply, include_usage));
    let headers = res.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    if let Some(size) = huge {
        let pieces: Vec<BoxStream<'static, std::io::Result<Bytes>>> = events
            .into_iter()
            .map(|event| expand_marker(event, size))
            .collect();
        res.stream(Tracked::new(state, stream::iter(pieces).flatten().boxed()));
        return;
    }
    if fault.garbage_lines {
        events = events
            .into_iter()
            .enumerate()
            .map(|(index, event)| {
                let mut with_garbage = dialect::garbage(index).to_vec();
                with_garbage.extend_from_slice(&event);
                Bytes::from(with_garbage)
            })
            .collect();
    }
    let drop_after = fault.drop_after_events;
    let delay = Duration::from_millis(fault.event_delay_ms);
    let stream = stream::unfold(
        (events.into_iter().enumerate(), false),
        move |(mut iter, ended)| async move {
            if ended {
                return None;
            }
            let (index, event) = iter.next()?;
            if drop_after.is_some_and(|n| index >= n) {
                // Let what was sent reach the client first, so "200, some events, then a drop" is
                // what the client sees, not a connection closed before the headers.
                tokio::time::sleep(Duration::from_millis(20)).await;
                return Some((Err(std::io::Error::other("mock drop")), (iter, true)));
            }
            if index > 0 && !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Some((Ok::<_, std::io::Error>(event), (iter, false)))
        },
    );
    res.stream(Tracked::new(state, stream.boxed()));
}

/// Stands for the text of a `huge_body_mib` reply until [`expand_marker`] replaces it.
const HUGE_MARKER: &str = "__MOCK_HUGE_TEXT__";

/// `bytes` as a stream of chunks, its [`HUGE_MARKER`] (if any) replaced by `size` bytes of `x`
/// made from one shared 64 KiB buffer, so the mock never holds the huge text.
fn expand_marker(bytes: Bytes, size: u64) -> BoxStream<'static, std::io::Result<Bytes>> {
    const CHUNK: usize = 64 * 1024;
    let Some(at) = bytes
        .windows(HUGE_MARKER.len())
        .position(|w| w == HUGE_MARKER.as_bytes())
    else {
        return stream::iter([Ok(bytes)]).boxed();
    };
    let prefix = bytes.slice(..at);
    let suffix = bytes.slice(at + HUGE_MARKER.len()..);
    let fill = Bytes::from(vec![b'x'; CHUNK]);
    let chunks = size.div_ceil(CHUNK as u64);
    let filler = (0..chunks).map(move |i| {
        let left = size - i * CHUNK as u64;
        fill.slice(..(left.min(CHUNK as u64) as usize))
    });
    stream::iter(
        std::iter::once(prefix)
            .chain(filler)
            .chain(std::iter::once(suffix))
            .map(Ok),
    )
    .boxed()
}

/// A streamed answer that tells the stats how it ended: completed when its last item was taken,
/// cancelled when it is dropped before that (the client went away), neither when it ends with the
/// mock's own scripted error.
struct Tracked {
    inner: BoxStream<'static, std::io::Result<Bytes>>,
    state: Arc<MockState>,
    ended: bool,
}

impl Tracked {
    fn new(state: Arc<MockState>, inner: BoxStream<'static, std::io::Result<Bytes>>) -> Self {
        Tracked {
            inner,
            state,
            ended: false,
        }
    }
}

impl Stream for Tracked {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(self.inner.poll_next_unpin(cx));
        match &item {
            None if !self.ended => {
                self.ended = true;
                self.state.streams_completed.fetch_add(1, Ordering::Relaxed);
            }
            Some(Err(_)) => self.ended = true,
            _ => {}
        }
        Poll::Ready(item)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if !self.ended {
            self.state.streams_cancelled.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[handler]
async fn not_found(res: &mut Response) {
    res.status_code(StatusCode::NOT_FOUND);
    res.render(Json(
        json!({"error": {"message": "mock: no such endpoint", "type": "invalid_request_error"}}),
    ));
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .hoop(Inject(state))
        .push(Router::with_path("v1/models").get(list_models))
        .push(Router::with_path("v1/chat/completions").post(chat))
        .push(Router::with_path("v1/responses").post(chat))
        .push(Router::with_path("v1/messages").post(chat))
        .push(Router::with_path("v1/messages/count_tokens").post(chat))
        .push(Router::with_path("v1beta/models").get(list_gemini_models))
        .push(Router::with_path("v1beta/models/{**rest}").post(chat))
        .push(
            Router::with_path("_mock/fault")
                .put(put_fault)
                .delete(clear_fault),
        )
        .push(Router::with_path("_mock/stats").get(stats))
        .push(Router::with_path("{**rest}").goal(not_found))
}

/// Binds `addr` and serves the mock in the background; returns the bound address.
pub async fn spawn(addr: &str, config: MockConfig) -> Result<SocketAddr, String> {
    let (acceptor, bound) = crate::inbound::http::bind(addr)?;
    let router = router(Arc::new(MockState::new(config)));
    tokio::spawn(async move {
        Server::new(acceptor).serve(router).await;
    });
    Ok(bound)
}
