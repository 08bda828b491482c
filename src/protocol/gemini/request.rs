//! OpenAI chat request -> Gemini `generateContent` body ([`request_from_chat`]).

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::schema::clean_schema;
use super::{Object, bad, part_type};
use crate::protocol::TranslateError;

/// The Gemini `generateContent` body for an OpenAI chat request. The model is not in the body (it
/// goes in the URL) but decides one detail: Gemini 3 and later refuse replayed `functionCall`
/// parts without a `thoughtSignature`, which an OpenAI history never carries, so those parts get
/// Google's documented placeholder `skip_thought_signature_validator`.
pub fn request_from_chat(chat: &Value, model: &str, stream: bool) -> Result<Value, TranslateError> {
    // Streaming is chosen by the URL (`:streamGenerateContent?alt=sse`); the body is the same.
    let _ = stream;
    let Some(chat) = chat.as_object() else {
        return Err(TranslateError::new(
            "request body must be a JSON object",
            None,
        ));
    };
    reject_unsupported(chat)?;
    let Some(messages) = chat.get("messages").and_then(Value::as_array) else {
        return Err(bad("'messages' must be an array", "messages"));
    };
    let signature = needs_thought_signature(model);
    let mut system: Vec<String> = Vec::new();
    let mut contents: Vec<(&'static str, Vec<Value>)> = Vec::new();
    // tool_call_id -> function name, from the assistant messages seen so far.
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, message) in messages.iter().enumerate() {
        let Some(message) = message.as_object() else {
            return Err(bad(
                "each message must be an object",
                format!("messages[{i}]"),
            ));
        };
        let role = match message.get("role") {
            Some(Value::String(role)) => role.as_str(),
            _ => {
                return Err(bad(
                    "each message needs a string 'role'",
                    format!("messages[{i}].role"),
                ));
            }
        };
        match role {
            "system" | "developer" => system.extend(
                plain_texts(message.get("content"), &format!("messages[{i}].content"))?
                    .into_iter()
                    .filter(|text| !text.is_empty()),
            ),
            "user" => {
                let parts = user_parts(message.get("content"), i)?;
                push_content(&mut contents, "user", parts);
            }
            "assistant" => {
                let parts = assistant_parts(message, i, &mut call_names, signature)?;
                push_content(&mut contents, "model", parts);
            }
            "tool" => {
                let id = match message.get("tool_call_id") {
                    Some(Value::String(id)) => id,
                    _ => {
                        return Err(bad(
                            "a tool message needs a string 'tool_call_id'",
                            format!("messages[{i}].tool_call_id"),
                        ));
                    }
                };
                let Some(name) = call_names.get(id) else {
                    return Err(bad(
                        format!("tool_call_id '{id}' answers no earlier assistant tool call"),
                        format!("messages[{i}].tool_call_id"),
                    ));
                };
                let text = plain_texts(message.get("content"), &format!("messages[{i}].content"))?
                    .concat();
                let part = function_response(name, &text);
                push_content(&mut contents, "user", vec![part]);
            }
            // The legacy function-calling role: the function is named by the message.
            "function" => {
                let Some(name) = message.get("name").and_then(Value::as_str) else {
                    return Err(bad(
                        "a function message needs a string 'name'",
                        format!("messages[{i}].name"),
                    ));
                };
                let text = plain_texts(message.get("content"), &format!("messages[{i}].content"))?
                    .concat();
                let part = function_response(name, &text);
                push_content(&mut contents, "user", vec![part]);
            }
            other => {
                return Err(bad(
                    format!("messages with role '{other}' cannot be sent to gemini"),
                    format!("messages[{i}].role"),
                ));
            }
        }
    }
    if contents.is_empty() {
        return Err(bad(
            "gemini needs at least one user or assistant message with content",
            "messages",
        ));
    }
    let mut body = Object::new();
    body.insert(
        "contents".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": [{"text": system.join("\n\n")}]}),
        );
    }
    if let Some(declarations) = function_declarations(chat)? {
        body.insert(
            "tools".into(),
            json!([{ "functionDeclarations": declarations }]),
        );
        if let Some(config) = tool_config(chat)? {
            body.insert("toolConfig".into(), config);
        }
    }
    let config = generation_config(chat)?;
    if !config.is_empty() {
        body.insert("generationConfig".into(), Value::Object(config));
    }
    Ok(Value::Object(body))
}

