//! The Gemini API (SPEC 4.7), under `/v1beta` and `/v1`: `models/{model}:generateContent`,
//! `:streamGenerateContent` (SSE with `?alt=sse`, else one JSON array) and `:countTokens`, and the
//! model list in Gemini's shape. `{model}` is the logical model. Gemini providers get the client's
//! body as it is (the model goes in their URL); other vendors get it translated through the hub,
//! and their answers are translated back. Errors are Google's `{"error":{"code","message","status"}}`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, StreamExt};
use salvo::http::{HeaderValue, StatusCode};
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::{json_object, payload, report_dropped, session_key, state_or_500};
use super::output::{
    gemini_model, google_error, json_answer, rewritten, served_headers, stream_events, verbatim,
    write_google_api_error, write_google_chat_error,
};
use crate::domain::exchange::{Dialect, NativeRequest};
use crate::domain::service::chat::{ChatReply, ChatRequest};
use crate::domain::watch::Watch;
use crate::inbound::http::AppState;
use crate::inbound::http::openapi::schemas;
use crate::protocol::gemini::{self, GeminiBody, GeminiStreamWriter};
use crate::protocol::openai::ChatBody;
use crate::protocol::{Dropped, estimate_tokens, sse};

/// What the path asks of the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Generate,
    Stream,
    CountTokens,
}

/// `{model}:{action}` from the rest of the path (a `models/` prefix tolerated).
fn model_and_action(rest: &str) -> Option<(String, Action)> {
    let (model, action) = rest.rsplit_once(':')?;
    let model = gemini::model_id(model.trim_start_matches('/'));
    let action = match action {
        "generateContent" => Action::Generate,
        "streamGenerateContent" => Action::Stream,
        "countTokens" => Action::CountTokens,
        _ => return None,
    };
    (!model.is_empty()).then(|| (model.to_string(), action))
}

/// Generate content, stream it or count its tokens (Gemini API)
///
/// `POST /v1beta/models/{model}:generateContent`, `:streamGenerateContent` (`?alt=sse` for
/// server-sent events, else one JSON array) and `:countTokens` (also under `/v1`). `{model}` is a
/// logical model (or any model a provider lists). The gateway token goes in `x-goog-api-key`, the
/// `key` query parameter, `Authorization: Bearer` or `X-API-Key`. Gemini-vendor providers get the
/// body as it is (thought signatures, `cachedContent`, `safetySettings`, `toolConfig` untouched);
/// others get it translated (SPEC §6 of specs/002) and their answers come back as
/// `GenerateContentResponse`s. `countTokens` is counted by a Gemini provider, or an Anthropic one
/// through its counter, else estimated (`{"totalTokens": N}`). Errors in Google's shape.
#[endpoint(
    operation_id = "geminiModelAction",
    tags("gemini"),
    parameters(
        ("**id" = String, Path, description = "`{model}:generateContent`, `{model}:streamGenerateContent` or `{model}:countTokens`.", example = json!("chat-model:generateContent")),
        ("alt" = Option<String>, Query, description = "`sse` streams server-sent events; without it `streamGenerateContent` answers one JSON array."),
        ("key" = Option<String>, Query, description = "The gateway token (as Google's API key)."),
        ("x-goog-api-key" = Option<String>, Header, description = "The gateway token (as Google's API key)."),
        ("X-APIProxy-Stream-Resume" = Option<String>, Header, description = "Stream resume (SPEC 5.5): `true` (or `1`) opts this request in; a logical model with `stream_resume: true` opts in every request. A stream that breaks after content reached the client then goes on on the next candidate with the answer so far (text answers only; OpenAI chat and Anthropic streams, and every client format built from them), as one stream ending with the SSE comment `: apiproxy-resumed provider=<id> attempts=<n>` just before its last event. Without it, the stream ends with the error event.", example = json!("true")),
    ),
    request_body(content = serde_json::Value, description = "A Gemini `GenerateContentRequest` (`contents`, `systemInstruction`, `tools`, `toolConfig`, `generationConfig`, ...); for `countTokens` also `{\"generateContentRequest\": {...}}`."),
    responses(
        (status_code = 200, description = "A `GenerateContentResponse`, its stream (SSE or a JSON array), or `{\"totalTokens\": N}`.", body = serde_json::Value),
        (status_code = 400, description = "Invalid body (`status: INVALID_ARGUMENT`).", body = schemas::GoogleError),
        (status_code = 404, description = "Unknown model or method (`status: NOT_FOUND`).", body = schemas::GoogleError),
        (status_code = 429, description = "Every candidate failed with a 429 or hit its `MAX_QPS` (`status: RESOURCE_EXHAUSTED`).", body = schemas::GoogleError),
        (status_code = 502, description = "Every candidate failed (`status: INTERNAL`).", body = schemas::GoogleError),
        (status_code = 503, description = "The logical model is disabled or has no usable upstream (`status: UNAVAILABLE`).", body = schemas::GoogleError),
        (status_code = "default", description = "A non-retryable upstream error relayed with its status, or another gateway error.", body = schemas::GoogleError),
    ),
)]
pub async fn model_action(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    act(req, depot, res, Version::Beta).await;
}

