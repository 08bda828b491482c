//! Native Gemini request -> OpenAI chat request ([`chat_request_from_gemini`]), for a Gemini body
//! sent to the chat endpoint.

use serde_json::{Value, json};

use super::schema::MAX_SCHEMA_DEPTH;
use super::{Object, bad, is_thought, part_type};
use crate::protocol::{Dropped, TranslateError};

/// A field under its REST (lowerCamel) name or its proto (snake_case) name; Google's JSON parser
/// takes both and its own curl examples use the snake_case one.
fn field<'a>(object: &'a Object, camel: &str, snake: &str) -> Option<&'a Value> {
    object
        .get(camel)
        .or_else(|| object.get(snake))
        .filter(|value| !value.is_null())
}

/// The OpenAI chat request (with `model`) for a native Gemini `generateContent` body sent to the
/// chat endpoint. Function calls get ids `call_<n>` (or Gemini's own `id`), and each function
/// response answers the earliest unanswered call of its name (or its `id`). Dropped, having no
/// OpenAI equivalent: `safetySettings`, `cachedContent`, `topK`, `thinkingConfig`, thought parts
/// in model turns, `responseModalities` and the rest of `generationConfig` not listed below.
///
/// Gemini's built-in tools (`googleSearch`, `codeExecution`, `urlContext`, ...) run inside Google's
/// service, which no chat upstream offers: they are dropped and noted in `dropped` (SPEC 4.8).
pub fn chat_request_from_gemini(
    request: &Value,
    model: &str,
    dropped: &mut Dropped,
) -> Result<Value, TranslateError> {
    let Some(request) = request.as_object() else {
        return Err(TranslateError::new(
            "request body must be a JSON object",
            None,
        ));
    };
    let mut messages: Vec<Value> = Vec::new();
    if let Some(system) = field(request, "systemInstruction", "system_instruction") {
        let text = system_text(system)?;
        if !text.is_empty() {
            messages.push(json!({"role": "system", "content": text}));
        }
    }
    let single;
    let contents: &[Value] = match field(request, "contents", "contents") {
        Some(Value::Array(contents)) => contents,
        Some(content @ Value::Object(_)) => {
            single = [content.clone()];
            &single
        }
        Some(Value::String(text)) => {
            single = [json!({"role": "user", "parts": [{"text": text}]})];
            &single
        }
        _ => return Err(bad("'contents' must be a list of contents", "contents")),
    };
    let mut calls = PendingCalls::default();
    for (i, content) in contents.iter().enumerate() {
        let param = format!("contents[{i}]");
        let Some(content) = content.as_object() else {
            return Err(bad("each content must be an object", param));
        };
        let role = match content.get("role") {
            None | Some(Value::Null) => "user",
            Some(Value::String(role)) => role.as_str(),
            Some(_) => return Err(bad("'role' must be a string", format!("{param}.role"))),
        };
        let parts: &[Value] = match content.get("parts") {
            None | Some(Value::Null) => &[],
            Some(Value::Array(parts)) => parts,
            Some(_) => return Err(bad("'parts' must be a list", format!("{param}.parts"))),
        };
        match role {
            "user" | "" | "function" | "tool" => {
                user_messages(parts, &param, &mut calls, &mut messages)?;
            }
            "model" | "assistant" => {
                if let Some(message) = model_message(parts, &param, &mut calls)? {
                    messages.push(message);
                }
            }
            other => {
                return Err(bad(
                    format!("content role '{other}' is not user or model"),
                    format!("{param}.role"),
                ));
            }
        }
    }
    let mut chat = Object::new();
    chat.insert("model".into(), Value::String(model.to_string()));
    chat.insert("messages".into(), Value::Array(messages));
    let tools = openai_tools(request, dropped)?;
    if !tools.is_empty() {
        chat.insert("tools".into(), Value::Array(tools));
    }
    if let Some(choice) = openai_tool_choice(request)? {
        chat.insert("tool_choice".into(), choice);
    }
    if let Some(config) = field(request, "generationConfig", "generation_config") {
        openai_generation(config, &mut chat)?;
    }
    Ok(Value::Object(chat))
}

