//! Translation between the OpenAI chat hub format and Google's Gemini `generateContent` API
//! (v1beta), both ways. Pure: no I/O, and nothing here panics on any input.
//!
//! How the gateway uses it:
//! - The model goes in the URL, never in the body: `POST {base}/v1beta/models/{id}:generateContent`,
//!   or `POST {base}/v1beta/models/{id}:streamGenerateContent?alt=sse` for streams, where `{id}` is
//!   [`model_id`] of the provider's model name. Without `alt=sse` Gemini streams one JSON array
//!   instead of server-sent events, which [`StreamTranslator`] does not read.
//! - [`request_from_chat`] builds the body for both paths (`stream` changes nothing in it).
//! - [`chat_from_response`] reads a `generateContent` answer (also a JSON array of stream pieces).
//! - [`StreamTranslator`] turns each whole `data: {GenerateContentResponse}` event into OpenAI
//!   chunk events; Gemini sends no `[DONE]`, [`StreamTranslator::finish`] adds it.
//! - [`error_to_chat`] turns Gemini's `{"error":{"code","message","status"}}` (or the same wrapped
//!   in a list) into the OpenAI error body, keeping the status.
//! - [`chat_request_from_gemini`] reads a native Gemini body sent to `/v1/chat/completions`.
//!
//! OpenAI request fields dropped on the way to Gemini because Gemini has no equivalent and they
//! are hints, not content: `logit_bias`, `user`, `service_tier`, `store`, `metadata`,
//! `parallel_tool_calls`, `stream_options` (Gemini always reports usage at the end of a stream),
//! `reasoning_effort` (thinking budgets differ per Gemini model; a wrong one is a 400), `prediction`,
//! `top_logprobs` without `logprobs`, `web_search_options`, message `name`s and image `detail`.
//! Fields that would change the answer and cannot be expressed are refused with a
//! [`TranslateError`] naming the field: `logprobs: true`, `audio`, `modalities` with audio, unknown
//! roles and content part types, non-function tools.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::sse;

type Object = Map<String, Value>;

fn bad(message: impl Into<String>, param: impl Into<String>) -> TranslateError {
    TranslateError::new(message, Some(param.into()))
}

/// The plain model id of a Gemini model name: `models/gemini-2.0-flash` -> `gemini-2.0-flash`.
pub fn model_id(name: &str) -> &str {
    name.strip_prefix("models/").unwrap_or(name)
}

// ---------------------------------------------------------------------------------------------
// OpenAI chat request -> Gemini generateContent body
// ---------------------------------------------------------------------------------------------

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
fn needs_thought_signature(model: &str) -> bool {
    let id = model.rsplit('/').next().unwrap_or(model);
    let Some(version) = id.strip_prefix("gemini-") else {
        return false;
    };
    let digits: String = version.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<u32>().is_ok_and(|major| major >= 3)
}

/// The placeholder Google documents for function calls whose real signature is unknown.
const PLACEHOLDER_SIGNATURE: &str = "skip_thought_signature_validator";

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

