//! Translation between the OpenAI chat hub format and the Anthropic Messages API, both directions.
//!
//! * hub -> Anthropic: [`request_from_chat`] builds the upstream request; [`chat_from_response`],
//!   [`error_to_chat`] and [`StreamTranslator`] turn the upstream answer back into chat format.
//! * Anthropic -> hub (the `/v1/messages` ingress): [`chat_request_from_messages`] turns a client's
//!   Messages request into a chat request; [`messages_response_from_chat`], [`error_from_chat`] and
//!   [`MessagesStreamWriter`] turn the hub's answer back into Anthropic format.
//!
//! Everything here is pure and total: any JSON value or byte string gives a value or a
//! [`TranslateError`], never a panic. Content that cannot be expressed on the other side is an error
//! naming the field, never silently dropped; only sampling hints the other side lacks are dropped.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::sse;

/// Anthropic requires `max_tokens`; this is used when the chat request gives none (SPEC 6).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

fn field_error(message: impl Into<String>, param: impl Into<String>) -> TranslateError {
    TranslateError::new(message, Some(param.into()))
}

fn not_an_object(what: &str) -> TranslateError {
    TranslateError::new(format!("{what} must be a JSON object"), None)
}

fn is_absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

fn str_field<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

fn u64_field(value: &Value, key: &str) -> u64 {
    value.get(key).and_then(Value::as_u64).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// hub -> Anthropic request
// ---------------------------------------------------------------------------------------------

/// One content block of an Anthropic message being built, and whether it came from a plain string
/// `content` (a lone such block is sent back as a string).
struct Block {
    value: Value,
    from_string: bool,
}

impl Block {
    fn text(text: &str, from_string: bool) -> Block {
        Block {
            value: json!({"type": "text", "text": text}),
            from_string,
        }
    }

    fn is_empty_text(&self) -> bool {
        self.value.get("type").and_then(Value::as_str) == Some("text")
            && self.value.get("text").and_then(Value::as_str) == Some("")
    }
}

struct Turn {
    role: &'static str,
    blocks: Vec<Block>,
}

impl Turn {
    fn into_message(self) -> Value {
        let mut blocks = self.blocks;
        if blocks.len() > 1 {
            // Anthropic rejects empty text blocks next to other content.
            blocks.retain(|block| !block.is_empty_text());
        }
        let content = match blocks.as_slice() {
            [] => Value::String(String::new()),
            [only] if only.from_string => only
                .value
                .get("text")
                .cloned()
                .unwrap_or_else(|| Value::String(String::new())),
            _ => Value::Array(blocks.into_iter().map(|block| block.value).collect()),
        };
        json!({"role": self.role, "content": content})
    }
}

/// Consecutive messages of one role become one Anthropic message (its blocks concatenated).
fn push_turn(turns: &mut Vec<Turn>, role: &'static str, blocks: Vec<Block>) {
    match turns.last_mut() {
        Some(last) if last.role == role => last.blocks.extend(blocks),
        _ => turns.push(Turn { role, blocks }),
    }
}

/// The Anthropic request body for an OpenAI chat request.
///
/// Dropped without error, because Anthropic has no equivalent and they only steer sampling or
/// delivery: `frequency_penalty`, `presence_penalty`, `seed`, `logit_bias`, `service_tier`,
/// `store`, `metadata` (OpenAI's; `user` becomes `metadata.user_id`), `stream_options`,
/// `top_logprobs`, `reasoning_effort`, `prediction`, `web_search_options`, `parallel_tool_calls: true`
/// and any unknown field. `tool_choice` without `tools` is dropped too (Anthropic rejects it and it
/// carries no content).
pub fn request_from_chat(chat: &Value, model: &str, stream: bool) -> Result<Value, TranslateError> {
    let body = chat
        .as_object()
        .ok_or_else(|| not_an_object("request body"))?;
    reject_unsupported(body)?;
    let messages = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| field_error("'messages' must be an array", "messages"))?;

    let mut system: Vec<String> = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        if !message.is_object() {
            return Err(field_error(
                "each message must be an object",
                format!("messages[{i}]"),
            ));
        }
        match message.get("role").and_then(Value::as_str) {
            Some("system" | "developer") => system_texts(message, i, &mut system)?,
            Some("user") => push_turn(&mut turns, "user", user_blocks(message, i)?),
            Some("assistant") => push_turn(&mut turns, "assistant", assistant_blocks(message, i)?),
            Some("tool") => push_turn(&mut turns, "user", vec![tool_result_block(message, i)?]),
            Some(other) => {
                return Err(field_error(
                    format!("message role '{other}' is not supported"),
                    format!("messages[{i}].role"),
                ));
            }
            None => {
                return Err(field_error(
                    "each message needs a 'role' string",
                    format!("messages[{i}].role"),
                ));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(model.to_string()));
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    out.insert(
        "messages".into(),
        Value::Array(turns.into_iter().map(Turn::into_message).collect()),
    );
    out.insert("max_tokens".into(), Value::from(max_tokens(body)?));
    if let Some(stop) = stop_sequences(body.get("stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    if let Some(temperature) = number_field(body, "temperature")? {
        // Anthropic's temperature range is [0, 1]; OpenAI's is [0, 2]. Values above 1 are clamped
        // to 1 rather than rejected, so a request that works on OpenAI works here too.
        let clamped = temperature.as_f64().map_or(1.0, |t| t.clamp(0.0, 1.0));
        let value = serde_json::Number::from_f64(clamped).map_or(Value::from(1), Value::Number);
        out.insert("temperature".into(), value);
    }
    for key in ["top_p", "top_k"] {
        if let Some(value) = number_field(body, key)? {
            out.insert(key.into(), value);
        }
    }
    let tools = tools_to_anthropic(body.get("tools"))?;
    let has_tools = !tools.is_empty();
    if has_tools {
        out.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice_to_anthropic(body)? {
            out.insert("tool_choice".into(), choice);
        }
    }
    if let Some(user) = body.get("user").and_then(Value::as_str)
        && !user.is_empty()
    {
        out.insert("metadata".into(), json!({"user_id": user}));
    }
    out.insert("stream".into(), Value::Bool(stream));
    Ok(Value::Object(out))
}

fn reject_unsupported(body: &Map<String, Value>) -> Result<(), TranslateError> {
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(n) if n.as_f64() == Some(1.0) => {}
        Some(_) => {
            return Err(field_error(
                "anthropic upstreams return one choice; 'n' must be 1",
                "n",
            ));
        }
    }
    if body.get("logprobs").and_then(Value::as_bool) == Some(true) {
        return Err(field_error(
            "anthropic upstreams do not return logprobs",
            "logprobs",
        ));
    }
    match body.get("response_format") {
        None | Some(Value::Null) => {}
        Some(format) if str_field(format, "type") == Some("text") => {}
        Some(_) => {
            return Err(field_error(
                "anthropic upstreams only support response_format {\"type\":\"text\"}",
                "response_format",
            ));
        }
    }
    if !is_absent(body.get("audio")) {
        return Err(field_error(
            "anthropic upstreams do not produce audio",
            "audio",
        ));
    }
    let wants_audio = body
        .get("modalities")
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|x| x.as_str() == Some("audio")));
    if wants_audio {
        return Err(field_error(
            "anthropic upstreams do not produce audio",
            "modalities",
        ));
    }
    Ok(())
}

