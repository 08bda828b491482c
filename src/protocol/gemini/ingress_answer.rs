//! hub answer -> Gemini, for clients of the Gemini-native endpoints (SPEC 4.7): a chat answer as a
//! `GenerateContentResponse` ([`response_from_chat`]), chat chunk events as Gemini stream events
//! ([`GeminiStreamWriter`]), errors in Google's shape ([`google_error`], [`error_from_chat`]), and
//! a native Gemini stream event classified for the commit rule ([`classify_event`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::domain::exchange::Usage;
use crate::domain::failover::StreamEventKind;
use crate::protocol::openai::{Chunk, NotJson, read_chunk};
use crate::protocol::sse;
use crate::protocol::tokens::{Count, read_event_object, read_object};

/// Google's status name for an HTTP status (google.rpc.Code).
pub fn status_name(code: u16) -> &'static str {
    match code {
        400 | 413 | 422 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 | 501 => "UNIMPLEMENTED",
        409 => "ABORTED",
        429 => "RESOURCE_EXHAUSTED",
        499 => "CANCELLED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        400..=499 => "FAILED_PRECONDITION",
        _ => "INTERNAL",
    }
}

/// Google's error body: `{"error": {"code", "message", "status"}}`.
pub fn google_error(code: u16, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "status": status_name(code)}})
}

/// Google's error body for an error answer in the hub's (OpenAI) shape.
pub fn error_from_chat(status: u16, chat_error_body: &[u8]) -> Value {
    let message = crate::protocol::error_message(chat_error_body);
    let message = if message.is_empty() {
        format!("upstream answered with status {status}")
    } else {
        message
    };
    google_error(status, &message)
}

/// Gemini's finish reason for chat's.
fn finish_reason(finish: &str) -> &'static str {
    match finish {
        "length" => "MAX_TOKENS",
        "content_filter" => "SAFETY",
        _ => "STOP",
    }
}

/// Gemini's `usageMetadata` for chat usage (cached and reasoning tokens when reported).
fn usage_metadata(usage: &Value) -> Value {
    let count = |pointer: &str| usage.pointer(pointer).and_then(Value::as_u64).unwrap_or(0);
    let (prompt, completion) = (count("/prompt_tokens"), count("/completion_tokens"));
    let thoughts = count("/completion_tokens_details/reasoning_tokens").min(completion);
    let mut out = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": completion - thoughts,
        "totalTokenCount": prompt.saturating_add(completion),
    });
    let cached = count("/prompt_tokens_details/cached_tokens");
    if cached > 0 {
        out["cachedContentTokenCount"] = json!(cached);
    }
    if thoughts > 0 {
        out["thoughtsTokenCount"] = json!(thoughts);
    }
    out
}