/// Generate content, stream it or count its tokens (Gemini API, `/v1` paths)
///
/// The same as `geminiModelAction`, under `/v1/models/{model}:...` (Gemini's stable API version).
#[endpoint(
    operation_id = "geminiModelActionV1",
    tags("gemini"),
    parameters(
        ("**id" = String, Path, description = "`{model}:generateContent`, `{model}:streamGenerateContent` or `{model}:countTokens`.", example = json!("chat-model:generateContent")),
        ("alt" = Option<String>, Query, description = "`sse` streams server-sent events; without it `streamGenerateContent` answers one JSON array."),
    ),
    request_body(content = serde_json::Value, description = "A Gemini `GenerateContentRequest`."),
    responses(
        (status_code = 200, description = "As `geminiModelAction`.", body = serde_json::Value),
        (status_code = 400, description = "Invalid body.", body = schemas::GoogleError),
        (status_code = 404, description = "Unknown model or method.", body = schemas::GoogleError),
        (status_code = "default", description = "As `geminiModelAction`.", body = schemas::GoogleError),
    ),
)]
pub async fn model_action_v1(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    act(req, depot, res, Version::V1).await;
}

/// Which of the two paths of the Gemini API a request came on.
#[derive(Clone, Copy)]
enum Version {
    Beta,
    V1,
}

/// The console's record of a generate request (token counts are not proxied requests); nothing
/// is looked at unless the live feed has subscribers.
fn watch_generation(
    state: &AppState,
    depot: &Depot,
    res: &Response,
    version: Version,
    rest: &str,
) -> Option<Arc<Watch>> {
    if !state.feed.watching() {
        return None;
    }
    let endpoint = match (version, rest.rsplit_once(':')?.1) {
        (Version::Beta, "generateContent") => "/v1beta/models/{model}:generateContent",
        (Version::Beta, "streamGenerateContent") => "/v1beta/models/{model}:streamGenerateContent",
        (Version::V1, "generateContent") => "/v1/models/{model}:generateContent",
        (Version::V1, "streamGenerateContent") => "/v1/models/{model}:streamGenerateContent",
        _ => return None,
    };
    super::input::watch(state, depot, res, endpoint)
}

async fn act(req: &mut Request, depot: &mut Depot, res: &mut Response, version: Version) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let rest: String = req.param("id").unwrap_or_default();
    let watch = watch_generation(&state, depot, res, version, &rest);
    generate(&state, req, depot, res, &rest, watch.clone()).await;
    super::output::watched(watch, res);
}

async fn generate(
    state: &AppState,
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    rest: &str,
    watch: Option<Arc<Watch>>,
) {
    let Some((model, action)) = model_and_action(rest) else {
        return google_error(
            res,
            StatusCode::NOT_FOUND,
            &format!(
                "'{rest}' is not {{model}}:generateContent, :streamGenerateContent or :countTokens"
            ),
        );
    };
    let sse = req.query::<String>("alt").as_deref() == Some("sse");
    let session = match session_key(req, None) {
        Ok(session) => session,
        Err(error) => return write_google_api_error(res, &error),
    };
    let bytes = match payload(req, state.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(error) => return write_google_api_error(res, &error),
    };
    let body = match json_object(&bytes) {
        Ok(body) => body,
        Err(error) => return write_google_api_error(res, &error),
    };
    let stream = action == Action::Stream;
    let (chat, hub, dropped) = match chat_request(&body, bytes, &model, stream, action) {
        Ok(read) => read,
        Err(message) => return google_error(res, StatusCode::BAD_REQUEST, &message),
    };
    let chat = ChatRequest {
        session_id: session.id,
        history: session.history,
        caller: crate::inbound::http::Caller::key(depot),
        stream_resume: super::input::stream_resume(req),
        watch,
        ..chat
    };
    if action == Action::CountTokens {
        return match state.chat.count_tokens(&chat).await {
            Ok(tokens) => {
                let how = if tokens.is_some() {
                    "counted"
                } else {
                    "estimated"
                };
                res.add_header("x-apiproxy-token-count", how, true).ok();
                let tokens = tokens.unwrap_or_else(|| estimate_tokens(&hub));
                res.render(Json(json!({"totalTokens": tokens})));
            }
            Err(error) => write_google_chat_error(res, error),
        };
    }
    match state.chat.chat(chat).await {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            dialect: Dialect::Gemini,
        }) => json_answer(res, &served, status, body),
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            ..
        }) => {
            report_dropped("gemini", &dropped);
            served_headers(res, &served);
            res.status_code(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
            let chat: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            res.render(Json(gemini::response_from_chat(&chat, &model)));
        }
        Ok(ChatReply::Stream {
            served,
            events,
            dialect,
        }) => {
            let events = match dialect {
                Dialect::Gemini => verbatim(events, dialect),
                _ => {
                    report_dropped("gemini", &dropped);
                    rewritten(events, GeminiStreamWriter::new(&model))
                }
            };
            if sse {
                stream_events(res, &served, events);
            } else {
                json_array(res, &served, events);
            }
        }
        Err(error) => write_google_chat_error(res, error),
    }
}

