//! What the mock answers, in each vendor's own wire format: OpenAI chat completions, the OpenAI
//! Responses API, Anthropic Messages and Gemini generateContent, whole or streamed. The answer is the same in every format:
//! a greeting that echoes the last user text, or a call to the first declared tool, or (after a
//! tool result) a sentence quoting that result.

use bytes::Bytes;
use serde_json::{Value, json};

use super::ExtraUsage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    OpenAi,
    Responses,
    Anthropic,
    Gemini,
}

pub const CREATED: u64 = 1_700_000_000;

/// The answer, independent of the format.
pub struct Reply {
    pub model: String,
    /// Whole words with their leading spaces; streamed one per event.
    pub words: Vec<String>,
    pub tool_call: Option<ToolCall>,
    /// Token counts reported on top of the plain ones.
    pub extra: ExtraUsage,
}

pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub arguments: Value,
}

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

/// (last user text, result of a tool if the conversation's last turn is one, first tool's name).
fn read_request(dialect: Dialect, body: &Value) -> (String, Option<String>, Option<String>) {
    let empty = Vec::new();
    match dialect {
        Dialect::OpenAi | Dialect::Anthropic => {
            let messages = body
                .get("messages")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            let user = messages
                .iter()
                .rev()
                .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
                .map(|m| text_of(m.get("content").unwrap_or(&Value::Null)))
                .unwrap_or_default();
            let last = messages.last();
            let tool_result = match dialect {
                Dialect::OpenAi => last
                    .filter(|m| m.get("role").and_then(Value::as_str) == Some("tool"))
                    .map(|m| text_of(m.get("content").unwrap_or(&Value::Null))),
                _ => last
                    .and_then(|m| m.get("content"))
                    .and_then(Value::as_array)
                    .and_then(|blocks| {
                        blocks
                            .iter()
                            .find(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                            .map(|b| text_of(b.get("content").unwrap_or(&Value::Null)))
                    }),
            };
            let tool = body
                .pointer("/tools/0/function/name")
                .or_else(|| body.pointer("/tools/0/name"));
            (
                user,
                tool_result,
                tool.and_then(Value::as_str).map(str::to_string),
            )
        }
        Dialect::Responses => {
            let items = body
                .get("input")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            let user = match body.get("input") {
                Some(Value::String(text)) => text.clone(),
                _ => items
                    .iter()
                    .rev()
                    .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
                    .map(|i| text_of(i.get("content").unwrap_or(&Value::Null)))
                    .unwrap_or_default(),
            };
            let tool_result = items
                .last()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("function_call_output"))
                .map(|i| text_of(i.get("output").unwrap_or(&Value::Null)));
            let tool = body
                .get("tools")
                .and_then(Value::as_array)
                .and_then(|tools| {
                    tools
                        .iter()
                        .find(|t| t.get("type").and_then(Value::as_str) == Some("function"))
                })
                .and_then(|t| t.get("name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            (user, tool_result, tool)
        }
        Dialect::Gemini => {
            let contents = body
                .get("contents")
                .and_then(Value::as_array)
                .unwrap_or(&empty);
            let parts_of = |c: &Value| {
                c.get("parts")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            };
            let user = contents
                .iter()
                .rev()
                .find(|c| {
                    c.get("role").and_then(Value::as_str).unwrap_or("user") == "user"
                        && parts_of(c).iter().any(|p| p.get("text").is_some())
                })
                .map(|c| text_of(&Value::Array(parts_of(c))))
                .unwrap_or_default();
            let tool_result = contents.last().and_then(|c| {
                parts_of(c).iter().find_map(|p| {
                    p.get("functionResponse")
                        .map(|r| r.get("response").map(Value::to_string).unwrap_or_default())
                })
            });
            let tool = body
                .pointer("/tools/0/functionDeclarations/0/name")
                .and_then(Value::as_str)
                .map(str::to_string);
            (user, tool_result, tool)
        }
    }
}

pub fn plan(dialect: Dialect, body: &Value, model: &str, name: &str, reply_words: usize) -> Reply {
    let (user, tool_result, tool) = read_request(dialect, body);
    if let (Some(tool), None) = (&tool, &tool_result) {
        return Reply {
            model: model.to_string(),
            words: Vec::new(),
            tool_call: Some(ToolCall {
                id: "call_mock_1".into(),
                name: tool.clone(),
                arguments: json!({"city": "Paris"}),
            }),
            extra: ExtraUsage::default(),
        };
    }
    let mut words = match tool_result {
        Some(result) => vec![
            format!("Hello from {name}!"),
            "The tool said:".into(),
            result.chars().take(60).collect(),
        ],
        None => vec![
            format!("Hello from {name}!"),
            "You said:".into(),
            format!("\"{}\".", user.chars().take(40).collect::<String>()),
        ],
    };
    let mut n = 0;
    while words.len() < reply_words {
        n += 1;
        words.push(format!("word{n}"));
    }
    let words = words
        .iter()
        .enumerate()
        .map(|(i, w)| if i == 0 { w.clone() } else { format!(" {w}") })
        .collect();
    Reply {
        model: model.to_string(),
        words,
        tool_call: None,
        extra: ExtraUsage::default(),
    }
}

/// What the answer reports it used: 5 fresh prompt tokens and one output token per word, plus
/// the scripted cache reads and writes (inside the prompt) and reasoning (inside the completion).
#[derive(Clone, Copy)]
struct Counts {
    fresh: u64,
    cache_read: u64,
    cache_write: u64,
    output: u64,
    reasoning: u64,
}

impl Counts {
    fn of(reply: &Reply) -> Self {
        Counts {
            fresh: 5,
            cache_read: reply.extra.cache_read,
            cache_write: reply.extra.cache_write,
            output: reply.words.len().max(1) as u64,
            reasoning: reply.extra.reasoning,
        }
    }
    fn prompt(self) -> u64 {
        self.fresh + self.cache_read + self.cache_write
    }
    fn completion(self) -> u64 {
        self.output + self.reasoning
    }
    fn total(self) -> u64 {
        self.prompt() + self.completion()
    }

    /// Chat usage with OpenAI's details objects (OpenAI has no cache writes: they are prompt).
    fn openai(self) -> Value {
        json!({"prompt_tokens": self.prompt(), "completion_tokens": self.completion(), "total_tokens": self.total(),
            "prompt_tokens_details": {"cached_tokens": self.cache_read, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning, "audio_tokens": 0,
                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}})
    }

    fn responses(self) -> Value {
        json!({"input_tokens": self.prompt(), "input_tokens_details": {"cached_tokens": self.cache_read},
            "output_tokens": self.completion(), "output_tokens_details": {"reasoning_tokens": self.reasoning},
            "total_tokens": self.total()})
    }

    /// Anthropic's usage: `input_tokens` without the cache reads and writes; thinking is output.
    fn anthropic(self, output: u64) -> Value {
        json!({"input_tokens": self.fresh, "cache_creation_input_tokens": self.cache_write,
            "cache_read_input_tokens": self.cache_read, "output_tokens": output,
            "service_tier": "standard"})
    }

    /// Gemini's `usageMetadata`: the prompt includes cached content; zero counts are left out, as
    /// Gemini's JSON leaves them out.
    fn gemini(self) -> Value {
        let mut usage = json!({"promptTokenCount": self.prompt(), "candidatesTokenCount": self.output,
            "totalTokenCount": self.total(),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": self.prompt()}]});
        if self.cache_read > 0 {
            usage["cachedContentTokenCount"] = json!(self.cache_read);
        }
        if self.reasoning > 0 {
            usage["thoughtsTokenCount"] = json!(self.reasoning);
        }
        usage
    }
}

/// The whole answer.
pub fn full(dialect: Dialect, reply: &Reply) -> Value {
    let text: String = reply.words.concat();
    let counts = Counts::of(reply);
    match dialect {
        Dialect::OpenAi => {
            let mut message = json!({"role": "assistant", "content": text});
            let mut finish = "stop";
            if let Some(call) = &reply.tool_call {
                message = json!({"role": "assistant", "content": null, "tool_calls": [{"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments.to_string()}}]});
                finish = "tool_calls";
            }
            json!({"id": "chatcmpl-mock", "object": "chat.completion", "created": CREATED, "model": reply.model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": counts.openai()})
        }
        Dialect::Responses => responses_object(reply, "completed"),
        Dialect::Anthropic => {
            let (content, stop) = match &reply.tool_call {
                Some(call) => (
                    json!([{"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}]),
                    "tool_use",
                ),
                None => (json!([{"type": "text", "text": text}]), "end_turn"),
            };
            json!({"id": "msg_mock", "type": "message", "role": "assistant", "model": reply.model, "content": content,
                "stop_reason": stop, "stop_sequence": null, "usage": counts.anthropic(counts.completion())})
        }
        Dialect::Gemini => {
            let parts = match &reply.tool_call {
                Some(call) => {
                    json!([{"functionCall": {"name": call.name, "args": call.arguments}}])
                }
                None => json!([{"text": text}]),
            };
            json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
                "usageMetadata": counts.gemini(),
                "modelVersion": reply.model, "responseId": "mock-response"})
        }
    }
}

/// A Response object for the reply (its output as the reply has it, usage included).
fn responses_object(reply: &Reply, status: &str) -> Value {
    let counts = Counts::of(reply);
    let item = match &reply.tool_call {
        Some(call) => json!({"type": "function_call", "id": "fc_mock", "call_id": call.id,
            "name": call.name, "arguments": call.arguments.to_string(), "status": "completed"}),
        None => {
            json!({"type": "message", "id": "msg_mock", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": reply.words.concat(), "annotations": []}]})
        }
    };
    let (output_items, usage) = if status == "completed" {
        (json!([item]), counts.responses())
    } else {
        (json!([]), Value::Null)
    };
    json!({"id": "resp_mock", "object": "response", "created_at": CREATED, "status": status,
        "model": reply.model, "output": output_items, "usage": usage})
}

fn data(value: Value) -> Bytes {
    Bytes::from(format!("data: {value}\n\n"))
}

fn event(name: &str, value: Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {value}\n\n"))
}

fn openai_chunk(model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    data(
        json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}),
    )
}

/// The answer as the vendor streams it, one event per element.
pub fn stream(dialect: Dialect, reply: &Reply, include_usage: bool) -> Vec<Bytes> {
    let counts = Counts::of(reply);
    let mut events = Vec::new();
    match dialect {
        Dialect::OpenAi => {
            events.push(openai_chunk(
                &reply.model,
                json!({"role": "assistant", "content": ""}),
                None,
            ));
            for word in &reply.words {
                events.push(openai_chunk(&reply.model, json!({"content": word}), None));
            }
            let mut finish = "stop";
            if let Some(call) = &reply.tool_call {
                let args = call.arguments.to_string();
                let (head, tail) = args.split_at(args.len() / 2);
                events.push(openai_chunk(&reply.model, json!({"tool_calls": [{"index": 0, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}]}), None));
                for part in [head, tail] {
                    events.push(openai_chunk(
                        &reply.model,
                        json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                        None,
                    ));
                }
                finish = "tool_calls";
            }
            events.push(openai_chunk(&reply.model, json!({}), Some(finish)));
            if include_usage {
                events.push(data(json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": CREATED, "model": reply.model, "choices": [],
                    "usage": counts.openai()})));
            }
            events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        Dialect::Responses => {
            let mut seq = 0;
            let mut push = |kind: &str, mut payload: Value| {
                payload["type"] = json!(kind);
                payload["sequence_number"] = json!(seq);
                seq += 1;
                events.push(event(kind, payload));
            };
            push(
                "response.created",
                json!({"response": responses_object(reply, "in_progress")}),
            );
            push(
                "response.in_progress",
                json!({"response": responses_object(reply, "in_progress")}),
            );
            match &reply.tool_call {
                Some(call) => {
                    let item = json!({"type": "function_call", "id": "fc_mock", "call_id": call.id,
                        "name": call.name, "arguments": call.arguments.to_string(), "status": "completed"});
                    push(
                        "response.output_item.done",
                        json!({"output_index": 0, "item": item}),
                    );
                }
                None => {
                    for word in &reply.words {
                        push(
                            "response.output_text.delta",
                            json!({"item_id": "msg_mock", "output_index": 0,
                            "content_index": 0, "delta": word}),
                        );
                    }
                }
            }
            push(
                "response.completed",
                json!({"response": responses_object(reply, "completed")}),
            );
        }
        Dialect::Anthropic => {
            events.push(event("message_start", json!({"type": "message_start", "message": {"id": "msg_mock", "type": "message", "role": "assistant", "model": reply.model,
                "content": [], "stop_reason": null, "stop_sequence": null, "usage": counts.anthropic(1)}})));
            events.push(event("ping", json!({"type": "ping"})));
            let stop = match &reply.tool_call {
                Some(call) => {
                    events.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}}})));
                    let args = call.arguments.to_string();
                    let (head, tail) = args.split_at(args.len() / 2);
                    for part in [head, tail] {
                        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": part}})));
                    }
                    "tool_use"
                }
                None => {
                    events.push(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})));
                    for word in &reply.words {
                        events.push(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}})));
                    }
                    "end_turn"
                }
            };
            events.push(event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": 0}),
            ));
            events.push(event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": counts.completion()}})));
            events.push(event("message_stop", json!({"type": "message_stop"})));
        }
        Dialect::Gemini => {
            let usage = counts.gemini();
            match &reply.tool_call {
                Some(call) => events.push(data(json!({"candidates": [{"content": {"role": "model", "parts": [{"functionCall": {"name": call.name, "args": call.arguments}}]}, "finishReason": "STOP", "index": 0}],
                    "usageMetadata": usage, "modelVersion": reply.model, "responseId": "mock-response"}))),
                None => {
                    let last = reply.words.len().saturating_sub(1);
                    for (i, word) in reply.words.iter().enumerate() {
                        let mut chunk = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": word}]}, "index": 0}], "modelVersion": reply.model, "responseId": "mock-response"});
                        if i == last {
                            chunk["candidates"][0]["finishReason"] = json!("STOP");
                            chunk["usageMetadata"] = usage.clone();
                        }
                        events.push(data(chunk));
                    }
                }
            }
        }
    }
    events
}

