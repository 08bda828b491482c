//! Anthropic answer -> hub: a whole Message ([`chat_from_response`]), an error body
//! ([`error_to_chat`]) and the event stream ([`StreamTranslator`]) in chat format.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{not_an_object, str_field, u64_field};
use crate::protocol::{TranslateError, sse};

/// The chat `finish_reason` for an Anthropic `stop_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        // end_turn, stop_sequence, pause_turn and anything new.
        _ => "stop",
    }
}

/// Anthropic usage (input split into fresh, cache-read and cache-write tokens) as chat usage.
fn prompt_tokens(usage: &Value) -> u64 {
    u64_field(usage, "input_tokens")
        .saturating_add(u64_field(usage, "cache_read_input_tokens"))
        .saturating_add(u64_field(usage, "cache_creation_input_tokens"))
}

/// Chat usage in OpenAI's terms: the prompt holds every input token, and the cache reads are
/// `prompt_tokens_details.cached_tokens` (when there are any). Anthropic's cache writes have no
/// OpenAI field: they stay inside `prompt_tokens`, unnamed.
fn chat_usage(prompt: u64, completion: u64, cache_read: u64) -> Value {
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    });
    if cache_read > 0
        && let Value::Object(map) = &mut usage
    {
        map.insert(
            "prompt_tokens_details".into(),
            json!({"cached_tokens": cache_read}),
        );
    }
    usage
}

/// An OpenAI `chat.completion` object for an Anthropic Message.
pub fn chat_from_response(
    response: &Value,
    model: &str,
    created: i64,
) -> Result<Value, TranslateError> {
    if !response.is_object() {
        return Err(not_an_object("the anthropic answer"));
    }
    let blocks = response
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            TranslateError::new(
                "the anthropic answer has no 'content' array",
                Some("content".into()),
            )
        })?;
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    for block in blocks {
        match str_field(block, "type") {
            Some("text") => text.push_str(str_field(block, "text").unwrap_or("")),
            Some("thinking") => reasoning.push_str(str_field(block, "thinking").unwrap_or("")),
            Some("tool_use") => {
                let input = block
                    .get("input")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(Map::new()));
                tool_calls.push(json!({
                    "id": str_field(block, "id").unwrap_or(""),
                    "type": "function",
                    "function": {
                        "name": str_field(block, "name").unwrap_or(""),
                        "arguments": input.to_string(),
                    }
                }));
            }
            // redacted_thinking, server tool blocks and future types have no chat equivalent.
            _ => {}
        }
    }
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    message.insert("content".into(), content);
    if !reasoning.is_empty() {
        message.insert("reasoning_content".into(), Value::String(reasoning));
    }
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let finish = finish_reason(str_field(response, "stop_reason").unwrap_or("end_turn"));
    let usage = response.get("usage").unwrap_or(&Value::Null);
    let model = str_field(response, "model")
        .filter(|m| !m.is_empty())
        .unwrap_or(model);
    Ok(json!({
        "id": format!("chatcmpl-{}", str_field(response, "id").unwrap_or("anthropic")),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": Value::Object(message),
            "logprobs": null,
            "finish_reason": finish,
        }],
        "usage": chat_usage(
            prompt_tokens(usage),
            u64_field(usage, "output_tokens"),
            u64_field(usage, "cache_read_input_tokens"),
        ),
    }))
}

/// An Anthropic error answer as (status for retry classification, OpenAI error body). A 529
/// (Anthropic's "overloaded") becomes 503 so the retry policy treats it as retryable.
pub fn error_to_chat(status: u16, body: &[u8]) -> (u16, Value) {
    let status_out = if status == 529 { 503 } else { status };
    let text = String::from_utf8_lossy(body).trim().to_string();
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let (message, kind) = match parsed.as_ref().and_then(|v| v.get("error")) {
        Some(error @ Value::Object(_)) => (
            str_field(error, "message").map(str::to_string),
            str_field(error, "type").map(str::to_string),
        ),
        Some(Value::String(message)) => (Some(message.clone()), None),
        _ => (None, None),
    };
    let message = message
        .or_else(|| (!text.is_empty()).then_some(text))
        .unwrap_or_else(|| format!("upstream answered with status {status}"));
    let body = json!({"error": {
        "message": message,
        "type": kind.clone().unwrap_or_else(|| "upstream_error".into()),
        "param": null,
        "code": kind,
    }});
    (status_out, body)
}