/// Whether `model` is Gemini 3 or later (the models that demand thought signatures on replayed
/// function calls).
pub(super) fn needs_thought_signature(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    let Some(version) = id.strip_prefix("gemini-") else {
        return false;
    };
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u32>().is_ok_and(|major| major >= 3)
}

/// The placeholder Google documents for function calls whose real signature is unknown.
pub(super) const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

fn reject_unsupported(chat: &Object) -> Result<(), TranslateError> {
    if chat.get("logprobs") == Some(&Value::Bool(true)) {
        return Err(bad(
            "logprobs cannot be returned through a gemini upstream",
            "logprobs",
        ));
    }
    if chat.get("audio").is_some_and(|audio| !audio.is_null()) {
        return Err(bad(
            "audio output cannot be requested from a gemini upstream",
            "audio",
        ));
    }
    if let Some(Value::Array(modalities)) = chat.get("modalities")
        && modalities.iter().any(|m| m.as_str() == Some("audio"))
    {
        return Err(bad(
            "audio output cannot be requested from a gemini upstream",
            "modalities",
        ));
    }
    Ok(())
}

/// Appends parts as a content of `role`, merged into the previous content when it has the same
/// role (Gemini wants turns to alternate). Empty part lists add nothing.
fn push_content(
    contents: &mut Vec<(&'static str, Vec<Value>)>,
    role: &'static str,
    parts: Vec<Value>,
) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some((last_role, last_parts)) if *last_role == role => last_parts.extend(parts),
        _ => contents.push((role, parts)),
    }
}

/// The texts of a content that may only hold text: a string, or a list of `text` parts.
fn plain_texts(content: Option<&Value>, param: &str) -> Result<Vec<String>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text.clone()]),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                match part_type(part) {
                    Some("text") => match part.get("text") {
                        Some(Value::String(text)) => texts.push(text.clone()),
                        _ => {
                            return Err(bad(
                                "a text part needs a string 'text'",
                                format!("{param}[{j}].text"),
                            ));
                        }
                    },
                    Some(other) => {
                        return Err(bad(
                            format!("content parts of type '{other}' are not allowed here"),
                            format!("{param}[{j}].type"),
                        ));
                    }
                    None => {
                        return Err(bad(
                            "each content part needs a string 'type'",
                            format!("{param}[{j}].type"),
                        ));
                    }
                }
            }
            Ok(texts)
        }
        Some(_) => Err(bad("'content' must be a string or a list of parts", param)),
    }
}

fn user_parts(content: Option<&Value>, i: usize) -> Result<Vec<Value>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(text_part(text).into_iter().collect()),
        Some(Value::Array(parts)) => {
            let mut out = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                if let Some(part) = user_part(part, &format!("messages[{i}].content[{j}]"))? {
                    out.push(part);
                }
            }
            Ok(out)
        }
        Some(_) => Err(bad(
            "'content' must be a string or a list of parts",
            format!("messages[{i}].content"),
        )),
    }
}

/// A Gemini text part; `None` for empty text, which Gemini refuses.
fn text_part(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({ "text": text }))
}

