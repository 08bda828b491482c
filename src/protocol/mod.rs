//! Wire formats, pure: parsing, classification and translation of vendor payloads. The OpenAI chat
//! format is the hub: every vendor module translates between it and its own format.

pub mod anthropic;
pub mod codec;
pub mod count;
pub mod dropped;
mod error_message;
pub mod gemini;
pub mod models;
pub(crate) mod needle;
pub mod openai;
pub mod responses;
pub mod resume;
pub mod sse;
mod tokens;

use bytes::Bytes;

pub use count::{count_tokens_request, counted_tokens, estimate_tokens};
pub use dropped::Dropped;
pub use error_message::error_message;

use crate::domain::exchange::{Dialect, Usage};
use crate::domain::failover::StreamEventKind;

/// What one stream event means for the commit rule (SPEC 5.5), in the stream's dialect.
pub fn classify(dialect: Dialect, event: &[u8]) -> StreamEventKind {
    match dialect {
        Dialect::Hub => openai::classify_event(event),
        Dialect::Anthropic => classify_anthropic(event),
        Dialect::Responses => responses::events::classify_event(event),
        Dialect::Gemini => gemini::classify_event(event),
    }
}

/// One event read in a single pass: its kind, or `None` when it is noise a client must not see (a
/// `data:` line in a hub stream that is neither JSON nor `[DONE]`: the SDKs parse every data line
/// and would fail on it).
pub fn read_event(dialect: Dialect, event: &[u8]) -> Option<StreamEventKind> {
    match dialect {
        Dialect::Hub => openai::read_event(event),
        Dialect::Anthropic => Some(classify_anthropic(event)),
        Dialect::Responses => Some(responses::events::classify_event(event)),
        Dialect::Gemini => Some(gemini::classify_event(event)),
    }
}

/// Checks that a whole successful answer in `dialect` is JSON and reads the tokens it reports, in
/// one pass.
pub fn usage_of_answer(dialect: Dialect, body: &[u8]) -> Result<Option<Usage>, openai::NotJson> {
    match dialect {
        // The Responses API's usage is read by the same reader, under its own names.
        Dialect::Hub | Dialect::Responses => openai::usage_of_answer(body),
        Dialect::Anthropic => anthropic::usage_of_answer(body),
        Dialect::Gemini => gemini::usage_of_answer(body),
    }
}

/// The tokens one stream event in `dialect` reports, if any; events without usage cost one
/// substring scan.
pub fn usage_of_event(dialect: Dialect, event: &[u8]) -> Option<Usage> {
    match dialect {
        Dialect::Hub => openai::usage_of_event(event),
        Dialect::Anthropic => anthropic::usage_of_event(event),
        Dialect::Responses => responses::events::usage_of_event(event),
        Dialect::Gemini => gemini::usage_of(event),
    }
}

/// The gateway's own event for an upstream failure after the stream started, in the client's
/// stream dialect (SPEC 5.5).
pub fn error_event(dialect: Dialect, message: &str) -> Bytes {
    match dialect {
        Dialect::Hub => openai::error_event(None, message),
        Dialect::Anthropic => {
            let payload = serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}});
            Bytes::from(format!("event: error\ndata: {payload}\n\n"))
        }
        Dialect::Responses => responses::events::error_event(message),
        Dialect::Gemini => gemini::error_event(message),
    }
}

/// Anthropic's preambles are message_start, ping and an empty content_block_start; a delta, a
/// tool_use block or the stop reason is content; message_stop ends; `error` fails.
fn classify_anthropic(event: &[u8]) -> StreamEventKind {
    let data =
        sse::event_data(event).and_then(|d| serde_json::from_str::<serde_json::Value>(&d).ok());
    let kind = data
        .as_ref()
        .and_then(|d| d.get("type"))
        .and_then(|t| t.as_str())
        .or_else(|| sse::event_name(event))
        .unwrap_or("");
    match kind {
        "error" => StreamEventKind::Error,
        "message_stop" => StreamEventKind::End,
        "content_block_delta" | "message_delta" => StreamEventKind::Content,
        "content_block_start" => {
            let block = data.as_ref().and_then(|d| d.get("content_block"));
            let empty_text = block.is_some_and(|b| {
                b.get("type").and_then(|t| t.as_str()) == Some("text")
                    && b.get("text")
                        .and_then(|t| t.as_str())
                        .is_none_or(str::is_empty)
            });
            if empty_text {
                StreamEventKind::Preamble
            } else {
                StreamEventKind::Content
            }
        }
        _ => StreamEventKind::Preamble,
    }
}

/// A request or answer that cannot be expressed in the other format, or is malformed: a clear 400
/// for the client. What the target merely cannot honour is dropped and noted instead ([`Dropped`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TranslateError {
    pub message: String,
    /// The request field at fault, as a JSON path such as `messages[2].content[0].type`.
    pub param: Option<String>,
}

impl TranslateError {
    pub fn new(message: impl Into<String>, param: Option<String>) -> Self {
        TranslateError {
            message: message.into(),
            param,
        }
    }
}
