//! Wire formats, pure: parsing, classification and translation of vendor payloads. The OpenAI chat
//! format is the hub: every vendor module translates between it and its own format.

pub mod anthropic;
pub mod codec;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod sse;

use bytes::Bytes;

use crate::domain::failover::StreamEventKind;

/// The wire format of an upstream answer: the hub's (OpenAI chat, also what translated vendors
/// produce), or Anthropic's own when a Messages request is passed through natively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireFormat {
    OpenAi,
    Anthropic,
}

impl WireFormat {
    /// What one stream event means for the commit rule (SPEC 5.5).
    pub fn classify(self, event: &[u8]) -> StreamEventKind {
        match self {
            WireFormat::OpenAi => openai::classify_event(event),
            WireFormat::Anthropic => classify_anthropic(event),
        }
    }

    /// Whether an event is noise a client must not see: a `data:` line in an OpenAI stream that is
    /// neither JSON nor `[DONE]` (the SDKs parse every data line and would fail on it).
    pub fn is_garbage(self, event: &[u8]) -> bool {
        self == WireFormat::OpenAi
            && sse::event_data(event).is_some_and(|data| {
                let data = data.trim();
                data != "[DONE]" && serde_json::from_str::<serde::de::IgnoredAny>(data).is_err()
            })
    }

    /// The gateway's own event for an upstream failure after the stream started.
    pub fn error_event(self, status: Option<u16>, message: &str) -> Bytes {
        match self {
            WireFormat::OpenAi => openai::error_event(status, message),
            WireFormat::Anthropic => {
                let payload = serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}});
                Bytes::from(format!("event: error\ndata: {payload}\n\n"))
            }
        }
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

/// A request or answer that cannot be expressed in the other format: a clear 400 for the client,
/// never silently dropped content.
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
