//! Responses request -> chat request: instructions, input items, tools and options.

use serde_json::{Map, Value, json};

use super::err;
use super::tools::{Toolbox, custom_arguments, read_tools};
use crate::protocol::{Dropped, TranslateError};

/// Top-level fields this translation reads (or echoes into the Response); any other is dropped
/// and noted.
const READ_FIELDS: [&str; 14] = [
    "model",
    "instructions",
    "input",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "stream",
    "text",
    "metadata",
    "reasoning",
];

/// Top-level fields with their own metric label when dropped (what Codex and the SDKs send);
/// anything else is counted as `other_field`.
const KNOWN_DROPS: [&str; 12] = [
    "include",
    "store",
    "prompt_cache_key",
    "client_metadata",
    "service_tier",
    "truncation",
    "previous_response_id",
    "safety_identifier",
    "background",
    "conversation",
    "prompt",
    "top_logprobs",
];

/// A chat message's content from Responses content parts; parts chat cannot carry (files) are
/// dropped and noted.
fn content_from_parts(
    parts: &Value,
    at: &str,
    dropped: &mut Dropped,
) -> Result<Value, TranslateError> {
    match parts {
        Value::String(text) => Ok(Value::String(text.clone())),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, part) in items.iter().enumerate() {
                let here = format!("{at}[{i}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text" | "refusal") => {
                        let text = part
                            .get("text")
                            .or_else(|| part.get("refusal"))
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("a text part needs 'text'", &here))?;
                        out.push(json!({"type": "text", "text": text}));
                    }
                    Some("input_image") => match part.get("image_url").and_then(Value::as_str) {
                        Some(url) => {
                            let mut image = json!({"url": url});
                            if let Some(detail) = part.get("detail").and_then(Value::as_str) {
                                image["detail"] = json!(detail);
                            }
                            out.push(json!({"type": "image_url", "image_url": image}));
                        }
                        // A file_id names a file in OpenAI's storage, which other vendors lack.
                        None => dropped.note("content_part", format!("{here} input_image file_id")),
                    },
                    Some(kind) => dropped.note("content_part", format!("{here} '{kind}'")),
                    None => return Err(err("a content part needs a 'type'", &here)),
                }
            }
            Ok(Value::Array(out))
        }
        _ => Err(err("content must be a string or a list of parts", at)),
    }
}

/// The text of a tool's output: a string, or the text of its content parts.
fn output_text(output: Option<&Value>) -> String {
    match output {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        Some(other) => other.to_string(),
    }
}

/// Appends a tool call to the assistant turn that precedes it, or starts one: consecutive calls
/// are one assistant turn with parallel tool calls.
fn push_call(messages: &mut Vec<Value>, call: Value) {
    let joined = messages
        .last_mut()
        .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some());
    match joined.and_then(|m| m["tool_calls"].as_array_mut()) {
        Some(calls) => calls.push(call),
        None => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
    }
}

fn required_str<'a>(item: &'a Value, key: &str, at: &str) -> Result<&'a str, TranslateError> {
    item.get(key).and_then(Value::as_str).ok_or_else(|| {
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("item");
        err(format!("a {kind} needs '{key}'"), &format!("{at}.{key}"))
    })
}

/// One input item as chat messages.
fn input_item(
    item: &Value,
    at: &str,
    toolbox: &Toolbox,
    messages: &mut Vec<Value>,
    dropped: &mut Dropped,
) -> Result<(), TranslateError> {
    match item.get("type").and_then(Value::as_str) {
        Some("message") | None if item.get("role").is_some() => {
            let role = match item.get("role").and_then(Value::as_str) {
                Some(role @ ("user" | "assistant" | "system")) => role,
                Some("developer") => "system",
                _ => {
                    return Err(err(
                        "role must be user, assistant, system or developer",
                        &format!("{at}.role"),
                    ));
                }
            };
            let content = content_from_parts(
                item.get("content").unwrap_or(&Value::Null),
                &format!("{at}.content"),
                dropped,
            )?;
            if content.as_array().is_some_and(Vec::is_empty) {
                return Ok(());
            }
            messages.push(json!({"role": role, "content": content}));
        }
        Some(kind @ ("function_call" | "custom_tool_call")) => {
            let call_id = required_str(item, "call_id", at)?;
            let name = required_str(item, "name", at)?;
            let namespace = item.get("namespace").and_then(Value::as_str);
            let arguments = if kind == "custom_tool_call" {
                custom_arguments(item.get("input").and_then(Value::as_str).unwrap_or(""))
            } else {
                item.get("arguments")
                    .and_then(Value::as_str)
                    .unwrap_or("{}")
                    .to_string()
            };
            let name = toolbox.flat_name(name, namespace);
            push_call(
                messages,
                json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}),
            );
        }
        Some("function_call_output" | "custom_tool_call_output") => {
            let call_id = required_str(item, "call_id", at)?;
            let output = output_text(item.get("output"));
            messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": output}));
        }
        // Reasoning, built-in tool calls and references have no chat form.
        Some(kind) => dropped.note("input_item", format!("{at} '{kind}'")),
        None => {
            return Err(err(
                "an input item needs a 'type' or a 'role'",
                &format!("{at}.type"),
            ));
        }
    }
    Ok(())
}

