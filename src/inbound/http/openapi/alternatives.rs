//! Bodies that are one of two wire shapes, depending on the client's dialect.

use salvo::oapi::ToSchema;
use serde::{Deserialize, Serialize};

use super::schemas::{AnthropicError, ChatCompletion, Error, Message};

/// An OpenAI `chat.completion`, or an Anthropic `Message` when the body was Claude-style.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ChatCompletionOrMessage {
    ChatCompletion(ChatCompletion),
    Message(Message),
}

/// The OpenAI error shape, or Anthropic's when the body was Claude-style (or sent to
/// `/v1/messages`).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ErrorOrAnthropicError {
    Error(Error),
    AnthropicError(AnthropicError),
}
