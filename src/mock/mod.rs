//! A mock upstream that speaks the OpenAI, Anthropic and Gemini APIs with scripted faults. Used by the tests, the benchmark
//! and `apiproxy demo`; the `mock-upstream` binary runs it stand-alone.
//!
//! Faults are scripted over HTTP: `PUT /_mock/fault` with a [`Fault`] applies it to the next chat
//! requests (all of them, or `times` of them), `DELETE /_mock/fault` clears it, and
//! `GET /_mock/stats` tells how many requests arrived and what the last one looked like.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream;
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
    /// Apply to this many requests, then clear; `None` means until cleared.
    pub times: Option<u32>,
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
    })));
}

/// The dialect and model of a chat request, from its path.
fn dialect_of(req: &Request, body: &Value) -> Option<(Dialect, String)> {
    let path = req.uri().path();
    let body_model = || {
        body.get("model")
            .and_then(Value::as_str)
            .unwrap_or("mock-model")
            .to_string()
    };
    if path.ends_with("/chat/completions") {
        return Some((Dialect::OpenAi, body_model()));
    }
    if path.ends_with("/messages") {
        return Some((Dialect::Anthropic, body_model()));
    }
    // /v1beta/models/{model}:generateContent or :streamGenerateContent
    let rest = path.split("/models/").nth(1)?;
    let (model, action) = rest.split_once(':')?;
    matches!(action, "generateContent" | "streamGenerateContent")
        .then(|| (Dialect::Gemini, model.to_string()))
}

#[handler]
async fn chat(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let state = state(depot);
    state.chat_requests.fetch_add(1, Ordering::Relaxed);
    let headers: serde_json::Map<String, Value> = [
        "authorization",
        "x-api-key",
        "x-goog-api-key",
        "anthropic-version",
        "anthropic-beta",
        "user-agent",
        "accept",
        "content-type",
        "origin",
        "referer",
        "x-team",
    ]
    .iter()
    .filter_map(|name| {
        Some((
            name.to_string(),
            json!(req.headers().get(*name)?.to_str().ok()?),
        ))
    })
    .collect();
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
    let reply = dialect::plan(
        dialect,
        &body,
        &model,
        &state.config.name,
        state.config.reply_words,
    );
    if !streaming {
        let bytes = Bytes::from(dialect::full(dialect, &reply).to_string());
        res.headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
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
    let headers = res.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    res.stream(stream);
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
        .push(Router::with_path("v1/messages").post(chat))
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
