//! Translation between the OpenAI chat hub format and the Anthropic Messages API, both directions.
//!
//! * hub -> Anthropic: [`request_from_chat`] builds the upstream request; [`chat_from_response`],
//!   [`error_to_chat`] and [`StreamTranslator`] turn the upstream answer back into chat format.
//! * Anthropic -> hub (the `/v1/messages` ingress): [`chat_request_from_messages`] turns a client's
//!   Messages request into a chat request; [`messages_response_from_chat`], [`error_from_chat`] and
//!   [`MessagesStreamWriter`] turn the hub's answer back into Anthropic format.
//!
//! Everything here is pure and total: any JSON value or byte string gives a value or a
//! [`TranslateError`], never a panic. Malformed input is an error naming the field; what the other
//! side merely cannot honour (server tools, thinking blocks, beta-only fields) is dropped and noted
//! in a [`Dropped`](crate::protocol::Dropped) so the adapter logs and counts it (SPEC 4.8).
//!
//! Files: `upstream_request` (hub -> Anthropic request), `upstream_answer` (Anthropic answer, error
//! and stream -> hub), `ingress_request` (Messages request -> hub), `ingress_answer` (hub answer,
//! error and stream -> Anthropic), `codec` (the [`VendorCodec`](super::codec::VendorCodec) of
//! Anthropic), `usage` (the tokens a native Anthropic answer or stream reports). The small field
//! helpers they share live here.

mod codec;
mod ingress_answer;
mod ingress_request;
mod upstream_answer;
mod upstream_request;
mod usage;

#[cfg(test)]
mod tests;

pub use codec::AnthropicCodec;
pub use ingress_answer::{
    MessagesStreamWriter, TRANSLATED_SIGNATURE, error_from_chat, messages_response_from_chat,
};
pub use ingress_request::{chat_request_from_messages, strip_translated_thinking};
pub use upstream_answer::{StreamTranslator, chat_from_response, error_to_chat};
pub use upstream_request::{DEFAULT_MAX_TOKENS, request_from_chat};
pub use usage::{usage_of_answer, usage_of_event};

use serde_json::{Map, Value};

use super::TranslateError;

fn field_error(message: impl Into<String>, param: impl Into<String>) -> TranslateError {
    TranslateError::new(message, Some(param.into()))
}

fn not_an_object(what: &str) -> TranslateError {
    TranslateError::new(format!("{what} must be a JSON object"), None)
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn u64_field(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

fn number_field(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, TranslateError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Number(_)) => Ok(Some(value.clone())),
        Some(_) => Err(field_error(format!("'{key}' must be a number"), key)),
    }
}
