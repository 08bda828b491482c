//! `POST /v1/responses` (SPEC 4.3): the Responses API over the chat use case. The request is mapped
//! to a chat request, and the answer to a Response object or the Responses event stream.

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::Value;

use std::sync::Arc;

use super::input::{json_object, payload, report_dropped, session_key, state_or_500};
use super::output::{
    json_answer, rewritten, served_headers, stream_events, verbatim, write_chat_error,
};
use crate::domain::exchange::{Dialect, NativeRequest};
use crate::domain::service::chat::{ChatReply, ChatRequest};
use crate::domain::watch::Watch;
use crate::inbound::http::openapi::schemas;
use crate::inbound::http::{ApiError, AppState};
use crate::protocol::Dropped;
use crate::protocol::openai::ChatBody;
use crate::protocol::responses::{
    ResponsesStreamWriter, chat_request_from_responses, response_from_chat,
};

/// Create a model response (OpenAI Responses API)
///
/// The OpenAI Responses API over the chat routing: `instructions` becomes a system message,
/// `input` (a string or a list of items) becomes messages, `max_output_tokens`, `temperature`,
/// `top_p`, `tools`, `tool_choice`, `parallel_tool_calls`, `user`, `reasoning.effort` and
/// `text.format` map to their chat equivalents. Function tools go as they are; `namespace` tools
/// are flattened (`{namespace}__{name}`) and `custom` tools become a function with one string
/// argument, and their calls come back in the shape declared; built-in tools (`web_search`, ...)
/// are dropped. Reasoning from the upstream comes back as `reasoning` items. The gateway stores
/// no responses: continue a conversation by sending its items in `input` (`previous_response_id`,
/// `store`, `include`, `truncation`, `prompt_cache_key` are accepted and not used; each dropped
/// field is counted in `apiproxy_dropped_fields_total`). Streaming when `"stream": true`. Errors
/// are the chat endpoint's (OpenAI shape, same statuses).
#[endpoint(
    operation_id = "createResponse",
    tags("chat"),
    parameters(
        ("X-Session-Id" = Option<String>, Header, description = "Conversation id: binds the conversation to the upstream that served it (sticky routing for `SESSION_TTL` seconds) and records each exchange in the session's context history (`GET /context/{id}`). 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` after trimming, else 400.", min_length = 1, max_length = 256),
        ("X-Request-Id" = Option<String>, Header, description = "Request id echoed in the `X-Request-Id` response header and the logs. Kept when it is 1 to 128 visible ASCII characters; otherwise the gateway makes one (`req_<32 hex>`).", min_length = 1, max_length = 128),
        ("X-APIProxy-Stream-Resume" = Option<String>, Header, description = "Stream resume (SPEC 5.5): `true` (or `1`) opts this request in; a logical model with `stream_resume: true` opts in every request. A stream that breaks after content reached the client then goes on on the next candidate with the answer so far (text answers only; OpenAI chat and Anthropic streams, and every client format built from them), as one stream ending with the SSE comment `: apiproxy-resumed provider=<id> attempts=<n>` just before its last event. Without it, the stream ends with the error event.", example = json!("true")),
    ),
    request_body(content = schemas::ResponsesRequest),
    responses(
        (status_code = 200, description = "A Response object, or the Responses event stream.", content(("application/json" = schemas::Response), ("text/event-stream" = String, example = json!("event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{...}}\n\n")))),
        (status_code = 400, description = "Invalid body or fields (`code: invalid_request`, `param` naming the field: no `model` or `input`, an unsupported item, part, tool, `tool_choice` or `text.format` type), or a bad `X-Session-Id`.", body = schemas::Error),
        (status_code = 404, description = "Unknown model (`code: model_not_found`, `param: model`).", body = schemas::Error),
        (status_code = 413, description = "The body is larger than `MAX_REQUEST_BODY_BYTES` (`code: request_too_large`).", body = schemas::Error),
        (status_code = 429, description = "Every candidate failed with a 429 or hit its `MAX_QPS` (`code: rate_limit_exceeded`).", body = schemas::Error),
        (status_code = 502, description = "Every candidate failed (`code: all_upstreams_failed`).", body = schemas::Error),
        (status_code = 503, description = "The logical model is disabled (`model_disabled`) or has no usable upstream (`no_available_upstream`).", body = schemas::Error),
        (status_code = "default", description = "A non-retryable upstream error relayed with the upstream's own status, or another gateway error (405, 500).", body = schemas::Error),
    ),
)]
pub async fn create(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let watch = super::input::watch(&state, depot, res, "/v1/responses");
    serve(&state, req, depot, res, watch.clone()).await;
    super::output::watched(watch, res);
}

async fn serve(
    state: &AppState,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    watch: Option<Arc<Watch>>,
) {
    let bytes = match payload(req, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => return error.write(res),
    };
    let request = match json_object(&bytes) {
        Ok(body) => body,
        Err(error) => return error.write(res),
    };
    let cache_key = request.get("prompt_cache_key").and_then(Value::as_str);
    let session = match session_key(req, cache_key) {
        Ok(session) => session,
        Err(error) => return error.write(res),
    };
    let mut dropped = Dropped::new();
    let chat = match chat_request_from_responses(&request, &mut dropped) {
        Ok(chat) => chat,
        Err(e) => return ApiError::bad_request(e.message, e.param.as_deref()).write(res),
    };
    let stream = chat.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let (body, native) = match (
        ChatBody::parse(chat.to_string().as_bytes()),
        ChatBody::parse_object(&bytes),
    ) {
        (Ok(hub), Ok(native)) => (hub, native),
        (Err(e), _) | (_, Err(e)) => return ApiError::bad_request(e.message, e.param).write(res),
    };
    // Providers that take the Responses API get the client's request as it is (SPEC 4.8).
    let native = Some(Arc::new(NativeRequest {
        dialect: Dialect::Responses,
        body: Arc::new(native),
        headers: Vec::new(),
        untranslatable: None,
    }));
    match state
        .chat
        .chat(ChatRequest {
            body: Arc::new(body),
            stream,
            session_id: session.id,
            history: session.history,
            native,
            caller: crate::inbound::http::Caller::key(depot),
            stream_resume: super::input::stream_resume(req),
            watch,
        })
        .await
    {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            dialect: Dialect::Responses,
        }) => json_answer(res, &served, status, body),
        Ok(ChatReply::Stream {
            served,
            events,
            dialect: Dialect::Responses,
        }) => stream_events(res, &served, verbatim(events, Dialect::Responses)),
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            ..
        }) => {
            report_dropped("responses", &dropped);
            served_headers(res, &served);
            let chat: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            res.render(Json(response_from_chat(&chat, &request)));
        }
        Ok(ChatReply::Stream { served, events, .. }) => {
            report_dropped("responses", &dropped);
            // Chat events in, Responses events out; the end of the chat stream completes the response.
            stream_events(
                res,
                &served,
                rewritten(events, ResponsesStreamWriter::new(&request)),
            );
        }
        Err(error) => write_chat_error(res, error),
    }
}