/// The reasoning text of a chat message or delta.
fn reasoning_text(message: &Value) -> Option<&str> {
    message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// A `functionCall` part; arguments that are not a JSON object are kept under `arguments`.
fn call_part(id: &str, name: &str, arguments: &str) -> Value {
    let args = match serde_json::from_str::<Value>(arguments) {
        Ok(Value::Object(args)) => Value::Object(args),
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({"arguments": arguments}),
    };
    let mut call = json!({"name": name, "args": args});
    if !id.is_empty() {
        call["id"] = json!(id);
    }
    json!({"functionCall": call})
}

fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

fn candidate(parts: Vec<Value>, finish: Option<&str>) -> Value {
    let mut candidate = json!({"content": {"role": "model", "parts": parts}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish_reason(finish));
    }
    candidate
}

/// The `GenerateContentResponse` for a whole chat answer.
pub fn response_from_chat(chat: &Value, model: &str) -> Value {
    let choice = chat.pointer("/choices/0").unwrap_or(&Value::Null);
    let message = choice.get("message").unwrap_or(&Value::Null);
    let mut parts = Vec::new();
    if let Some(reasoning) = reasoning_text(message) {
        parts.push(json!({"text": reasoning, "thought": true}));
    }
    let text = text_of(message.get("content"));
    if !text.is_empty() {
        parts.push(json!({"text": text}));
    }
    for call in message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let field = |pointer: &str| call.pointer(pointer).and_then(Value::as_str).unwrap_or("");
        parts.push(call_part(
            field("/id"),
            field("/function/name"),
            field("/function/arguments"),
        ));
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .unwrap_or("stop");
    let mut response = json!({
        "candidates": [candidate(parts, Some(finish))],
        "modelVersion": model,
    });
    if let Some(id) = chat.get("id").and_then(Value::as_str) {
        response["responseId"] = json!(id);
    }
    if let Some(usage) = chat.get("usage").filter(|u| u.is_object()) {
        response["usageMetadata"] = usage_metadata(usage);
    }
    response
}

/// Turns chat chunk events into Gemini stream events (`data: {GenerateContentResponse}`): text and
/// thoughts as they come; a tool call once its arguments are whole (Gemini sends each call in one
/// piece); the finish reason and usage on the last event.
#[derive(Debug)]
pub struct GeminiStreamWriter {
    model: String,
    /// Tool calls by chat index: (id, name, arguments so far).
    calls: BTreeMap<u64, (String, String, String)>,
    finish: Option<String>,
    usage: Option<Value>,
    ended: bool,
}

fn event(chunk: &Value) -> Bytes {
    Bytes::from(format!("data: {chunk}\r\n\r\n"))
}

impl GeminiStreamWriter {
    pub fn new(model: &str) -> Self {
        GeminiStreamWriter {
            model: model.to_string(),
            calls: BTreeMap::new(),
            finish: None,
            usage: None,
            ended: false,
        }
    }

    fn chunk(&self, parts: Vec<Value>, finish: Option<&str>) -> Value {
        json!({"candidates": [candidate(parts, finish)], "modelVersion": self.model})
    }

    /// One whole chat chunk event in, zero or more Gemini events out.
    pub fn push(&mut self, chat_event: &[u8]) -> Vec<Bytes> {
        if self.ended {
            return Vec::new();
        }
        let chunk = match read_chunk(chat_event) {
            Chunk::Data(chunk) => chunk,
            Chunk::Done => return self.finish(),
            Chunk::Error(message) => return vec![self.error(&message)],
            Chunk::Noise => return Vec::new(),
        };
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return Vec::new();
        };
        let delta = choice.get("delta").unwrap_or(&Value::Null);
        let mut parts = Vec::new();
        if let Some(reasoning) = reasoning_text(delta) {
            parts.push(json!({"text": reasoning, "thought": true}));
        }
        if let Some(text) = delta
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            parts.push(json!({"text": text}));
        }
        for (position, call) in delta
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let index = call
                .get("index")
                .and_then(Value::as_u64)
                .unwrap_or(position as u64);
            let entry = self.calls.entry(index).or_default();
            if let Some(id) = call.get("id").and_then(Value::as_str) {
                entry.0 = id.to_string();
            }
            if let Some(name) = call.pointer("/function/name").and_then(Value::as_str) {
                entry.1.push_str(name);
            }
            if let Some(arguments) = call.pointer("/function/arguments").and_then(Value::as_str) {
                entry.2.push_str(arguments);
            }
        }
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(finish.to_string());
        }
        if parts.is_empty() {
            Vec::new()
        } else {
            vec![event(&self.chunk(parts, None))]
        }
    }

    /// The chat stream ended: the tool calls, the finish reason and the usage, in one last event.
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let parts: Vec<Value> = std::mem::take(&mut self.calls)
            .into_values()
            .map(|(id, name, arguments)| call_part(&id, &name, &arguments))
            .collect();
        let mut last = self.chunk(parts, Some(self.finish.as_deref().unwrap_or("stop")));
        if let Some(usage) = &self.usage {
            last["usageMetadata"] = usage_metadata(usage);
        }
        vec![event(&last)]
    }

    /// An error after the stream started, in Google's shape; nothing follows it.
    pub fn error(&mut self, message: &str) -> Bytes {
        self.ended = true;
        event(&google_error(500, message))
    }
}

/// A native Gemini stream event: an error object fails it; a candidate with parts or a finish
/// reason is content; anything else (an empty first chunk, a comment) is a preamble. Gemini sends
/// no end event: its stream ends when the connection does.
pub fn classify_event(event: &[u8]) -> StreamEventKind {
    let Some(data) = sse::data_of(event) else {
        return StreamEventKind::Preamble;
    };
    let Ok(chunk) = serde_json::from_str::<Map<String, Value>>(&data) else {
        return StreamEventKind::Preamble;
    };
    if chunk.get("error").is_some_and(|e| !e.is_null()) {
        return StreamEventKind::Error;
    }
    let content = chunk
        .get("candidates")
        .and_then(Value::as_array)
        .is_some_and(|candidates| {
            candidates.iter().any(|c| {
                c.get("finishReason").is_some()
                    || c.pointer("/content/parts")
                        .and_then(Value::as_array)
                        .is_some_and(|parts| !parts.is_empty())
            })
        });
    if content {
        StreamEventKind::Content
    } else {
        StreamEventKind::Preamble
    }
}

