//! hub answer -> Anthropic (the `/v1/messages` ingress): the chat answer, error and stream as a
//! Message ([`messages_response_from_chat`]), an error body ([`error_from_chat`]) and Messages
//! events ([`MessagesStreamWriter`]).

use std::collections::HashSet;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{field_error, not_an_object, str_field, u64_field};
use crate::protocol::TranslateError;
use crate::protocol::openai::{Chunk, read_chunk};

/// The Anthropic `stop_reason` for a chat `finish_reason`.
fn stop_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The text of a chat message `content` (string or parts).
fn chat_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| str_field(part, "text"))
            .collect(),
        _ => String::new(),
    }
}

fn message_id(chat_id: Option<&str>) -> String {
    let id = chat_id.unwrap_or("");
    let id = id.strip_prefix("chatcmpl-").unwrap_or(id);
    if id.is_empty() {
        "msg_gateway".to_string()
    } else if id.starts_with("msg_") {
        id.to_string()
    } else {
        format!("msg_{id}")
    }
}

/// The signature of a thinking block the gateway made from another vendor's reasoning. It is no
/// Anthropic signature: such blocks are taken out before a later turn goes to an Anthropic
/// upstream natively ([`strip_translated_thinking`](super::strip_translated_thinking)).
pub const TRANSLATED_SIGNATURE: &str = "apiproxy:translated-reasoning";

/// The reasoning text of a chat message or delta: `reasoning_content` (DeepSeek, vLLM and this
/// gateway's own translations) or `reasoning` (OpenRouter, Ollama).
fn reasoning_text(message: &Value) -> Option<&str> {
    str_field(message, "reasoning_content")
        .or_else(|| str_field(message, "reasoning"))
        .filter(|text| !text.is_empty())
}

/// Anthropic usage for chat usage: cached prompt tokens are Anthropic's cache reads, which its
/// `input_tokens` does not include (the cache fields appear only when some were cached).
fn anthropic_usage(usage: &Value) -> Value {
    let prompt = u64_field(usage, "prompt_tokens");
    let cached = usage
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(prompt);
    let mut out = json!({
        "input_tokens": prompt - cached,
        "output_tokens": u64_field(usage, "completion_tokens"),
    });
    if cached > 0 {
        out["cache_read_input_tokens"] = json!(cached);
        out["cache_creation_input_tokens"] = json!(0);
    }
    out
}

/// An Anthropic Message object for an OpenAI `chat.completion`.
pub fn messages_response_from_chat(chat: &Value, model: &str) -> Result<Value, TranslateError> {
    if !chat.is_object() {
        return Err(not_an_object("the chat answer"));
    }
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| {
            TranslateError::new("the chat answer has no choices", Some("choices".into()))
        })?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    if let Some(reasoning) = reasoning_text(message) {
        content.push(
            json!({"type": "thinking", "thinking": reasoning, "signature": TRANSLATED_SIGNATURE}),
        );
    }
    let mut text = chat_text(message.get("content"));
    if text.is_empty()
        && let Some(refusal) = str_field(message, "refusal")
    {
        text = refusal.to_string();
    }
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
        for (j, call) in calls.iter().enumerate() {
            let param = format!("choices[0].message.tool_calls[{j}].function.arguments");
            let function = call.get("function").unwrap_or(&Value::Null);
            let input = match function.get("arguments") {
                None | Some(Value::Null) => Value::Object(Map::new()),
                Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
                Some(Value::String(text)) => serde_json::from_str::<Value>(text)
                    .ok()
                    .filter(Value::is_object)
                    .ok_or_else(|| {
                        field_error("tool call arguments are not a JSON object", param)
                    })?,
                Some(value @ Value::Object(_)) => value.clone(),
                Some(_) => {
                    return Err(field_error(
                        "tool call arguments are not a JSON object",
                        param,
                    ));
                }
            };
            content.push(json!({
                "type": "tool_use",
                "id": str_field(call, "id").unwrap_or(""),
                "name": str_field(function, "name").unwrap_or(""),
                "input": input,
            }));
        }
    }
    let has_tool_use = content
        .iter()
        .any(|block| str_field(block, "type") == Some("tool_use"));
    let mut stop = stop_reason(str_field(choice, "finish_reason").unwrap_or("stop"));
    // Some servers finish a tool-calling turn with "stop"; Anthropic clients loop on tool_use.
    if has_tool_use && stop == "end_turn" {
        stop = "tool_use";
    }
    let usage = chat.get("usage").unwrap_or(&Value::Null);
    Ok(json!({
        "id": message_id(str_field(chat, "id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": anthropic_usage(usage),
    }))
}

/// The Anthropic error type for an HTTP status.
fn anthropic_error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// An Anthropic error body for an OpenAI-format error answer.
pub fn error_from_chat(status: u16, chat_error_body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(chat_error_body).ok();
    let message = match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(Value::String(message)) => Some(message.clone()),
        Some(error) => str_field(error, "message").map(str::to_string),
        None => None,
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(chat_error_body).trim().to_string();
        if text.is_empty() {
            format!("upstream answered with status {status}")
        } else {
            text
        }
    });
    json!({"type": "error", "error": {"type": anthropic_error_type(status), "message": message}})
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    Thinking { index: u64 },
    Text { index: u64 },
    Tool { index: u64, call: u64 },
}

