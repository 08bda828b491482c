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

/// Implements `VendorCodec` for a vendor module's unit struct, and `StreamTranslate` for its
/// `StreamTranslator`, with the translators every translated vendor module names alike
/// (`request_from_chat`, `chat_from_response`, `error_to_chat`, `StreamTranslator`), which must be
/// in scope where it is used.
macro_rules! translated_vendor {
    ($codec:ident) => {
        impl $crate::protocol::codec::VendorCodec for $codec {
            fn request(
                &self,
                hub: &serde_json::Value,
                model: &str,
                stream: bool,
            ) -> Result<serde_json::Value, $crate::protocol::TranslateError> {
                request_from_chat(hub, model, stream)
            }

            fn answer(
                &self,
                answer: &serde_json::Value,
                model: &str,
                created: i64,
            ) -> Result<serde_json::Value, $crate::protocol::TranslateError> {
                chat_from_response(answer, model, created)
            }

            /// The error body only: the status the retry policy reads stays the upstream's.
            fn error(&self, status: u16, body: &[u8]) -> serde_json::Value {
                error_to_chat(status, body).1
            }

            fn stream(
                &self,
                model: &str,
                created: i64,
                id: String,
            ) -> Box<dyn $crate::protocol::codec::StreamTranslate> {
                Box::new(StreamTranslator::new(model, created, id))
            }
        }

        impl $crate::protocol::codec::StreamTranslate for StreamTranslator {
            fn push(
                &mut self,
                event: &[u8],
            ) -> Result<Vec<bytes::Bytes>, $crate::protocol::TranslateError> {
                StreamTranslator::push(self, event)
            }

            fn finish(&mut self) -> Vec<bytes::Bytes> {
                StreamTranslator::finish(self)
            }
        }
    };
}

pub(crate) use translated_vendor;
