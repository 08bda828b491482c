//! `POST /v1/messages` (SPEC 4.4): the Anthropic Messages API in and out, whatever vendor serves
//! it (the exchange itself is `messages_api`).

use salvo::oapi::endpoint;
use salvo::prelude::*;

use super::input::{SessionKey, anthropic_headers, payload, session_key, state_or_500, watch};
use super::messages_api::{Exchange, count, invalid, serve};
use super::output::{watched, write_anthropic_api_error};
use crate::inbound::http::openapi::{alternatives, schemas};
use crate::inbound::http::{AppState, Caller};

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
        ("X-APIProxy-Stream-Resume" = Option<String>, Header, description = "Stream resume (SPEC 5.5): `true` (or `1`) opts this request in; a logical model with `stream_resume: true` opts in every request. A stream that breaks after content reached the client then goes on on the next candidate with the answer so far (text answers only; OpenAI chat and Anthropic streams, and every client format built from them), as one stream ending with the SSE comment `: apiproxy-resumed provider=<id> attempts=<n>` just before its last event. Without it, the stream ends with the error event.", example = json!("true")),
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
    let watch = watch(&state, depot, res, "/v1/messages");
    if let Some((bytes, headers, session)) = read(&state, req, res).await {
        let resume = super::input::stream_resume(req);
        let exchange =
            Exchange::new(headers, session, Caller::key(depot), resume).watched(watch.clone());
        serve(&state, &bytes, exchange, res).await;
    }
    watched(watch, res);
}

/// What both Messages endpoints read before their work: the state, the body within the size
/// limit, the client's Anthropic headers and the session; `None` once the error is written.
async fn read(
    state: &AppState,
    req: &mut Request,
    res: &mut Response,
) -> Option<(bytes::Bytes, Vec<(String, String)>, SessionKey)> {
    let session = match session_key(req, None) {
        Ok(id) => id,
        Err(error) => {
            invalid(res, &error.message);
            return None;
        }
    };
    let bytes = match payload(req, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => {
            write_anthropic_api_error(res, &error);
            return None;
        }
    };
    let headers = anthropic_headers(req);
    Some((bytes, headers, session))
}

/// Count the tokens of a message (Anthropic Messages API)
///
/// The input tokens the same body would use on `POST /v1/messages` (`max_tokens` not needed).
/// Counted by the first candidate of the logical model whose vendor has a counter (Anthropic's
/// own endpoint, passed the body natively; Gemini's `countTokens`, passed the translated body),
/// else estimated at about four characters per token. The `X-APIProxy-Token-Count` header says
/// `counted` or `estimated`. Errors as for `createMessage`.
#[endpoint(
    operation_id = "countMessageTokens",
    tags("chat"),
    parameters(
        ("anthropic-version" = Option<String>, Header, description = "Forwarded to anthropic-vendor providers.", example = json!("2023-06-01")),
        ("anthropic-beta" = Option<String>, Header, description = "Forwarded to anthropic-vendor providers."),
    ),
    request_body(content = schemas::MessagesRequest),
    responses(
        (status_code = 200, description = "The count.", body = schemas::MessageTokensCount),
        (status_code = 400, description = "Invalid body (`type: invalid_request_error`).", body = schemas::AnthropicError),
        (status_code = 404, description = "Unknown model (`type: not_found_error`).", body = schemas::AnthropicError),
        (status_code = 413, description = "The body is larger than `MAX_REQUEST_BODY_BYTES`.", body = schemas::AnthropicError),
        (status_code = 503, description = "The logical model is disabled or has no usable upstream.", body = schemas::AnthropicError),
        (status_code = "default", description = "Another gateway error (405, 500).", body = alternatives::ErrorOrAnthropicError),
    ),
)]
pub async fn count_tokens(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    if let Some((bytes, headers, session)) = read(&state, req, res).await {
        count(&state, &bytes, headers, session, Caller::key(depot), res).await;
    }
}
