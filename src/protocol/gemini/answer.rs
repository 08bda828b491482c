//! Gemini answer -> OpenAI `chat.completion` ([`chat_from_response`]), and the candidate, finish
//! reason, tool call and usage helpers the stream shares.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::errors::find_error;
use super::{Object, is_thought};
use crate::protocol::TranslateError;

/// An OpenAI `chat.completion` for a Gemini `generateContent` answer. A JSON array of answers (the
/// non-SSE stream form) is read as one answer, its pieces joined per candidate.
pub fn chat_from_response(
    response: &Value,
    model: &str,
    created: i64,
) -> Result<Value, TranslateError> {
    if let Some(error) = find_error(response) {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        return Err(TranslateError::new(
            format!("gemini answered with an error: {message}"),
            None,
        ));
    }
    let pieces: Vec<&Object> = match response {
        Value::Object(object) => vec![object],
        Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
        _ => Vec::new(),
    };
    if pieces.is_empty() {
        return Err(TranslateError::new(
            "gemini answer is not a GenerateContentResponse object",
            None,
        ));
    }
    let response_id = pieces.iter().find_map(|piece| {
        piece
            .get("responseId")
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty())
    });
    let seed = match response_id {
        Some(id) => id.to_string(),
        None => format!("{:016x}", fnv1a(response.to_string().as_bytes())),
    };
    let mut candidates: BTreeMap<u64, CandidateText> = BTreeMap::new();
    let mut usage = None;
    let mut blocked = false;
    for piece in &pieces {
        if let Some(meta) = piece.get("usageMetadata") {
            usage = usage_from(meta).or(usage);
        }
        if piece
            .get("promptFeedback")
            .and_then(|f| f.get("blockReason"))
            .is_some_and(|r| !r.is_null())
        {
            blocked = true;
        }
        for (position, candidate) in candidate_list(piece) {
            let index = candidate_index(candidate, position);
            candidates
                .entry(index)
                .or_default()
                .absorb(candidate, &seed, index);
        }
    }
    let choices: Vec<Value> = if candidates.is_empty() {
        let reason = if blocked { "content_filter" } else { "stop" };
        vec![json!({
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "logprobs": null,
            "finish_reason": reason,
        })]
    } else {
        candidates
            .into_iter()
            .map(|(index, candidate)| candidate.into_choice(index))
            .collect()
    };
    let mut completion = json!({
        "id": format!("chatcmpl-{seed}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": choices,
    });
    if let (Some(usage), Value::Object(map)) = (usage, &mut completion) {
        map.insert("usage".into(), usage);
    }
    Ok(completion)
}

pub(super) fn candidate_list(piece: &Object) -> impl Iterator<Item = (usize, &Value)> {
    piece
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, candidate)| candidate.is_object())
}

pub(super) fn candidate_index(candidate: &Value, position: usize) -> u64 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

pub(super) fn candidate_parts(candidate: &Value) -> impl Iterator<Item = &Object> {
    candidate
        .get("content")
        .and_then(|c| c.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// One candidate's answer, gathered over one or more response pieces.
#[derive(Debug, Default)]
struct CandidateText {
    text: String,
    reasoning: String,
    tool_calls: Vec<Value>,
    finish: Option<String>,
    parts_seen: usize,
}

impl CandidateText {
    fn absorb(&mut self, candidate: &Value, seed: &str, index: u64) {
        for part in candidate_parts(candidate) {
            let position = self.parts_seen;
            self.parts_seen += 1;
            if let Some(call) = part.get("functionCall").and_then(Value::as_object) {
                let id = tool_call_id(call, seed, index, position);
                self.tool_calls.push(openai_tool_call(call, id));
            } else if let Some(text) = part.get("text").and_then(Value::as_str) {
                if is_thought(part) {
                    self.reasoning.push_str(text);
                } else {
                    self.text.push_str(text);
                }
            }
            // Other parts (inline images from image models, executable code) have no place in
            // an OpenAI chat message and are left out.
        }
        if let Some(reason) = finish_reason_of(candidate) {
            self.finish = Some(reason.to_string());
        }
    }

    fn into_choice(self, index: u64) -> Value {
        let has_calls = !self.tool_calls.is_empty();
        let content = if self.text.is_empty() && has_calls {
            Value::Null
        } else {
            Value::String(self.text)
        };
        let mut message = Object::new();
        message.insert("role".into(), json!("assistant"));
        message.insert("content".into(), content);
        if !self.reasoning.is_empty() {
            message.insert("reasoning_content".into(), Value::String(self.reasoning));
        }
        if has_calls {
            message.insert("tool_calls".into(), Value::Array(self.tool_calls));
        }
        json!({
            "index": index,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(self.finish.as_deref(), has_calls),
        })
    }
}

/// A candidate's finish reason, when it has a real one.
pub(super) fn finish_reason_of(candidate: &Value) -> Option<&str> {
    candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
}

/// Gemini's finish reason in OpenAI's words.
pub(super) fn finish_reason(reason: Option<&str>, has_calls: bool) -> &'static str {
    match reason {
        Some("MAX_TOKENS") => "length",
        Some(
            "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY",
        ) => "content_filter",
        None | Some("STOP") if has_calls => "tool_calls",
        _ => "stop",
    }
}

/// Gemini's own call id when it sends one, else `call_` + a short id derived from the response
/// id, the candidate and the part position (stable for the same answer).
pub(super) fn tool_call_id(call: &Object, seed: &str, candidate: u64, position: usize) -> String {
    match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!(
            "call_{:016x}",
            fnv1a(format!("{seed}:{candidate}:{position}").as_bytes())
        ),
    }
}

pub(super) fn openai_tool_call(call: &Object, id: String) -> Value {
    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
    let arguments = match call.get("args") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(args) => args.to_string(),
    };
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// OpenAI usage from Gemini's `usageMetadata`: tool-use prompt tokens (the results of Google's
/// own tools, fed back as input and billed as input) count as prompt tokens, thinking tokens as
/// completion tokens; cached content (already inside `promptTokenCount`) becomes
/// `prompt_tokens_details.cached_tokens` and thinking `completion_tokens_details.reasoning_tokens`.
pub(super) fn usage_from(meta: &Value) -> Option<Value> {
    let meta = meta.as_object()?;
    let count = |key: &str| meta.get(key).and_then(Value::as_u64).unwrap_or(0);
    let prompt = count("promptTokenCount").saturating_add(count("toolUsePromptTokenCount"));
    let thoughts = count("thoughtsTokenCount");
    let completion = count("candidatesTokenCount").saturating_add(thoughts);
    let total = match meta.get("totalTokenCount").and_then(Value::as_u64) {
        Some(total) => total,
        None => prompt.saturating_add(completion),
    };
    let mut usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total,
    });
    if let Value::Object(map) = &mut usage {
        let cached = count("cachedContentTokenCount");
        if cached > 0 {
            map.insert(
                "prompt_tokens_details".into(),
                json!({ "cached_tokens": cached }),
            );
        }
        if thoughts > 0 {
            map.insert(
                "completion_tokens_details".into(),
                json!({ "reasoning_tokens": thoughts }),
            );
        }
    }
    Some(usage)
}

/// FNV-1a, 64 bits, with splitmix64's finalizer so that inputs differing in one character give
/// ids that differ everywhere: short stable ids, not security.
fn fnv1a(bytes: &[u8]) -> u64 {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash: u64, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mixed = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    mixed ^ (mixed >> 31)
}