fn part_type(part: &Value) -> Option<&str> {
    part.get("type").and_then(Value::as_str)
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

fn image_part(url: &str, param: &str) -> Result<Value, TranslateError> {
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

/// The JSON-schema keywords Gemini's `Schema` (an OpenAPI 3.0 subset) accepts; any other keyword
/// is a 400 "Unknown name" there, so [`clean_schema`] drops it. Dropped that way, among others:
/// `additionalProperties`, `$schema`, `$id`, `$defs`/`definitions` (after `$ref`s into them are
/// inlined), `strict`, `examples`, `exclusiveMinimum`/`exclusiveMaximum`, `uniqueItems`, `not`,
/// `patternProperties`. `title` is kept (Gemini has it). Rewritten rather than dropped: `type`
/// lists (`["string","null"]` -> `type` + `nullable`, several types -> `anyOf`), `oneOf` ->
/// `anyOf`, `const` -> a one-value `enum`, non-string `enum` values -> strings (Gemini's enums are
/// strings), a one-element `allOf` -> merged in, and local `$ref`s -> the schema they point at
/// (recursive references become `{"type":"object"}`).
const GEMINI_SCHEMA_KEYS: &[&str] = &[
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
];

/// How deep a schema is followed, and how many schema nodes may be written before `$ref`s stop
/// being inlined, so a hostile schema (deep nesting, references that fan out, one large definition
/// referenced many times) cannot take unbounded time or memory: the output stays within this
/// budget plus the size of the input.
const MAX_SCHEMA_DEPTH: usize = 64;
const MAX_SCHEMA_NODES: usize = 20_000;

/// A JSON schema cleaned for Gemini (see [`GEMINI_SCHEMA_KEYS`]).
fn clean_schema(schema: &Value) -> Value {
    let mut cleaner = SchemaCleaner {
        root: schema,
        nodes: 0,
        stack: Vec::new(),
    };
    cleaner.clean(schema, 0)
}

struct SchemaCleaner<'a> {
    root: &'a Value,
    /// Schema objects written so far.
    nodes: usize,
    stack: Vec<String>,
}

impl SchemaCleaner<'_> {
    fn clean(&mut self, schema: &Value, depth: usize) -> Value {
        let Value::Object(object) = schema else {
            return schema.clone();
        };
        if depth > MAX_SCHEMA_DEPTH {
            return json!({"type": "object"});
        }
        self.nodes += 1;
        if let Some(Value::String(reference)) = object.get("$ref") {
            let mut inlined = self.inline_ref(reference, depth);
            if let Value::Object(map) = &mut inlined {
                for key in ["description", "title"] {
                    if let Some(value) = object.get(key) {
                        map.insert(key.into(), value.clone());
                    }
                }
            }
            return inlined;
        }
        let mut out = Object::new();
        let mut any_of: Vec<Value> = Vec::new();
        let mut nullable = false;
        for (key, value) in object {
            match key.as_str() {
                "type" => match value {
                    Value::Array(types) => {
                        let named: Vec<&Value> = types
                            .iter()
                            .filter(|t| {
                                if t.as_str() == Some("null") {
                                    nullable = true;
                                    false
                                } else {
                                    true
                                }
                            })
                            .collect();
                        match named.as_slice() {
                            [] => {}
                            [one] => {
                                out.insert("type".into(), (*one).clone());
                            }
                            many => any_of.extend(many.iter().map(|t| json!({ "type": t }))),
                        }
                    }
                    other => {
                        out.insert("type".into(), other.clone());
                    }
                },
                "properties" => {
                    if let Value::Object(properties) = value {
                        let cleaned = properties
                            .iter()
                            .map(|(name, sub)| (name.clone(), self.clean(sub, depth + 1)))
                            .collect();
                        out.insert("properties".into(), Value::Object(cleaned));
                    }
                }
                "items" => {
                    // A tuple (`items` as a list) keeps its first schema.
                    let item = match value {
                        Value::Array(items) => items.first(),
                        other => Some(other),
                    };
                    if let Some(item) = item {
                        let cleaned = self.clean(item, depth + 1);
                        out.insert("items".into(), cleaned);
                    }
                }
                "anyOf" | "oneOf" => {
                    if let Value::Array(options) = value {
                        for option in options {
                            let cleaned = self.clean(option, depth + 1);
                            any_of.push(cleaned);
                        }
                    }
                }
                "allOf" => {
                    if let Value::Array(all) = value
                        && let [only] = all.as_slice()
                        && let Value::Object(merged) = self.clean(only, depth + 1)
                    {
                        for (k, v) in merged {
                            out.entry(k).or_insert(v);
                        }
                    }
                }
                "const" => {
                    if let Some(text) = enum_text(value) {
                        out.entry("enum").or_insert(json!([text]));
                    }
                }
                "enum" => {
                    if let Value::Array(values) = value {
                        if values.iter().any(Value::is_null) {
                            nullable = true;
                        }
                        let texts: Vec<Value> = values
                            .iter()
                            .filter_map(enum_text)
                            .map(Value::String)
                            .collect();
                        out.insert("enum".into(), Value::Array(texts));
                    }
                }
                known if GEMINI_SCHEMA_KEYS.contains(&known) => {
                    out.insert(key.clone(), value.clone());
                }
                _ => {}
            }
        }
        if !any_of.is_empty() {
            out.insert("anyOf".into(), Value::Array(any_of));
        }
        if nullable {
            out.insert("nullable".into(), Value::Bool(true));
        }
        Value::Object(out)
    }

    fn inline_ref(&mut self, reference: &str, depth: usize) -> Value {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer));
        let recursive = self.stack.iter().any(|r| r == reference);
        match target {
            Some(target) if !recursive && self.nodes < MAX_SCHEMA_NODES => {
                self.stack.push(reference.to_string());
                let inlined = self.clean(target, depth + 1);
                self.stack.pop();
                inlined
            }
            _ => json!({"type": "object"}),
        }
    }
}

