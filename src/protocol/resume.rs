//! Stream resume's wire work (SPEC 5.5): reading the partial answer from the events a client got,
//! writing the request that continues it, and splicing the continuation's events into the first
//! stream (its ids kept, its second preamble dropped) so the client sees one answer.
//!
//! Hub (OpenAI chat) streams and Anthropic's own streams can be resumed; Responses and Gemini
//! streams passed through in their own format cannot (their ids and sequence numbers are not
//! rewritten), and end with the error event as without resume.
//!
//! The continuation: for a provider that takes a trailing assistant message as the start of its
//! answer (Anthropic, whether it gets the Messages format or the hub translated), the partial
//! answer is that prefill, its trailing whitespace trimmed (Anthropic refuses it) and removed from
//! the continuation's start if the model writes it again. For every other provider the partial
//! answer is an assistant message followed by a user message asking to continue exactly where it
//! stopped, without repeating anything. Only a text answer is continued: one that holds a tool
//! call, a refusal, thinking or several choices, or that already finished, is not.

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::domain::exchange::{Dialect, ResumableStream, UpstreamEvent};
use crate::protocol::sse;

/// What the continuation instruction asks of a provider that cannot take a prefill.
pub const CONTINUE_INSTRUCTION: &str = "Your previous answer was cut off. Continue it exactly \
    where it stopped, from the next character: do not repeat anything already written and do \
    not add any preamble.";

/// A request body whose `messages` a continuation extends (the chat body, in the hub's or
/// Anthropic's dialect, implements it).
pub trait ContinuableBody: Send {
    /// The body for `model_id` with `edit` applied to its `messages`; `None` when it has no
    /// list of messages.
    fn continued(
        &self,
        model_id: &str,
        edit: &mut dyn FnMut(Vec<Value>) -> Vec<Value>,
    ) -> Option<Bytes>;
}

/// The follower of `body`'s answer stream in `dialect`, when that dialect can be resumed.
pub fn follower(
    body: Box<dyn ContinuableBody>,
    dialect: Dialect,
) -> Option<Box<dyn ResumableStream>> {
    match dialect {
        Dialect::Hub => Some(Box::new(HubFollower::new(body))),
        Dialect::Anthropic => Some(Box::new(AnthropicFollower::new(body))),
        Dialect::Responses | Dialect::Gemini => None,
    }
}

/// The partial answer appended to `messages`: joined to a trailing assistant message (the
/// client's own prefill) when there is one, else as a new assistant message.
fn with_partial(mut messages: Vec<Value>, text: &str) -> Vec<Value> {
    if text.is_empty() {
        return messages;
    }
    if let Some(last) = messages.last_mut()
        && last.get("role").and_then(Value::as_str) == Some("assistant")
        && last.get("tool_calls").is_none()
    {
        match last.get_mut("content") {
            Some(Value::String(content)) => {
                content.push_str(text);
                return messages;
            }
            Some(Value::Array(blocks)) => {
                blocks.push(json!({"type": "text", "text": text}));
                return messages;
            }
            _ => {}
        }
    }
    messages.push(json!({"role": "assistant", "content": text}));
    messages
}

/// The continuation's messages and the whitespace its answer may repeat at its start (trimmed
/// from a prefill, which Anthropic refuses with trailing whitespace).
fn continued_messages(messages: Vec<Value>, text: &str, prefill: bool) -> (Vec<Value>, String) {
    if prefill {
        let kept = text.trim_end();
        let trimmed = text[kept.len()..].to_string();
        return (with_partial(messages, kept), trimmed);
    }
    let mut messages = with_partial(messages, text);
    if !text.is_empty() {
        messages.push(json!({"role": "user", "content": CONTINUE_INSTRUCTION}));
    }
    (messages, String::new())
}

/// `text` without what of `skip` it starts with; `skip` keeps what is still to be matched.
fn strip_repeated(text: &str, skip: &mut String) -> String {
    let mut rest = text;
    while let (Some(a), Some(b)) = (rest.chars().next(), skip.chars().next()) {
        if a != b {
            skip.clear();
            break;
        }
        rest = &rest[a.len_utf8()..];
        skip.remove(0);
    }
    if !rest.is_empty() {
        skip.clear();
    }
    rest.to_string()
}

/// Whether a JSON value carries nothing (`null`, `""`, `[]`, `{}`).
fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

