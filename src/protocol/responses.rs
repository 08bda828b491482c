//! The OpenAI Responses API (`POST /v1/responses`) over the chat hub: a Responses request becomes a
//! chat request, and a chat answer or chunk stream becomes a Response object or the Responses event
//! sequence (`event:` lines, `sequence_number`), as the official SDKs parse them (SPEC 4.3).

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::sse;

fn err(message: impl Into<String>, param: &str) -> TranslateError {
    TranslateError::new(message, Some(param.to_string()))
}

/// A chat message's content from Responses content parts.
fn content_from_parts(parts: &Value, at: &str) -> Result<Value, TranslateError> {
    match parts {
        Value::String(text) => Ok(Value::String(text.clone())),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, part) in items.iter().enumerate() {
                let here = format!("{at}[{i}]");
                match part.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => {
                        let text = part
                            .get("text")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("a text part needs 'text'", &here))?;
                        out.push(json!({"type": "text", "text": text}));
                    }
                    Some("input_image") => {
                        let url = part
                            .get("image_url")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("an input_image part needs 'image_url' (file_id is not supported)", &here))?;
                        let mut image = json!({"url": url});
                        if let Some(detail) = part.get("detail").and_then(Value::as_str) {
                            image["detail"] = json!(detail);
                        }
                        out.push(json!({"type": "image_url", "image_url": image}));
                    }
                    other => {
                        return Err(err(
                            format!(
                                "content part type {} is not supported",
                                other.map_or("(missing)".into(), |t| format!("'{t}'"))
                            ),
                            &here,
                        ));
                    }
                }
            }
            Ok(Value::Array(out))
        }
        _ => Err(err("content must be a string or a list of parts", at)),
    }
}