fn enum_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
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

// ---------------------------------------------------------------------------------------------
// Gemini answer -> OpenAI chat.completion
// ---------------------------------------------------------------------------------------------

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

fn candidate_list(piece: &Object) -> impl Iterator<Item = (usize, &Value)> {
    piece
        .get("candidates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, candidate)| candidate.is_object())
}

fn candidate_index(candidate: &Value, position: usize) -> u64 {
    candidate
        .get("index")
        .and_then(Value::as_u64)
        .unwrap_or(position as u64)
}

fn candidate_parts(candidate: &Value) -> impl Iterator<Item = &Object> {
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

fn is_thought(part: &Object) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}

/// A candidate's finish reason, when it has a real one.
fn finish_reason_of(candidate: &Value) -> Option<&str> {
    candidate
        .get("finishReason")
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty() && *r != "FINISH_REASON_UNSPECIFIED")
}

/// Gemini's finish reason in OpenAI's words.
fn finish_reason(reason: Option<&str>, has_calls: bool) -> &'static str {
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
fn tool_call_id(call: &Object, seed: &str, candidate: u64, position: usize) -> String {
    match call.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.to_string(),
        _ => format!(
            "call_{:016x}",
            fnv1a(format!("{seed}:{candidate}:{position}").as_bytes())
        ),
    }
}

fn openai_tool_call(call: &Object, id: String) -> Value {
    let name = call.get("name").and_then(Value::as_str).unwrap_or_default();
    let arguments = match call.get("args") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(args) => args.to_string(),
    };
    json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
}

/// OpenAI usage from Gemini's `usageMetadata`; thinking tokens count as completion tokens.
fn usage_from(meta: &Value) -> Option<Value> {
    let meta = meta.as_object()?;
    let count = |key: &str| meta.get(key).and_then(Value::as_u64).unwrap_or(0);
    let prompt = count("promptTokenCount");
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

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Gemini's error object in a body, also in the list-wrapped form `[{"error":{...}}]`.
fn find_error(value: &Value) -> Option<&Object> {
    match value {
        Value::Object(object) => object.get("error").and_then(Value::as_object),
        Value::Array(items) => items
            .iter()
            .find_map(|item| item.get("error").and_then(Value::as_object)),
        _ => None,
    }
}

/// A Gemini error answer as (status for retry classification, OpenAI error body). The status is
/// Gemini's own; `type` is Gemini's `status` lowercased (`RESOURCE_EXHAUSTED` ->
/// `resource_exhausted`) and `code` the status itself.
pub fn error_to_chat(status: u16, body: &[u8]) -> (u16, Value) {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    let error = parsed.as_ref().and_then(find_error);
    let fallback_type = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        429 => "rate_limit_error",
        500..=599 => "api_error",
        _ => "upstream_error",
    };
    let text = String::from_utf8_lossy(body).trim().to_string();
    let default_message = if text.is_empty() {
        format!("gemini answered with status {status}")
    } else {
        text
    };
    let body = match error {
        Some(error) => {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .map_or(default_message, str::to_string);
            let code = error
                .get("status")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            json!({"error": {
                "message": message,
                "type": code.map_or_else(|| fallback_type.to_string(), str::to_ascii_lowercase),
                "param": null,
                "code": code,
            }})
        }
        None => json!({"error": {
            "message": default_message,
            "type": fallback_type,
            "param": null,
            "code": null,
        }}),
    };
    (status, body)
}

// ---------------------------------------------------------------------------------------------
// Gemini stream -> OpenAI chunk events
// ---------------------------------------------------------------------------------------------

