//! `POST /v1/chat/completions` (SPEC 4.2): read and check the body, detect streaming, call the chat
//! service, and write its answer or error.

use std::sync::Arc;

use futures_util::StreamExt;
use salvo::oapi::endpoint;
use salvo::prelude::*;

use super::input::{
    SessionKey, anthropic_headers, log_body, payload, session_key, state_or_500, stream_resume,
    watch,
};
use super::output::{json_answer, stream_events, verbatim, watched, write_chat_error};
use crate::domain::service::chat::{ChatReply, ChatRequest};
use crate::domain::watch::Watch;
use crate::inbound::http::openapi::{alternatives, schemas};
use crate::inbound::http::{ApiError, AppState};
use crate::protocol::openai::{ChatBody, is_usage_only_chunk};

/// Create a chat completion
///
/// The OpenAI Chat Completions API, streaming and not, served by whichever upstream the routing
/// picks (translated when the upstream speaks Anthropic or Gemini). `model` names a logical
/// model, any model a provider lists, or `provider/model` to pin a provider. Fields the gateway
/// does not know are passed through untouched to OpenAI-vendor upstreams.
///
/// Streaming: when `"stream": true`, or when the `Accept` header contains `text/event-stream`
/// and `stream` is not `false` (an explicit `false` wins).
///
/// Other bodies: a Claude-style body (a top-level `system`, `anthropic_version` or
/// `max_tokens_to_sample`) is served exactly like `POST /v1/messages` and answered in
/// Anthropic's format (a `Message`, Anthropic events, or an `AnthropicError`). A Gemini-style
/// body with `input` instead of `messages`, or a native Gemini `contents` body, is converted to
/// messages and answered in OpenAI format.
///
/// Retryable upstream failures fail over to the next candidate; a non-retryable upstream error
/// is relayed with the upstream's own status (an OpenAI-shaped `{"error":{...}}` body as it is,
/// anything else wrapped with `type: upstream_error`, `code: upstream_rejected`).
#[endpoint(
    operation_id = "createChatCompletion",
    tags("chat"),
    parameters(
        ("X-Session-Id" = Option<String>, Header, description = "Conversation id: binds the conversation to the upstream that served it (sticky routing for `SESSION_TTL` seconds) and records each exchange in the session's context history (`GET /context/{id}`). 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` after trimming, else 400.", min_length = 1, max_length = 256),
        ("X-Request-Id" = Option<String>, Header, description = "Request id echoed in the `X-Request-Id` response header and the logs. Kept when it is 1 to 128 visible ASCII characters; otherwise the gateway makes one (`req_<32 hex>`).", min_length = 1, max_length = 128),
        ("X-APIProxy-Stream-Resume" = Option<String>, Header, description = "Stream resume (SPEC 5.5): `true` (or `1`) opts this request in; a logical model with `stream_resume: true` opts in every request. A stream that breaks after content reached the client then goes on on the next candidate with the answer so far (text answers only; OpenAI chat and Anthropic streams, and every client format built from them), as one stream ending with the SSE comment `: apiproxy-resumed provider=<id> attempts=<n>` just before its last event. Without it, the stream ends with the error event.", example = json!("true")),
        ("anthropic-version" = Option<String>, Header, description = "Forwarded (Claude-style bodies only) to anthropic-vendor providers (replacing the default `2023-06-01`); ignored by other vendors.", example = json!("2023-06-01")),
        ("anthropic-beta" = Option<String>, Header, description = "Forwarded (Claude-style bodies only) to anthropic-vendor providers; ignored by other vendors."),
    ),
    request_body(content = schemas::ChatCompletionRequest),
    responses(
        (status_code = 200, description = "The completion: a `chat.completion` object, or the stream of `chat.completion.chunk` events ending with `data: [DONE]`. A Claude-style body gets an Anthropic `Message` (or Anthropic's stream events).", content(("application/json" = alternatives::ChatCompletionOrMessage), ("text/event-stream" = String, example = json!("data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1764180000,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n")))),
        (status_code = 400, description = "Invalid body or fields (`code: invalid_request`, `param` naming the field), a `model` beyond the name bounds (`param: model`: at most 256 bytes, no `.`/`..` segment, `?`, `#`, `\\`, `%` or control characters), a bad `X-Session-Id`, or a request the chosen upstream's vendor cannot express; also a relayed upstream 400. Claude-style bodies get `AnthropicError` once recognised.", body = alternatives::ErrorOrAnthropicError),
        (status_code = 404, description = "Unknown model (`code: model_not_found`, `param: model`).", body = alternatives::ErrorOrAnthropicError),
        (status_code = 413, description = "The body is larger than `MAX_REQUEST_BODY_BYTES` (`code: request_too_large`).", body = schemas::Error),
        (status_code = 429, description = "Every candidate failed with a 429 or hit its `MAX_QPS` (`type: rate_limit_error`, `code: rate_limit_exceeded`).", body = alternatives::ErrorOrAnthropicError),
        (status_code = 502, description = "Every candidate failed (`type: upstream_error`, `code: all_upstreams_failed`; the message names the logical model, last status and last error).", body = alternatives::ErrorOrAnthropicError),
        (status_code = 503, description = "The logical model is disabled (`code: model_disabled`) or has no usable upstream (`code: no_available_upstream`).", body = alternatives::ErrorOrAnthropicError),
        (status_code = "default", description = "A non-retryable upstream error relayed with the upstream's own status (e.g. 403, 422), or another gateway error (405, 500).", body = alternatives::ErrorOrAnthropicError),
    ),
)]
pub async fn completions(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let watch = watch(&state, depot, res, "/v1/chat/completions");
    serve(&state, req, depot, res, watch.clone()).await;
    watched(watch, res);
}