/// The chat request for a Responses request.
pub fn chat_request_from_responses(request: &Value) -> Result<Value, TranslateError> {
    let obj = request
        .as_object()
        .ok_or_else(|| TranslateError::new("request body must be a JSON object", None))?;
    let model = obj
        .get("model")
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .ok_or_else(|| err("'model' is required and must be a string", "model"))?;
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
                let at = format!("input[{i}]");
                let kind = item.get("type").and_then(Value::as_str);
                match kind {
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
                        )?;
                        messages.push(json!({"role": role, "content": content}));
                    }
                    Some("function_call") => {
                        let call_id = item
                            .get("call_id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("a function_call needs 'call_id'", &at))?;
                        let name = item
                            .get("name")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("a function_call needs 'name'", &at))?;
                        let arguments = item
                            .get("arguments")
                            .and_then(Value::as_str)
                            .unwrap_or("{}");
                        let call = json!({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}});
                        // Consecutive calls are one assistant turn with parallel tool calls.
                        let joined = messages
                            .last_mut()
                            .filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some());
                        match joined.and_then(|m| m["tool_calls"].as_array_mut()) {
                            Some(calls) => calls.push(call),
                            None => messages.push(
                                json!({"role": "assistant", "content": null, "tool_calls": [call]}),
                            ),
                        }
                    }
                    Some("function_call_output") => {
                        let call_id = item
                            .get("call_id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| err("a function_call_output needs 'call_id'", &at))?;
                        let output = match item.get("output") {
                            Some(Value::String(text)) => text.clone(),
                            Some(other) => other.to_string(),
                            None => String::new(),
                        };
                        messages.push(
                            json!({"role": "tool", "tool_call_id": call_id, "content": output}),
                        );
                    }
                    Some("reasoning") => {}
                    other => {
                        return Err(err(
                            format!(
                                "input item type {} is not supported",
                                other.map_or("(missing)".into(), |t| format!("'{t}'"))
                            ),
                            &format!("{at}.type"),
                        ));
                    }
                }
            }
        }
        Some(_) => return Err(err("'input' must be a string or a list of items", "input")),
    }
    let mut chat = Map::new();
    chat.insert("model".into(), json!(model));
    chat.insert("messages".into(), Value::Array(messages));
    if let Some(tools) = obj.get("tools").and_then(Value::as_array) {
        let mut out = Vec::new();
        for (i, tool) in tools.iter().enumerate() {
            if tool.get("type").and_then(Value::as_str) != Some("function") {
                return Err(err(
                    "only function tools are supported",
                    &format!("tools[{i}].type"),
                ));
            }
            let name = tool
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| err("a function tool needs 'name'", &format!("tools[{i}].name")))?;
            let mut function = json!({"name": name, "parameters": tool.get("parameters").cloned().unwrap_or(json!({"type": "object", "properties": {}}))});
            if let Some(description) = tool.get("description") {
                function["description"] = description.clone();
            }
            if let Some(strict) = tool.get("strict") {
                function["strict"] = strict.clone();
            }
            out.push(json!({"type": "function", "function": function}));
        }
        if !out.is_empty() {
            chat.insert("tools".into(), Value::Array(out));
        }
    }
    match obj.get("tool_choice") {
        None | Some(Value::Null) => {}
        Some(Value::String(choice)) if matches!(choice.as_str(), "auto" | "none" | "required") => {
            chat.insert("tool_choice".into(), json!(choice));
        }
        Some(choice) if choice.get("type").and_then(Value::as_str) == Some("function") => {
            let name = choice
                .get("name")
                .and_then(Value::as_str)
                .ok_or_else(|| err("tool_choice needs 'name'", "tool_choice.name"))?;
            chat.insert(
                "tool_choice".into(),
                json!({"type": "function", "function": {"name": name}}),
            );
        }
        Some(_) => {
            return Err(err(
                "tool_choice must be auto, none, required or a function",
                "tool_choice",
            ));
        }
    }
    for (from, to) in [
        ("max_output_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("top_p", "top_p"),
        ("parallel_tool_calls", "parallel_tool_calls"),
        ("user", "user"),
    ] {
        if let Some(value) = obj.get(from).filter(|v| !v.is_null()) {
            chat.insert(to.into(), value.clone());
        }
    }
    if let Some(stream) = obj.get("stream").and_then(Value::as_bool) {
        chat.insert("stream".into(), json!(stream));
        if stream {
            chat.insert("stream_options".into(), json!({"include_usage": true}));
        }
    }
    if let Some(format) = request.pointer("/text/format") {
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
    }
    Ok(Value::Object(chat))
}

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:032x}", rand::random::<u128>())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn usage_from_chat(usage: Option<&Value>) -> Value {
    let input = usage
        .and_then(|u| u.get("prompt_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let output = usage
        .and_then(|u| u.get("completion_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(0);
    json!({"input_tokens": input, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": input + output})
}

/// The Response object's fixed fields, echoing the request as the API does.
fn response_shell(id: &str, created_at: i64, model: &str, request: &Value, status: &str) -> Value {
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

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

fn function_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status})
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
    let mut output = Vec::new();
    let message = choice.and_then(|c| c.get("message"));
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
        output.push(function_item(
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

/// An open output item of a streamed Response.
enum Item {
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Turns OpenAI chunk events into the Responses event sequence.
pub struct ResponsesStreamWriter {
    request: Value,
    id: String,
    created_at: i64,
    model: String,
    sequence: u64,
    started: bool,
    /// Output items in order; the last may still be open.
    items: Vec<Item>,
    open: bool,
    /// Chat tool-call index of the open function item.
    open_call_index: Option<u64>,
    usage: Option<Value>,
    finish: Option<String>,
    ended: bool,
}

impl ResponsesStreamWriter {
    pub fn new(request: &Value) -> Self {
        ResponsesStreamWriter {
            model: request
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            request: request.clone(),
            id: new_id("resp"),
            created_at: now(),
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: false,
            open_call_index: None,
            usage: None,
            finish: None,
            ended: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<Bytes>, kind: &str, mut payload: Value) {
        payload["type"] = json!(kind);
        payload["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push(Bytes::from(format!("event: {kind}\ndata: {payload}\n\n")));
    }

    fn snapshot(&self, status: &str) -> Value {
        let mut response = response_shell(
            &self.id,
            self.created_at,
            &self.model,
            &self.request,
            status,
        );
        let done = if status == "in_progress" {
            "in_progress"
        } else {
            "completed"
        };
        response["output"] = Value::Array(
            self.items
                .iter()
                .map(|item| match item {
                    Item::Message { id, text } => message_item(id, text, done),
                    Item::Call {
                        id,
                        call_id,
                        name,
                        arguments,
                    } => function_item(id, call_id, name, arguments, done),
                })
                .collect(),
        );
        if status != "in_progress" {
            response["usage"] = usage_from_chat(self.usage.as_ref());
        }
        response
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.snapshot("in_progress");
        self.emit(out, "response.created", json!({"response": response}));
        let response = self.snapshot("in_progress");
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    /// Closes the open item with its `.done` events.
    fn close_item(&mut self, out: &mut Vec<Bytes>) {
        if !self.open {
            return;
        }
        self.open = false;
        self.open_call_index = None;
        let index = self.items.len() - 1;
        let done = match &self.items[index] {
            Item::Message { id, text } => {
                let (id, text) = (id.clone(), text.clone());
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                self.emit(out, "response.output_text.done", json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}));
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                );
                message_item(&id, &text, "completed")
            }
            Item::Call {
                id,
                call_id,
                name,
                arguments,
            } => {
                let (id, call_id, name, arguments) =
                    (id.clone(), call_id.clone(), name.clone(), arguments.clone());
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                );
                function_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
        );
    }

    fn text(&mut self, out: &mut Vec<Bytes>, delta: &str) {
        if !matches!(self.items.last(), Some(Item::Message { .. })) || !self.open {
            self.close_item(out);
            let id = new_id("msg");
            self.items.push(Item::Message {
                id: id.clone(),
                text: String::new(),
            });
            self.open = true;
            let index = self.items.len() - 1;
            self.emit(
                out,
                "response.output_item.added",
                json!({"output_index": index, "item": message_item(&id, "", "in_progress")}),
            );
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            );
        }
        let index = self.items.len() - 1;
        let Some(Item::Message { id, text }) = self.items.last_mut() else {
            return;
        };
        text.push_str(delta);
        let id = id.clone();
        self.emit(out, "response.output_text.delta", json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}));
    }

    fn tool_call(&mut self, out: &mut Vec<Bytes>, call: &Value) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        if self.open_call_index != Some(chat_index) {
            self.close_item(out);
            let id = new_id("fc");
            let call_id = call
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = call
                .pointer("/function/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            self.items.push(Item::Call {
                id: id.clone(),
                call_id: call_id.clone(),
                name: name.clone(),
                arguments: String::new(),
            });
            self.open = true;
            self.open_call_index = Some(chat_index);
            let index = self.items.len() - 1;
            self.emit(out, "response.output_item.added", json!({"output_index": index, "item": function_item(&id, &call_id, &name, "", "in_progress")}));
        }
        let delta = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        if delta.is_empty() {
            return;
        }
        let index = self.items.len() - 1;
        let Some(Item::Call { id, arguments, .. }) = self.items.last_mut() else {
            return;
        };
        arguments.push_str(delta);
        let id = id.clone();
        self.emit(
            out,
            "response.function_call_arguments.delta",
            json!({"item_id": id, "output_index": index, "delta": delta}),
        );
    }

    /// One whole OpenAI SSE event in, zero or more Responses events out.
    pub fn push(&mut self, event: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let Some(data) = sse::event_data(event) else {
            return out;
        };
        let data = data.trim();
        if data == "[DONE]" {
            return self.finish();
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        if let Some(error) = chunk.get("error").filter(|e| !e.is_null()) {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| error.to_string());
            return vec![self.failure(&message)];
        }
        self.start(&mut out);
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        if let Some(model) = chunk.get("model").and_then(Value::as_str) {
            self.model = model.to_string();
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return out;
        };
        if let Some(text) = choice
            .pointer("/delta/content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.text(&mut out, text);
        }
        for call in choice
            .pointer("/delta/tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.tool_call(&mut out, call);
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish = Some(reason.to_string());
        }
        out
    }

    /// The upstream ended: close what is open and complete the response.
    pub fn finish(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        self.start(&mut out);
        self.close_item(&mut out);
        self.ended = true;
        if self.finish.as_deref() == Some("length") {
            let mut response = self.snapshot("incomplete");
            response["incomplete_details"] = json!({"reason": "max_output_tokens"});
            self.emit(
                &mut out,
                "response.incomplete",
                json!({"response": response}),
            );
        } else {
            let response = self.snapshot("completed");
            self.emit(
                &mut out,
                "response.completed",
                json!({"response": response}),
            );
        }
        out
    }

    /// The upstream failed after the stream started: `response.failed`.
    pub fn failure(&mut self, message: &str) -> Bytes {
        let mut out = Vec::new();
        self.start(&mut out);
        self.ended = true;
        let mut response = self.snapshot("failed");
        response["error"] = json!({"code": "server_error", "message": message});
        self.emit(&mut out, "response.failed", json!({"response": response}));
        out.into_iter()
            .fold(bytes::BytesMut::new(), |mut all, b| {
                all.extend_from_slice(&b);
                all
            })
            .freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(bytes: &[Bytes]) -> Vec<(String, Value)> {
        bytes
            .iter()
            .map(|b| {
                let name = sse::event_name(b).unwrap_or("").to_string();
                let data = serde_json::from_str(&sse::event_data(b).unwrap_or_default())
                    .unwrap_or(Value::Null);
                (name, data)
            })
            .collect()
    }

    #[test]
    fn instructions_input_items_tools_and_limits_map_to_chat() {
        let request = json!({
            "model": "gpt", "instructions": "Be brief.", "max_output_tokens": 50, "temperature": 0.3,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}, {"type": "input_image", "image_url": "https://x/y.png"}]},
                {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"type": "function_call_output", "call_id": "c1", "output": "sunny"}
            ],
            "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "get_weather"}
        });
        let chat = chat_request_from_responses(&request).unwrap();
        assert_eq!(
            chat["messages"][0],
            json!({"role": "system", "content": "Be brief."})
        );
        assert_eq!(
            chat["messages"][1]["content"][1]["image_url"]["url"],
            "https://x/y.png"
        );
        assert_eq!(
            chat["messages"][2]["tool_calls"][0]["function"]["name"],
            "get_weather"
        );
        assert_eq!(
            chat["messages"][3],
            json!({"role": "tool", "tool_call_id": "c1", "content": "sunny"})
        );
        assert_eq!(chat["tools"][0]["function"]["name"], "get_weather");
        assert_eq!(chat["tool_choice"]["function"]["name"], "get_weather");
        assert_eq!(
            (chat["max_tokens"].as_u64(), chat["temperature"].as_f64()),
            (Some(50), Some(0.3))
        );
    }

    #[test]
    fn untranslatable_requests_name_the_field() {
        for (request, param) in [
            (json!({"input": "hi"}), "model"),
            (json!({"model": "m"}), "input"),
            (
                json!({"model": "m", "input": [{"type": "web_search_call"}]}),
                "input[0].type",
            ),
            (
                json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}),
                "tools[0].type",
            ),
            (
                json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file"}]}]}),
                "input[0].content[0]",
            ),
        ] {
            assert_eq!(
                chat_request_from_responses(&request)
                    .unwrap_err()
                    .param
                    .as_deref(),
                Some(param),
                "{request}"
            );
        }
    }

    #[test]
    fn a_chat_answer_becomes_a_response_object() {
        let chat = json!({"model": "gpt", "choices": [{"message": {"role": "assistant", "content": "Hi!",
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}});
        let response = response_from_chat(&chat, &json!({"model": "gpt", "input": "x"}));
        assert_eq!(
            (response["object"].as_str(), response["status"].as_str()),
            (Some("response"), Some("completed"))
        );
        assert!(response["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(
            response["output"][0]["content"][0],
            json!({"type": "output_text", "text": "Hi!", "annotations": [], "logprobs": []})
        );
        assert_eq!(response["output"][1]["call_id"], "c1");
        assert_eq!(response["usage"]["total_tokens"], 5);
    }

    #[test]
    fn a_chunk_stream_becomes_the_responses_event_sequence() {
        let mut writer =
            ResponsesStreamWriter::new(&json!({"model": "gpt", "input": "x", "stream": true}));
        let mut out = Vec::new();
        for chunk in [
            r#"data: {"model":"gpt","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"content":"lo"}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"f","arguments":""}}]}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]}}]}"#,
            r#"data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#,
            "data: [DONE]",
        ] {
            out.extend(writer.push(chunk.as_bytes()));
        }
        let names: Vec<String> = events(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let all = events(&out);
        let sequence: Vec<u64> = all
            .iter()
            .filter_map(|(_, d)| d["sequence_number"].as_u64())
            .collect();
        assert_eq!(sequence, (0..all.len() as u64).collect::<Vec<_>>());
        let completed = &all.last().unwrap().1["response"];
        assert_eq!(completed["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(completed["output"][1]["arguments"], "{}");
        assert_eq!(completed["usage"]["output_tokens"], 2);
    }

    #[test]
    fn an_upstream_failure_after_the_start_is_response_failed() {
        let mut writer = ResponsesStreamWriter::new(&json!({"model": "gpt", "input": "x"}));
        writer.push(br#"data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}"#);
        let failed = writer.failure("upstream reset");
        let (name, data) = events(&[failed]).pop().unwrap();
        assert_eq!(name, "response.failed");
        assert_eq!(data["response"]["status"], "failed");
        assert_eq!(data["response"]["error"]["message"], "upstream reset");
        assert!(writer.finish().is_empty(), "nothing after a failure");
    }
}
