//! A whole chat answer as a Response object, and the parts of one the stream writer shares.

use serde_json::{Value, json};

use super::tools::{Toolbox, call_item};
use super::{new_id, now};

/// Responses usage for chat usage, cached prompt tokens and reasoning tokens included.
pub(super) fn usage_from_chat(usage: Option<&Value>) -> Value {
    let count = |pointer: &str| {
        usage
            .and_then(|u| u.pointer(pointer))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let (input, output) = (count("/prompt_tokens"), count("/completion_tokens"));
    json!({"input_tokens": input,
        "input_tokens_details": {"cached_tokens": count("/prompt_tokens_details/cached_tokens")},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": count("/completion_tokens_details/reasoning_tokens")},
        "total_tokens": input.saturating_add(output)})
}

/// The reasoning text of a chat message or delta (`reasoning_content`, or `reasoning` as
/// OpenRouter and Ollama send it).
pub(super) fn reasoning_text(message: &Value) -> Option<&str> {
    message
        .get("reasoning_content")
        .or_else(|| message.get("reasoning"))
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// A reasoning item with its text as the summary (chat upstreams give no encrypted content).
pub(super) fn reasoning_item(id: &str, text: &str) -> Value {
    let summary = if text.is_empty() {
        json!([])
    } else {
        json!([{"type": "summary_text", "text": text}])
    };
    json!({"type": "reasoning", "id": id, "summary": summary})
}

/// The Response object's fixed fields, echoing the request as the API does.
pub(super) fn response_shell(
    id: &str,
    created_at: i64,
    model: &str,
    request: &Value,
    status: &str,
) -> Value {
    let field = |key: &str, default: Value| {
        request
            .get(key)
            .cloned()
            .filter(|v| !v.is_null())
            .unwrap_or(default)
    };
    json!({
        "id": id, "object": "response", "created_at": created_at, "status": status, "model": model,
        "output": [], "error": null, "incomplete_details": null,
        "instructions": field("instructions", Value::Null), "max_output_tokens": field("max_output_tokens", Value::Null),
        "metadata": field("metadata", json!({})), "parallel_tool_calls": field("parallel_tool_calls", json!(true)),
        "temperature": field("temperature", json!(1.0)), "top_p": field("top_p", json!(1.0)),
        "tool_choice": field("tool_choice", json!("auto")), "tools": field("tools", json!([])),
        "text": field("text", json!({"format": {"type": "text"}})), "truncation": "disabled", "usage": null,
    })
}

pub(super) fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

/// The Response object for a whole chat answer.
pub fn response_from_chat(chat: &Value, request: &Value) -> Value {
    let model = chat
        .get("model")
        .and_then(Value::as_str)
        .or_else(|| request.get("model").and_then(Value::as_str))
        .unwrap_or("");
    let choice = chat.pointer("/choices/0");
    let finish = choice
        .and_then(|c| c.get("finish_reason"))
        .and_then(Value::as_str);
    let status = if finish == Some("length") {
        "incomplete"
    } else {
        "completed"
    };
    let mut response = response_shell(&new_id("resp"), now(), model, request, status);
    let toolbox = Toolbox::of(request);
    let mut output = Vec::new();
    let message = choice.and_then(|c| c.get("message"));
    if let Some(reasoning) = message.and_then(reasoning_text) {
        output.push(reasoning_item(&new_id("rs"), reasoning));
    }
    if let Some(text) = message
        .and_then(|m| m.get("content"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        output.push(message_item(&new_id("msg"), text, "completed"));
    }
    for call in message
        .and_then(|m| m.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let call_id = call.get("id").and_then(Value::as_str).unwrap_or("");
        let name = call
            .pointer("/function/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let arguments = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("{}");
        output.push(call_item(
            &toolbox,
            &new_id("fc"),
            call_id,
            name,
            arguments,
            "completed",
        ));
    }
    response["output"] = Value::Array(output);
    response["usage"] = usage_from_chat(chat.get("usage"));
    if status == "incomplete" {
        response["incomplete_details"] = json!({"reason": "max_output_tokens"});
    }
    response
}
