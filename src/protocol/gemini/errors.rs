//! Gemini error bodies -> the OpenAI error body ([`error_to_chat`]).

use serde_json::{Value, json};

use super::Object;

/// Gemini's error object in a body, also in the list-wrapped form `[{"error":{...}}]`.
pub(super) fn find_error(value: &Value) -> Option<&Object> {
    match value {
        Value::Object(object) => object.get("error").and_then(Value::as_object),
        Value::Array(items) => items
            .iter()
            .find_map(|item| item.get("error").and_then(Value::as_object)),
        _ => None,
    }
}

/// A Gemini error answer as (status for retry classification, OpenAI error body). The status is
/// Gemini's own; `type` is Gemini's `status` lowercased (`RESOURCE_EXHAUSTED` ->
/// `resource_exhausted`) and `code` the status itself.
pub fn error_to_chat(status: u16, body: &[u8]) -> (u16, Value) {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().and_then(find_error);
    let fallback_type = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "upstream_error",
    };
    let text = String::from_utf8_lossy(body).trim().to_string();
    let default_message = if text.is_empty() {
        format!("gemini answered with status {status}")
    } else {
        text
    };
    let body = match error {
        Some(error) => {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map_or(default_message, str::to_string);
            let code = error
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            json!({"error": {
                "message": message,
                "type": code.map_or_else(|| fallback_type.to_string(), str::to_ascii_lowercase),
                "param": null,
                "code": code,
            }})
        }
        None => json!({"error": {
            "message": default_message,
            "type": fallback_type,
            "param": null,
            "code": null,
        }}),
    };
    (status, body)
}