fn system_text(system: &Value) -> Result<String, TranslateError> {
    match system {
        Value::String(text) => Ok(text.clone()),
        Value::Object(content) => {
            let parts: &[Value] = match content.get("parts") {
                None | Some(Value::Null) => &[],
                Some(Value::Array(parts)) => parts,
                Some(_) => {
                    return Err(bad("'parts' must be a list", "systemInstruction.parts"));
                }
            };
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part.get("text") {
                    Some(Value::String(text)) => texts.push(text.as_str()),
                    _ => {
                        return Err(bad(
                            "system instructions may only hold text parts",
                            format!("systemInstruction.parts[{j}]"),
                        ));
                    }
                }
            }
            Ok(texts.join("\n\n"))
        }
        _ => Err(bad(
            "'systemInstruction' must be a content object",
            "systemInstruction",
        )),
    }
}

/// Function calls waiting for their response, in order.
#[derive(Debug, Default)]
struct PendingCalls {
    pending: Vec<(String, String)>,
    next: usize,
}

impl PendingCalls {
    fn add(&mut self, name: &str, id: Option<&str>) -> String {
        let id = match id {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => {
                let id = format!("call_{}", self.next);
                self.next += 1;
                id
            }
        };
        self.pending.push((name.to_string(), id.clone()));
        id
    }

    /// The id of the call a response answers: by its id, else the earliest call of its name.
    fn answer(&mut self, name: &str, id: Option<&str>) -> Option<String> {
        let position = id
            .and_then(|id| self.pending.iter().position(|(_, pending)| pending == id))
            .or_else(|| self.pending.iter().position(|(pending, _)| pending == name))?;
        Some(self.pending.remove(position).1)
    }
}

