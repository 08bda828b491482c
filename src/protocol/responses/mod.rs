//! The OpenAI Responses API (`POST /v1/responses`) over the chat hub: a Responses request becomes a
//! chat request, and a chat answer or chunk stream becomes a Response object or the Responses event
//! sequence (`event:` lines, `sequence_number`), as the official SDKs and Codex CLI parse them
//! (SPEC 4.3, 4.8).
//!
//! Files: `request` (Responses request -> chat), `tools` (the client's tools as chat functions and
//! chat calls back as the items the client declared), `answer` (whole chat answer -> Response),
//! `stream` (chat chunks -> Responses events).

mod answer;
pub mod events;
mod request;
mod stream;
mod tools;

#[cfg(test)]
mod tests;

pub use answer::response_from_chat;
pub use request::chat_request_from_responses;
pub use stream::ResponsesStreamWriter;

use super::TranslateError;

fn err(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param.to_string()))
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