/// Follows an OpenAI chat stream (the hub: also what a translated vendor's stream becomes).
pub struct HubFollower {
    body: Box<dyn ContinuableBody>,
    text: String,
    /// The answer holds more than text, or finished: it cannot be continued.
    blocked: bool,
    /// The first stream's `id`, `created` and `model`, which every spliced chunk carries.
    id: Option<Value>,
    created: Option<Value>,
    model: Option<Value>,
    /// Whitespace a prefill trimmed, dropped from the continuation's start if repeated.
    skip: String,
}

impl HubFollower {
    pub fn new(body: Box<dyn ContinuableBody>) -> Self {
        HubFollower {
            body,
            text: String::new(),
            blocked: false,
            id: None,
            created: None,
            model: None,
            skip: String::new(),
        }
    }

    fn read(&mut self, chunk: &Value) {
        for (field, slot) in [
            ("id", &mut self.id),
            ("created", &mut self.created),
            ("model", &mut self.model),
        ] {
            if slot.is_none() {
                *slot = chunk.get(field).filter(|v| !v.is_null()).cloned();
            }
        }
        for choice in chunk
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let first = choice.get("index").and_then(Value::as_u64).unwrap_or(0) == 0;
            let finished = choice.get("finish_reason").is_some_and(|f| !f.is_null());
            let delta = choice.get("delta");
            let more_than_text = ["tool_calls", "function_call", "refusal"]
                .iter()
                .any(|key| {
                    delta
                        .and_then(|d| d.get(*key))
                        .is_some_and(|v| !is_empty(v))
                });
            if !first || finished || more_than_text {
                self.blocked = true;
            }
            if let Some(text) = delta.and_then(|d| d.get("content")).and_then(Value::as_str) {
                self.text.push_str(text);
            }
        }
    }
}

impl ResumableStream for HubFollower {
    fn observe(&mut self, event: &UpstreamEvent) {
        let Some(data) = sse::data_of(&event.bytes) else {
            return;
        };
        let data = data.trim();
        if data == "[DONE]" {
            self.blocked = true;
            return;
        }
        if let Ok(chunk) = serde_json::from_str::<Value>(data) {
            self.read(&chunk);
        }
    }

    fn continuation(&mut self, model_id: &str, prefill: bool) -> Option<Bytes> {
        if self.blocked {
            return None;
        }
        let text = self.text.clone();
        let mut skip = String::new();
        let body = self.body.continued(model_id, &mut |messages| {
            let (messages, trimmed) = continued_messages(messages, &text, prefill);
            skip = trimmed;
            messages
        })?;
        self.skip = skip;
        Some(body)
    }

    fn splice(&mut self, event: UpstreamEvent) -> Option<UpstreamEvent> {
        let Some(data) = sse::data_of(&event.bytes) else {
            return Some(event);
        };
        let Ok(Value::Object(mut chunk)) = serde_json::from_str::<Value>(data.trim()) else {
            // `[DONE]` and anything else that is not a chunk goes as it is.
            return Some(event);
        };
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Some(event);
        }
        for (field, value) in [
            ("id", &self.id),
            ("created", &self.created),
            ("model", &self.model),
        ] {
            if let Some(value) = value {
                chunk.insert(field.into(), value.clone());
            }
        }
        let mut carries = chunk.get("usage").is_some_and(|u| !u.is_null());
        if let Some(choices) = chunk.get_mut("choices").and_then(Value::as_array_mut) {
            for choice in choices {
                carries |= choice.get("finish_reason").is_some_and(|f| !f.is_null());
                let Some(delta) = choice.get_mut("delta").and_then(Value::as_object_mut) else {
                    continue;
                };
                // The client got the role with the first stream.
                delta.remove("role");
                if let Some(Value::String(text)) = delta.get_mut("content")
                    && !self.skip.is_empty()
                {
                    *text = strip_repeated(text, &mut self.skip);
                }
                carries |= delta.values().any(|v| !is_empty(v));
            }
        }
        // A chunk left with nothing (the continuation's role-only preamble) is not sent.
        if !carries {
            return None;
        }
        let chunk = Value::Object(chunk);
        self.read(&chunk);
        Some(UpstreamEvent {
            bytes: Bytes::from(format!("data: {chunk}\n\n")),
            ..event
        })
    }
}