enum NativePart<'a> {
    Text(&'a str),
    Thought,
    Inline(&'a str, &'a str),
    File(&'a str),
    Call(&'a Object),
    Response(&'a Object),
    Nothing,
}

/// Part keys that carry no content of their own.
const METADATA_KEYS: &[&str] = &[
    "thought",
    "thoughtSignature",
    "thought_signature",
    "videoMetadata",
    "video_metadata",
    "partMetadata",
    "part_metadata",
    "mediaResolution",
    "media_resolution",
];

fn native_part<'a>(part: &'a Value, param: &str) -> Result<NativePart<'a>, TranslateError> {
    let Some(part) = part.as_object() else {
        return Err(bad("each part must be an object", param));
    };
    if let Some(text) = part.get("text").filter(|t| !t.is_null()) {
        let Some(text) = text.as_str() else {
            return Err(bad("'text' must be a string", format!("{param}.text")));
        };
        return Ok(if is_thought(part) {
            NativePart::Thought
        } else {
            NativePart::Text(text)
        });
    }
    if let Some(inline) = field(part, "inlineData", "inline_data") {
        let mime = inline
            .as_object()
            .and_then(|i| field(i, "mimeType", "mime_type"))
            .and_then(Value::as_str);
        let data = inline.get("data").and_then(Value::as_str);
        return match (mime, data) {
            (Some(mime), Some(data)) => Ok(NativePart::Inline(mime, data)),
            _ => Err(bad(
                "inlineData needs string 'mimeType' and 'data'",
                format!("{param}.inlineData"),
            )),
        };
    }
    if let Some(file) = field(part, "fileData", "file_data") {
        let object = file.as_object();
        // The URI is all OpenAI's image_url can carry; the mime type is left behind.
        let uri = object
            .and_then(|f| field(f, "fileUri", "file_uri"))
            .and_then(Value::as_str);
        return match uri {
            Some(uri) => Ok(NativePart::File(uri)),
            None => Err(bad(
                "fileData needs a string 'fileUri'",
                format!("{param}.fileData.fileUri"),
            )),
        };
    }
    if let Some(call) = field(part, "functionCall", "function_call") {
        return match call.as_object() {
            Some(call) => Ok(NativePart::Call(call)),
            None => Err(bad(
                "functionCall must be an object",
                format!("{param}.functionCall"),
            )),
        };
    }
    if let Some(response) = field(part, "functionResponse", "function_response") {
        return match response.as_object() {
            Some(response) => Ok(NativePart::Response(response)),
            None => Err(bad(
                "functionResponse must be an object",
                format!("{param}.functionResponse"),
            )),
        };
    }
    match part
        .keys()
        .find(|key| !METADATA_KEYS.contains(&key.as_str()))
    {
        None => Ok(NativePart::Nothing),
        Some(key) => Err(bad(
            format!("gemini parts of kind '{key}' cannot be translated to OpenAI chat"),
            format!("{param}.{key}"),
        )),
    }
}

/// The OpenAI content part for inline data: images as image_url data URLs, wav/mp3 audio as
/// input_audio, anything else (PDFs...) as a file part.
fn inline_to_openai(mime: &str, data: &str) -> Value {
    let data_url = format!("data:{mime};base64,{data}");
    let lower = mime.to_ascii_lowercase();
    if lower.starts_with("image/") {
        return json!({"type": "image_url", "image_url": {"url": data_url}});
    }
    let audio = match lower.as_str() {
        "audio/wav" | "audio/x-wav" | "audio/wave" => Some("wav"),
        "audio/mp3" | "audio/mpeg" => Some("mp3"),
        _ => None,
    };
    if let Some(format) = audio {
        return json!({"type": "input_audio", "input_audio": {"data": data, "format": format}});
    }
    let extension = lower.rsplit('/').next().unwrap_or("bin");
    json!({"type": "file", "file": {"file_data": data_url, "filename": format!("file.{extension}")}})
}

fn user_messages(
    parts: &[Value],
    param: &str,
    calls: &mut PendingCalls,
    messages: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut buffer: Vec<Value> = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let part_param = format!("{param}.parts[{j}]");
        match native_part(part, &part_param)? {
            NativePart::Text(text) => buffer.push(json!({"type": "text", "text": text})),
            NativePart::Thought | NativePart::Nothing => {}
            NativePart::Inline(mime, data) => buffer.push(inline_to_openai(mime, data)),
            NativePart::File(uri) => {
                buffer.push(json!({"type": "image_url", "image_url": {"url": uri}}));
            }
            NativePart::Response(response) => {
                flush_user(&mut buffer, messages);
                let Some(name) = response.get("name").and_then(Value::as_str) else {
                    return Err(bad(
                        "functionResponse needs a string 'name'",
                        format!("{part_param}.functionResponse.name"),
                    ));
                };
                let id = response.get("id").and_then(Value::as_str);
                let Some(tool_call_id) = calls.answer(name, id) else {
                    return Err(bad(
                        format!("functionResponse '{name}' answers no earlier functionCall"),
                        format!("{part_param}.functionResponse.name"),
                    ));
                };
                let content = match response.get("response") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(Value::Object(object))
                        if object.len() == 1
                            && object.get("content").is_some_and(Value::is_string) =>
                    {
                        object
                            .get("content")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string()
                    }
                    Some(other) => other.to_string(),
                };
                messages.push(
                    json!({"role": "tool", "tool_call_id": tool_call_id, "content": content}),
                );
            }
            NativePart::Call(_) => {
                return Err(bad(
                    "functionCall parts belong in model contents",
                    format!("{part_param}.functionCall"),
                ));
            }
        }
    }
    flush_user(&mut buffer, messages);
    Ok(())
}

/// Emits the buffered user parts as one user message: a string when it is one text.
fn flush_user(buffer: &mut Vec<Value>, messages: &mut Vec<Value>) {
    if buffer.is_empty() {
        return;
    }
    let parts = std::mem::take(buffer);
    let content = match parts.as_slice() {
        [only] if part_type(only) == Some("text") => only.get("text").cloned().unwrap_or_default(),
        _ => Value::Array(parts),
    };
    messages.push(json!({"role": "user", "content": content}));
}

