//! Translation between the OpenAI chat hub format and the anthropic wire format (being written).

use bytes::Bytes;
use serde_json::Value;

use super::TranslateError;

/// The anthropic request body for an OpenAI chat request.
pub fn request_from_chat(
    _chat: &Value,
    _model: &str,
    _stream: bool,
) -> Result<Value, TranslateError> {
    Err(TranslateError::new(
        "anthropic translation is not available yet",
        None,
    ))
}

/// An OpenAI `chat.completion` object for a anthropic answer.
pub fn chat_from_response(
    _response: &Value,
    _model: &str,
    _created: i64,
) -> Result<Value, TranslateError> {
    Err(TranslateError::new(
        "anthropic translation is not available yet",
        None,
    ))
}

/// A anthropic error answer as (status for retry classification, OpenAI error body).
pub fn error_to_chat(status: u16, body: &[u8]) -> (u16, Value) {
    let message = String::from_utf8_lossy(body).to_string();
    (
        status,
        serde_json::json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": null}}),
    )
}

/// Turns a anthropic event stream into OpenAI chat chunk events.
#[derive(Debug, Default)]
pub struct StreamTranslator {}

impl StreamTranslator {
    pub fn new(_model: &str, _created: i64, _id: String) -> Self {
        StreamTranslator {}
    }

    pub fn push(&mut self, _event: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        Err(TranslateError::new(
            "anthropic stream translation is not available yet",
            None,
        ))
    }

    pub fn finish(&mut self) -> Vec<Bytes> {
        Vec::new()
    }
}
