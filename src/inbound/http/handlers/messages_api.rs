//! The Anthropic Messages exchange (SPEC 4.4), shared by `POST /v1/messages` and Claude-style
//! bodies on `/v1/chat/completions`: Anthropic-vendor providers get the client's request as it is
//! (only `model` rewritten, the client's `anthropic-version`/`anthropic-beta` forwarded); others get
//! it translated, and their answers are translated back.

use std::sync::Arc;

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::{SessionKey, report_dropped};
use super::output::{
    anthropic_error, json_answer, rewritten, served_headers, stream_events, verbatim,
    write_anthropic_chat_error,
};
use crate::domain::exchange::{Dialect, NativeRequest};
use crate::domain::keys::VirtualKey;
use crate::domain::service::chat::{ChatReply, ChatRequest};
use crate::domain::watch::Watch;
use crate::inbound::http::AppState;
use crate::protocol::anthropic::{self, MessagesStreamWriter};
use crate::protocol::openai::ChatBody;
use crate::protocol::{Dropped, estimate_tokens};

/// A 400 in Anthropic's shape.
pub fn invalid(res: &mut Response, message: &str) {
    anthropic_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    );
}

/// A Messages request read for the chat use case: the request (hub form and native form), what
/// the hub form left out, and the model the client named.
struct Read {
    chat: ChatRequest,
    /// The hub form as JSON (for the token estimate).
    hub: Value,
    dropped: Dropped,
    model: String,
}

/// Takes `max_tokens_to_sample` out of the body (Anthropic's Messages API refuses it) and makes it
/// `max_tokens` when that is absent; the new body's bytes when there was one.
fn rename_max_tokens_to_sample(request: &mut Value) -> Option<Vec<u8>> {
    let map = request.as_object_mut()?;
    let limit = map.remove("max_tokens_to_sample")?;
    if !map.contains_key("max_tokens") {
        map.insert("max_tokens".into(), limit);
    }
    serde_json::to_vec(request).ok()
}

/// Reads a Messages request given as raw JSON, or the 400 message naming the problem.
fn read(
    bytes: &[u8],
    headers: Vec<(String, String)>,
    session: SessionKey,
    needs_max_tokens: bool,
) -> Result<Read, String> {
    let mut request: Value = match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => return Err("request body must be a JSON object".into()),
        Err(e) => return Err(format!("request body is not valid JSON: {e}")),
    };
    // A Claude-style body from the Text Completions era names the limit `max_tokens_to_sample`
    // (SPEC 4.2); the Messages API knows only `max_tokens`, so the body is rewritten once here.
    let renamed = rename_max_tokens_to_sample(&mut request);
    let bytes = renamed.as_deref().unwrap_or(bytes);
    if needs_max_tokens && !request.get("max_tokens").is_some_and(Value::is_u64) {
        return Err("max_tokens: a positive integer is required".into());
    }
    // Content only Anthropic understands has no hub form: it can still go to Anthropic providers.
    let mut dropped = Dropped::new();
    let (hub, untranslatable) = match anthropic::chat_request_from_messages(&request, &mut dropped)
    {
        Ok(chat) => (chat, None),
        Err(e) => {
            let at = e.param.map(|p| format!("{p}: ")).unwrap_or_default();
            let model = request.get("model").cloned().unwrap_or(Value::Null);
            (
                json!({"model": model, "messages": []}),
                Some(format!("{at}{}", e.message)),
            )
        }
    };
    // Thinking the gateway made from another vendor's reasoning cannot go to Anthropic.
    let native_bytes = anthropic::strip_translated_thinking(bytes);
    let (hub_body, native) = match (
        ChatBody::parse(hub.to_string().as_bytes()),
        ChatBody::parse_native(native_bytes.as_deref().unwrap_or(bytes)),
    ) {
        (Ok(hub), Ok(native)) => (hub, native),
        (Err(e), _) | (_, Err(e)) => return Err(e.message),
    };
    let stream = request
        .get("stream")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let model = request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let native = Some(Arc::new(NativeRequest {
        dialect: Dialect::Anthropic,
        body: Arc::new(native),
        headers,
        untranslatable,
    }));
    let chat = ChatRequest {
        body: Arc::new(hub_body),
        stream,
        session_id: session.id,
        history: session.history,
        native,
        caller: None,
        stream_resume: false,
        watch: None,
    };
    Ok(Read {
        chat,
        hub,
        dropped,
        model,
    })
}