/// The chat request for a Responses request, and the toolbox that maps the answer's calls back.
///
/// Honoured: `instructions`, `input` (messages of every role, `developer` as system; function and
/// custom tool calls and their outputs), function, custom and namespace tools (see `tools`),
/// `tool_choice`, `max_output_tokens`, `temperature`, `top_p`, `parallel_tool_calls`, `user`,
/// `stream`, `text.format`, and `reasoning.effort` (as chat's `reasoning_effort`). Dropped and
/// noted: built-in tools, reasoning and built-in tool items in `input`, file parts, and the other
/// top-level fields (`include`, `store`, `prompt_cache_key`, `client_metadata`, ...).
pub fn chat_request_from_responses(
    request: &Value,
    dropped: &mut Dropped,
) -> Result<Value, TranslateError> {
    let obj = request
        .as_object()
        .ok_or_else(|| TranslateError::new("request body must be a JSON object", None))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| err("'model' is required and must be a string", "model"))?;
    dropped.note_unread_fields(obj, &READ_FIELDS, &KNOWN_DROPS);
    let (toolbox, tools) = read_tools(request, dropped)?;
    let mut messages: Vec<Value> = Vec::new();
    match obj.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => messages.push(json!({"role": "system", "content": text})),
        Some(_) => return Err(err("'instructions' must be a string", "instructions")),
    }
    match obj.get("input") {
        None | Some(Value::Null) => return Err(err("'input' is required", "input")),
        Some(Value::String(text)) => messages.push(json!({"role": "user", "content": text})),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(
                    item,
                    &format!("input[{i}]"),
                    &toolbox,
                    &mut messages,
                    dropped,
                )?;
            }
        }
        Some(_) => return Err(err("'input' must be a string or a list of items", "input")),
    }
    let mut chat = Map::new();
    chat.insert("model".into(), json!(model));
    chat.insert("messages".into(), Value::Array(messages));
    let no_tools = tools.is_empty();
    if !no_tools {
        chat.insert("tools".into(), Value::Array(tools));
    }
    tool_choice(obj.get("tool_choice"), &toolbox, &mut chat, dropped)?;
    if no_tools && chat.remove("tool_choice").is_some() {
        dropped.note("tool_choice", "tool_choice without any tool chat can run");
    }
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("user", "user"),
    ] {
        if let Some(value) = obj.get(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), value.clone());
        }
    }
    if !no_tools && let Some(parallel) = obj.get("parallel_tool_calls").filter(|v| v.is_boolean()) {
        chat.insert("parallel_tool_calls".into(), parallel.clone());
    }
    if let Some(stream) = obj.get("stream").and_then(Value::as_bool) {
        chat.insert("stream".into(), json!(stream));
        if stream {
            chat.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    reasoning(obj.get("reasoning"), &mut chat, dropped);
    text_format(request, &mut chat, dropped)?;
    Ok(Value::Object(chat))
}

/// `tool_choice`: the modes, a function or custom tool by name; choices of built-in tools are
/// dropped with the tools.
fn tool_choice(
    choice: Option<&Value>,
    toolbox: &Toolbox,
    chat: &mut Map<String, Value>,
    dropped: &mut Dropped,
) -> Result<(), TranslateError> {
    match choice {
        None | Some(Value::Null) => {}
        Some(Value::String(mode)) if matches!(mode.as_str(), "auto" | "none" | "required") => {
            chat.insert("tool_choice".into(), json!(mode));
        }
        Some(choice)
            if matches!(
                choice.get("type").and_then(Value::as_str),
                Some("function" | "custom")
            ) =>
        {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| err("tool_choice needs 'name'", "tool_choice.name"))?;
            let namespace = choice.get("namespace").and_then(Value::as_str);
            chat.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": toolbox.flat_name(name, namespace)}}),
            );
        }
        Some(choice) if choice.get("type").and_then(Value::as_str).is_some() => {
            dropped.note("tool_choice", format!("tool_choice {choice}"));
        }
        Some(_) => {
            return Err(err(
                "tool_choice must be auto, none, required or a tool",
                "tool_choice",
            ));
        }
    }
    Ok(())
}

/// `reasoning.effort` as chat's `reasoning_effort`; the summary setting has no chat form.
fn reasoning(reasoning: Option<&Value>, chat: &mut Map<String, Value>, dropped: &mut Dropped) {
    let Some(reasoning) = reasoning.filter(|r| r.is_object()) else {
        return;
    };
    if let Some(effort) = reasoning.get("effort").and_then(Value::as_str) {
        chat.insert("reasoning_effort".into(), json!(effort));
    }
    if reasoning.get("summary").is_some_and(|s| !s.is_null()) {
        dropped.note("reasoning.summary", "reasoning.summary");
    }
}

/// `text.format` as chat's `response_format`; `text.verbosity` has no chat form on most vendors.
fn text_format(
    request: &Value,
    chat: &mut Map<String, Value>,
    dropped: &mut Dropped,
) -> Result<(), TranslateError> {
    if request.pointer("/text/verbosity").is_some() {
        dropped.note("text.verbosity", "text.verbosity");
    }
    let Some(format) = request.pointer("/text/format") else {
        return Ok(());
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") | None => {}
        Some("json_object") => {
            chat.insert("response_format".into(), json!({"type": "json_object"}));
        }
        Some("json_schema") => {
            let mut schema = json!({"name": format.get("name").cloned().unwrap_or(json!("response")), "schema": format.get("schema").cloned().unwrap_or(json!({}))});
            if let Some(strict) = format.get("strict") {
                schema["strict"] = strict.clone();
            }
            chat.insert(
                "response_format".into(),
                json!({"type": "json_schema", "json_schema": schema}),
            );
        }
        Some(other) => {
            return Err(err(
                format!("text.format type '{other}' is not supported"),
                "text.format.type",
            ));
        }
    }
    Ok(())
}