/// Follows an Anthropic Messages stream passed through in Anthropic's own format.
pub struct AnthropicFollower {
    body: Box<dyn ContinuableBody>,
    text: String,
    blocked: bool,
    /// The text block still open when the stream broke: the continuation's first text joins it.
    open_text: Option<u64>,
    /// The next block index of the client's stream.
    next_index: u64,
    skip: String,
    /// How the continuation's block indexes map to the client's: (joins the open block, base).
    joins_open: bool,
    base: u64,
}

impl AnthropicFollower {
    pub fn new(body: Box<dyn ContinuableBody>) -> Self {
        AnthropicFollower {
            body,
            text: String::new(),
            blocked: false,
            open_text: None,
            next_index: 0,
            skip: String::new(),
            joins_open: false,
            base: 0,
        }
    }

    fn read(&mut self, event: &Map<String, Value>) {
        let index = event.get("index").and_then(Value::as_u64);
        match event.get("type").and_then(Value::as_str).unwrap_or("") {
            "content_block_start" => {
                let block = event.get("content_block");
                match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
                    Some("text") => {
                        self.open_text = index;
                        let text = block.and_then(|b| b.get("text")).and_then(Value::as_str);
                        self.text.push_str(text.unwrap_or(""));
                    }
                    // Tool use, thinking, server tools: not a text answer.
                    _ => self.blocked = true,
                }
                if let Some(index) = index {
                    self.next_index = self.next_index.max(index + 1);
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta");
                match delta.and_then(|d| d.get("type")).and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.and_then(|d| d.get("text")).and_then(Value::as_str);
                        self.text.push_str(text.unwrap_or(""));
                    }
                    _ => self.blocked = true,
                }
            }
            "content_block_stop" => self.open_text = None,
            "message_delta" | "message_stop" => self.blocked = true,
            _ => {}
        }
    }
}

impl ResumableStream for AnthropicFollower {
    fn observe(&mut self, event: &UpstreamEvent) {
        let Some(data) = sse::data_of(&event.bytes) else {
            return;
        };
        if let Ok(Value::Object(event)) = serde_json::from_str::<Value>(&data) {
            self.read(&event);
        }
    }

    /// Anthropic always takes the partial answer as a prefill.
    fn continuation(&mut self, model_id: &str, _prefill: bool) -> Option<Bytes> {
        if self.blocked {
            return None;
        }
        let text = self.text.clone();
        let mut skip = String::new();
        let body = self.body.continued(model_id, &mut |messages| {
            let (messages, trimmed) = continued_messages(messages, &text, true);
            skip = trimmed;
            messages
        })?;
        self.skip = skip;
        self.joins_open = self.open_text.is_some();
        self.base = self.open_text.unwrap_or(self.next_index);
        Some(body)
    }

    fn splice(&mut self, event: UpstreamEvent) -> Option<UpstreamEvent> {
        let Some(data) = sse::data_of(&event.bytes) else {
            return Some(event);
        };
        let Ok(Value::Object(mut payload)) = serde_json::from_str::<Value>(&data) else {
            return Some(event);
        };
        let kind = payload
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        // The client has its message already: one message_start per stream.
        if kind == "message_start" {
            return None;
        }
        if let Some(index) = payload.get("index").and_then(Value::as_u64) {
            if kind == "content_block_start" && index == 0 && self.joins_open {
                let block_type = payload.get("content_block").and_then(|b| b.get("type"));
                let text_block = block_type.and_then(Value::as_str) == Some("text");
                if text_block {
                    // The client's text block is still open: the continuation writes into it.
                    return None;
                }
                // Not text after all: it becomes a block of its own after the open one.
                self.joins_open = false;
                self.base = self.next_index;
            }
            payload.insert("index".into(), json!(self.base + index));
        }
        if kind == "content_block_delta"
            && !self.skip.is_empty()
            && let Some(Value::String(text)) =
                payload.get_mut("delta").and_then(|d| d.get_mut("text"))
        {
            *text = strip_repeated(text, &mut self.skip);
            if text.is_empty() {
                return None;
            }
        }
        self.read(&payload);
        Some(UpstreamEvent {
            bytes: Bytes::from(format!(
                "event: {kind}\ndata: {}\n\n",
                Value::Object(payload)
            )),
            ..event
        })
    }
}

#[cfg(test)]
mod tests;
