//! Translation between the OpenAI chat hub format and Google's Gemini `generateContent` API
//! (v1beta), both ways. Pure: no I/O, and nothing here panics on any input.
//!
//! How the gateway uses it:
//! - The model goes in the URL, never in the body: `POST {base}/v1beta/models/{id}:generateContent`,
//!   or `POST {base}/v1beta/models/{id}:streamGenerateContent?alt=sse` for streams, where `{id}` is
//!   [`model_id`] of the provider's model name. Without `alt=sse` Gemini streams one JSON array
//!   instead of server-sent events, which [`StreamTranslator`] does not read.
//! - [`request_from_chat`] builds the body for both paths (`stream` changes nothing in it).
//! - [`chat_from_response`] reads a `generateContent` answer (also a JSON array of stream pieces).
//! - [`StreamTranslator`] turns each whole `data: {GenerateContentResponse}` event into OpenAI
//!   chunk events; Gemini sends no `[DONE]`, [`StreamTranslator::finish`] adds it.
//! - [`error_to_chat`] turns Gemini's `{"error":{"code","message","status"}}` (or the same wrapped
//!   in a list) into the OpenAI error body, keeping the status.
//! - [`chat_request_from_gemini`] reads a native Gemini body (sent to the Gemini-native endpoints,
//!   or to `/v1/chat/completions`); [`response_from_chat`], [`GeminiStreamWriter`] and
//!   [`google_error`] answer such clients in Gemini's format; [`GeminiBody`] is their request
//!   passed through to Gemini providers, and [`classify_event`] reads its native stream.
//!
//! OpenAI request fields dropped on the way to Gemini because Gemini has no equivalent and they
//! are hints, not content: `logit_bias`, `user`, `service_tier`, `store`, `metadata`,
//! `parallel_tool_calls`, `stream_options` (Gemini always reports usage at the end of a stream),
//! `reasoning_effort` (thinking budgets differ per Gemini model; a wrong one is a 400), `prediction`,
//! `top_logprobs` without `logprobs`, `web_search_options`, message `name`s and image `detail`.
//! Fields that would change the answer and cannot be expressed are refused with a
//! [`TranslateError`] naming the field: `logprobs: true`, `audio`, `modalities` with audio, unknown
//! roles and content part types, non-function tools.
//!
//! Files: `request` (chat request -> Gemini body), `schema` (JSON schema cleaning for function
//! declarations), `answer` (Gemini answer -> `chat.completion`), `errors` (Gemini error bodies),
//! `stream` (Gemini stream -> chunk events), `ingress` (native Gemini request -> chat request),
//! `ingress_answer` (chat answer and chunks -> Gemini, Google's errors, native event kinds),
//! `native` (the client's own body as the domain's payload),
//! `codec` (the [`VendorCodec`](super::codec::VendorCodec) of Gemini). The small helpers they
//! share live here.

mod answer;
mod codec;
mod errors;
mod ingress;
mod ingress_answer;
mod native;
mod request;
mod schema;
mod stream;

#[cfg(test)]
mod tests;

pub use answer::chat_from_response;
pub use codec::GeminiCodec;
pub use errors::error_to_chat;
pub use ingress::chat_request_from_gemini;
pub use ingress_answer::{
    GeminiStreamWriter, classify_event, error_event, error_from_chat, google_error,
    response_from_chat, status_name, usage_of, usage_of_answer,
};
pub use native::GeminiBody;
pub use request::request_from_chat;
pub use stream::StreamTranslator;

use serde_json::{Map, Value};

use super::TranslateError;

type Object = Map<String, Value>;

fn bad(message: impl Into<String>, param: impl Into<String>) -> TranslateError {
    TranslateError::new(message, Some(param.into()))
}

/// The plain model id of a Gemini model name: `models/gemini-2.0-flash` -> `gemini-2.0-flash`.
pub fn model_id(name: &str) -> &str {
    name.strip_prefix("models/").unwrap_or(name)
}

fn part_type(part: &Value) -> Option<&str> {
    part.get("type").and_then(Value::as_str)
}

fn is_thought(part: &Object) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}