/// The text of a `system`/`developer` message (string or text parts), appended to `out`.
fn system_texts(message: &Value, i: usize, out: &mut Vec<String>) -> Result<(), TranslateError> {
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            if !text.is_empty() {
                out.push(text.clone());
            }
        }
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = text_part(part, i, j)?;
                if !text.is_empty() {
                    out.push(text.to_string());
                }
            }
        }
        Some(_) => {
            return Err(field_error(
                "content must be a string or an array of parts",
                format!("messages[{i}].content"),
            ));
        }
    }
    Ok(())
}

/// A part that must be `{"type":"text","text":...}`.
fn text_part(part: &Value, i: usize, j: usize) -> Result<&str, TranslateError> {
    match str_field(part, "type") {
        Some("text") => str_field(part, "text").ok_or_else(|| {
            field_error(
                "a text part needs a 'text' string",
                format!("messages[{i}].content[{j}].text"),
            )
        }),
        _ => Err(field_error(
            "only text parts are supported here",
            format!("messages[{i}].content[{j}].type"),
        )),
    }
}

fn user_blocks(message: &Value, i: usize) -> Result<Vec<Block>, TranslateError> {
    match message.get("content") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![Block::text(text, true)]),
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match str_field(part, "type") {
                    Some("text") => blocks.push(Block::text(text_part(part, i, j)?, false)),
                    Some("image_url") => blocks.push(Block {
                        value: image_block(part, i, j)?,
                        from_string: false,
                    }),
                    Some(other) => {
                        return Err(field_error(
                            format!(
                                "content part type '{other}' is not supported by anthropic upstreams"
                            ),
                            format!("messages[{i}].content[{j}].type"),
                        ));
                    }
                    None => {
                        return Err(field_error(
                            "each content part needs a 'type' string",
                            format!("messages[{i}].content[{j}].type"),
                        ));
                    }
                }
            }
            Ok(blocks)
        }
        Some(_) => Err(field_error(
            "content must be a string or an array of parts",
            format!("messages[{i}].content"),
        )),
    }
}

/// An `image_url` part as an Anthropic image block: data URLs become base64 sources, http(s) URLs
/// url sources.
fn image_block(part: &Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let param = || format!("messages[{i}].content[{j}].image_url.url");
    let url = match part.get("image_url") {
        Some(Value::String(url)) => Some(url.as_str()),
        Some(image) => str_field(image, "url"),
        None => None,
    }
    .ok_or_else(|| field_error("an image_url part needs a 'url' string", param()))?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| field_error("the data URL has no ',' before its data", param()))?;
        let media_type = meta
            .strip_suffix(";base64")
            .ok_or_else(|| field_error("only base64 data URLs are supported", param()))?;
        return Ok(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": media_type, "data": data}
        }));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(json!({"type": "image", "source": {"type": "url", "url": url}}));
    }
    Err(field_error(
        "an image URL must be an http(s) URL or a base64 data URL",
        param(),
    ))
}

fn assistant_blocks(message: &Value, i: usize) -> Result<Vec<Block>, TranslateError> {
    let mut blocks = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => blocks.push(Block::text(text, true)),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let text = match str_field(part, "type") {
                    Some("refusal") => str_field(part, "refusal").ok_or_else(|| {
                        field_error(
                            "a refusal part needs a 'refusal' string",
                            format!("messages[{i}].content[{j}].refusal"),
                        )
                    })?,
                    _ => text_part(part, i, j)?,
                };
                blocks.push(Block::text(text, false));
            }
        }
        Some(_) => {
            return Err(field_error(
                "content must be a string or an array of parts",
                format!("messages[{i}].content"),
            ));
        }
    }
    if !is_absent(message.get("function_call")) {
        return Err(field_error(
            "the legacy 'function_call' is not supported; use 'tool_calls'",
            format!("messages[{i}].function_call"),
        ));
    }
    match message.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(calls)) => {
            for (j, call) in calls.iter().enumerate() {
                blocks.push(Block {
                    value: tool_use_block(call, i, j)?,
                    from_string: false,
                });
            }
        }
        Some(_) => {
            return Err(field_error(
                "'tool_calls' must be an array",
                format!("messages[{i}].tool_calls"),
            ));
        }
    }
    Ok(blocks)
}