fn model_message(
    parts: &[Value],
    param: &str,
    calls: &mut PendingCalls,
) -> Result<Option<Value>, TranslateError> {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let part_param = format!("{param}.parts[{j}]");
        match native_part(part, &part_param)? {
            NativePart::Text(piece) => text.push_str(piece),
            NativePart::Thought | NativePart::Nothing => {}
            NativePart::Call(call) => {
                let Some(name) = call.get("name").and_then(Value::as_str) else {
                    return Err(bad(
                        "functionCall needs a string 'name'",
                        format!("{part_param}.functionCall.name"),
                    ));
                };
                let arguments = match call.get("args") {
                    None | Some(Value::Null) => "{}".to_string(),
                    Some(args @ Value::Object(_)) => args.to_string(),
                    Some(_) => {
                        return Err(bad(
                            "functionCall args must be an object",
                            format!("{part_param}.functionCall.args"),
                        ));
                    }
                };
                let id = calls.add(name, call.get("id").and_then(Value::as_str));
                tool_calls.push(json!({
                    "id": id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }));
            }
            NativePart::Inline(..) | NativePart::File(..) => {
                return Err(bad(
                    "media in model contents cannot be expressed in OpenAI chat",
                    part_param,
                ));
            }
            NativePart::Response(_) => {
                return Err(bad(
                    "functionResponse parts belong in user contents",
                    format!("{part_param}.functionResponse"),
                ));
            }
        }
    }
    if text.is_empty() && tool_calls.is_empty() {
        return Ok(None);
    }
    let content = if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    let mut message = json!({"role": "assistant", "content": content});
    if !tool_calls.is_empty()
        && let Value::Object(map) = &mut message
    {
        map.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    Ok(Some(message))
}

fn openai_tools(request: &Object, dropped: &mut Dropped) -> Result<Vec<Value>, TranslateError> {
    let tools: &[Value] = match field(request, "tools", "tools") {
        None => return Ok(Vec::new()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad("'tools' must be a list", "tools")),
    };
    let mut out = Vec::new();
    for (k, tool) in tools.iter().enumerate() {
        let Some(tool) = tool.as_object() else {
            return Err(bad("each tool must be an object", format!("tools[{k}]")));
        };
        for (key, value) in tool {
            match key.as_str() {
                "functionDeclarations" | "function_declarations" => {
                    let Some(declarations) = value.as_array() else {
                        return Err(bad(
                            "functionDeclarations must be a list",
                            format!("tools[{k}].{key}"),
                        ));
                    };
                    for (d, declaration) in declarations.iter().enumerate() {
                        out.push(openai_function(
                            declaration,
                            &format!("tools[{k}].{key}[{d}]"),
                        )?);
                    }
                }
                other => dropped.note("builtin_tool", format!("tools[{k}].{other}")),
            }
        }
    }
    Ok(out)
}

fn openai_function(declaration: &Value, param: &str) -> Result<Value, TranslateError> {
    let Some(declaration) = declaration.as_object() else {
        return Err(bad("each function declaration must be an object", param));
    };
    let Some(name) = declaration.get("name").and_then(Value::as_str) else {
        return Err(bad(
            "a function declaration needs a string 'name'",
            format!("{param}.name"),
        ));
    };
    let mut function = Object::new();
    function.insert("name".into(), Value::String(name.to_string()));
    if let Some(Value::String(description)) = declaration.get("description") {
        function.insert("description".into(), Value::String(description.clone()));
    }
    let schema = field(declaration, "parameters", "parameters")
        .map(|schema| openai_schema(schema, 0))
        .or_else(|| {
            field(
                declaration,
                "parametersJsonSchema",
                "parameters_json_schema",
            )
            .cloned()
        });
    if let Some(schema) = schema {
        function.insert("parameters".into(), schema);
    }
    Ok(json!({"type": "function", "function": function}))
}

