//! The Anthropic Messages exchange (SPEC 4.4), shared by `POST /v1/messages` and Claude-style
//! bodies on `/v1/chat/completions`: Anthropic-vendor providers get the client's request as it is
//! (only `model` rewritten, the client's `anthropic-version`/`anthropic-beta` forwarded); others get
//! it translated, and their answers are translated back.

use std::sync::Arc;

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::output::{
    anthropic_error, json_answer, rewritten, served_headers, stream_events, verbatim,
    write_anthropic_chat_error,
};
use crate::domain::exchange::{Dialect, NativeRequest};
use crate::domain::service::chat::{ChatReply, ChatRequest};
use crate::inbound::http::AppState;
use crate::protocol::anthropic::{self, MessagesStreamWriter};
use crate::protocol::openai::ChatBody;

/// A 400 in Anthropic's shape.
pub fn invalid(res: &mut Response, message: &str) {
    anthropic_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    );
}

/// Serves one Messages request given as raw JSON.
pub async fn serve(
    state: &Arc<AppState>,
    bytes: &[u8],
    headers: Vec<(String, String)>,
    session_id: Option<String>,
    res: &mut Response,
) {
    let request: Value = match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Value::Object(map),
        Ok(_) => return invalid(res, "request body must be a JSON object"),
        Err(e) => return invalid(res, &format!("request body is not valid JSON: {e}")),
    };
    if !request.get("max_tokens").is_some_and(Value::is_u64) {
        return invalid(res, "max_tokens: a positive integer is required");
    }
    // Content only Anthropic understands has no hub form: it can still go to Anthropic providers.
    let (chat, untranslatable) = match anthropic::chat_request_from_messages(&request) {
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
    let (hub, native) = match (
        ChatBody::parse(chat.to_string().as_bytes()),
        ChatBody::parse(bytes),
    ) {
        (Ok(hub), Ok(native)) => (hub, native),
        (Err(e), _) | (_, Err(e)) => return invalid(res, &e.message),
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
    match state
        .chat
        .chat(ChatRequest {
            body: Arc::new(hub),
            stream,
            session_id,
            native,
        })
        .await
    {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            dialect,
        }) => {
            if dialect == Dialect::Anthropic {
                return json_answer(res, &served, status, body);
            }
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
                Dialect::Hub => {
                    let id = format!("msg_{:024x}", rand::random::<u128>() >> 32);
                    rewritten(events, MessagesStreamWriter::new(&model, id))
                }
            };
            stream_events(res, &served, events);
        }
        Err(error) => write_anthropic_chat_error(res, error),
    }
}
