//! Wire formats, pure: parsing, classification and translation of vendor payloads. The OpenAI chat
//! format is the hub: every vendor module translates between it and its own format.

pub mod anthropic;
pub mod gemini;
pub mod openai;
pub mod responses;
pub mod sse;

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
