//! Gemini stream (`streamGenerateContent?alt=sse`) -> OpenAI chunk events ([`StreamTranslator`]).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{
    candidate_index, candidate_list, candidate_parts, finish_reason, finish_reason_of,
    openai_tool_call, tool_call_id, usage_from,
};
use super::errors::find_error;
use super::{Object, is_thought};
use crate::protocol::{TranslateError, sse};

/// Turns the events of `streamGenerateContent?alt=sse` (each `data: {GenerateContentResponse}`)
/// into OpenAI `chat.completion.chunk` events with one id, created time and model throughout. The
/// usage goes out as OpenAI sends it when asked (`stream_options.include_usage`): a chunk of its
/// own with `"choices": []`, right after the finish chunk (again should a later event report other
/// counts).
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: i64,
    id: String,
    /// Candidates that got their role chunk.
    started: BTreeSet<u64>,
    /// Tool calls sent so far per candidate (the next call's `index`).
    tool_calls: BTreeMap<u64, usize>,
    usage: Option<Value>,
    /// The usage last sent in a usage chunk.
    usage_sent: Option<Value>,
    finished: bool,
    done_sent: bool,
}

impl StreamTranslator {
    pub fn new(model: &str, created: i64, id: String) -> Self {
        StreamTranslator {
            model: model.to_string(),
            created,
            id,
            started: BTreeSet::new(),
            tool_calls: BTreeMap::new(),
            usage: None,
            usage_sent: None,
            finished: false,
            done_sent: false,
        }
    }

    /// One whole SSE event in, zero or more whole OpenAI events (`data: {json}\n\n`) out.
    pub fn push(&mut self, event: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        let Some(data) = sse::event_data(event) else {
            return Ok(Vec::new());
        };
        let data = data.trim();
        if data.is_empty() || data == "[DONE]" {
            return Ok(Vec::new());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            TranslateError::new(format!("gemini stream event is not JSON: {e}"), None)
        })?;
        if let Some(error) = find_error(&value) {
            return Ok(vec![stream_error_event(error)]);
        }
        let mut out = Vec::new();
        match &value {
            Value::Object(piece) => self.piece(piece, &mut out),
            Value::Array(items) => {
                for piece in items.iter().filter_map(Value::as_object) {
                    self.piece(piece, &mut out);
                }
            }
            _ => {
                return Err(TranslateError::new(
                    "gemini stream event is not a GenerateContentResponse object",
                    None,
                ));
            }
        }
        Ok(out)
    }

    /// The upstream ended: `data: [DONE]` when the answer finished, nothing otherwise (a stream
    /// cut short must not look complete).
    pub fn finish(&mut self) -> Vec<Bytes> {
        if self.finished && !self.done_sent {
            self.done_sent = true;
            vec![Bytes::from_static(b"data: [DONE]\n\n")]
        } else {
            Vec::new()
        }
    }

    fn piece(&mut self, piece: &Object, out: &mut Vec<Bytes>) {
        if let Some(usage) = piece.get("usageMetadata").and_then(usage_from) {
            self.usage = Some(usage);
        }
        let mut finishes: Vec<(u64, &'static str)> = Vec::new();
        let mut any_candidate = false;
        for (position, candidate) in candidate_list(piece) {
            any_candidate = true;
            let index = candidate_index(candidate, position);
            self.start(index, out);
            for part in candidate_parts(candidate) {
                if let Some(call) = part.get("functionCall").and_then(Value::as_object) {
                    let counter = self.tool_calls.entry(index).or_insert(0);
                    let call_index = *counter;
                    *counter = counter.saturating_add(1);
                    let id = tool_call_id(call, &self.id, index, call_index);
                    let mut delta_call = openai_tool_call(call, id);
                    if let Value::Object(map) = &mut delta_call {
                        map.insert("index".into(), json!(call_index));
                    }
                    out.push(self.chunk(index, json!({ "tool_calls": [delta_call] }), None));
                } else if let Some(text) = part.get("text").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    let delta = if is_thought(part) {
                        json!({ "reasoning_content": text })
                    } else {
                        json!({ "content": text })
                    };
                    out.push(self.chunk(index, delta, None));
                }
            }
            if let Some(reason) = finish_reason_of(candidate) {
                let has_calls = self.tool_calls.get(&index).is_some_and(|n| *n > 0);
                finishes.push((index, finish_reason(Some(reason), has_calls)));
            }
        }
        let blocked = piece
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .is_some_and(|r| !r.is_null());
        if !any_candidate && blocked {
            self.start(0, out);
            finishes.push((0, "content_filter"));
        }
        for (index, reason) in finishes {
            out.push(self.chunk(index, json!({}), Some(reason)));
            self.finished = true;
        }
        if self.finished && self.usage.is_some() && self.usage != self.usage_sent {
            self.usage_sent = self.usage.clone();
            out.push(event_bytes(&json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": self.usage,
            })));
        }
    }

    /// The role chunk, once per candidate, before anything else of it.
    fn start(&mut self, index: u64, out: &mut Vec<Bytes>) {
        if self.started.insert(index) {
            out.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Bytes {
        event_bytes(&json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }
}

fn event_bytes(payload: &Value) -> Bytes {
    Bytes::from(format!("data: {payload}\n\n"))
}

/// An error Gemini put in the stream, as an OpenAI error event.
fn stream_error_event(error: &Object) -> Bytes {
    let status = error
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("gemini reported an error in the stream");
    event_bytes(&json!({"error": {
        "message": message,
        "type": status.map_or_else(|| "upstream_error".to_string(), str::to_ascii_lowercase),
        "code": status,
    }}))
}
