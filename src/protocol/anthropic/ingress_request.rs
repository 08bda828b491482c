//! Anthropic request -> hub (the `/v1/messages` ingress): a client's Messages request as a chat
//! request ([`chat_request_from_messages`]).

use serde_json::{Map, Value, json};

use super::{field_error, not_an_object, number_field, str_field};
use crate::protocol::TranslateError;

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