/// Turns OpenAI chat chunk events into the Anthropic Messages event sequence.
#[derive(Debug)]
pub struct MessagesStreamWriter {
    model: String,
    id: String,
    started: bool,
    next_index: u64,
    open: Option<OpenBlock>,
    /// OpenAI tool call indices that already had a block.
    tool_calls_seen: HashSet<u64>,
    stop_reason: Option<&'static str>,
    delta_sent: bool,
    /// message_stop or an error event was sent: nothing more follows.
    stopped: bool,
    /// The last chat usage seen, as Anthropic usage.
    usage: Option<Value>,
}

fn anthropic_event(kind: &str, payload: &Value) -> Bytes {
    Bytes::from(format!("event: {kind}\ndata: {payload}\n\n"))
}

impl MessagesStreamWriter {
    pub fn new(model: &str, id: String) -> Self {
        MessagesStreamWriter {
            model: model.to_string(),
            id,
            started: false,
            next_index: 0,
            open: None,
            tool_calls_seen: HashSet::new(),
            stop_reason: None,
            delta_sent: false,
            stopped: false,
            usage: None,
        }
    }

    fn ensure_started(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(anthropic_event(
            "message_start",
            &json!({"type": "message_start", "message": {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        ));
        out.push(anthropic_event("ping", &json!({"type": "ping"})));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some(block) = self.open.take() {
            let index = match block {
                OpenBlock::Thinking { index } => {
                    out.push(anthropic_event(
                        "content_block_delta",
                        &json!({"type": "content_block_delta", "index": index,
                            "delta": {"type": "signature_delta", "signature": TRANSLATED_SIGNATURE}}),
                    ));
                    index
                }
                OpenBlock::Text { index } | OpenBlock::Tool { index, .. } => index,
            };
            out.push(anthropic_event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            ));
        }
    }

    fn take_index(&mut self) -> u64 {
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        index
    }

    /// Text or thinking (`thinking` true) into the open block of that kind, opening one if needed.
    fn text(&mut self, text: &str, thinking: bool, out: &mut Vec<Bytes>) {
        let index = match self.open {
            Some(OpenBlock::Thinking { index }) if thinking => index,
            Some(OpenBlock::Text { index }) if !thinking => index,
            _ => {
                self.close_block(out);
                let index = self.take_index();
                let (block, open) = if thinking {
                    (
                        json!({"type": "thinking", "thinking": "", "signature": ""}),
                        OpenBlock::Thinking { index },
                    )
                } else {
                    (
                        json!({"type": "text", "text": ""}),
                        OpenBlock::Text { index },
                    )
                };
                out.push(anthropic_event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index, "content_block": block}),
                ));
                self.open = Some(open);
                index
            }
        };
        let delta = if thinking {
            json!({"type": "thinking_delta", "thinking": text})
        } else {
            json!({"type": "text_delta", "text": text})
        };
        out.push(anthropic_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
    }

