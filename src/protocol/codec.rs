//! One interface for every vendor the hub translates to: request, answer, error, stream.
use bytes::Bytes;
use serde_json::Value;

use super::TranslateError;

/// A vendor's wire format seen from the hub (the OpenAI chat format).
pub trait VendorCodec: Send + Sync {
    /// The hub request as the vendor's request body, for `model`.
    fn request(&self, hub: &Value, model: &str, stream: bool) -> Result<Value, TranslateError>;
    /// The vendor's whole answer as a hub `chat.completion`.
    fn answer(&self, answer: &Value, model: &str, created: i64) -> Result<Value, TranslateError>;
    /// The vendor's error body as the hub's error body.
    fn error(&self, status: u16, body: &[u8]) -> Value;
    /// A fresh translator of the vendor's stream events into hub chunk events.
    fn stream(&self, model: &str, created: i64, id: String) -> Box<dyn StreamTranslate>;
}

/// Turns one vendor's stream events (each one whole SSE event) into hub chunk events.
pub trait StreamTranslate: Send {
    fn push(&mut self, event: &[u8]) -> Result<Vec<Bytes>, TranslateError>;
    /// The vendor stream ended: whatever closes the hub stream.
    fn finish(&mut self) -> Vec<Bytes>;
}

// TEMPORARY until the protocol-split branch lands (it implements these in the vendor folders).
pub struct AnthropicCodec;
pub struct GeminiCodec;

impl VendorCodec for AnthropicCodec {
    fn request(&self, hub: &Value, model: &str, stream: bool) -> Result<Value, TranslateError> {
        super::anthropic::request_from_chat(hub, model, stream)
    }
    fn answer(&self, answer: &Value, model: &str, created: i64) -> Result<Value, TranslateError> {
        super::anthropic::chat_from_response(answer, model, created)
    }
    fn error(&self, status: u16, body: &[u8]) -> Value {
        super::anthropic::error_to_chat(status, body).1
    }
    fn stream(&self, model: &str, created: i64, id: String) -> Box<dyn StreamTranslate> {
        Box::new(super::anthropic::StreamTranslator::new(model, created, id))
    }
}
impl StreamTranslate for super::anthropic::StreamTranslator {
    fn push(&mut self, event: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        super::anthropic::StreamTranslator::push(self, event)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        super::anthropic::StreamTranslator::finish(self)
    }
}
impl VendorCodec for GeminiCodec {
    fn request(&self, hub: &Value, model: &str, stream: bool) -> Result<Value, TranslateError> {
        super::gemini::request_from_chat(hub, model, stream)
    }
    fn answer(&self, answer: &Value, model: &str, created: i64) -> Result<Value, TranslateError> {
        super::gemini::chat_from_response(answer, model, created)
    }
    fn error(&self, status: u16, body: &[u8]) -> Value {
        super::gemini::error_to_chat(status, body).1
    }
    fn stream(&self, model: &str, created: i64, id: String) -> Box<dyn StreamTranslate> {
        Box::new(super::gemini::StreamTranslator::new(model, created, id))
    }
}
impl StreamTranslate for super::gemini::StreamTranslator {
    fn push(&mut self, event: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        super::gemini::StreamTranslator::push(self, event)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        super::gemini::StreamTranslator::finish(self)
    }
}