fn sse_data(payload: &Value) -> Bytes {
    Bytes::from(format!("data: {payload}\n\n"))
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Turns an Anthropic event stream into OpenAI chat chunk events, keeping state across events
/// (tool-call numbering per content block, usage, one id/created/model for every chunk). The usage
/// goes out as OpenAI sends it when asked (`stream_options.include_usage`): a chunk of its own with
/// `"choices": []`, right after the finish chunk.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: i64,
    id: String,
    started: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
    cache_read_tokens: u64,
    /// Anthropic content block index -> OpenAI tool call index.
    tool_blocks: HashMap<u64, u64>,
    tool_count: u64,
    finish_sent: bool,
    /// `[DONE]` or an error event was sent: nothing more follows.
    done: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, created: i64, id: String) -> Self {
        StreamTranslator {
            model: model.to_string(),
            created,
            id,
            started: false,
            prompt_tokens: 0,
            completion_tokens: 0,
            cache_read_tokens: 0,
            tool_blocks: HashMap::new(),
            tool_count: 0,
            finish_sent: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Bytes {
        sse_data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }))
    }

    /// The finish chunk, then the usage chunk.
    fn finish_chunks(&mut self, reason: &str, out: &mut Vec<Bytes>) {
        self.finish_sent = true;
        out.push(self.chunk(json!({}), Some(reason)));
        let usage = chat_usage(
            self.prompt_tokens,
            self.completion_tokens,
            self.cache_read_tokens,
        );
        out.push(sse_data(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        })));
    }

    /// Reads the counts a `usage` object has (in `message_delta`, only the output is sure to be
    /// there; the others are cumulative when present).
    fn read_usage(&mut self, usage: &Value) {
        if usage.get("output_tokens").is_some_and(Value::is_u64) {
            self.completion_tokens = u64_field(usage, "output_tokens");
        }
        if usage.get("input_tokens").is_some_and(Value::is_u64) {
            self.prompt_tokens = prompt_tokens(usage);
        }
        if usage
            .get("cache_read_input_tokens")
            .is_some_and(Value::is_u64)
        {
            self.cache_read_tokens = u64_field(usage, "cache_read_input_tokens");
        }
    }

    /// One whole upstream SSE event in, zero or more whole OpenAI events out. An event whose data
    /// is not JSON is an error; events without data (comments) and unknown types give nothing.
    pub fn push(&mut self, event: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        if self.done {
            return Ok(Vec::new());
        }
        let Some(data) = sse::event_data(event) else {
            return Ok(Vec::new());
        };
        let data = data.trim();
        if data.is_empty() {
            return Ok(Vec::new());
        }
        let payload: Value = serde_json::from_str(data).map_err(|e| {
            TranslateError::new(format!("anthropic stream event is not JSON: {e}"), None)
        })?;
        let kind = str_field(&payload, "type")
            .or_else(|| sse::event_name(event))
            .unwrap_or("");
        let mut out = Vec::new();
        match kind {
            // A repeated message_start (none in a real stream) is ignored with the unknown types.
            "message_start" if !self.started => {
                self.started = true;
                let message = payload.get("message").unwrap_or(&Value::Null);
                self.read_usage(message.get("usage").unwrap_or(&Value::Null));
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let index = payload
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                let block = payload.get("content_block").unwrap_or(&Value::Null);
                match str_field(block, "type") {
                    Some("text") => {
                        let text = str_field(block, "text").unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), None));
                        }
                    }
                    Some("thinking") => {
                        let text = str_field(block, "thinking").unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"reasoning_content": text}), None));
                        }
                    }
                    Some("tool_use") => {
                        let n = self.tool_count;
                        self.tool_count = self.tool_count.saturating_add(1);
                        self.tool_blocks.insert(index, n);
                        // The API starts tool blocks with `input: {}` and streams the input as
                        // deltas; a non-empty input here is passed on as the first arguments.
                        let arguments = match block.get("input") {
                            Some(Value::Object(map)) if !map.is_empty() => {
                                Value::Object(map.clone()).to_string()
                            }
                            _ => String::new(),
                        };
                        out.push(self.chunk(
                            json!({"tool_calls": [{
                                "index": n,
                                "id": str_field(block, "id").unwrap_or(""),
                                "type": "function",
                                "function": {
                                    "name": str_field(block, "name").unwrap_or(""),
                                    "arguments": arguments,
                                },
                            }]}),
                            None,
                        ));
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = payload
                    .get("index")
                    .and_then(Value::as_u64)
                    .unwrap_or(u64::MAX);
                let delta = payload.get("delta").unwrap_or(&Value::Null);
                match str_field(delta, "type") {
                    Some("text_delta") => {
                        let text = str_field(delta, "text").unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"content": text}), None));
                        }
                    }
                    Some("thinking_delta") => {
                        let text = str_field(delta, "thinking").unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"reasoning_content": text}), None));
                        }
                    }
                    Some("input_json_delta") => {
                        let partial = str_field(delta, "partial_json").unwrap_or("");
                        if let Some(n) = self.tool_blocks.get(&index).copied()
                            && !partial.is_empty()
                        {
                            out.push(self.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": partial}}]}),
                                None,
                            ));
                        }
                    }
                    // signature_delta, citations_delta and future deltas carry nothing for chat.
                    _ => {}
                }
            }
            "message_delta" => {
                // Newer API versions repeat the (cumulative) input counts here.
                self.read_usage(payload.get("usage").unwrap_or(&Value::Null));
                let stop = payload
                    .get("delta")
                    .and_then(|d| str_field(d, "stop_reason"));
                if let Some(stop) = stop
                    && !self.finish_sent
                {
                    self.finish_chunks(finish_reason(stop), &mut out);
                }
            }
            "message_stop" => {
                if !self.finish_sent {
                    self.finish_chunks("stop", &mut out);
                }
                out.push(Bytes::from_static(DONE));
                self.done = true;
            }
            "error" => {
                let error = payload.get("error").unwrap_or(&Value::Null);
                let kind = str_field(error, "type").unwrap_or("api_error");
                let message = str_field(error, "message").unwrap_or("upstream stream error");
                out.push(sse_data(&json!({"error": {
                    "message": message,
                    "type": kind,
                    "code": kind,
                }})));
                self.done = true;
            }
            // ping, content_block_stop and unknown event types.
            _ => {}
        }
        Ok(out)
    }

    /// The upstream ended without `message_stop`: `[DONE]` if a stop reason was already seen,
    /// otherwise nothing (the stream was cut; the gateway reports that).
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.done || !self.finish_sent {
            return Vec::new();
        }
        self.done = true;
        vec![Bytes::from_static(DONE)]
    }
}