    fn tool_call(&mut self, position: usize, call: &Value, out: &mut Vec<Bytes>) {
        let call_index = call
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let function = call.get("function").unwrap_or(&Value::Null);
        let index = match self.open {
            Some(OpenBlock::Tool { index, call }) if call == call_index => index,
            // A call whose block was already closed (interleaved deltas) cannot be reopened.
            _ if self.tool_calls_seen.contains(&call_index) => return,
            _ => {
                self.close_block(out);
                self.tool_calls_seen.insert(call_index);
                let index = self.take_index();
                let id = str_field(call, "id")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("toolu_{}_{call_index}", self.id));
                out.push(anthropic_event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "tool_use", "id": id,
                            "name": str_field(function, "name").unwrap_or(""), "input": {}}}),
                ));
                self.open = Some(OpenBlock::Tool {
                    index,
                    call: call_index,
                });
                index
            }
        };
        let arguments = str_field(function, "arguments").unwrap_or("");
        if !arguments.is_empty() {
            out.push(anthropic_event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": arguments}}),
            ));
        }
    }

    fn message_delta(&mut self, out: &mut Vec<Bytes>) {
        if self.delta_sent {
            return;
        }
        self.delta_sent = true;
        let usage = self
            .usage
            .take()
            .unwrap_or_else(|| json!({"output_tokens": 0}));
        out.push(anthropic_event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": usage}),
        ));
    }

    /// One whole OpenAI SSE event in, zero or more whole Anthropic events out. `message_delta`
    /// goes out with the finish reason when that chunk carries usage, else with the usage-only
    /// chunk OpenAI sends after it, else at `[DONE]`.
    pub fn push(&mut self, openai_event: &[u8]) -> Vec<Bytes> {
        if self.stopped {
            return Vec::new();
        }
        let chunk = match read_chunk(openai_event) {
            Chunk::Data(chunk) => chunk,
            Chunk::Done => return self.finish(),
            Chunk::Error(message) => return vec![self.error(&message)],
            Chunk::Noise => return Vec::new(),
        };
        let usage = chunk.get("usage").filter(|u| u.is_object());
        if let Some(usage) = usage {
            self.usage = Some(anthropic_usage(usage));
        }
        let mut out = Vec::new();
        self.ensure_started(&mut out);
        let choice = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|choice| choice.get("index").and_then(Value::as_u64) == Some(0))
                    .or_else(|| c.first())
            });
        if let Some(choice) = choice {
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            if let Some(reasoning) = reasoning_text(delta) {
                self.text(reasoning, true, &mut out);
            }
            for key in ["content", "refusal"] {
                if let Some(text) = str_field(delta, key).filter(|t| !t.is_empty()) {
                    self.text(text, false, &mut out);
                }
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (position, call) in calls.iter().enumerate() {
                    self.tool_call(position, call, &mut out);
                }
            }
            if let Some(finish) = str_field(choice, "finish_reason") {
                self.close_block(&mut out);
                let mut stop = stop_reason(finish);
                if stop == "end_turn" && !self.tool_calls_seen.is_empty() {
                    stop = "tool_use";
                }
                self.stop_reason = Some(stop);
            }
        }
        if self.stop_reason.is_some() && usage.is_some() {
            self.message_delta(&mut out);
        }
        out
    }

    /// The upstream ended: closes the open block and sends `message_delta` and `message_stop`
    /// unless already sent.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.stopped {
            return Vec::new();
        }
        let mut out = Vec::new();
        self.ensure_started(&mut out);
        self.close_block(&mut out);
        self.message_delta(&mut out);
        out.push(anthropic_event(
            "message_stop",
            &json!({"type": "message_stop"}),
        ));
        self.stopped = true;
        out
    }

    /// The Anthropic `error` event; nothing follows it.
    pub fn error(&mut self, message: &str) -> Bytes {
        self.stopped = true;
        anthropic_event(
            "error",
            &json!({"type": "error", "error": {"type": "api_error", "message": message}}),
        )
    }
}