fn user_part(part: &Value, param: &str) -> Result<Option<Value>, TranslateError> {
    let Some(kind) = part_type(part) else {
        return Err(bad(
            "each content part needs a string 'type'",
            format!("{param}.type"),
        ));
    };
    match kind {
        "text" => match part.get("text") {
            Some(Value::String(text)) => Ok(text_part(text)),
            _ => Err(bad(
                "a text part needs a string 'text'",
                format!("{param}.text"),
            )),
        },
        "image_url" => {
            let url = match part.get("image_url") {
                Some(Value::String(url)) => url,
                Some(Value::Object(image)) => match image.get("url") {
                    Some(Value::String(url)) => url,
                    _ => {
                        return Err(bad(
                            "an image_url part needs a string 'url'",
                            format!("{param}.image_url.url"),
                        ));
                    }
                },
                _ => {
                    return Err(bad(
                        "an image_url part needs an 'image_url' object",
                        format!("{param}.image_url"),
                    ));
                }
            };
            image_part(url, &format!("{param}.image_url.url")).map(Some)
        }
        "input_audio" => {
            let audio = part.get("input_audio");
            let data = audio.and_then(|a| a.get("data")).and_then(Value::as_str);
            let format = audio.and_then(|a| a.get("format")).and_then(Value::as_str);
            match (data, format) {
                (Some(data), Some(format)) if !format.is_empty() => Ok(Some(
                    json!({"inlineData": {"mimeType": format!("audio/{format}"), "data": data}}),
                )),
                _ => Err(bad(
                    "an input_audio part needs string 'data' and 'format'",
                    format!("{param}.input_audio"),
                )),
            }
        }
        "file" => {
            let file = part.get("file");
            if let Some(data_url) = file
                .and_then(|f| f.get("file_data"))
                .and_then(Value::as_str)
            {
                let Some((mime, data)) = parse_data_url(data_url) else {
                    return Err(bad(
                        "file_data must be a data URL: data:<mime>;base64,<data>",
                        format!("{param}.file.file_data"),
                    ));
                };
                return Ok(Some(
                    json!({"inlineData": {"mimeType": mime, "data": data}}),
                ));
            }
            if file.and_then(|f| f.get("file_id")).is_some() {
                return Err(bad(
                    "file_id names a file stored at OpenAI, which gemini cannot read; send file_data",
                    format!("{param}.file.file_id"),
                ));
            }
            Err(bad(
                "a file part needs 'file_data'",
                format!("{param}.file"),
            ))
        }
        other => Err(bad(
            format!("content parts of type '{other}' cannot be sent to gemini"),
            format!("{param}.type"),
        )),
    }
}

/// `data:<mime>;base64,<data>` -> (mime, data).
fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (header, data) = rest.split_once(',')?;
    let mut fields = header.split(';');
    let mime = fields.next()?.trim();
    let base64 = fields.any(|field| field.trim().eq_ignore_ascii_case("base64"));
    (base64 && !mime.is_empty()).then_some((mime, data))
}

pub(super) fn image_part(url: &str, param: &str) -> Result<Value, TranslateError> {
    if url.starts_with("data:") {
        let Some((mime, data)) = parse_data_url(url) else {
            return Err(bad(
                "image data URLs must look like data:<mime>;base64,<data>",
                param,
            ));
        };
        return Ok(json!({"inlineData": {"mimeType": mime, "data": data}}));
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("gs://") {
        return Ok(json!({"fileData": {"mimeType": image_mime_from_url(url), "fileUri": url}}));
    }
    Err(bad(
        "an image URL must be a base64 data URL or an http(s) URL",
        param,
    ))
}

/// The image type named by a URL's extension; `image/jpeg` when it names none Gemini knows.
fn image_mime_from_url(url: &str) -> &'static str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    let last = path.rsplit('/').next().unwrap_or(path);
    let extension = last
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "png" => "image/png",
        "webp" => "image/webp",
        "gif" => "image/gif",
        "heic" => "image/heic",
        "heif" => "image/heif",
        _ => "image/jpeg",
    }
}

