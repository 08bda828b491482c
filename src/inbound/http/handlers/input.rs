//! Reading requests, shared by every handler: the state, bodies within the size limit (413), ids
//! that become store keys, the session header, vendor headers, and body logging.

use salvo::http::errors::ParseError;
use salvo::http::header::AUTHORIZATION;
use salvo::http::{HeaderName, StatusCode};
use salvo::prelude::*;

use crate::domain::metering::GATEWAY_KEY;
use crate::domain::watch::Watch;
use crate::inbound::http::header_names as names;
use crate::inbound::http::{ApiError, AppState, Caller};

/// The shared state, or a 500 written to the response (only a mis-wired router lacks it).
pub fn state_or_500(depot: &Depot, res: &mut Response) -> Option<std::sync::Arc<AppState>> {
    let state = AppState::from_depot(depot);
    if state.is_none() {
        ApiError::internal().write(res);
    }
    state
}

/// The console's record of a proxied request to `endpoint`, only while the live feed has
/// subscribers: otherwise one atomic load, and nothing is built.
pub fn watch(
    state: &AppState,
    depot: &Depot,
    res: &Response,
    endpoint: &'static str,
) -> Option<std::sync::Arc<Watch>> {
    if !state.feed.watching() {
        return None;
    }
    // The request-id hoop put it on the response before any handler ran.
    let request_id = res
        .headers()
        .get(names::X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let key = match depot.get_typed::<Caller>() {
        Ok(Caller::Key(key)) => key.name.clone(),
        _ => GATEWAY_KEY.to_string(),
    };
    Some(Watch::new(
        state.feed.clone(),
        state.clock.clone(),
        request_id,
        endpoint,
        key,
    ))
}

/// The body within `max_bytes`, or the 413 (or 400) naming the problem.
pub async fn payload(req: &mut Request, max_bytes: usize) -> Result<bytes::Bytes, ApiError> {
    match req.payload_with_max_size(max_bytes).await {
        Ok(bytes) => Ok(bytes.clone()),
        Err(ParseError::PayloadTooLarge) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("request body is larger than {max_bytes} bytes (MAX_REQUEST_BODY_BYTES)"),
        )),
        Err(other) => Err(ApiError::bad_request(
            format!("request body could not be read: {other}"),
            None,
        )),
    }
}

/// Reads a JSON object body within the size limit, as a 400 or 413 naming the problem otherwise.
pub async fn json_body(req: &mut Request, max_bytes: usize) -> Result<serde_json::Value, ApiError> {
    json_object(&payload(req, max_bytes).await?)
}

/// A body that must be a JSON object, or the 400 naming the problem.
pub fn json_object(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
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

/// The `X-Session-Id` header, checked: it becomes a store key (SPEC 4.1).
pub fn session_id(req: &Request) -> Result<Option<String>, ApiError> {
    let Some(value) = req.headers().get(names::X_SESSION_ID) else {
        return Ok(None);
    };
    let id = value.to_str().map(str::trim).unwrap_or("\u{0}");
    checked_id("X-Session-Id", id).map(|id| Some(id.to_string()))
}

/// Whether the client opted in to stream resume (`X-APIProxy-Stream-Resume: true` or `1`, SPEC
/// 5.5); without it the logical model's `stream_resume` decides.
pub fn stream_resume(req: &Request) -> bool {
    req.headers()
        .get(names::X_APIPROXY_STREAM_RESUME)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .is_some_and(|value| value.eq_ignore_ascii_case("true") || value == "1")
}

/// The session a request belongs to: `id` binds it to one upstream; `history` says whether the
/// exchange also goes into the session's context history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionKey {
    pub id: Option<String>,
    pub history: bool,
}

/// Agents' own session headers, with the prefix that keeps their ids apart (SPEC 4.8).
const AGENT_SESSION_HEADERS: [(HeaderName, &str); 3] = [
    (names::X_CLAUDE_CODE_SESSION_ID, "claude-code:"),
    (names::SESSION_ID, "codex:"),
    (names::SESSION_ID_UNDERSCORE, "codex:"),
];