/// The chat request for a Gemini body: the hub form (translated; empty when the body has none, so
/// only Gemini providers can take it) and the client's own body for Gemini providers. Also the
/// hub form as JSON, for a token estimate, and what the hub form left out.
fn chat_request(
    body: &Value,
    bytes: Bytes,
    model: &str,
    stream: bool,
    action: Action,
) -> Result<(ChatRequest, Value, Dropped), String> {
    // countTokens takes `{"contents": ...}` or `{"generateContentRequest": {...}}`.
    let source = match action {
        Action::CountTokens => body.get("generateContentRequest").unwrap_or(body),
        _ => body,
    };
    let mut dropped = Dropped::new();
    let (mut hub, untranslatable) =
        match gemini::chat_request_from_gemini(source, model, &mut dropped) {
            Ok(hub) => (hub, None),
            Err(e) => {
                let at = e.param.map(|p| format!("{p}: ")).unwrap_or_default();
                (
                    json!({"model": model, "messages": []}),
                    Some(format!("{at}{}", e.message)),
                )
            }
        };
    if stream {
        hub["stream"] = json!(true);
        hub["stream_options"] = json!({"include_usage": true});
    }
    let hub_body = ChatBody::parse(hub.to_string().as_bytes()).map_err(|e| e.message)?;
    let native = NativeRequest {
        dialect: Dialect::Gemini,
        body: Arc::new(GeminiBody {
            model: model.to_string(),
            bytes,
        }),
        headers: Vec::new(),
        untranslatable,
    };
    let chat = ChatRequest {
        body: Arc::new(hub_body),
        stream,
        session_id: None,
        history: false,
        native: Some(Arc::new(native)),
        caller: None,
        stream_resume: false,
        watch: None,
    };
    Ok((chat, hub, dropped))
}

/// A stream as Gemini answers `streamGenerateContent` without `alt=sse`: one JSON array whose
/// elements are the events' JSON, sent as they come.
fn json_array(
    res: &mut Response,
    served: &crate::domain::service::chat::ServedBy,
    events: BoxStream<'static, Bytes>,
) {
    served_headers(res, served);
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    let elements = events
        .filter_map(|event| std::future::ready(sse::event_data(&event)))
        .enumerate()
        .map(|(i, data)| {
            let lead = if i == 0 { "[" } else { ",\r\n" };
            Bytes::from(format!("{lead}{data}"))
        });
    let framed = elements.chain(stream::once(async { Bytes::from_static(b"]") }));
    let mut started = false;
    let framed = framed.map(move |piece| {
        // An empty stream is `[]`: the closing bracket needs its opening one.
        let out = if !started && piece.as_ref() == b"]" {
            Bytes::from_static(b"[]")
        } else {
            piece
        };
        started = true;
        Ok::<_, std::convert::Infallible>(out)
    });
    res.stream(framed);
}

/// List models (Gemini API)
///
/// The model list in Gemini's shape: every enabled logical model and every provider's model as
/// `{"name": "models/<id>", "displayName", "supportedGenerationMethods"}`.
#[endpoint(
    operation_id = "geminiListModels",
    tags("gemini"),
    responses(
        (status_code = 200, description = "The model list.", body = serde_json::Value),
    ),
)]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = AppState::from_depot(depot) else {
        return write_google_api_error(res, &crate::inbound::http::ApiError::internal());
    };
    let models: Vec<Value> = super::input::visible_models(&state, depot)
        .await
        .iter()
        .map(|m| gemini_model(&m.id))
        .collect();
    res.render(Json(json!({"models": models})));
}

/// Get a model (Gemini API)
///
/// One model in Gemini's shape, or a 404 in Google's.
#[endpoint(
    operation_id = "geminiGetModel",
    tags("gemini"),
    parameters(("**id" = String, Path, description = "The model id (`models/` prefix optional).")),
    responses(
        (status_code = 200, description = "The model.", body = serde_json::Value),
        (status_code = 404, description = "No listed model has this id.", body = schemas::GoogleError),
    ),
)]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = AppState::from_depot(depot) else {
        return write_google_api_error(res, &crate::inbound::http::ApiError::internal());
    };
    let rest: String = req.param("id").unwrap_or_default();
    let id = gemini::model_id(&rest);
    let models = super::input::visible_models(&state, depot).await;
    match models.iter().find(|m| m.id == id) {
        Some(model) => res.render(Json(gemini_model(&model.id))),
        None => google_error(
            res,
            StatusCode::NOT_FOUND,
            &format!("models/{id} is not found"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_a_model_and_an_action() {
        assert_eq!(
            model_and_action("gemini-2.5-pro:streamGenerateContent"),
            Some(("gemini-2.5-pro".into(), Action::Stream))
        );
        assert_eq!(
            model_and_action("models/m:countTokens"),
            Some(("m".into(), Action::CountTokens))
        );
        assert_eq!(model_and_action("m:embedContent"), None);
        assert_eq!(model_and_action(":generateContent"), None);
        assert_eq!(model_and_action("no-action"), None);
    }
}