fn assistant_parts(
    message: &Object,
    i: usize,
    call_names: &mut HashMap<String, String>,
    signature: bool,
) -> Result<Vec<Value>, TranslateError> {
    let mut parts = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => parts.extend(text_part(text)),
        Some(Value::Array(items)) => {
            for (j, item) in items.iter().enumerate() {
                let param = format!("messages[{i}].content[{j}]");
                let text = match part_type(item) {
                    Some("text") => item.get("text").and_then(Value::as_str),
                    Some("refusal") => item.get("refusal").and_then(Value::as_str),
                    Some(other) => {
                        return Err(bad(
                            format!(
                                "assistant content parts of type '{other}' cannot be sent to gemini"
                            ),
                            format!("{param}.type"),
                        ));
                    }
                    None => {
                        return Err(bad(
                            "each content part needs a string 'type'",
                            format!("{param}.type"),
                        ));
                    }
                };
                let Some(text) = text else {
                    return Err(bad("a text part needs a string 'text'", param));
                };
                parts.extend(text_part(text));
            }
        }
        Some(_) => {
            return Err(bad(
                "'content' must be a string, a list of parts or null",
                format!("messages[{i}].content"),
            ));
        }
    }
    let mut calls: Vec<(String, Value)> = Vec::new();
    match message.get("tool_calls") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tool_calls)) => {
            for (j, call) in tool_calls.iter().enumerate() {
                let param = format!("messages[{i}].tool_calls[{j}]");
                if !call.is_object() {
                    return Err(bad("each tool call must be an object", param));
                }
                match call.get("type") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(kind)) if kind == "function" => {}
                    Some(_) => {
                        return Err(bad(
                            "only function tool calls can be sent to gemini",
                            format!("{param}.type"),
                        ));
                    }
                }
                let (name, args) =
                    function_call(call.get("function"), &format!("{param}.function"))?;
                if let Some(Value::String(id)) = call.get("id") {
                    call_names.insert(id.clone(), name.clone());
                }
                calls.push((name, args));
            }
        }
        Some(_) => {
            return Err(bad(
                "'tool_calls' must be a list",
                format!("messages[{i}].tool_calls"),
            ));
        }
    }
    if let Some(legacy) = message.get("function_call").filter(|f| !f.is_null()) {
        calls.push(function_call(
            Some(legacy),
            &format!("messages[{i}].function_call"),
        )?);
    }
    for (k, (name, args)) in calls.into_iter().enumerate() {
        let mut part = json!({"functionCall": {"name": name, "args": args}});
        if signature
            && k == 0
            && let Value::Object(map) = &mut part
        {
            map.insert(
                "thoughtSignature".into(),
                Value::String(PLACEHOLDER_SIGNATURE.into()),
            );
        }
        parts.push(part);
    }
    Ok(parts)
}

/// (name, args object) of an OpenAI `function` object `{name, arguments}`.
fn function_call(function: Option<&Value>, param: &str) -> Result<(String, Value), TranslateError> {
    let Some(function) = function.and_then(Value::as_object) else {
        return Err(bad("a tool call needs a 'function' object", param));
    };
    let name = match function.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        _ => {
            return Err(bad(
                "a tool call needs a non-empty string function name",
                format!("{param}.name"),
            ));
        }
    };
    let args = match function.get("arguments") {
        None | Some(Value::Null) => Value::Object(Object::new()),
        Some(Value::String(text)) if text.trim().is_empty() => Value::Object(Object::new()),
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(args @ Value::Object(_)) => args,
            _ => {
                return Err(bad(
                    "gemini needs tool call arguments that are a JSON object",
                    format!("{param}.arguments"),
                ));
            }
        },
        Some(args @ Value::Object(_)) => args.clone(),
        Some(_) => {
            return Err(bad(
                "gemini needs tool call arguments that are a JSON object",
                format!("{param}.arguments"),
            ));
        }
    };
    Ok((name, args))
}

/// A `functionResponse` part: the tool's text as its JSON object when it is one, else wrapped as
/// `{"content": text}` (Gemini's `response` must be an object).
fn function_response(name: &str, text: &str) -> Value {
    let response = match serde_json::from_str::<Value>(text) {
        Ok(object @ Value::Object(_)) => object,
        _ => json!({ "content": text }),
    };
    json!({"functionResponse": {"name": name, "response": response}})
}