async fn serve(
    state: &Arc<AppState>,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    watch: Option<Arc<Watch>>,
) {
    let caller = crate::inbound::http::Caller::key(depot);
    let mut request = match read_request(req, state.max_body_bytes, state.log_bodies).await {
        Ok(Incoming::Chat(request)) => request,
        // A Claude-style body is answered exactly as /v1/messages would answer it (SPEC 4.2).
        Ok(Incoming::Claude {
            bytes,
            session,
            headers,
        }) => {
            let resume = stream_resume(req);
            let exchange =
                super::messages_api::Exchange::new(headers, session, caller, resume).watched(watch);
            return super::messages_api::serve(state, &bytes, exchange, res).await;
        }
        Err(error) => return error.write(res),
    };
    request.chat.caller = caller;
    request.chat.watch = watch;
    let hide_usage = request.stream && !request.client_wants_usage;
    match state.chat.chat(request.chat).await {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            ..
        }) => {
            if state.log_bodies {
                log_body("response", &body);
            }
            json_answer(res, &served, status, body);
        }
        Ok(ChatReply::Stream {
            served,
            events,
            dialect,
        }) => {
            let events = verbatim(events, dialect);
            // The gateway asked the upstream for its usage chunk (for metering); a client that
            // did not ask for it does not get it.
            let events = match hide_usage {
                true => events
                    .filter(|event| std::future::ready(!is_usage_only_chunk(event)))
                    .boxed(),
                false => events,
            };
            stream_events(res, &served, events)
        }
        Err(error) => write_chat_error(res, error),
    }
}

/// A chat request, and whether its client asked for the stream's usage chunk.
struct PlainChat {
    chat: ChatRequest,
    stream: bool,
    client_wants_usage: bool,
}

enum Incoming {
    Chat(PlainChat),
    Claude {
        bytes: bytes::Bytes,
        session: SessionKey,
        headers: Vec<(String, String)>,
    },
}

/// A body without `messages`: Gemini-style `input`, or a native Gemini `contents` body, turned into
/// an OpenAI body (SPEC 4.2). Only reached when the plain parse failed, so it costs nothing on the
/// usual path.
fn from_gemini_style(bytes: &[u8]) -> Option<Result<ChatBody, ApiError>> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let input = value.as_object_mut()?.remove("input");
    let converted = if let Some(input) = input {
        crate::protocol::openai::messages_from_input(&input)
            .map(|messages| {
                value["messages"] = messages;
                value
            })
            .map_err(|e| ApiError::bad_request(e.message, e.param))
    } else if value.get("contents").is_some() {
        let model = value
            .get("model")
            .and_then(|m| m.as_str())
            .unwrap_or_default()
            .to_string();
        let mut dropped = crate::protocol::Dropped::new();
        let chat = crate::protocol::gemini::chat_request_from_gemini(&value, &model, &mut dropped);
        super::input::report_dropped("chat", &dropped);
        chat.map(|mut chat| {
            if let Some(stream) = value.get("stream") {
                chat["stream"] = stream.clone();
            }
            chat
        })
        .map_err(|e| ApiError::bad_request(e.message, e.param.as_deref()))
    } else {
        return None;
    };
    Some(converted.and_then(|chat| {
        ChatBody::parse(chat.to_string().as_bytes())
            .map_err(|e| ApiError::bad_request(e.message, e.param))
    }))
}

async fn read_request(
    req: &mut Request,
    max_body_bytes: usize,
    log_bodies: bool,
) -> Result<Incoming, ApiError> {
    let session = session_key(req, None)?;
    let anthropic_headers = anthropic_headers(req);
    let wants_sse = req
        .headers()
        .get_all(salvo::http::header::ACCEPT)
        .iter()
        .any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("text/event-stream"))
        });
    let bytes = &payload(req, max_body_bytes).await?;
    if log_bodies {
        log_body("request", bytes);
    }
    let mut body = match ChatBody::parse(bytes) {
        Ok(body) => body,
        Err(e) if e.param == Some("messages") => match from_gemini_style(bytes) {
            Some(converted) => converted?,
            None => return Err(ApiError::bad_request(e.message, e.param)),
        },
        Err(e) => return Err(ApiError::bad_request(e.message, e.param)),
    };
    if body.looks_like_anthropic() {
        return Ok(Incoming::Claude {
            bytes: bytes.clone(),
            session,
            headers: anthropic_headers,
        });
    }
    // Explicit `"stream": false` wins; an SSE Accept header turns streaming on otherwise.
    let stream = match body.stream_flag() {
        Some(flag) => flag,
        None if wants_sse => {
            body.set_stream(true);
            true
        }
        None => false,
    };
    let client_wants_usage = body.wants_usage_chunk();
    Ok(Incoming::Chat(PlainChat {
        chat: ChatRequest {
            body: Arc::new(body),
            stream,
            session_id: session.id,
            history: session.history,
            native: None,
            caller: None,
            stream_resume: stream_resume(req),
            watch: None,
        },
        stream,
        client_wants_usage,
    }))
}