/// The session of a request (SPEC 4.1, 4.8): `X-Session-Id` (checked, bound and recorded in the
/// context history); else a coding agent's own session id (`X-Claude-Code-Session-Id`, Codex's
/// `session-id` header, or `prompt_cache_key` from the body), which keeps the agent on one
/// upstream so its prompt cache stays warm, without recording a history. An agent id outside the
/// id alphabet is ignored: the client did not ask for a session.
pub fn session_key(req: &Request, prompt_cache_key: Option<&str>) -> Result<SessionKey, ApiError> {
    if let Some(id) = session_id(req)? {
        return Ok(SessionKey {
            id: Some(id),
            history: true,
        });
    }
    let from_headers = AGENT_SESSION_HEADERS.iter().find_map(|(name, prefix)| {
        let value = req.headers().get(name)?.to_str().ok()?.trim();
        Some(format!("{prefix}{value}"))
    });
    let id = from_headers
        .or_else(|| prompt_cache_key.map(|key| format!("cache-key:{}", key.trim())))
        .filter(|id| crate::domain::names::check_id("session", id).is_ok());
    Ok(SessionKey { id, history: false })
}

/// Whether the request comes from one of Google's clients: its key in `x-goog-api-key` or the
/// `key` query parameter, and no `Authorization` header. They get Gemini's shapes where the paths
/// are shared with OpenAI's (`GET /v1/models`).
pub fn google_client(req: &Request) -> bool {
    let headers = req.headers();
    !headers.contains_key(AUTHORIZATION)
        && (headers.contains_key(names::X_GOOG_API_KEY) || req.query::<String>("key").is_some())
}

/// The client's own Anthropic headers, forwarded on native pass-through.
pub fn anthropic_headers(req: &Request) -> Vec<(String, String)> {
    [names::ANTHROPIC_VERSION, names::ANTHROPIC_BETA]
        .iter()
        .filter_map(|name| {
            Some((
                name.to_string(),
                req.headers().get(name)?.to_str().ok()?.to_string(),
            ))
        })
        .collect()
}

/// Logs at debug and counts (`apiproxy_dropped_fields_total{endpoint, field}`) what a translation
/// left out because the target cannot honour it (SPEC 4.8).
pub fn report_dropped(endpoint: &'static str, dropped: &crate::protocol::Dropped) {
    for item in dropped.items() {
        tracing::debug!(endpoint, field = item.label, at = %escape_controls(&item.detail), "dropped from the request");
        metrics::counter!("apiproxy_dropped_fields_total", "endpoint" => endpoint, "field" => item.label)
            .increment(1);
    }
}

/// Logs a body when the operator turned `LOG_BODIES` on (first 64 KiB), control characters
/// escaped so a body cannot forge log lines.
pub fn log_body(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(64 * 1024)]);
    let shown = escape_controls(&text);
    tracing::info!(target: "apiproxy::bodies", kind = what, bytes = bytes.len(), body = %shown, "body");
}

/// `text` with every control character (newlines included) written as an escape.
fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:04x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// The model list the caller may see: a virtual key with `models` sees only the models it may
/// ask for (SPEC 3.1).
pub async fn visible_models(
    state: &AppState,
    depot: &Depot,
) -> Vec<crate::domain::ports::ModelListEntry> {
    let mut models = state.catalog.all_models().await;
    if let Some(key) = crate::inbound::http::Caller::key(depot) {
        models.retain(|m| key.allows_model(&m.id));
    }
    models
}

#[cfg(test)]
mod tests {
    #[test]
    fn logged_bodies_cannot_start_a_new_line() {
        let shown = super::escape_controls("a\nINFO forged\r\u{1b}[31m\tb");
        assert_eq!(shown, "a\\nINFO forged\\r\\u{001b}[31m\\tb");
        assert!(!shown.contains('\n') && !shown.contains('\r'));
        assert_eq!(
            super::escape_controls("plain {\"json\": 1}"),
            "plain {\"json\": 1}"
        );
    }
}