fn tool_use_block(call: &Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let param = |field: &str| format!("messages[{i}].tool_calls[{j}].{field}");
    match call.get("type") {
        None | Some(Value::Null) => {}
        Some(kind) if kind.as_str() == Some("function") => {}
        Some(_) => {
            return Err(field_error(
                "only function tool calls are supported",
                param("type"),
            ));
        }
    }
    let id = str_field(call, "id")
        .ok_or_else(|| field_error("a tool call needs an 'id' string", param("id")))?;
    let function = call.get("function").unwrap_or(&Value::Null);
    let name = str_field(function, "name").ok_or_else(|| {
        field_error(
            "a tool call needs a 'function.name' string",
            param("function.name"),
        )
    })?;
    let input = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(map)) => Value::Object(map.clone()),
        // An empty string is what some clients send for a function without parameters.
        Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Value::Object(map),
            _ => {
                return Err(field_error(
                    "tool call arguments must be a JSON object",
                    param("function.arguments"),
                ));
            }
        },
        Some(_) => {
            return Err(field_error(
                "tool call arguments must be a JSON object",
                param("function.arguments"),
            ));
        }
    };
    Ok(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
}

fn tool_result_block(message: &Value, i: usize) -> Result<Block, TranslateError> {
    let id = str_field(message, "tool_call_id").ok_or_else(|| {
        field_error(
            "a tool message needs a 'tool_call_id' string",
            format!("messages[{i}].tool_call_id"),
        )
    })?;
    let mut block = Map::new();
    block.insert("type".into(), Value::from("tool_result"));
    block.insert("tool_use_id".into(), Value::from(id));
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => {
            block.insert("content".into(), Value::from(text.as_str()));
        }
        Some(Value::Array(parts)) => {
            let mut blocks = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                blocks.push(json!({"type": "text", "text": text_part(part, i, j)?}));
            }
            block.insert("content".into(), Value::Array(blocks));
        }
        Some(_) => {
            return Err(field_error(
                "content must be a string or an array of parts",
                format!("messages[{i}].content"),
            ));
        }
    }
    Ok(Block {
        value: Value::Object(block),
        from_string: false,
    })
}

fn max_tokens(body: &Map<String, Value>) -> Result<u64, TranslateError> {
    for key in ["max_completion_tokens", "max_tokens"] {
        match body.get(key) {
            None | Some(Value::Null) => continue,
            Some(value) => {
                return match value.as_u64() {
                    Some(n) if n >= 1 => Ok(n),
                    _ => Err(field_error(
                        format!("'{key}' must be a positive integer"),
                        key,
                    )),
                };
            }
        }
    }
    Ok(DEFAULT_MAX_TOKENS)
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(items)) => {
            if let Some(k) = items.iter().position(|item| !item.is_string()) {
                return Err(field_error(
                    "stop sequences must be strings",
                    format!("stop[{k}]"),
                ));
            }
            Ok((!items.is_empty()).then(|| Value::Array(items.clone())))
        }
        Some(_) => Err(field_error(
            "'stop' must be a string or an array of strings",
            "stop",
        )),
    }
}

fn number_field(body: &Map<String, Value>, key: &str) -> Result<Option<Value>, TranslateError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value @ Value::Number(_)) => Ok(Some(value.clone())),
        Some(_) => Err(field_error(format!("'{key}' must be a number"), key)),
    }
}

fn tools_to_anthropic(tools: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(field_error("'tools' must be an array", "tools")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        if str_field(tool, "type") != Some("function") {
            return Err(field_error(
                "only function tools are supported by anthropic upstreams",
                format!("tools[{k}].type"),
            ));
        }
        let function = tool.get("function").unwrap_or(&Value::Null);
        let name = str_field(function, "name").ok_or_else(|| {
            field_error(
                "a tool needs a 'function.name' string",
                format!("tools[{k}].function.name"),
            )
        })?;
        let mut entry = Map::new();
        entry.insert("name".into(), Value::from(name));
        if let Some(description) = str_field(function, "description") {
            entry.insert("description".into(), Value::from(description));
        }
        let schema = match function.get("parameters") {
            Some(Value::Object(schema)) => Value::Object(schema.clone()),
            _ => json!({"type": "object", "properties": {}}),
        };
        entry.insert("input_schema".into(), schema);
        out.push(Value::Object(entry));
    }
    Ok(out)
}