/// Turns the events of `streamGenerateContent?alt=sse` (each `data: {GenerateContentResponse}`)
/// into OpenAI `chat.completion.chunk` events with one id, created time and model throughout.
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
        let last = finishes.len().saturating_sub(1);
        for (k, (index, reason)) in finishes.into_iter().enumerate() {
            let usage = if k == last { self.usage.clone() } else { None };
            let mut chunk = self.chunk_value(index, json!({}), Some(reason));
            if let (Some(usage), Value::Object(map)) = (usage, &mut chunk) {
                map.insert("usage".into(), usage);
            }
            out.push(event_bytes(&chunk));
            self.finished = true;
        }
    }

    /// The role chunk, once per candidate, before anything else of it.
    fn start(&mut self, index: u64, out: &mut Vec<Bytes>) {
        if self.started.insert(index) {
            out.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> Bytes {
        event_bytes(&self.chunk_value(index, delta, finish))
    }

    fn chunk_value(&self, index: u64, delta: Value, finish: Option<&str>) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
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

// ---------------------------------------------------------------------------------------------
// Native Gemini request -> OpenAI chat request
// ---------------------------------------------------------------------------------------------

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
pub fn chat_request_from_gemini(request: &Value, model: &str) -> Result<Value, TranslateError> {
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
    let tools = openai_tools(request)?;
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

fn openai_tools(request: &Object) -> Result<Vec<Value>, TranslateError> {
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
                other => {
                    return Err(bad(
                        format!(
                            "gemini tools of kind '{other}' cannot be translated to OpenAI chat"
                        ),
                        format!("tools[{k}].{other}"),
                    ));
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn data_of(event: &Bytes) -> Value {
        let data = sse::event_data(event).unwrap();
        serde_json::from_str(&data).unwrap()
    }

    #[test]
    fn model_names_lose_their_prefix() {
        assert_eq!(model_id("models/gemini-2.0-flash"), "gemini-2.0-flash");
        assert_eq!(model_id("gemini-2.0-flash"), "gemini-2.0-flash");
        assert_eq!(model_id(""), "");
    }

    #[test]
    fn image_urls_become_inline_or_file_data() {
        let part = image_part("data:image/png;base64,iVBOR", "p").unwrap();
        assert_eq!(
            part,
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBOR"}})
        );
        let part = image_part("https://example.com/a/cat.WEBP?size=2#x", "p").unwrap();
        assert_eq!(part["fileData"]["mimeType"], "image/webp");
        let part = image_part("https://example.com/photo", "p").unwrap();
        assert_eq!(part["fileData"]["mimeType"], "image/jpeg");
        assert_eq!(
            image_part("data:image/png,notbase64", "p")
                .unwrap_err()
                .param
                .as_deref(),
            Some("p")
        );
        assert!(image_part("ftp://x/y.png", "p").is_err());
        assert!(image_part("data:;base64,abc", "p").is_err());
    }

    #[test]
    fn schemas_are_cleaned_for_gemini() {
        let schema = json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "title": "Args",
            "additionalProperties": false,
            "properties": {
                "additionalProperties": {"type": ["string", "null"], "examples": ["x"]},
                "unit": {"enum": ["c", "f", null]},
                "count": {"const": 3},
                "kind": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "point": {"$ref": "#/$defs/Point", "description": "where"},
                "tree": {"$ref": "#/$defs/Node"}
            },
            "required": ["unit"],
            "$defs": {
                "Point": {"type": "object", "properties": {"x": {"type": "number", "exclusiveMinimum": 0}}},
                "Node": {"type": "object", "properties": {"child": {"$ref": "#/$defs/Node"}}}
            }
        });
        let cleaned = clean_schema(&schema);
        assert_eq!(
            cleaned,
            json!({
                "type": "object",
                "title": "Args",
                "properties": {
                    "additionalProperties": {"type": "string", "nullable": true},
                    "unit": {"enum": ["c", "f"], "nullable": true},
                    "count": {"enum": ["3"]},
                    "kind": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "point": {"type": "object", "properties": {"x": {"type": "number"}}, "description": "where"},
                    "tree": {"type": "object", "properties": {"child": {"type": "object"}}}
                },
                "required": ["unit"]
            })
        );
    }

    #[test]
    fn fanning_references_stay_bounded() {
        let mut defs = Object::new();
        for level in 0..40 {
            defs.insert(
                format!("L{level}"),
                json!({"type": "object", "properties": {
                    "a": {"$ref": format!("#/$defs/L{}", level + 1)},
                    "b": {"$ref": format!("#/$defs/L{}", level + 1)}
                }}),
            );
        }
        let schema = json!({"$ref": "#/$defs/L0", "$defs": defs});
        let cleaned = clean_schema(&schema);
        assert!(cleaned.to_string().len() < 4_000_000);
        // One large definition referenced many times.
        let big: Map<String, Value> = (0..2000)
            .map(|k| (format!("p{k}"), json!({"type": "string"})))
            .collect();
        let refs: Map<String, Value> = (0..2000)
            .map(|k| (format!("r{k}"), json!({"$ref": "#/$defs/Big"})))
            .collect();
        let schema = json!({"type": "object", "properties": refs,
            "$defs": {"Big": {"type": "object", "properties": big}}});
        let cleaned = clean_schema(&schema);
        assert!(cleaned.to_string().len() < 4_000_000);
    }

    #[test]
    fn objects_without_properties_send_no_parameters() {
        let chat = json!({"messages": [{"role": "user", "content": "hi"}], "tools": [
            {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}
        ]});
        let body = request_from_chat(&chat, "gemini-2.0-flash", false).unwrap();
        assert_eq!(
            body["tools"],
            json!([{"functionDeclarations": [{"name": "now"}]}])
        );
    }

    #[test]
    fn gemini_3_replays_get_a_placeholder_signature() {
        let chat = json!({"messages": [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"Paris\"}"}},
                {"id": "b", "type": "function", "function": {"name": "w", "arguments": "{\"c\":\"Rome\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "b", "content": "{\"sky\":\"rain\"}"}
        ]});
        let body = request_from_chat(&chat, "gemini-3-pro-preview", true).unwrap();
        let parts = &body["contents"][1]["parts"];
        assert_eq!(parts[0]["thoughtSignature"], PLACEHOLDER_SIGNATURE);
        assert!(parts[1].get("thoughtSignature").is_none());
        assert_eq!(
            body["contents"][2]["parts"],
            json!([
                {"functionResponse": {"name": "w", "response": {"content": "sunny"}}},
                {"functionResponse": {"name": "w", "response": {"sky": "rain"}}}
            ])
        );
        let older = request_from_chat(&chat, "gemini-2.5-flash", true).unwrap();
        assert!(
            older["contents"][1]["parts"][0]
                .get("thoughtSignature")
                .is_none()
        );
        assert!(needs_thought_signature("models/gemini-3.1-flash"));
        assert!(!needs_thought_signature("gemini-exp-1206"));
    }

    #[test]
    fn unsupported_requests_name_the_field() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}], "logprobs": true}),
                "logprobs",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "audio": {"voice": "a"}}),
                "audio",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "modalities": ["text", "audio"]}),
                "modalities",
            ),
            (
                json!({"messages": [{"role": "critic", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"messages": [{"role": "tool", "tool_call_id": "nope", "content": "x"}]}),
                "messages[0].tool_call_id",
            ),
            (
                json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]}),
                "messages[0].tool_calls[0].function.arguments",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}),
                "response_format.type",
            ),
            (
                json!({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}),
                "temperature",
            ),
            (
                json!({"messages": [{"role": "system", "content": "only"}]}),
                "messages",
            ),
        ];
        for (chat, param) in cases {
            let error = request_from_chat(&chat, "gemini-2.0-flash", false).unwrap_err();
            assert_eq!(error.param.as_deref(), Some(param), "{chat}");
        }
    }

    #[test]
    fn errors_keep_status_and_read_the_list_form() {
        let body = br#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
        let (status, error) = error_to_chat(503, body);
        assert_eq!(status, 503);
        assert_eq!(
            error,
            json!({"error": {"message": "The model is overloaded.", "type": "unavailable", "param": null, "code": "UNAVAILABLE"}})
        );
        let (status, error) = error_to_chat(502, b"<html>Bad Gateway</html>");
        assert_eq!(status, 502);
        assert_eq!(error["error"]["message"], "<html>Bad Gateway</html>");
        let (_, error) = error_to_chat(500, b"");
        assert_eq!(error["error"]["message"], "gemini answered with status 500");
    }

    #[test]
    fn stream_errors_and_garbage() {
        let mut translator = StreamTranslator::new("m", 1, "chatcmpl-x".into());
        assert!(translator.push(b"data: nope\n\n").is_err());
        assert!(translator.push(b": keep-alive\n\n").unwrap().is_empty());
        let events = translator
            .push(b"data: {\"error\":{\"code\":429,\"message\":\"slow down\",\"status\":\"RESOURCE_EXHAUSTED\"}}\n\n")
            .unwrap();
        assert_eq!(
            data_of(&events[0]),
            json!({"error": {"message": "slow down", "type": "resource_exhausted", "code": "RESOURCE_EXHAUSTED"}})
        );
        assert!(
            translator.finish().is_empty(),
            "no finish reason, no [DONE]"
        );
    }

    #[test]
    fn a_blocked_stream_finishes_with_content_filter() {
        let mut translator = StreamTranslator::new("m", 1, "chatcmpl-x".into());
        let events = translator
            .push(b"data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},\"usageMetadata\":{\"promptTokenCount\":7,\"totalTokenCount\":7}}\n\n")
            .unwrap();
        assert_eq!(events.len(), 2);
        let last = data_of(&events[1]);
        assert_eq!(last["choices"][0]["finish_reason"], "content_filter");
        assert_eq!(last["usage"]["prompt_tokens"], 7);
        assert_eq!(
            translator.finish(),
            vec![Bytes::from_static(b"data: [DONE]\n\n")]
        );
        assert!(translator.finish().is_empty());
    }

    #[test]
    fn thoughts_become_reasoning_content() {
        let response = json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "Let me think.", "thought": true},
            {"text": "42"}
        ]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1, "thoughtsTokenCount": 5, "totalTokenCount": 9},
        "responseId": "r1"});
        let chat = chat_from_response(&response, "gemini-2.5-flash", 7).unwrap();
        assert_eq!(chat["choices"][0]["message"]["content"], "42");
        assert_eq!(
            chat["choices"][0]["message"]["reasoning_content"],
            "Let me think."
        );
        assert_eq!(chat["usage"]["completion_tokens"], 6);
        assert_eq!(
            chat["usage"]["completion_tokens_details"]["reasoning_tokens"],
            5
        );
        assert_eq!(chat["id"], "chatcmpl-r1");
    }

    #[test]
    fn finish_reasons_map() {
        assert_eq!(finish_reason(Some("STOP"), false), "stop");
        assert_eq!(finish_reason(Some("STOP"), true), "tool_calls");
        assert_eq!(finish_reason(Some("MAX_TOKENS"), true), "length");
        assert_eq!(finish_reason(Some("SPII"), false), "content_filter");
        assert_eq!(
            finish_reason(Some("MALFORMED_FUNCTION_CALL"), false),
            "stop"
        );
    }

    #[test]
    fn native_bodies_use_snake_case_too() {
        let request = json!({
            "system_instruction": {"parts": [{"text": "Be brief."}]},
            "contents": [{"parts": [
                {"text": "What is this?"},
                {"inline_data": {"mime_type": "image/jpeg", "data": "/9j/4AAQ"}}
            ]}],
            "generation_config": {"max_output_tokens": 50, "stop_sequences": ["END"]}
        });
        let chat = chat_request_from_gemini(&request, "gemini-2.0-flash").unwrap();
        assert_eq!(
            chat,
            json!({
                "model": "gemini-2.0-flash",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}}
                    ]}
                ],
                "max_tokens": 50,
                "stop": ["END"]
            })
        );
        let unknown =
            json!({"contents": [{"role": "user", "parts": [{"executableCode": {"code": "1"}}]}]});
        assert_eq!(
            chat_request_from_gemini(&unknown, "m")
                .unwrap_err()
                .param
                .as_deref(),
            Some("contents[0].parts[0].executableCode")
        );
    }
}