/// Counts a Messages request's input tokens (`POST /v1/messages/count_tokens`, SPEC 4.8): by the
/// first candidate whose vendor has a counter, else an estimate. `X-APIProxy-Token-Count` says
/// which (`counted` or `estimated`).
pub async fn count(
    state: &Arc<AppState>,
    bytes: &[u8],
    headers: Vec<(String, String)>,
    session: SessionKey,
    caller: Option<Arc<VirtualKey>>,
    res: &mut Response,
) {
    let mut read = match read(bytes, headers, session, false) {
        Ok(read) => read,
        Err(message) => return invalid(res, &message),
    };
    read.chat.caller = caller;
    let (tokens, how) = match state.chat.count_tokens(&read.chat).await {
        Ok(Some(tokens)) => (tokens, "counted"),
        Ok(None) => (estimate_tokens(&read.hub), "estimated"),
        Err(error) => return write_anthropic_chat_error(res, error),
    };
    res.add_header("x-apiproxy-token-count", how, true).ok();
    res.render(Json(json!({"input_tokens": tokens})));
}

/// What a Messages request brings besides its body: the client's Anthropic headers, its session,
/// its key and whether it opted in to stream resume.
pub struct Exchange {
    headers: Vec<(String, String)>,
    session: SessionKey,
    caller: Option<Arc<VirtualKey>>,
    stream_resume: bool,
    watch: Option<Arc<Watch>>,
}

impl Exchange {
    pub fn new(
        headers: Vec<(String, String)>,
        session: SessionKey,
        caller: Option<Arc<VirtualKey>>,
        stream_resume: bool,
    ) -> Self {
        Exchange {
            headers,
            session,
            caller,
            stream_resume,
            watch: None,
        }
    }

    /// The console's record of the request, when the live feed has subscribers.
    pub fn watched(self, watch: Option<Arc<Watch>>) -> Self {
        Exchange { watch, ..self }
    }
}

/// Serves one Messages request given as raw JSON.
pub async fn serve(state: &Arc<AppState>, bytes: &[u8], exchange: Exchange, res: &mut Response) {
    let Read {
        mut chat,
        dropped,
        model,
        ..
    } = match read(bytes, exchange.headers, exchange.session, true) {
        Ok(read) => read,
        Err(message) => return invalid(res, &message),
    };
    chat.caller = exchange.caller;
    chat.stream_resume = exchange.stream_resume;
    chat.watch = exchange.watch;
    match state.chat.chat(chat).await {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            dialect,
        }) => {
            if dialect == Dialect::Anthropic {
                return json_answer(res, &served, status, body);
            }
            report_dropped("messages", &dropped);
            served_headers(res, &served);
            res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            let chat: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            match anthropic::messages_response_from_chat(&chat, &model) {
                Ok(message) => res.render(Json(message)),
                Err(e) => anthropic_error(
                    res,
                    StatusCode::BAD_GATEWAY,
                    "api_error",
                    &format!(
                        "the provider's answer cannot be expressed as a Message: {}",
                        e.message
                    ),
                ),
            }
        }
        Ok(ChatReply::Stream {
            served,
            events,
            dialect,
        }) => {
            let events = match dialect {
                Dialect::Anthropic => verbatim(events, dialect),
                // The request's only native dialect is Anthropic's: any other answer is the hub's.
                Dialect::Hub | Dialect::Responses | Dialect::Gemini => {
                    report_dropped("messages", &dropped);
                    let id = format!("msg_{:024x}", rand::random::<u128>() >> 32);
                    rewritten(events, MessagesStreamWriter::new(&model, id))
                }
            };
            stream_events(res, &served, events);
        }
        Err(error) => write_anthropic_chat_error(res, error),
    }
}