fn tool_choice_to_anthropic(body: &Map<String, Value>) -> Result<Option<Value>, TranslateError> {
    let mut choice = match body.get("tool_choice") {
        None | Some(Value::Null) => None,
        Some(Value::String(mode)) => match mode.as_str() {
            "auto" => Some(json!({"type": "auto"})),
            "none" => Some(json!({"type": "none"})),
            "required" => Some(json!({"type": "any"})),
            _ => {
                return Err(field_error(
                    format!("tool_choice '{mode}' is not supported"),
                    "tool_choice",
                ));
            }
        },
        Some(choice) => {
            let name = str_field(choice, "type")
                .filter(|kind| *kind == "function")
                .and_then(|_| choice.get("function"))
                .and_then(|function| str_field(function, "name"))
                .ok_or_else(|| {
                    field_error(
                        "tool_choice must be auto, none, required or {\"type\":\"function\",\"function\":{\"name\"}}",
                        "tool_choice",
                    )
                })?;
            Some(json!({"type": "tool", "name": name}))
        }
    };
    if body.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false) {
        let target = choice.get_or_insert_with(|| json!({"type": "auto"}));
        // `none` takes no options: nothing runs in parallel when nothing runs.
        if str_field(target, "type") != Some("none")
            && let Some(map) = target.as_object_mut()
        {
            map.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    Ok(choice)
}

// ---------------------------------------------------------------------------------------------
// Anthropic answer -> hub
// ---------------------------------------------------------------------------------------------

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

fn chat_usage(prompt: u64, completion: u64) -> Value {
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt.saturating_add(completion),
    })
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
        "usage": chat_usage(prompt_tokens(usage), u64_field(usage, "output_tokens")),
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
/// (tool-call numbering per content block, usage, one id/created/model for every chunk).
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: i64,
    id: String,
    started: bool,
    prompt_tokens: u64,
    completion_tokens: u64,
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
            tool_blocks: HashMap::new(),
            tool_count: 0,
            finish_sent: false,
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>, usage: Option<Value>) -> Bytes {
        let mut chunk = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        });
        if let (Some(usage), Some(map)) = (usage, chunk.as_object_mut()) {
            map.insert("usage".into(), usage);
        }
        sse_data(&chunk)
    }

    fn finish_chunk(&mut self, reason: &str) -> Bytes {
        self.finish_sent = true;
        let usage = chat_usage(self.prompt_tokens, self.completion_tokens);
        self.chunk(json!({}), Some(reason), Some(usage))
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
                let usage = message.get("usage").unwrap_or(&Value::Null);
                self.prompt_tokens = prompt_tokens(usage);
                self.completion_tokens = u64_field(usage, "output_tokens");
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None, None));
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
                            out.push(self.chunk(json!({"content": text}), None, None));
                        }
                    }
                    Some("thinking") => {
                        let text = str_field(block, "thinking").unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"reasoning_content": text}), None, None));
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
                            out.push(self.chunk(json!({"content": text}), None, None));
                        }
                    }
                    Some("thinking_delta") => {
                        let text = str_field(delta, "thinking").unwrap_or("");
                        if !text.is_empty() {
                            out.push(self.chunk(json!({"reasoning_content": text}), None, None));
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
                                None,
                            ));
                        }
                    }
                    // signature_delta, citations_delta and future deltas carry nothing for chat.
                    _ => {}
                }
            }
            "message_delta" => {
                let usage = payload.get("usage").unwrap_or(&Value::Null);
                if usage.get("output_tokens").is_some_and(Value::is_u64) {
                    self.completion_tokens = u64_field(usage, "output_tokens");
                }
                // Newer API versions repeat the (cumulative) input counts here.
                if usage.get("input_tokens").is_some_and(Value::is_u64) {
                    self.prompt_tokens = prompt_tokens(usage);
                }
                let stop = payload
                    .get("delta")
                    .and_then(|d| str_field(d, "stop_reason"));
                if let Some(stop) = stop
                    && !self.finish_sent
                {
                    out.push(self.finish_chunk(finish_reason(stop)));
                }
            }
            "message_stop" => {
                if !self.finish_sent {
                    out.push(self.finish_chunk("stop"));
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

// ---------------------------------------------------------------------------------------------
// Anthropic request -> hub (the /v1/messages ingress)
// ---------------------------------------------------------------------------------------------

/// An OpenAI chat request body for an Anthropic Messages request. `model` is kept as given.
///
/// Dropped without error: `cache_control` on any block or tool (a caching hint), the `thinking`
/// configuration, `thinking`/`redacted_thinking` blocks replayed in assistant turns (chat has no
/// way to send them back), `service_tier`, `container`, `mcp_servers` and unknown top-level fields.
/// `max_tokens` stays `max_tokens` (what every OpenAI-compatible server knows). A streaming
/// request asks for `stream_options.include_usage` so the answer can report usage.
pub fn chat_request_from_messages(request: &Value) -> Result<Value, TranslateError> {
    let body = request
        .as_object()
        .ok_or_else(|| not_an_object("request body"))?;
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    if let Some(system) = system_message(body.get("system"))? {
        messages.push(system);
    }
    let input = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| field_error("'messages' must be an array", "messages"))?;
    for (i, message) in input.iter().enumerate() {
        match str_field(message, "role") {
            Some("user") => user_to_chat(message, i, &mut messages)?,
            Some("assistant") => messages.push(assistant_to_chat(message, i)?),
            _ => {
                return Err(field_error(
                    "role must be 'user' or 'assistant'",
                    format!("messages[{i}].role"),
                ));
            }
        }
    }
    out.insert("messages".into(), Value::Array(messages));
    match body.get("max_tokens") {
        None | Some(Value::Null) => {}
        Some(value @ Value::Number(_)) => {
            out.insert("max_tokens".into(), value.clone());
        }
        Some(_) => {
            return Err(field_error("'max_tokens' must be an integer", "max_tokens"));
        }
    }
    match body.get("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            if !items.is_empty() {
                out.insert("stop".into(), Value::Array(items.clone()));
            }
        }
        Some(_) => {
            return Err(field_error(
                "'stop_sequences' must be an array of strings",
                "stop_sequences",
            ));
        }
    }
    for key in ["temperature", "top_p", "top_k"] {
        if let Some(value) = number_field(body, key)? {
            out.insert(key.into(), value);
        }
    }
    let tools = tools_to_chat(body.get("tools"))?;
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    tool_choice_to_chat(body.get("tool_choice"), &mut out)?;
    match body.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(stream)) => {
            out.insert("stream".into(), Value::Bool(*stream));
            if *stream {
                out.insert("stream_options".into(), json!({"include_usage": true}));
            }
        }
        Some(_) => return Err(field_error("'stream' must be a boolean", "stream")),
    }
    if let Some(user) = body
        .get("metadata")
        .and_then(|m| str_field(m, "user_id"))
        .filter(|u| !u.is_empty())
    {
        out.insert("user".into(), Value::from(user));
    }
    Ok(Value::Object(out))
}

