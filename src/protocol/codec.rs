//! One interface for every vendor the hub translates to: request, answer, error, stream.
use super::TranslateError;
use bytes::Bytes;
use serde_json::Value;

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
