//! Anthropic request -> hub (the `/v1/messages` ingress): a client's Messages request as a chat
//! request ([`chat_request_from_messages`]).

use serde_json::{Map, Value, json};

use super::{field_error, not_an_object, number_field, str_field};
use crate::protocol::{Dropped, TranslateError};

/// Top-level request fields this translation reads; any other is dropped and noted.
const READ_FIELDS: [&str; 13] = [
    "model",
    "messages",
    "system",
    "max_tokens",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "stream",
    "metadata",
    "thinking",
];

/// Top-level fields with their own metric label when dropped (what Claude Code and the SDKs send);
/// anything else is counted as `other_field`.
const KNOWN_DROPS: [&str; 6] = [
    "context_management",
    "output_config",
    "service_tier",
    "container",
    "mcp_servers",
    "anthropic_version",
];

/// The longest `metadata.user_id` forwarded as chat's `user` (OpenAI's limit for end-user ids).
const MAX_USER_ID: usize = 64;

/// An OpenAI chat request body for an Anthropic Messages request. `model` is kept as given.
///
/// Honoured: `system` (string or text blocks) and `system`-role messages anywhere in `messages`
/// (each a system message in place, so their order is kept), text, image, `tool_use` and
/// `tool_result` blocks, custom tools, `tool_choice`, `stop_sequences`, sampling fields, and
/// `metadata.user_id` as `user` (up to 64 characters). A streaming request asks for
/// `stream_options.include_usage`.
///
/// Dropped and noted in `dropped` (SPEC 4.8): the `thinking` setting (see [`check_thinking`]),
/// `cache_control` (a caching hint), `thinking` and
/// `redacted_thinking` blocks replayed in assistant turns (chat cannot send them back), server
/// tools (`web_search_...` and the like: no chat upstream runs them), content block types chat has
/// no form for, non-text, non-image parts of a tool result, and every other top-level field
/// (`context_management`, `output_config`, `service_tier`, `container`, `mcp_servers`, ...).
pub fn chat_request_from_messages(
    request: &Value,
    dropped: &mut Dropped,
) -> Result<Value, TranslateError> {
    let body = request
        .as_object()
        .ok_or_else(|| not_an_object("request body"))?;
    dropped.note_unread_fields(body, &READ_FIELDS, &KNOWN_DROPS);
    if mentions_cache_control(body) {
        dropped.note("cache_control", "cache_control");
    }
    let mut out = Map::new();
    if let Some(model) = body.get("model") {
        out.insert("model".into(), model.clone());
    }
    let mut messages = Vec::new();
    if let Some(system) = system_message(body.get("system"), "system")? {
        messages.push(system);
    }
    let input = body
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| field_error("'messages' must be an array", "messages"))?;
    for (i, message) in input.iter().enumerate() {
        match str_field(message, "role") {
            Some("user") => user_to_chat(message, i, &mut messages, dropped)?,
            Some("assistant") => messages.push(assistant_to_chat(message, i, dropped)?),
            // Claude Code puts system reminders between turns as system messages.
            Some("system" | "developer") => {
                let at = format!("messages[{i}].content");
                if let Some(system) = system_message(message.get("content"), &at)? {
                    messages.push(system);
                }
            }
            _ => {
                return Err(field_error(
                    "role must be 'user', 'assistant' or 'system'",
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
    let tools = tools_to_chat(body.get("tools"), dropped)?;
    let no_tools = tools.is_empty();
    if !no_tools {
        out.insert("tools".into(), Value::Array(tools));
    }
    tool_choice_to_chat(body.get("tool_choice"), &mut out)?;
    if no_tools && out.remove("tool_choice").is_some() {
        // Chat refuses a tool choice without tools (all of them may have been server tools).
        dropped.note("tool_choice", "tool_choice without any tool chat can run");
    }
    check_thinking(body.get("thinking"), dropped)?;
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
        if user.chars().count() <= MAX_USER_ID {
            out.insert("user".into(), Value::from(user));
        } else {
            dropped.note(
                "metadata.user_id",
                "metadata.user_id longer than 64 characters",
            );
        }
    }
    Ok(Value::Object(out))
}

/// Checks an Anthropic `thinking` setting and notes that chat does not get it. It is not turned into
/// chat's `reasoning_effort`: models that do not reason refuse that field with a 400, and Claude
/// Code sends `thinking` on every request whatever the model, so mapping it would break the most
/// common set-up (a Claude model name routed to a chat model). A reasoning model thinks at its
/// default effort; its reasoning still comes back as thinking blocks.
fn check_thinking(thinking: Option<&Value>, dropped: &mut Dropped) -> Result<(), TranslateError> {
    let Some(thinking) = thinking.filter(|t| !t.is_null()) else {
        return Ok(());
    };
    match str_field(thinking, "type") {
        Some("disabled") => Ok(()),
        Some(kind @ ("enabled" | "adaptive")) => {
            dropped.note("thinking", format!("thinking {kind}"));
            Ok(())
        }
        _ => Err(field_error(
            "thinking.type must be enabled, adaptive or disabled",
            "thinking.type",
        )),
    }
}

/// Whether any system block, message block or tool carries `cache_control`.
fn mentions_cache_control(body: &Map<String, Value>) -> bool {
    let has = |item: &Value| item.get("cache_control").is_some();
    let blocks = |value: Option<&Value>| {
        value
            .and_then(Value::as_array)
            .is_some_and(|items| items.iter().any(has))
    };
    blocks(body.get("system"))
        || blocks(body.get("tools"))
        || body
            .get("messages")
            .and_then(Value::as_array)
            .is_some_and(|messages| messages.iter().any(|m| blocks(m.get("content"))))
}

/// A system message for a `system` value (a string or text blocks) found at `at`.
fn system_message(system: Option<&Value>, at: &str) -> Result<Option<Value>, TranslateError> {
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
                            format!("{at}[{j}]"),
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
            format!("'{at}' must be a string or an array of text blocks"),
            at,
        )),
    }
}

