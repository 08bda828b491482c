//! hub -> Anthropic request: the Messages request body for a chat request ([`request_from_chat`]).

use serde_json::{Map, Value, json};

use super::{field_error, not_an_object, number_field, str_field};
use crate::protocol::TranslateError;

/// Anthropic requires `max_tokens`; this is used when the chat request gives none (SPEC 6).
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

fn is_absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

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

    if let Some(instruction) = json_instruction(body.get("response_format")) {
        system.push(instruction);
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
    // Recent Claude models refuse `temperature` and `top_p` together; the temperature is kept.
    if out.contains_key("temperature") {
        out.remove("top_p");
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

/// The system instruction that stands for a JSON `response_format`: Anthropic's Messages API has no
/// JSON mode every model takes, so the model is told to answer with JSON (following the schema,
/// when one is given). Clients that need JSON (Gemini CLI's side calls, structured-output SDK
/// calls) get it from Claude models, which follow such instructions, instead of a 400.
fn json_instruction(format: Option<&Value>) -> Option<String> {
    let format = format?;
    match str_field(format, "type") {
        Some("json_object") => {
            Some("Answer with one JSON object and nothing else: no prose, no code fence.".into())
        }
        Some("json_schema") => {
            let schema = format
                .pointer("/json_schema/schema")
                .map_or_else(|| "{}".to_string(), Value::to_string);
            Some(format!(
                "Answer with one JSON object and nothing else (no prose, no code fence). It must \
                 validate against this JSON schema: {schema}"
            ))
        }
        _ => None,
    }
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
        Some(format)
            if matches!(
                str_field(format, "type"),
                Some("text" | "json_object" | "json_schema")
            ) => {}
        Some(_) => {
            return Err(field_error(
                "response_format type must be text, json_object or json_schema",
                "response_format.type",
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
