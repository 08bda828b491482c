//! `POST /v1/messages` (SPEC 4.4): the Anthropic Messages API in and out, whatever vendor serves
//! it. Anthropic-vendor providers get the client's request as it is (only `model` rewritten, the
//! client's `anthropic-version`/`anthropic-beta` forwarded); others get it translated, and their
//! answers are translated back. Claude-style bodies on `/v1/chat/completions` come here too.

use std::sync::Arc;

use salvo::http::{HeaderValue, StatusCode};
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::chat::{served_headers, session_id};
use super::{anthropic_headers, rewritten, state_or_500, stream_events};
use crate::domain::failover::AllFailed;
use crate::domain::ports::NativeRequest;
use crate::domain::service::chat::{ChatError, ChatReply, ChatRequest};
use crate::inbound::http::AppState;
use crate::inbound::http::openapi::{alternatives, schemas};
use crate::protocol::WireFormat;
use crate::protocol::anthropic::{self, MessagesStreamWriter};
use crate::protocol::openai::ChatBody;

/// Anthropic's error shape, with the status.
fn anthropic_error(res: &mut Response, status: StatusCode, kind: &str, message: &str) {
    res.status_code(status);
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut()
            .insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    res.render(Json(
        json!({"type": "error", "error": {"type": kind, "message": message}}),
    ));
}

fn invalid(res: &mut Response, message: &str) {
    anthropic_error(
        res,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        message,
    );
}

/// Create a message (Anthropic Messages API)
///
/// Anthropic request in, Anthropic answer out, whatever vendor serves it. When the chosen
/// upstream is an anthropic-vendor provider the body is passed through natively (only `model`
/// rewritten; the client's `anthropic-version` and `anthropic-beta` headers forwarded), so
/// thinking blocks and `cache_control` survive; other vendors get it translated and their
/// answers translated back. `max_tokens` is required. Streaming only when `"stream": true`.
/// Errors use Anthropic's shape, the 401 of the token check included.
#[endpoint(
    operation_id = "createMessage",
    tags("chat"),
    parameters(
        ("X-Session-Id" = Option<String>, Header, description = "Conversation id: binds the conversation to the upstream that served it (sticky routing for `SESSION_TTL` seconds) and records each exchange in the session's context history (`GET /context/{id}`). 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` after trimming, else 400.", min_length = 1, max_length = 256),
        ("X-Request-Id" = Option<String>, Header, description = "Request id echoed in the `X-Request-Id` response header and the logs. Kept when it is 1 to 128 visible ASCII characters; otherwise the gateway makes one (`req_<32 hex>`).", min_length = 1, max_length = 128),
        ("anthropic-version" = Option<String>, Header, description = "Forwarded to anthropic-vendor providers (replacing the default `2023-06-01`); ignored by other vendors.", example = json!("2023-06-01")),
        ("anthropic-beta" = Option<String>, Header, description = "Forwarded to anthropic-vendor providers; ignored by other vendors."),
    ),
    request_body(content = schemas::MessagesRequest),
    responses(
        (status_code = 200, description = "A Message, or Anthropic's stream events.", content(("application/json" = schemas::Message), ("text/event-stream" = String, example = json!("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{...}}\n\n")))),
        (status_code = 400, description = "Invalid body, missing or non-integer `max_tokens`, a bad `X-Session-Id`, or content no candidate can carry (`type: invalid_request_error`).", body = schemas::AnthropicError),
        (status_code = 404, description = "Unknown model (`type: not_found_error`).", body = schemas::AnthropicError),
        (status_code = 413, description = "The body is larger than `MAX_REQUEST_BODY_BYTES` (`type: request_too_large`).", body = schemas::AnthropicError),
        (status_code = 429, description = "Every candidate failed with a 429 or hit its `MAX_QPS` (`type: rate_limit_error`).", body = schemas::AnthropicError),
        (status_code = 502, description = "Every candidate failed, or the provider's answer cannot be expressed as a Message (`type: api_error`).", body = schemas::AnthropicError),
        (status_code = 503, description = "The logical model is disabled or has no usable upstream (`type: api_error`).", body = schemas::AnthropicError),
        (status_code = "default", description = "A non-retryable upstream error relayed with the upstream's own status (Anthropic's own error body, or the error mapped by status: 403 `permission_error`, 529 `overloaded_error`, ...). Gateway errors outside the handler (405, 500) use the OpenAI `Error` shape.", body = alternatives::ErrorOrAnthropicError),
    ),
)]
pub async fn create(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let session = match session_id(req) {
        Ok(id) => id,
        Err(error) => return invalid(res, &error.message),
    };
    let bytes = match req.payload_with_max_size(state.max_body_bytes).await {
        Ok(bytes) => bytes.clone(),
        Err(salvo::http::errors::ParseError::PayloadTooLarge) => {
            let message = format!(
                "request body is larger than {} bytes (MAX_REQUEST_BODY_BYTES)",
                state.max_body_bytes
            );
            return anthropic_error(
                res,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                &message,
            );
        }
        Err(e) => return invalid(res, &format!("request body could not be read: {e}")),
    };
    let headers = anthropic_headers(req);
    serve(&state, &bytes, headers, session, res).await;
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
        body: native,
        headers,
        untranslatable,
    }));
    match state
        .chat
        .chat(ChatRequest {
            body: hub,
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
            format,
        }) => {
            served_headers(res, &served);
            res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            if format == WireFormat::Anthropic {
                res.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                res.body(body);
                return;
            }
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
            format,
        }) => {
            let events = match format {
                WireFormat::Anthropic => events,
                WireFormat::OpenAi => {
                    let id = format!("msg_{:024x}", rand::random::<u128>() >> 32);
                    rewritten(events, MessagesStreamWriter::new(&model, id))
                }
            };
            stream_events(res, &served, events);
        }
        Err(error) => write_error(res, error),
    }
}