/// Gemini's `usageMetadata`, the counts the gateway reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    /// The whole prompt, cached content included.
    #[serde(default)]
    prompt_token_count: Count,
    #[serde(default)]
    cached_content_token_count: Count,
    /// The results of Google's own tools fed back to the model: input on top of the prompt.
    #[serde(default)]
    tool_use_prompt_token_count: Count,
    #[serde(default)]
    candidates_token_count: Count,
    #[serde(default)]
    thoughts_token_count: Count,
}

impl From<UsageMetadata> for Usage {
    fn from(meta: UsageMetadata) -> Self {
        let thoughts = meta.thoughts_token_count.get();
        Usage {
            prompt_tokens: meta
                .prompt_token_count
                .get()
                .saturating_add(meta.tool_use_prompt_token_count.get()),
            completion_tokens: meta.candidates_token_count.get().saturating_add(thoughts),
            cache_read_tokens: meta.cached_content_token_count.get(),
            cache_write_tokens: 0,
            reasoning_tokens: thoughts,
        }
    }
}

#[derive(serde::Deserialize)]
struct WithUsageMetadata {
    #[serde(default, rename = "usageMetadata")]
    usage: Option<UsageMetadata>,
}

/// The token counts of a native Gemini answer or stream event (its `usageMetadata`, running totals
/// in a stream): the prompt with tool-use prompt tokens, thought tokens inside the completion and
/// apart as reasoning, cached content as cache reads. Other bodies cost one substring scan.
pub fn usage_of(body: &[u8]) -> Option<Usage> {
    if !crate::protocol::needle::mentions(body, &crate::protocol::needle::USAGE_METADATA) {
        return None;
    }
    let parsed = match sse::data_of(body) {
        Some(data) => read_event_object::<WithUsageMetadata>(&data),
        None => read_object::<WithUsageMetadata>(body).ok().flatten(),
    };
    parsed?.usage.map(Usage::from)
}

/// Checks that a whole native Gemini answer is JSON and reads its usage, in one pass.
pub fn usage_of_answer(body: &[u8]) -> Result<Option<Usage>, NotJson> {
    // Valid JSON of another shape (a list of pieces) is still JSON.
    Ok(read_object::<WithUsageMetadata>(body)?
        .and_then(|answer| answer.usage)
        .map(Usage::from))
}