/// A Gemini `Schema` as JSON schema: type names lowercased (`OBJECT` -> `object`), snake_case
/// keywords in their JSON-schema spelling.
fn openai_schema(schema: &Value, depth: usize) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    if depth > MAX_SCHEMA_DEPTH {
        return json!({"type": "object"});
    }
    let mut out = Object::new();
    for (key, value) in object {
        let key = match key.as_str() {
            "any_of" => "anyOf",
            "max_items" => "maxItems",
            "min_items" => "minItems",
            "max_length" => "maxLength",
            "min_length" => "minLength",
            "max_properties" => "maxProperties",
            "min_properties" => "minProperties",
            "property_ordering" => "propertyOrdering",
            other => other,
        };
        let converted = match (key, value) {
            ("type", Value::String(kind)) => Value::String(kind.to_ascii_lowercase()),
            ("properties", Value::Object(properties)) => Value::Object(
                properties
                    .iter()
                    .map(|(name, sub)| (name.clone(), openai_schema(sub, depth + 1)))
                    .collect(),
            ),
            ("items", item) => openai_schema(item, depth + 1),
            ("anyOf", Value::Array(options)) => Value::Array(
                options
                    .iter()
                    .map(|option| openai_schema(option, depth + 1))
                    .collect(),
            ),
            (_, other) => other.clone(),
        };
        out.insert(key.to_string(), converted);
    }
    Value::Object(out)
}

fn openai_tool_choice(request: &Object) -> Result<Option<Value>, TranslateError> {
    let Some(config) = field(request, "toolConfig", "tool_config") else {
        return Ok(None);
    };
    let Some(calling) = config
        .as_object()
        .and_then(|c| field(c, "functionCallingConfig", "function_calling_config"))
        .and_then(Value::as_object)
    else {
        return Ok(None);
    };
    let allowed: Vec<&str> = field(calling, "allowedFunctionNames", "allowed_function_names")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match calling.get("mode").and_then(Value::as_str) {
        None | Some("MODE_UNSPECIFIED") => Ok(None),
        Some("AUTO") | Some("VALIDATED") => Ok(Some(json!("auto"))),
        Some("NONE") => Ok(Some(json!("none"))),
        Some("ANY") => Ok(Some(match allowed.as_slice() {
            [only] => json!({"type": "function", "function": {"name": only}}),
            _ => json!("required"),
        })),
        Some(other) => Err(bad(
            format!("function calling mode '{other}' is not AUTO, ANY or NONE"),
            "toolConfig.functionCallingConfig.mode",
        )),
    }
}

fn openai_generation(config: &Value, chat: &mut Object) -> Result<(), TranslateError> {
    let Some(config) = config.as_object() else {
        return Err(bad(
            "'generationConfig' must be an object",
            "generationConfig",
        ));
    };
    let numbers = [
        ("temperature", "temperature", "temperature"),
        ("topP", "top_p", "top_p"),
        ("presencePenalty", "presence_penalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty", "frequency_penalty"),
        ("maxOutputTokens", "max_output_tokens", "max_tokens"),
        ("candidateCount", "candidate_count", "n"),
        ("seed", "seed", "seed"),
    ];
    for (camel, snake, to) in numbers {
        match field(config, camel, snake) {
            None => {}
            Some(value @ Value::Number(_)) => {
                chat.insert(to.into(), value.clone());
            }
            Some(_) => {
                return Err(bad(
                    format!("'{camel}' must be a number"),
                    format!("generationConfig.{camel}"),
                ));
            }
        }
    }
    match field(config, "stopSequences", "stop_sequences") {
        None => {}
        Some(Value::Array(stops)) if stops.is_empty() => {}
        Some(Value::Array(stops)) if stops.iter().all(Value::is_string) => {
            chat.insert("stop".into(), Value::Array(stops.clone()));
        }
        Some(_) => {
            return Err(bad(
                "'stopSequences' must be a list of strings",
                "generationConfig.stopSequences",
            ));
        }
    }
    let mime = field(config, "responseMimeType", "response_mime_type").and_then(Value::as_str);
    if mime == Some("application/json") {
        let schema = field(config, "responseSchema", "response_schema")
            .map(|schema| openai_schema(schema, 0))
            .or_else(|| field(config, "responseJsonSchema", "response_json_schema").cloned());
        let format = match schema {
            Some(schema) => {
                json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}})
            }
            None => json!({"type": "json_object"}),
        };
        chat.insert("response_format".into(), format);
    }
    Ok(())
}