fn system_message(system: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    match system {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => {
            Ok((!text.is_empty()).then(|| json!({"role": "system", "content": text})))
        }
        Some(Value::Array(blocks)) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, block) in blocks.iter().enumerate() {
                match (str_field(block, "type"), str_field(block, "text")) {
                    (Some("text"), Some(text)) => texts.push(text),
                    _ => {
                        return Err(field_error(
                            "system blocks must be text blocks",
                            format!("system[{j}]"),
                        ));
                    }
                }
            }
            Ok(match texts.as_slice() {
                [] => None,
                [only] => Some(json!({"role": "system", "content": only})),
                _ => {
                    let parts: Vec<Value> = texts
                        .iter()
                        .map(|text| json!({"type": "text", "text": text}))
                        .collect();
                    Some(json!({"role": "system", "content": parts}))
                }
            })
        }
        Some(_) => Err(field_error(
            "'system' must be a string or an array of text blocks",
            "system",
        )),
    }
}

fn unknown_block(kind: Option<&str>, param: String) -> TranslateError {
    match kind {
        Some(kind) => field_error(
            format!("content block type '{kind}' is not supported here"),
            param,
        ),
        None => field_error("each content block needs a 'type' string", param),
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as chat wants them right
/// after the assistant's tool calls), the rest one user message of parts.
fn user_to_chat(message: &Value, i: usize, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let blocks = match message.get("content") {
        Some(Value::String(text)) => {
            out.push(json!({"role": "user", "content": text}));
            return Ok(());
        }
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(field_error(
                "content must be a string or an array of blocks",
                format!("messages[{i}].content"),
            ));
        }
    };
    let mut parts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let kind = str_field(block, "type");
        match kind {
            Some("text") => {
                let text = str_field(block, "text").ok_or_else(|| {
                    field_error(
                        "a text block needs a 'text' string",
                        format!("messages[{i}].content[{j}].text"),
                    )
                })?;
                parts.push(json!({"type": "text", "text": text}));
            }
            Some("image") => parts.push(image_part(block, &format!("messages[{i}].content[{j}]"))?),
            Some("tool_result") => out.push(tool_message(block, i, j)?),
            _ => {
                return Err(unknown_block(
                    kind,
                    format!("messages[{i}].content[{j}].type"),
                ));
            }
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn image_part(block: &Value, param: &str) -> Result<Value, TranslateError> {
    let source = block.get("source").unwrap_or(&Value::Null);
    let url = match str_field(source, "type") {
        Some("base64") => match (str_field(source, "media_type"), str_field(source, "data")) {
            (Some(media_type), Some(data)) => format!("data:{media_type};base64,{data}"),
            _ => {
                return Err(field_error(
                    "a base64 image source needs 'media_type' and 'data' strings",
                    format!("{param}.source"),
                ));
            }
        },
        Some("url") => str_field(source, "url")
            .ok_or_else(|| {
                field_error(
                    "a url image source needs a 'url' string",
                    format!("{param}.source.url"),
                )
            })?
            .to_string(),
        _ => {
            return Err(field_error(
                "image sources must be base64 or url",
                format!("{param}.source.type"),
            ));
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}

fn tool_message(block: &Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let param = format!("messages[{i}].content[{j}]");
    let id = str_field(block, "tool_use_id").ok_or_else(|| {
        field_error(
            "a tool_result needs a 'tool_use_id' string",
            format!("{param}.tool_use_id"),
        )
    })?;
    // `is_error` has no chat equivalent; the text (usually the error message) is kept as is.
    let content = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(inner)) => {
            let mut texts = Vec::with_capacity(inner.len());
            for (k, part) in inner.iter().enumerate() {
                let kind = str_field(part, "type");
                match (kind, str_field(part, "text")) {
                    (Some("text"), Some(text)) => texts.push(text),
                    _ => {
                        return Err(field_error(
                            "only text can be returned to a chat model as a tool result",
                            format!("{param}.content[{k}].type"),
                        ));
                    }
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(field_error(
                "tool_result content must be a string or an array of text blocks",
                format!("{param}.content"),
            ));
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

fn assistant_to_chat(message: &Value, i: usize) -> Result<Value, TranslateError> {
    let blocks = match message.get("content") {
        Some(Value::String(text)) => return Ok(json!({"role": "assistant", "content": text})),
        Some(Value::Array(blocks)) => blocks,
        _ => {
            return Err(field_error(
                "content must be a string or an array of blocks",
                format!("messages[{i}].content"),
            ));
        }
    };
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let kind = str_field(block, "type");
        match kind {
            Some("text") => text.push_str(str_field(block, "text").ok_or_else(|| {
                field_error(
                    "a text block needs a 'text' string",
                    format!("messages[{i}].content[{j}].text"),
                )
            })?),
            Some("tool_use") => {
                let param = |field: &str| format!("messages[{i}].content[{j}].{field}");
                let id = str_field(block, "id")
                    .ok_or_else(|| field_error("a tool_use needs an 'id' string", param("id")))?;
                let name = str_field(block, "name").ok_or_else(|| {
                    field_error("a tool_use needs a 'name' string", param("name"))
                })?;
                let arguments = match block.get("input") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(input) => input.to_string(),
                };
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }));
            }
            Some("thinking" | "redacted_thinking") => {}
            _ => {
                return Err(unknown_block(
                    kind,
                    format!("messages[{i}].content[{j}].type"),
                ));
            }
        }
    }
    let mut out = Map::new();
    out.insert("role".into(), Value::from("assistant"));
    let content = if text.is_empty() && !tool_calls.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    out.insert("content".into(), content);
    if !tool_calls.is_empty() {
        out.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    Ok(Value::Object(out))
}

fn tools_to_chat(tools: Option<&Value>) -> Result<Vec<Value>, TranslateError> {
    let tools = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(field_error("'tools' must be an array", "tools")),
    };
    let mut out = Vec::with_capacity(tools.len());
    for (k, tool) in tools.iter().enumerate() {
        match tool.get("type") {
            None | Some(Value::Null) => {}
            Some(kind) if kind.as_str() == Some("custom") => {}
            Some(_) => {
                return Err(field_error(
                    "server tools cannot be translated; only custom tools are supported",
                    format!("tools[{k}].type"),
                ));
            }
        }
        let name = str_field(tool, "name").ok_or_else(|| {
            field_error("a tool needs a 'name' string", format!("tools[{k}].name"))
        })?;
        let mut function = Map::new();
        function.insert("name".into(), Value::from(name));
        if let Some(description) = str_field(tool, "description") {
            function.insert("description".into(), Value::from(description));
        }
        let parameters = match tool.get("input_schema") {
            Some(Value::Object(schema)) => Value::Object(schema.clone()),
            _ => json!({"type": "object", "properties": {}}),
        };
        function.insert("parameters".into(), parameters);
        out.push(json!({"type": "function", "function": Value::Object(function)}));
    }
    Ok(out)
}

fn tool_choice_to_chat(
    choice: Option<&Value>,
    out: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok(());
    };
    let mapped = match str_field(choice, "type") {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => {
            let name = str_field(choice, "name").ok_or_else(|| {
                field_error(
                    "tool_choice of type 'tool' needs a 'name'",
                    "tool_choice.name",
                )
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(field_error(
                "tool_choice type must be auto, any, tool or none",
                "tool_choice.type",
            ));
        }
    };
    out.insert("tool_choice".into(), mapped);
    if choice
        .get("disable_parallel_tool_use")
        .and_then(Value::as_bool)
        == Some(true)
    {
        out.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// hub answer -> Anthropic (the /v1/messages ingress)
// ---------------------------------------------------------------------------------------------

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
        "usage": {
            "input_tokens": u64_field(usage, "prompt_tokens"),
            "output_tokens": u64_field(usage, "completion_tokens"),
        },
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
    input_tokens: u64,
    output_tokens: u64,
    usage_seen: bool,
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
            input_tokens: 0,
            output_tokens: 0,
            usage_seen: false,
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
                "usage": {"input_tokens": self.input_tokens, "output_tokens": 0},
            }}),
        ));
        out.push(anthropic_event("ping", &json!({"type": "ping"})));
    }

    fn close_block(&mut self, out: &mut Vec<Bytes>) {
        if let Some(block) = self.open.take() {
            let index = match block {
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

    fn text(&mut self, text: &str, out: &mut Vec<Bytes>) {
        let index = match self.open {
            Some(OpenBlock::Text { index }) => index,
            _ => {
                self.close_block(out);
                let index = self.take_index();
                out.push(anthropic_event(
                    "content_block_start",
                    &json!({"type": "content_block_start", "index": index,
                        "content_block": {"type": "text", "text": ""}}),
                ));
                self.open = Some(OpenBlock::Text { index });
                index
            }
        };
        out.push(anthropic_event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}}),
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
        let mut usage = Map::new();
        if self.usage_seen {
            usage.insert("input_tokens".into(), Value::from(self.input_tokens));
        }
        usage.insert("output_tokens".into(), Value::from(self.output_tokens));
        out.push(anthropic_event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop_reason.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": Value::Object(usage)}),
        ));
    }

    /// One whole OpenAI SSE event in, zero or more whole Anthropic events out. `message_delta`
    /// goes out with the finish reason when that chunk carries usage, else with the usage-only
    /// chunk OpenAI sends after it, else at `[DONE]`.
    pub fn push(&mut self, openai_event: &[u8]) -> Vec<Bytes> {
        if self.stopped {
            return Vec::new();
        }
        let Some(data) = sse::event_data(openai_event) else {
            return Vec::new();
        };
        let data = data.trim();
        if data == "[DONE]" {
            return self.finish();
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return Vec::new();
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = match error {
                Value::String(message) => message.clone(),
                _ => str_field(error, "message")
                    .map(str::to_string)
                    .unwrap_or_else(|| error.to_string()),
            };
            return vec![self.error(&message)];
        }
        if !chunk.is_object() {
            return Vec::new();
        }
        let usage = chunk.get("usage").filter(|u| u.is_object());
        if let Some(usage) = usage {
            self.usage_seen = true;
            self.input_tokens = u64_field(usage, "prompt_tokens");
            self.output_tokens = u64_field(usage, "completion_tokens");
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
            for key in ["content", "refusal"] {
                if let Some(text) = str_field(delta, key).filter(|t| !t.is_empty()) {
                    self.text(text, &mut out);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": text})
    }

    fn request(extra: Value) -> Value {
        let mut body = json!({"model": "m", "messages": [user("hi")]});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            for (key, value) in extra {
                body.insert(key.clone(), value.clone());
            }
        }
        body
    }

    fn translate(extra: Value) -> Value {
        request_from_chat(&request(extra), "claude", false).unwrap()
    }

    fn tool() -> Value {
        json!([{"type": "function", "function": {"name": "f"}}])
    }

    #[test]
    fn defaults_and_sampling() {
        let out = translate(json!({}));
        assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(out["model"], "claude");
        assert_eq!(out["stream"], false);
        assert!(out.get("system").is_none());
        assert_eq!(translate(json!({"temperature": 2}))["temperature"], 1.0);
        assert_eq!(translate(json!({"temperature": -1}))["temperature"], 0.0);
        assert_eq!(translate(json!({"temperature": 0.3}))["temperature"], 0.3);
        assert_eq!(
            translate(json!({"max_tokens": 10, "max_completion_tokens": 20}))["max_tokens"],
            20
        );
        assert_eq!(
            translate(json!({"stop": "x"}))["stop_sequences"],
            json!(["x"])
        );
        let dropped = translate(
            json!({"seed": 1, "frequency_penalty": 1, "presence_penalty": 1,
            "logit_bias": {}, "service_tier": "auto", "store": true, "metadata": {"a": "b"},
            "stream_options": {"include_usage": true}}),
        );
        for key in [
            "seed",
            "frequency_penalty",
            "presence_penalty",
            "logit_bias",
            "service_tier",
            "store",
            "stream_options",
        ] {
            assert!(dropped.get(key).is_none(), "{key}");
        }
        assert!(dropped.get("metadata").is_none());
        assert_eq!(
            translate(json!({"user": "u1"}))["metadata"],
            json!({"user_id": "u1"})
        );
        assert!(request_from_chat(&request(json!({})), "m", true).unwrap()["stream"] == true);
    }

    #[test]
    fn bad_sampling_values_are_named() {
        for (extra, param) in [
            (json!({"max_tokens": 0}), "max_tokens"),
            (
                json!({"max_completion_tokens": "9"}),
                "max_completion_tokens",
            ),
            (json!({"temperature": "hot"}), "temperature"),
            (json!({"stop": [1]}), "stop[0]"),
            (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
            (
                json!({"tools": tool(), "tool_choice": "sometimes"}),
                "tool_choice",
            ),
            (json!({"messages": "hi"}), "messages"),
        ] {
            let err = request_from_chat(&request(extra), "m", false).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param));
        }
        assert_eq!(
            request_from_chat(&json!([1]), "m", false)
                .unwrap_err()
                .param,
            None
        );
    }

    #[test]
    fn tool_choice_mapping() {
        let choice = |extra: Value| translate(extra).get("tool_choice").cloned();
        assert_eq!(
            choice(json!({"tools": tool(), "tool_choice": "auto"})),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(
            choice(json!({"tools": tool(), "tool_choice": "none"})),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(json!({"tools": tool(), "tool_choice": "required"})),
            Some(json!({"type": "any"}))
        );
        assert_eq!(
            choice(
                json!({"tools": tool(), "tool_choice": {"type": "function", "function": {"name": "f"}}})
            ),
            Some(json!({"type": "tool", "name": "f"}))
        );
        assert_eq!(
            choice(json!({"tools": tool(), "parallel_tool_calls": false})),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(
                json!({"tools": tool(), "tool_choice": "required", "parallel_tool_calls": false})
            ),
            Some(json!({"type": "any", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(json!({"tools": tool(), "tool_choice": "none", "parallel_tool_calls": false})),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(json!({"tools": tool(), "parallel_tool_calls": true})),
            None
        );
        // Without tools Anthropic rejects tool_choice; it carries no content, so it is dropped.
        assert_eq!(choice(json!({"tool_choice": "none"})), None);
    }

    #[test]
    fn messages_are_merged_and_strings_kept() {
        let out = translate(json!({"messages": [
            {"role": "assistant", "content": "I start"},
            user("a"), user("b"),
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "r1"},
            user("after"),
        ]}));
        assert_eq!(
            out["messages"],
            json!([
                {"role": "assistant", "content": "I start"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "r1"},
                    {"type": "text", "text": "after"}]},
            ])
        );
    }

    #[test]
    fn images_that_cannot_be_sent_are_named() {
        for url in [
            "data:image/png,abc",
            "file:///etc/passwd",
            "data:image/png;base64",
        ] {
            let err = request_from_chat(
                &request(json!({"messages": [{"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": url}}]}]})),
                "m",
                false,
            )
            .unwrap_err();
            assert_eq!(
                err.param.as_deref(),
                Some("messages[0].content[0].image_url.url"),
                "{url}"
            );
        }
    }

    #[test]
    fn answer_finish_reasons_and_usage() {
        for (stop, finish) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("pause_turn", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "content_filter"),
        ] {
            let answer = json!({"id": "msg_1", "content": [], "stop_reason": stop,
                "usage": {"input_tokens": 1, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 3, "output_tokens": 4}});
            let chat = chat_from_response(&answer, "fallback", 7).unwrap();
            assert_eq!(chat["choices"][0]["finish_reason"], finish);
            assert_eq!(
                chat["usage"],
                json!({"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10})
            );
            assert_eq!(chat["model"], "fallback");
            assert_eq!(chat["created"], 7);
            assert_eq!(chat["choices"][0]["message"]["content"], "");
        }
        assert!(chat_from_response(&json!({"type": "message"}), "m", 0).is_err());
    }

    #[test]
    fn upstream_errors() {
        let (status, body) = error_to_chat(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(status, 503);
        assert_eq!(body["error"]["code"], "overloaded_error");
        let (status, body) = error_to_chat(429, b"");
        assert_eq!(status, 429);
        assert_eq!(
            body["error"]["message"],
            "upstream answered with status 429"
        );
        assert_eq!(body["error"]["type"], "upstream_error");
        let (_, body) = error_to_chat(500, br#"{"error":"boom"}"#);
        assert_eq!(body["error"]["message"], "boom");
    }

    #[test]
    fn errors_for_anthropic_clients() {
        for (status, kind) in [
            (400, "invalid_request_error"),
            (413, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
            (529, "overloaded_error"),
        ] {
            let body = error_from_chat(status, br#"{"error":{"message":"nope","type":"x"}}"#);
            assert_eq!(
                body,
                json!({"type": "error", "error": {"type": kind, "message": "nope"}})
            );
        }
        assert_eq!(
            error_from_chat(502, b"bad gateway")["error"]["message"],
            "bad gateway"
        );
    }

    fn event(kind: &str, data: Value) -> Vec<u8> {
        format!("event: {kind}\ndata: {data}\n\n").into_bytes()
    }

    #[test]
    fn a_cut_anthropic_stream_gets_no_done() {
        let mut translator = StreamTranslator::new("m", 1, "chatcmpl-1".into());
        let out = translator
            .push(&event(
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
            ))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert!(translator.finish().is_empty());

        let mut translator = StreamTranslator::new("m", 1, "chatcmpl-1".into());
        let out = translator
            .push(&event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}})))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            translator.finish(),
            vec![Bytes::from_static(b"data: [DONE]\n\n")]
        );
        assert!(translator.finish().is_empty());
    }

    #[test]
    fn anthropic_stream_oddities() {
        let mut translator = StreamTranslator::new("m", 1, "chatcmpl-1".into());
        assert!(translator.push(b": comment\n\n").unwrap().is_empty());
        assert!(
            translator
                .push(&event("ping", json!({"type": "ping"})))
                .unwrap()
                .is_empty()
        );
        assert!(
            translator
                .push(&event("future_event", json!({"type": "future_event"})))
                .unwrap()
                .is_empty()
        );
        assert!(translator.push(b"event: x\ndata: {not json\n\n").is_err());
        // An input delta for a block that never started is dropped, not invented.
        let orphan = event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 5,
            "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
        );
        assert!(translator.push(&orphan).unwrap().is_empty());
        // The event name is used when the data has no type.
        let out = translator
            .push(&event(
                "content_block_delta",
                json!({"index": 0, "delta": {"type": "text_delta", "text": "x"}}),
            ))
            .unwrap();
        assert_eq!(out.len(), 1);
        let stop = translator
            .push(&event("message_stop", json!({"type": "message_stop"})))
            .unwrap();
        assert_eq!(stop.len(), 2, "a finish chunk is owed before [DONE]");
        assert!(
            translator
                .push(&event("message_stop", json!({"type": "message_stop"})))
                .unwrap()
                .is_empty()
        );
    }

    fn chunk(delta: Value, finish: Value) -> Vec<u8> {
        format!(
            "data: {}\n\n",
            json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
        .into_bytes()
    }

    fn names(events: &[Bytes]) -> Vec<String> {
        events
            .iter()
            .filter_map(|e| sse::event_name(e).map(str::to_string))
            .collect()
    }

    #[test]
    fn the_writer_closes_what_is_open_when_the_upstream_ends() {
        let mut writer = MessagesStreamWriter::new("m", "msg_1".into());
        let mut out = writer.push(&chunk(json!({"content": "Hi"}), Value::Null));
        out.extend(writer.finish());
        assert_eq!(
            names(&out),
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert!(writer.finish().is_empty());
        assert!(
            writer
                .push(&chunk(json!({"content": "late"}), Value::Null))
                .is_empty()
        );
    }

    #[test]
    fn the_writer_holds_message_delta_for_the_usage_chunk() {
        let mut writer = MessagesStreamWriter::new("m", "msg_1".into());
        let out = writer.push(&chunk(json!({"content": "Hi"}), json!("length")));
        assert_eq!(
            names(&out).last().map(String::as_str),
            Some("content_block_stop")
        );
        let out = writer
            .push(br#"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7}}"#);
        assert_eq!(names(&out), ["message_delta"]);
        let delta: Value = serde_json::from_str(&sse::event_data(&out[0]).unwrap()).unwrap();
        assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
        assert_eq!(
            delta["usage"],
            json!({"input_tokens": 5, "output_tokens": 7})
        );
        assert_eq!(names(&writer.push(b"data: [DONE]\n\n")), ["message_stop"]);
    }

    #[test]
    fn the_writer_ends_with_an_error_event() {
        let mut writer = MessagesStreamWriter::new("m", "msg_1".into());
        let error = writer.error("boom \"quoted\"");
        assert_eq!(
            error,
            Bytes::from_static(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom \\\"quoted\\\"\"}}\n\n")
        );
        assert!(writer.finish().is_empty());
    }

    #[test]
    fn ingress_requests_refuse_what_chat_cannot_carry() {
        let base = |messages: Value| json!({"model": "m", "max_tokens": 5, "messages": messages});
        for (body, param) in [
            (
                base(json!([{"role": "user", "content": [{"type": "document", "source": {}}]}])),
                "messages[0].content[0].type",
            ),
            (
                base(json!([{"role": "assistant", "content": [{"type": "server_tool_use"}]}])),
                "messages[0].content[0].type",
            ),
            (
                base(
                    json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                "content": [{"type": "image", "source": {}}]}]}]),
                ),
                "messages[0].content[0].content[0].type",
            ),
            (
                base(json!([{"role": "system", "content": "x"}])),
                "messages[0].role",
            ),
            (
                json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"messages": [], "tool_choice": {"type": "sometimes"}}),
                "tool_choice.type",
            ),
            (
                json!({"messages": [], "system": [{"type": "image"}]}),
                "system[0]",
            ),
        ] {
            let err = chat_request_from_messages(&body).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn ingress_answers() {
        let chat = json!({"id": "chatcmpl-9", "choices": [{"message": {"role": "assistant", "content": "x",
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "finish_reason": "stop"}]});
        let message = messages_response_from_chat(&chat, "m").unwrap();
        assert_eq!(message["id"], "msg_9");
        assert_eq!(message["stop_reason"], "tool_use");
        assert_eq!(message["content"][1]["input"], json!({"a": 1}));
        let bad = json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}}]});
        assert_eq!(
            messages_response_from_chat(&bad, "m")
                .unwrap_err()
                .param
                .as_deref(),
            Some("choices[0].message.tool_calls[0].function.arguments")
        );
        assert!(messages_response_from_chat(&json!({"choices": []}), "m").is_err());
    }
}