fn function_declarations(chat: &Object) -> Result<Option<Vec<Value>>, TranslateError> {
    let mut declarations = Vec::new();
    match chat.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            for (k, tool) in tools.iter().enumerate() {
                let param = format!("tools[{k}]");
                if !tool.is_object() {
                    return Err(bad("each tool must be an object", param));
                }
                match tool.get("type") {
                    None | Some(Value::Null) => {}
                    Some(Value::String(kind)) if kind == "function" => {}
                    Some(Value::String(kind)) => {
                        return Err(bad(
                            format!(
                                "tools of type '{kind}' cannot be sent to gemini; only function tools"
                            ),
                            format!("{param}.type"),
                        ));
                    }
                    Some(_) => {
                        return Err(bad(
                            "a tool's 'type' must be a string",
                            format!("{param}.type"),
                        ));
                    }
                }
                declarations.push(declaration(
                    tool.get("function"),
                    &format!("{param}.function"),
                )?);
            }
        }
        Some(_) => return Err(bad("'tools' must be a list", "tools")),
    }
    match chat.get("functions") {
        None | Some(Value::Null) => {}
        Some(Value::Array(functions)) => {
            for (k, function) in functions.iter().enumerate() {
                declarations.push(declaration(Some(function), &format!("functions[{k}]"))?);
            }
        }
        Some(_) => return Err(bad("'functions' must be a list", "functions")),
    }
    Ok((!declarations.is_empty()).then_some(declarations))
}

fn declaration(function: Option<&Value>, param: &str) -> Result<Value, TranslateError> {
    let Some(function) = function.and_then(Value::as_object) else {
        return Err(bad("a function tool needs a 'function' object", param));
    };
    let Some(name) = function
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(bad(
            "a function tool needs a non-empty string 'name'",
            format!("{param}.name"),
        ));
    };
    let mut out = Object::new();
    out.insert("name".into(), Value::String(name.into()));
    if let Some(Value::String(description)) = function.get("description") {
        out.insert("description".into(), Value::String(description.clone()));
    }
    match function.get("parameters") {
        None | Some(Value::Null) => {}
        Some(schema @ Value::Object(_)) => {
            let cleaned = clean_schema(schema);
            // Gemini refuses an OBJECT schema without properties ("should be non-empty for OBJECT
            // type"); a function without parameters simply has none.
            let no_properties = cleaned
                .get("properties")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            let is_object = cleaned
                .get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case("object"));
            if !(no_properties && (is_object || cleaned.get("type").is_none())) {
                out.insert("parameters".into(), cleaned);
            }
        }
        Some(_) => {
            return Err(bad(
                "function parameters must be a JSON schema object",
                format!("{param}.parameters"),
            ));
        }
    }
    Ok(Value::Object(out))
}

fn tool_config(chat: &Object) -> Result<Option<Value>, TranslateError> {
    let config = |mode: &str, name: Option<&str>| {
        let mut calling = json!({ "mode": mode });
        if let (Some(name), Value::Object(map)) = (name, &mut calling) {
            map.insert("allowedFunctionNames".into(), json!([name]));
        }
        Some(json!({ "functionCallingConfig": calling }))
    };
    match chat.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(choice)) => {
            return match choice.as_str() {
                "auto" => Ok(config("AUTO", None)),
                "none" => Ok(config("NONE", None)),
                "required" => Ok(config("ANY", None)),
                other => Err(bad(
                    format!("tool_choice '{other}' is not one of auto, none, required"),
                    "tool_choice",
                )),
            };
        }
        Some(Value::Object(choice)) => {
            if choice.get("type").and_then(Value::as_str) != Some("function") {
                return Err(bad(
                    "only a tool_choice of type 'function' can be sent to gemini",
                    "tool_choice.type",
                ));
            }
            let Some(name) = choice
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
            else {
                return Err(bad(
                    "tool_choice needs function.name",
                    "tool_choice.function.name",
                ));
            };
            return Ok(config("ANY", Some(name)));
        }
        Some(_) => {
            return Err(bad(
                "'tool_choice' must be a string or an object",
                "tool_choice",
            ));
        }
    }
    // The legacy `function_call` request field.
    match chat.get("function_call") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(choice)) => match choice.as_str() {
            "auto" => Ok(config("AUTO", None)),
            "none" => Ok(config("NONE", None)),
            other => Err(bad(
                format!("function_call '{other}' is not one of auto, none"),
                "function_call",
            )),
        },
        Some(Value::Object(choice)) => match choice.get("name").and_then(Value::as_str) {
            Some(name) => Ok(config("ANY", Some(name))),
            None => Err(bad("function_call needs a 'name'", "function_call.name")),
        },
        Some(_) => Err(bad(
            "'function_call' must be a string or an object",
            "function_call",
        )),
    }
}