/// A block type chat has no form for (`document`, server tool results, future types) is dropped
/// and noted; a block without a type is malformed.
fn unknown_block(
    kind: Option<&str>,
    param: String,
    dropped: &mut Dropped,
) -> Result<(), TranslateError> {
    match kind {
        Some(kind) => {
            dropped.note("content_block", format!("{param} '{kind}'"));
            Ok(())
        }
        None => Err(field_error(
            "each content block needs a 'type' string",
            param,
        )),
    }
}

/// A user turn: its `tool_result` blocks become `tool` messages (first, as chat wants them right
/// after the assistant's tool calls), the rest one user message of parts (images a tool returned
/// included: a chat tool message carries text only).
fn user_to_chat(
    message: &Value,
    i: usize,
    out: &mut Vec<Value>,
    dropped: &mut Dropped,
) -> Result<(), TranslateError> {
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
            Some("text") => parts.push(text_part(block, i, j)?),
            Some("image") => parts.push(image_part(block, &format!("messages[{i}].content[{j}]"))?),
            Some("tool_result") => out.push(tool_message(block, i, j, &mut parts, dropped)?),
            _ => unknown_block(kind, format!("messages[{i}].content[{j}].type"), dropped)?,
        }
    }
    if !parts.is_empty() {
        out.push(json!({"role": "user", "content": parts}));
    }
    Ok(())
}

fn text_part(block: &Value, i: usize, j: usize) -> Result<Value, TranslateError> {
    let text = str_field(block, "text").ok_or_else(|| {
        field_error(
            "a text block needs a 'text' string",
            format!("messages[{i}].content[{j}].text"),
        )
    })?;
    Ok(json!({"type": "text", "text": text}))
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

/// A `tool` message for a `tool_result` block: its text; images it holds go to `images` (the user
/// message that follows), other block types are dropped. `is_error` has no chat equivalent; the
/// text (usually the error message) is kept as is.
fn tool_message(
    block: &Value,
    i: usize,
    j: usize,
    images: &mut Vec<Value>,
    dropped: &mut Dropped,
) -> Result<Value, TranslateError> {
    let param = format!("messages[{i}].content[{j}]");
    let id = str_field(block, "tool_use_id").ok_or_else(|| {
        field_error(
            "a tool_result needs a 'tool_use_id' string",
            format!("{param}.tool_use_id"),
        )
    })?;
    let content = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(inner)) => {
            let mut texts = Vec::with_capacity(inner.len());
            for (k, part) in inner.iter().enumerate() {
                let at = format!("{param}.content[{k}]");
                match str_field(part, "type") {
                    Some("text") => texts.push(str_field(part, "text").ok_or_else(|| {
                        field_error("a text block needs a 'text' string", format!("{at}.text"))
                    })?),
                    Some("image") => images.push(image_part(part, &at)?),
                    kind => unknown_block(kind, format!("{at}.type"), dropped)?,
                }
            }
            texts.join("\n")
        }
        Some(_) => {
            return Err(field_error(
                "tool_result content must be a string or an array of blocks",
                format!("{param}.content"),
            ));
        }
    };
    Ok(json!({"role": "tool", "tool_call_id": id, "content": content}))
}

fn assistant_to_chat(
    message: &Value,
    i: usize,
    dropped: &mut Dropped,
) -> Result<Value, TranslateError> {
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
            Some("thinking" | "redacted_thinking") => {
                dropped.note("thinking_block", format!("messages[{i}].content[{j}]"));
            }
            _ => unknown_block(kind, format!("messages[{i}].content[{j}].type"), dropped)?,
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

fn tools_to_chat(
    tools: Option<&Value>,
    dropped: &mut Dropped,
) -> Result<Vec<Value>, TranslateError> {
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
            // Server tools (web search, code execution, ...) run at Anthropic; no chat upstream can.
            Some(kind) => {
                dropped.note("server_tool", format!("tools[{k}] {kind}"));
                continue;
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

/// The client's request without the thinking blocks the gateway made from another vendor's
/// reasoning (their signature is [`TRANSLATED_SIGNATURE`](super::TRANSLATED_SIGNATURE), which
/// Anthropic would refuse), for a turn that goes to an Anthropic upstream natively; `None` when it
/// holds none, which is the common case and costs one substring search.
pub fn strip_translated_thinking(bytes: &[u8]) -> Option<Vec<u8>> {
    let marker = super::TRANSLATED_SIGNATURE.as_bytes();
    if !bytes.windows(marker.len()).any(|window| window == marker) {
        return None;
    }
    let mut request: Value = serde_json::from_slice(bytes).ok()?;
    let messages = request.get_mut("messages")?.as_array_mut()?;
    for message in messages.iter_mut() {
        if let Some(blocks) = message.get_mut("content").and_then(Value::as_array_mut) {
            blocks
                .retain(|block| str_field(block, "signature") != Some(super::TRANSLATED_SIGNATURE));
        }
    }
    serde_json::to_vec(&request).ok()
}