fn write_error(res: &mut Response, error: ChatError) {
    match error {
        ChatError::InvalidName(error) => invalid(res, &error.to_string()),
        ChatError::Untranslatable(reason) => invalid(
            res,
            &format!(
                "{reason} (only Anthropic providers can serve this request, and none is a candidate)"
            ),
        ),
        ChatError::ModelNotFound(model) => anthropic_error(
            res,
            StatusCode::NOT_FOUND,
            "not_found_error",
            &format!("model: the model '{model}' does not exist or no provider offers it"),
        ),
        ChatError::ModelDisabled(model) => anthropic_error(
            res,
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            &format!("the logical model '{model}' is disabled"),
        ),
        ChatError::NoCandidates(model) => anthropic_error(
            res,
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            &format!("no configured upstream is available for the logical model '{model}'"),
        ),
        ChatError::UpstreamRejected {
            served,
            status,
            body,
            format,
        } => {
            served_headers(res, &served);
            let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            res.status_code(status_code);
            let body = if format == WireFormat::Anthropic
                && serde_json::from_slice::<Value>(&body).is_ok_and(|v| v.get("error").is_some())
            {
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null)
            } else {
                anthropic::error_from_chat(status, &body)
            };
            res.render(Json(body));
        }
        ChatError::AllFailed { attempts, verdict } => {
            res.headers_mut()
                .insert("x-apiproxy-attempts", attempts.into());
            match verdict {
                AllFailed::RateLimited {
                    retry_after,
                    message,
                } => {
                    res.headers_mut().insert("retry-after", retry_after.into());
                    anthropic_error(
                        res,
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limit_error",
                        &message,
                    );
                }
                AllFailed::Upstream { message, .. } => {
                    anthropic_error(res, StatusCode::BAD_GATEWAY, "api_error", &message)
                }
            }
        }
    }
}