fn optional<'a>(chat: &'a Object, key: &str) -> Option<&'a Value> {
    chat.get(key).filter(|value| !value.is_null())
}

fn number_field(chat: &Object, key: &str) -> Result<Option<Value>, TranslateError> {
    match optional(chat, key) {
        None => Ok(None),
        Some(value @ Value::Number(_)) => Ok(Some(value.clone())),
        Some(_) => Err(bad(format!("'{key}' must be a number"), key)),
    }
}

fn integer_field(chat: &Object, key: &str) -> Result<Option<Value>, TranslateError> {
    match optional(chat, key) {
        None => Ok(None),
        Some(value @ Value::Number(number)) if number.is_i64() || number.is_u64() => {
            Ok(Some(value.clone()))
        }
        Some(Value::Number(number))
            if number
                .as_f64()
                .is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.0e15) =>
        {
            Ok(number.as_f64().map(|f| json!(f as i64)))
        }
        Some(_) => Err(bad(format!("'{key}' must be an integer"), key)),
    }
}

fn generation_config(chat: &Object) -> Result<Object, TranslateError> {
    let mut config = Object::new();
    let numbers = [
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("top_k", "topK"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ];
    for (from, to) in numbers {
        if let Some(value) = number_field(chat, from)? {
            config.insert(to.into(), value);
        }
    }
    let max_tokens = match integer_field(chat, "max_completion_tokens")? {
        Some(value) => Some(value),
        None => integer_field(chat, "max_tokens")?,
    };
    if let Some(value) = max_tokens {
        config.insert("maxOutputTokens".into(), value);
    }
    for (from, to) in [("n", "candidateCount"), ("seed", "seed")] {
        if let Some(value) = integer_field(chat, from)? {
            config.insert(to.into(), value);
        }
    }
    match optional(chat, "stop") {
        None => {}
        Some(Value::String(stop)) => {
            config.insert("stopSequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) => {
            let mut sequences = Vec::with_capacity(stops.len());
            for (k, stop) in stops.iter().enumerate() {
                match stop {
                    Value::String(stop) => sequences.push(Value::String(stop.clone())),
                    _ => return Err(bad("stop sequences must be strings", format!("stop[{k}]"))),
                }
            }
            if !sequences.is_empty() {
                config.insert("stopSequences".into(), Value::Array(sequences));
            }
        }
        Some(_) => return Err(bad("'stop' must be a string or a list of strings", "stop")),
    }
    match optional(chat, "response_format") {
        None => {}
        Some(Value::Object(format)) => match format.get("type").and_then(Value::as_str) {
            Some("text") => {}
            Some("json_object") => {
                config.insert("responseMimeType".into(), json!("application/json"));
            }
            Some("json_schema") => {
                config.insert("responseMimeType".into(), json!("application/json"));
                if let Some(schema @ Value::Object(_)) =
                    format.get("json_schema").and_then(|s| s.get("schema"))
                {
                    config.insert("responseSchema".into(), clean_schema(schema));
                }
            }
            _ => {
                return Err(bad(
                    "response_format type must be text, json_object or json_schema",
                    "response_format.type",
                ));
            }
        },
        Some(_) => {
            return Err(bad(
                "'response_format' must be an object",
                "response_format",
            ));
        }
    }
    Ok(config)
}