/// The gateway's error event for a failure after a native Gemini stream started.
pub fn error_event(message: &str) -> Bytes {
    event(&google_error(500, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chat_answer_becomes_a_generate_content_response() {
        let chat = json!({"id": "chatcmpl-1", "choices": [{"finish_reason": "tool_calls", "message": {
            "role": "assistant", "reasoning_content": "hm", "content": "Sure.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "write_file", "arguments": "{\"path\":\"a\"}"}}]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 7, "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 2}}});
        let response = response_from_chat(&chat, "m");
        assert_eq!(
            response["candidates"][0]["content"]["parts"],
            json!([{"text": "hm", "thought": true}, {"text": "Sure."},
                {"functionCall": {"id": "call_1", "name": "write_file", "args": {"path": "a"}}}])
        );
        assert_eq!(response["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            response["usageMetadata"],
            json!({"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 17,
                "cachedContentTokenCount": 4, "thoughtsTokenCount": 2})
        );
    }

    #[test]
    fn chunks_become_gemini_events_with_whole_calls_at_the_end() {
        let mut writer = GeminiStreamWriter::new("m");
        let mut out = Vec::new();
        for chunk in [
            json!({"choices": [{"delta": {"content": "Hi"}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{\"a\":"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]}, "finish_reason": "tool_calls"}]}),
            json!({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}),
        ] {
            out.extend(writer.push(format!("data: {chunk}\n\n").as_bytes()));
        }
        out.extend(writer.push(b"data: [DONE]\n\n"));
        assert!(writer.finish().is_empty());
        let chunks: Vec<Value> = out
            .iter()
            .map(|e| serde_json::from_str(&sse::event_data(e).unwrap()).unwrap())
            .collect();
        assert_eq!(chunks.len(), 2);
        assert_eq!(
            chunks[0]["candidates"][0]["content"]["parts"][0]["text"],
            "Hi"
        );
        assert_eq!(
            chunks[1]["candidates"][0]["content"]["parts"][0]["functionCall"],
            json!({"id": "c", "name": "f", "args": {"a": 1}})
        );
        assert_eq!(chunks[1]["candidates"][0]["finishReason"], "STOP");
        assert_eq!(chunks[1]["usageMetadata"]["totalTokenCount"], 5);
    }

    #[test]
    fn usage_is_read_from_native_answers_and_events() {
        let answer = br#"{"candidates":[],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":3,"thoughtsTokenCount":2}}"#;
        let expected = Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 5,
            reasoning_tokens: 2,
            ..Usage::default()
        });
        assert_eq!(usage_of(answer), expected);
        assert_eq!(usage_of_answer(answer).ok().flatten(), expected);
        let event = [&b"data: "[..], answer, b"\r\n\r\n"].concat();
        assert_eq!(usage_of(&event), expected);
        assert_eq!(usage_of(b"data: {\"candidates\":[]}\n\n"), None);
        assert_eq!(usage_of_answer(b"{\"candidates\":[]}").ok().flatten(), None);
        assert_eq!(
            usage_of_answer(b"[{\"usageMetadata\":{}}]").ok().flatten(),
            None
        );
        assert!(usage_of_answer(b"{not json").is_err());
    }

    #[test]
    fn cached_content_thoughts_and_tool_use_prompts_are_read() {
        // The shape of a generateContent answer from a thinking model with context caching and
        // Google Search grounding (the tool's results are billed as input on top of the prompt).
        let answer = br#"{"candidates":[{"content":{"parts":[{"text":"Paris."}],"role":"model"},
            "finishReason":"STOP","index":0}],
            "usageMetadata":{"promptTokenCount":12000,"candidatesTokenCount":350,"totalTokenCount":12835,
                "cachedContentTokenCount":8000,"toolUsePromptTokenCount":65,"thoughtsTokenCount":420,
                "promptTokensDetails":[{"modality":"TEXT","tokenCount":12000}],
                "cacheTokensDetails":[{"modality":"TEXT","tokenCount":8000}]},
            "modelVersion":"gemini-2.5-flash","responseId":"mAitaLmkHPPlz7IPvtfUqQ4"}"#;
        let expected = Some(Usage {
            prompt_tokens: 12_065,
            completion_tokens: 770,
            cache_read_tokens: 8000,
            cache_write_tokens: 0,
            reasoning_tokens: 420,
        });
        assert_eq!(usage_of_answer(answer).ok().flatten(), expected);
        let compact: Value = serde_json::from_slice(answer).unwrap();
        let event = format!("data: {compact}\r\n\r\n");
        assert_eq!(usage_of(event.as_bytes()), expected);
        // Running totals in a stream: an early event reports the prompt only.
        let early = br#"data: {"candidates":[{"content":{"parts":[{"text":"Pa"}],"role":"model"},"index":0}],"usageMetadata":{"promptTokenCount":12000,"cachedContentTokenCount":8000,"totalTokenCount":12000}}"#;
        assert_eq!(
            usage_of(early),
            Some(Usage {
                prompt_tokens: 12_000,
                cache_read_tokens: 8000,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn errors_are_in_googles_shape_and_native_events_are_classified() {
        assert_eq!(
            google_error(429, "slow down"),
            json!({"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}})
        );
        let mut writer = GeminiStreamWriter::new("m");
        let failed = writer.push(b"data: {\"error\":{\"message\":\"boom\"}}\n\n");
        assert!(String::from_utf8_lossy(&failed[0]).contains("\"status\":\"INTERNAL\""));
        assert!(writer.finish().is_empty());
        for (event, kind) in [
            (
                &b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]}}]}\r\n\r\n"[..],
                StreamEventKind::Content,
            ),
            (
                b"data: {\"candidates\":[{\"content\":{\"parts\":[]}}]}\n\n",
                StreamEventKind::Preamble,
            ),
            (
                b"data: {\"candidates\":[{\"finishReason\":\"STOP\"}]}\n\n",
                StreamEventKind::Content,
            ),
            (
                b"data: {\"error\":{\"code\":503}}\n\n",
                StreamEventKind::Error,
            ),
            (b": keep-alive\n\n", StreamEventKind::Preamble),
        ] {
            assert_eq!(
                classify_event(event),
                kind,
                "{}",
                String::from_utf8_lossy(event)
            );
        }
    }
}