/// An error answer body in the vendor's shape.
pub fn error_body(dialect: Dialect, status: u16, name: &str) -> String {
    let message = format!("mock {name} says {status}");
    match dialect {
        Dialect::OpenAi | Dialect::Responses => {
            json!({"error": {"message": message, "type": "mock_error", "code": status}}).to_string()
        }
        Dialect::Anthropic => {
            let kind = match status {
                400 => "invalid_request_error",
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                _ => "api_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
        }
        Dialect::Gemini => {
            let status_name = match status {
                400 => "INVALID_ARGUMENT",
                403 => "PERMISSION_DENIED",
                404 => "NOT_FOUND",
                429 => "RESOURCE_EXHAUSTED",
                503 => "UNAVAILABLE",
                _ => "INTERNAL",
            };
            json!({"error": {"code": status, "message": message, "status": status_name}})
                .to_string()
        }
    }
}

/// An in-stream error event in the vendor's shape (sent before any content by the fault script).
pub fn error_event(dialect: Dialect) -> Bytes {
    match dialect {
        Dialect::OpenAi => {
            data(json!({"error": {"message": "mock overloaded", "type": "server_error"}}))
        }
        Dialect::Responses => event(
            "error",
            json!({"type": "error", "code": "server_error", "message": "mock overloaded"}),
        ),
        Dialect::Anthropic => event(
            "error",
            json!({"type": "error", "error": {"type": "overloaded_error", "message": "mock overloaded"}}),
        ),
        Dialect::Gemini => data(
            json!({"error": {"code": 503, "message": "mock overloaded", "status": "UNAVAILABLE"}}),
        ),
    }
}

/// What `garbage_lines` puts before the event at `index`: in turn a line that is no SSE field, a
/// comment, and a `data:` line that is not JSON, each ended like an event.
pub fn garbage(index: usize) -> &'static [u8] {
    const GARBAGE: [&[u8]; 3] = [
        b"this is not sse\n\n",
        b": comment\n\n",
        b"data: {not json\n\n",
    ];
    GARBAGE[index % GARBAGE.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::exchange::{Dialect as Wire, Usage};
    use crate::protocol;

    fn reply(extra: ExtraUsage) -> Reply {
        let body = json!({"messages": [{"role": "user", "content": "hi"}]});
        let mut reply = plan(Dialect::OpenAi, &body, "m", "mock", 3);
        reply.extra = extra;
        reply
    }

    fn wire(dialect: Dialect) -> Wire {
        match dialect {
            Dialect::OpenAi => Wire::Hub,
            Dialect::Responses => Wire::Responses,
            Dialect::Anthropic => Wire::Anthropic,
            Dialect::Gemini => Wire::Gemini,
        }
    }

    #[test]
    fn every_vendor_reports_the_scripted_usage_in_its_own_fields() {
        let extra = ExtraUsage {
            cache_read: 100,
            cache_write: 20,
            reasoning: 7,
        };
        let reply = reply(extra);
        for dialect in [
            Dialect::OpenAi,
            Dialect::Responses,
            Dialect::Anthropic,
            Dialect::Gemini,
        ] {
            // 5 fresh + 100 read + 20 written; 3 words + 7 reasoning.
            let expected = Usage {
                prompt_tokens: 125,
                completion_tokens: 10,
                cache_read_tokens: 100,
                // Only Anthropic names cache writes, only Anthropic leaves reasoning unnamed.
                cache_write_tokens: if dialect == Dialect::Anthropic { 20 } else { 0 },
                reasoning_tokens: if dialect == Dialect::Anthropic { 0 } else { 7 },
            };
            let whole = full(dialect, &reply).to_string();
            assert_eq!(
                protocol::usage_of_answer(wire(dialect), whole.as_bytes()).unwrap(),
                Some(expected),
                "{dialect:?}"
            );
            let mut streamed: Option<Usage> = None;
            for event in stream(dialect, &reply, true) {
                if let Some(usage) = protocol::usage_of_event(wire(dialect), &event) {
                    streamed.get_or_insert_with(Usage::default).merge(&usage);
                }
            }
            assert_eq!(streamed, Some(expected), "{dialect:?} stream");
        }
    }

    #[test]
    fn plain_answers_keep_their_plain_counts() {
        let reply = reply(ExtraUsage::default());
        let whole = full(Dialect::Gemini, &reply);
        assert_eq!(
            whole["usageMetadata"],
            json!({"promptTokenCount": 5, "candidatesTokenCount": 3, "totalTokenCount": 8,
                "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 5}]})
        );
        let whole = full(Dialect::OpenAi, &reply);
        assert_eq!(whole["usage"]["prompt_tokens"], 5);
        assert_eq!(whole["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
        assert_eq!(whole["usage"]["completion_tokens"], 3);
    }
}
