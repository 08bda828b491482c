//! The OpenAI Chat Completions wire format: the request body as the gateway needs it (only `model`,
//! `stream` and the shape checked; everything else kept as raw JSON and passed on untouched), stream
//! chunk classification for the commit rule, and the gateway's own error event.

use bytes::Bytes;
use indexmap::IndexMap;
use serde_json::value::RawValue;

use crate::domain::exchange::{
    ChatPayload, Dialect, ResumableStream, Transcript, UpstreamEvent, Usage,
};
use crate::domain::failover::StreamEventKind;
use crate::protocol::tokens::{Count, Details, read_event_object, read_object};
use crate::protocol::{resume, sse};

/// A request body whose fields stay raw JSON: rewriting `model` does not re-model the messages.
///
/// A chat body that streams is sent upstream asking for the usage chunk
/// (`stream_options.include_usage`), so every stream reports the tokens that budgets and cost need;
/// [`ChatBody::wants_usage_chunk`] tells whether the client asked for that chunk itself. A body in
/// another API's own dialect ([`ChatBody::parse_object`], [`ChatBody::parse_native`]) goes upstream
/// with only `model` changed.
#[derive(Debug, Clone)]
pub struct ChatBody {
    fields: Fields,
    model: String,
    /// Another API's own body, passed through: never amended.
    native: bool,
}

/// The body's top-level fields in the client's order, raw. Hashed with foldhash (randomly seeded
/// per process, several times cheaper than the default SipHash on short keys): a body has a
/// handful of fields, looked up a dozen times per request, and its size is bounded by
/// `MAX_BODY_BYTES`.
type Fields = IndexMap<String, Box<RawValue>, hashbrown::DefaultHashBuilder>;

/// Why a chat body cannot be accepted, with the field at fault when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyError {
    pub message: String,
    pub param: Option<&'static str>,
}

impl BodyError {
    fn new(message: impl Into<String>, param: Option<&'static str>) -> Self {
        BodyError {
            message: message.into(),
            param,
        }
    }
}

impl ChatBody {
    /// A chat request: a JSON object with a `model` string and a `messages` array, its known
    /// fields of the right types.
    pub fn parse(bytes: &[u8]) -> Result<ChatBody, BodyError> {
        let mut body = ChatBody::parse_object(bytes)?;
        body.native = false;
        match body
            .fields
            .get("messages")
            .map(|raw| raw.get().trim_start().as_bytes().first().copied())
        {
            None => return Err(BodyError::new("'messages' is required", Some("messages"))),
            Some(Some(b'[')) => {}
            Some(_) => {
                return Err(BodyError::new(
                    "'messages' must be an array",
                    Some("messages"),
                ));
            }
        }
        check_known_fields(&body.fields)?;
        Ok(body)
    }

    /// A body checked as [`ChatBody::parse`] checks a chat body, that is in another API's own
    /// dialect (an Anthropic Messages request passed through): only its model is rewritten, and
    /// it is never asked for OpenAI's usage chunk, which that API would refuse.
    pub fn parse_native(bytes: &[u8]) -> Result<ChatBody, BodyError> {
        ChatBody::parse(bytes).map(|body| ChatBody {
            native: true,
            ..body
        })
    }

    /// Any JSON object with a `model` string, its fields kept as they are: a request in another
    /// API's own dialect (a Responses request passed through) whose model is rewritten the same way.
    pub fn parse_object(bytes: &[u8]) -> Result<ChatBody, BodyError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(BodyError::new(
                "request body is empty; expected a JSON object",
                None,
            ));
        }
        if nesting_exceeds(bytes, MAX_NESTING) {
            return Err(BodyError::new(
                format!("request body nests deeper than {MAX_NESTING} levels"),
                None,
            ));
        }
        let fields: Fields = serde_json::from_slice(bytes).map_err(|e| {
            if e.is_data() {
                BodyError::new("request body must be a JSON object", None)
            } else {
                BodyError::new(format!("request body is not valid JSON: {e}"), None)
            }
        })?;
        let model = match fields.get("model") {
            None => return Err(BodyError::new("'model' is required", Some("model"))),
            Some(raw) => match serde_json::from_str::<String>(raw.get()) {
                Ok(model) if !model.trim().is_empty() => model,
                Ok(_) => return Err(BodyError::new("'model' must not be empty", Some("model"))),
                Err(_) => return Err(BodyError::new("'model' must be a string", Some("model"))),
            },
        };
        Ok(ChatBody {
            fields,
            model,
            native: true,
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// `Some(true/false)` when the body says, `None` when it does not (or says null).
    pub fn stream_flag(&self) -> Option<bool> {
        match self.fields.get("stream").map(|raw| raw.get()) {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        }
    }

    pub fn set_stream(&mut self, stream: bool) {
        let raw = if stream { "true" } else { "false" };
        self.fields.insert("stream".into(), raw_json(raw));
    }

    /// Whether the client asked for OpenAI's usage chunk (`stream_options.include_usage: true`).
    pub fn wants_usage_chunk(&self) -> bool {
        self.fields
            .get("stream_options")
            .is_some_and(|raw| asks_for_usage(raw.get()))
    }

    /// The body for one upstream: the same fields in the same order, `model` replaced; a chat body
    /// that streams also asks for the usage chunk (`stream_options` merged, or added last).
    pub fn to_upstream(&self, model_id: &str) -> Bytes {
        Bytes::from(self.write(model_id, self.usage_options().as_deref()))
    }

    /// The fields in order, `model` as `model_id` and `stream_options` as `options` when given
    /// (added last when the body has none).
    fn write(&self, model_id: &str, options: Option<&str>) -> Vec<u8> {
        let extra = options.map_or(0, |o| o.len() + 20);
        let mut out = Vec::with_capacity(self.encoded_len_hint() + model_id.len() + extra);
        out.push(b'{');
        for (index, (key, value)) in self.fields.iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_string(&mut out, key);
            out.push(b':');
            if key == "model" {
                write_json_string(&mut out, model_id);
            } else if let Some(options) = options.filter(|_| key == "stream_options") {
                out.extend_from_slice(options.as_bytes());
            } else {
                out.extend_from_slice(value.get().as_bytes());
            }
        }
        if let Some(options) = options.filter(|_| !self.fields.contains_key("stream_options")) {
            if !self.fields.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"\"stream_options\":");
            out.extend_from_slice(options.as_bytes());
        }
        out.push(b'}');
        out
    }

    /// The `stream_options` to send instead of the client's, when the body must ask for the usage
    /// chunk: a streaming chat body that does not ask already. Costs one lookup otherwise.
    fn usage_options(&self) -> Option<String> {
        if self.native || self.stream_flag() != Some(true) || self.wants_usage_chunk() {
            return None;
        }
        // A Claude-style body is never a hub body (it is routed to the Anthropic path): it goes
        // upstream untouched even when parsed as chat.
        if self.looks_like_anthropic() {
            return None;
        }
        const ASK: &str = r#"{"include_usage":true}"#;
        let Some(raw) = self.fields.get("stream_options") else {
            return Some(ASK.to_string());
        };
        match serde_json::from_str::<IndexMap<String, Box<RawValue>>>(raw.get()) {
            Ok(mut options) => {
                options.insert("include_usage".into(), raw_json("true"));
                let text = serde_json::to_string(&options).unwrap_or_else(|_| ASK.to_string());
                Some(text)
            }
            // `null` (or anything else a lenient upstream might take): the plain ask.
            Err(_) => Some(ASK.to_string()),
        }
    }

    /// Whether this is a Claude-style body sent to the chat endpoint (SPEC 4.2): Anthropic-only
    /// fields, or a top-level `system`, which the OpenAI API does not have.
    pub fn looks_like_anthropic(&self) -> bool {
        ["anthropic_version", "max_tokens_to_sample", "system"]
            .iter()
            .any(|key| self.fields.contains_key(*key))
    }

    /// The body as the client sent it, as a JSON value (for the session context; not on the plain
    /// chat path).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.write(&self.model, None)).unwrap_or(serde_json::Value::Null)
    }

    /// A field as the client wrote it (raw JSON), if the body has it.
    pub fn raw_field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|raw| raw.get())
    }

    /// The same body with its `messages` replaced by `edit`'s result on them (a stream resume's
    /// continuation); `None` when `messages` is not a list or the edit gives none.
    pub fn with_messages(
        &self,
        edit: impl FnOnce(Vec<serde_json::Value>) -> Option<Vec<serde_json::Value>>,
    ) -> Option<ChatBody> {
        let messages: Vec<serde_json::Value> =
            serde_json::from_str(self.fields.get("messages")?.get()).ok()?;
        let raw = serde_json::value::to_raw_value(&edit(messages)?).ok()?;
        let mut body = self.clone();
        body.fields.insert("messages".into(), raw);
        Some(body)
    }

    fn encoded_len_hint(&self) -> usize {
        self.fields
            .iter()
            .map(|(k, v)| k.len() + v.get().len() + 4)
            .sum::<usize>()
            + 2
    }
}

/// Whether `stream_options` (raw JSON) asks for the usage chunk.
fn asks_for_usage(raw: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct StreamOptions {
        include_usage: Option<bool>,
    }
    serde_json::from_str::<StreamOptions>(raw).is_ok_and(|o| o.include_usage == Some(true))
}

/// The deepest nesting a request body may have (serde_json's own default limit). Raw values are
/// not parsed deeply, so the gateway checks depth itself before passing a body on.
pub const MAX_NESTING: usize = 128;

/// Whether JSON text nests arrays and objects deeper than `limit`, in one pass without parsing.
fn nesting_exceeds(bytes: &[u8], limit: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Rejects known fields of the wrong type with a 400 naming them, so a malformed request never
/// costs an upstream call. Fields are checked from their raw text; `messages` is read shallowly
/// (role and the kind of content), never re-modelled.
fn check_known_fields(fields: &Fields) -> Result<(), BodyError> {
    #[derive(serde::Deserialize)]
    struct Message<'a> {
        role: Option<&'a str>,
        #[serde(borrow)]
        content: Option<&'a RawValue>,
    }
    const INTEGERS: [&str; 4] = ["max_tokens", "max_completion_tokens", "n", "top_logprobs"];
    const NUMBERS: [&str; 5] = [
        "temperature",
        "top_p",
        "top_k",
        "presence_penalty",
        "frequency_penalty",
    ];
    const BOOLEANS: [&str; 3] = ["stream", "logprobs", "parallel_tool_calls"];
    for (key, raw) in fields {
        let text = raw.get();
        if text == "null" {
            continue;
        }
        let first = text.as_bytes().first().copied().unwrap_or(b' ');
        let key = key.as_str();
        let problem: Option<&str> = if INTEGERS.contains(&key) {
            serde_json::from_str::<u64>(text)
                .is_err()
                .then_some("must be a non-negative integer")
        } else if NUMBERS.contains(&key) {
            serde_json::from_str::<f64>(text)
                .is_err()
                .then_some("must be a number")
        } else if BOOLEANS.contains(&key) {
            (!matches!(text, "true" | "false")).then_some("must be a boolean")
        } else {
            match key {
                "seed" => serde_json::from_str::<i64>(text)
                    .is_err()
                    .then_some("must be an integer"),
                "tools" => {
                    serde_json::from_str::<Vec<IndexMap<String, serde::de::IgnoredAny>>>(text)
                        .is_err()
                        .then_some("must be an array of objects")
                }
                "tool_choice" => {
                    (!matches!(first, b'"' | b'{')).then_some("must be a string or an object")
                }
                "stop" | "stop_sequences" => (!matches!(first, b'"' | b'['))
                    .then_some("must be a string or an array of strings"),
                "response_format" | "stream_options" | "metadata" => {
                    (first != b'{').then_some("must be an object")
                }
                "messages" => {
                    let messages: Vec<Message<'_>> = serde_json::from_str(text).map_err(|_| {
                        BodyError::new(
                            "'messages' must be an array of message objects",
                            Some("messages"),
                        )
                    })?;
                    for message in &messages {
                        if message.role.is_none_or(str::is_empty) {
                            return Err(BodyError::new(
                                "every message needs a string 'role'",
                                Some("messages"),
                            ));
                        }
                        let content = message
                            .content
                            .map(|c| c.get().as_bytes().first().copied().unwrap_or(b' '));
                        if !matches!(content, None | Some(b'"' | b'[' | b'n')) {
                            return Err(BodyError::new(
                                "a message's 'content' must be a string, an array of parts or null",
                                Some("messages"),
                            ));
                        }
                    }
                    None
                }
                _ => None,
            }
        };
        if let Some(problem) = problem {
            return Err(BodyError::new(
                format!("'{key}' {problem}"),
                known_param(key),
            ));
        }
    }
    Ok(())
}

/// The static name of a known field, for the error's `param`.
fn known_param(key: &str) -> Option<&'static str> {
    [
        "max_tokens",
        "max_completion_tokens",
        "n",
        "top_logprobs",
        "temperature",
        "top_p",
        "top_k",
        "presence_penalty",
        "frequency_penalty",
        "stream",
        "logprobs",
        "parallel_tool_calls",
        "seed",
        "tools",
        "tool_choice",
        "stop",
        "stop_sequences",
        "response_format",
        "stream_options",
        "metadata",
        "messages",
    ]
    .into_iter()
    .find(|k| *k == key)
}

fn raw_json(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).unwrap_or_else(|_| unreachable_raw())
}

#[cold]
fn unreachable_raw() -> Box<RawValue> {
    // Only reached if a literal above were not JSON; `null` keeps the body valid regardless.
    RawValue::from_string("null".into()).unwrap_or_default()
}

fn write_json_string(out: &mut Vec<u8>, text: &str) {
    // serde_json's string escaping cannot fail on a Vec.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// Converts a Gemini-style `input` (a string, or a list of `{role, content}` items whose content is
/// a string or a list of parts with `text`) into `messages`; role defaults to `user` (SPEC 4.2).
pub fn messages_from_input(input: &serde_json::Value) -> Result<serde_json::Value, BodyError> {
    use serde_json::{Value, json};
    let text_of = |content: &Value, at: &str| -> Result<String, BodyError> {
        match content {
            Value::String(text) => Ok(text.clone()),
            Value::Array(parts) => Ok(parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("")),
            _ => Err(BodyError::new(
                format!("{at} must be a string or a list of parts with text"),
                Some("input"),
            )),
        }
    };
    match input {
        Value::String(text) => Ok(json!([{"role": "user", "content": text}])),
        Value::Array(items) => {
            let mut messages = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let role = match item.get("role").and_then(Value::as_str).unwrap_or("user") {
                    "model" => "assistant",
                    role @ ("user" | "assistant" | "system") => role,
                    _ => {
                        return Err(BodyError::new(
                            format!("input[{i}].role must be user, assistant, model or system"),
                            Some("input"),
                        ));
                    }
                };
                let content = item
                    .get("content")
                    .or_else(|| item.get("parts"))
                    .unwrap_or(&Value::Null);
                messages.push(json!({"role": role, "content": text_of(content, &format!("input[{i}].content"))?}));
            }
            Ok(Value::Array(messages))
        }
        _ => Err(BodyError::new(
            "'input' must be a string or a list of items",
            Some("input"),
        )),
    }
}

/// What one upstream chunk means for the commit rule (SPEC 5.5). Garbage lines carry nothing a
/// client needs; they do not commit the stream.
pub fn classify_event(event: &[u8]) -> StreamEventKind {
    read_event(event).unwrap_or(StreamEventKind::Preamble)
}

/// One hub stream event read in a single pass over borrowed text: its kind, or `None` for garbage
/// (a `data:` line that is neither JSON nor `[DONE]`, which no client may see).
pub fn read_event(event: &[u8]) -> Option<StreamEventKind> {
    let Some(data) = sse::data_of(event) else {
        return Some(StreamEventKind::Preamble);
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Some(StreamEventKind::End);
    }
    if !data.starts_with('{') {
        // Serde would read a list into the probe by position: only objects are chunks.
        let json = serde_json::from_str::<serde::de::IgnoredAny>(data).is_ok();
        return json.then_some(StreamEventKind::Preamble);
    }
    // One pass for a well-formed chunk (every event of a healthy stream): `choices` read in place.
    let chunk = match serde_json::from_str::<ChunkProbe<'_>>(data) {
        Ok(chunk) => chunk,
        // Valid JSON of an unexpected shape somewhere: read again leniently, so that a chunk
        // with odd `choices` is still seen as an error when it says so.
        Err(e) if e.is_data() => return Some(read_odd_chunk(data)),
        Err(_) => return None,
    };
    Some(kind_of_chunk(
        chunk.error,
        chunk.choices.is_some_and(|choices| choices.0),
    ))
}

/// A chunk whose shape the one-pass probe could not take: `choices` as raw JSON first, its
/// entries read only if they are choice objects; a list or a number is not garbage, just no chunk.
fn read_odd_chunk(data: &str) -> StreamEventKind {
    #[derive(serde::Deserialize)]
    struct RawChunkProbe<'a> {
        #[serde(default, borrow)]
        error: Option<&'a RawValue>,
        #[serde(default, borrow)]
        choices: Option<&'a RawValue>,
    }
    let Ok(chunk) = serde_json::from_str::<RawChunkProbe<'_>>(data) else {
        return StreamEventKind::Preamble;
    };
    let any_content = chunk
        .choices
        .and_then(|raw| serde_json::from_str::<Vec<ChoiceProbe<'_>>>(raw.get()).ok())
        .is_some_and(|choices| choices.iter().any(ChoiceProbe::has_content));
    kind_of_chunk(chunk.error, any_content)
}

fn kind_of_chunk(error: Option<&RawValue>, any_content: bool) -> StreamEventKind {
    if error.is_some_and(|e| e.get() != "null") {
        StreamEventKind::Error
    } else if any_content {
        StreamEventKind::Content
    } else {
        StreamEventKind::Preamble
    }
}

/// The fields of a chunk the commit rule reads, borrowed as raw JSON: nothing is built.
#[derive(serde::Deserialize)]
struct ChunkProbe<'a> {
    #[serde(default, borrow)]
    error: Option<&'a RawValue>,
    #[serde(default)]
    choices: Option<AnyContent>,
}

/// Whether any of a chunk's choices carries content, read choice by choice: no list is built for
/// every event of every stream.
struct AnyContent(bool);

impl<'de> serde::Deserialize<'de> for AnyContent {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Choices;
        impl<'de> serde::de::Visitor<'de> for Choices {
            type Value = bool;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of choices")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
                let mut any = false;
                while let Some(choice) = seq.next_element::<ChoiceProbe<'de>>()? {
                    any |= choice.has_content();
                }
                Ok(any)
            }
        }
        deserializer.deserialize_seq(Choices).map(AnyContent)
    }
}

#[derive(serde::Deserialize)]
struct ChoiceProbe<'a> {
    #[serde(default, borrow)]
    finish_reason: Option<&'a RawValue>,
    #[serde(default, borrow)]
    delta: Option<DeltaProbe<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaProbe<'a> {
    #[serde(default, borrow)]
    content: Option<&'a RawValue>,
    #[serde(default, borrow)]
    tool_calls: Option<&'a RawValue>,
    #[serde(default, borrow)]
    function_call: Option<&'a RawValue>,
    #[serde(default, borrow)]
    refusal: Option<&'a RawValue>,
    #[serde(default, borrow)]
    reasoning_content: Option<&'a RawValue>,
}

impl ChoiceProbe<'_> {
    /// Text, a tool-call delta, a refusal, reasoning, or a finish reason.
    fn has_content(&self) -> bool {
        if self.finish_reason.is_some_and(|f| f.get() != "null") {
            return true;
        }
        let Some(delta) = &self.delta else {
            return false;
        };
        [
            delta.content,
            delta.tool_calls,
            delta.function_call,
            delta.refusal,
            delta.reasoning_content,
        ]
        .into_iter()
        .flatten()
        .any(|raw| !is_empty_json(raw.get()))
    }
}

/// `null`, `""` and `[]` carry nothing; any other value does.
fn is_empty_json(raw: &str) -> bool {
    let raw = raw.trim();
    if raw == "null" || raw == "\"\"" {
        return true;
    }
    raw.starts_with('[') && raw[1..].trim_start().starts_with(']')
}

/// Rebuilds the assistant message from a stream's chunks, for the session context (SPEC 5.3): the
/// text, tool calls with their arguments joined in order, the finish reason and usage.
#[derive(Debug, Default)]
pub struct StreamAssembler {
    content: String,
    tool_calls: Vec<serde_json::Value>,
    finish_reason: Option<serde_json::Value>,
    usage: Option<serde_json::Value>,
}

impl StreamAssembler {
    pub fn observe(&mut self, event: &[u8]) {
        let Some(data) = sse::event_data(event) else {
            return;
        };
        let Ok(chunk) = serde_json::from_str::<serde_json::Value>(&data) else {
            return;
        };
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else {
            return;
        };
        if let Some(reason) = choice.get("finish_reason").filter(|r| !r.is_null()) {
            self.finish_reason = Some(reason.clone());
        }
        let Some(delta) = choice.get("delta") else {
            return;
        };
        if let Some(text) = delta.get("content").and_then(|c| c.as_str()) {
            self.content.push_str(text);
        }
        for call in delta
            .get("tool_calls")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let index = call.get("index").and_then(|i| i.as_u64()).unwrap_or(0) as usize;
            if index > 1024 {
                continue;
            }
            while self.tool_calls.len() <= index {
                self.tool_calls.push(serde_json::json!({"type": "function", "function": {"name": "", "arguments": ""}}));
            }
            let slot = &mut self.tool_calls[index];
            if let Some(id) = call.get("id").filter(|i| !i.is_null()) {
                slot["id"] = id.clone();
            }
            for key in ["name", "arguments"] {
                if let Some(part) = call
                    .pointer(&format!("/function/{key}"))
                    .and_then(|v| v.as_str())
                {
                    let joined = format!("{}{part}", slot["function"][key].as_str().unwrap_or(""));
                    slot["function"][key] = serde_json::Value::String(joined);
                }
            }
        }
    }

    pub fn finish(self) -> serde_json::Value {
        let mut message = serde_json::json!({"role": "assistant", "content": self.content});
        if !self.tool_calls.is_empty() {
            message["tool_calls"] = serde_json::Value::Array(self.tool_calls);
        }
        serde_json::json!({"message": message, "finish_reason": self.finish_reason, "usage": self.usage})
    }
}

/// The seed's mid-stream error event, in OpenAI format (the OpenAI SDK raises on it).
pub fn error_event(status: Option<u16>, message: &str) -> Bytes {
    let payload = serde_json::json!({
        "error": {"type": "upstream_error", "status": status, "message": message}
    });
    Bytes::from(format!("data: {payload}\n\n"))
}

impl ChatPayload for ChatBody {
    fn model(&self) -> &str {
        ChatBody::model(self)
    }
    fn with_model(&self, model_id: &str) -> Bytes {
        self.to_upstream(model_id)
    }
    fn to_json(&self) -> serde_json::Value {
        self.to_value()
    }
    fn max_output_tokens(&self) -> Option<u64> {
        ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .iter()
            .find_map(|name| self.fields.get(*name)?.get().trim().parse().ok())
    }
    fn byte_len(&self) -> usize {
        self.fields
            .iter()
            .map(|(name, value)| name.len() + value.get().len() + 4)
            .sum()
    }
    fn resumable(&self, dialect: Dialect) -> Option<Box<dyn ResumableStream>> {
        // Several choices cannot be continued as one.
        let several = (self.raw_field("n")).is_some_and(|n| !matches!(n.trim(), "1" | "null"));
        if several {
            return None;
        }
        resume::follower(Box::new(self.clone()), dialect)
    }
}

impl resume::ContinuableBody for ChatBody {
    fn continued(
        &self,
        model_id: &str,
        edit: &mut dyn FnMut(Vec<serde_json::Value>) -> Vec<serde_json::Value>,
    ) -> Option<Bytes> {
        let body = self.with_messages(|messages| Some(edit(messages)))?;
        Some(body.to_upstream(model_id))
    }
}

impl Transcript for StreamAssembler {
    fn observe(&mut self, event: &UpstreamEvent) {
        StreamAssembler::observe(self, &event.bytes);
    }
    fn finish(self: Box<Self>) -> serde_json::Value {
        StreamAssembler::finish(*self)
    }
}

/// Any JSON object with a `usage` field, chat's or the Responses API's.
#[derive(serde::Deserialize)]
pub(super) struct WithUsage {
    usage: Option<ReportedUsage>,
}

impl WithUsage {
    pub(super) fn usage(self) -> Option<Usage> {
        self.usage.map(Usage::from)
    }
}

/// Usage as chat reports it, or as the Responses API names the same counts (`input_tokens`,
/// `input_tokens_details`, ...). Both count cached input inside the prompt and reasoning inside
/// the completion, as [`Usage`] does.
#[derive(serde::Deserialize)]
pub(super) struct ReportedUsage {
    #[serde(default, alias = "input_tokens")]
    prompt_tokens: Count,
    #[serde(default, alias = "output_tokens")]
    completion_tokens: Count,
    #[serde(default, alias = "input_tokens_details")]
    prompt_tokens_details: Details,
    #[serde(default, alias = "output_tokens_details")]
    completion_tokens_details: Details,
    /// DeepSeek's name for the cache hits, for providers that send no `prompt_tokens_details`.
    #[serde(default)]
    prompt_cache_hit_tokens: Count,
}

impl From<ReportedUsage> for Usage {
    fn from(usage: ReportedUsage) -> Self {
        let cached = usage
            .prompt_tokens_details
            .cached_tokens
            .0
            .or(usage.prompt_cache_hit_tokens.0);
        Usage {
            prompt_tokens: usage.prompt_tokens.get(),
            completion_tokens: usage.completion_tokens.get(),
            cache_read_tokens: cached.unwrap_or(0),
            cache_write_tokens: 0,
            reasoning_tokens: usage.completion_tokens_details.reasoning_tokens.get(),
        }
    }
}

/// One hub chunk event as the writers of other client formats read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk {
    /// `data: [DONE]`: the stream ends.
    Done,
    /// An error chunk (the upstream's, or the gateway's after a failure): its message.
    Error(String),
    /// A chunk object.
    Data(serde_json::Value),
    /// Anything else (a comment, a line that is not JSON): nothing to write.
    Noise,
}

/// Reads one whole hub chunk event for a client writer (Messages, Responses, Gemini).
pub fn read_chunk(event: &[u8]) -> Chunk {
    let Some(data) = sse::event_data(event) else {
        return Chunk::Noise;
    };
    let data = data.trim();
    if data == "[DONE]" {
        return Chunk::Done;
    }
    let Ok(chunk) = serde_json::from_str::<serde_json::Value>(data) else {
        return Chunk::Noise;
    };
    match chunk.get("error").filter(|e| !e.is_null()) {
        Some(serde_json::Value::String(message)) => Chunk::Error(message.clone()),
        Some(error) => Chunk::Error(
            error
                .get("message")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| error.to_string(), str::to_string),
        ),
        None if chunk.is_object() => Chunk::Data(chunk),
        None => Chunk::Noise,
    }
}

pub use crate::protocol::tokens::NotJson;

/// Checks that a whole answer is JSON and reads its usage, in one pass.
pub fn usage_of_answer(body: &[u8]) -> Result<Option<Usage>, NotJson> {
    // Valid JSON that is not an object with a usage field (an array, a number) is still JSON.
    Ok(read_object::<WithUsage>(body)?.and_then(WithUsage::usage))
}

/// Tokens from a stream's usage chunk; other chunks cost one substring scan.
pub fn usage_of_event(event: &[u8]) -> Option<Usage> {
    if !super::needle::mentions(event, &super::needle::USAGE_FIELD) {
        return None;
    }
    let data = sse::data_of(event)?;
    read_event_object::<WithUsage>(&data)?.usage()
}

/// Whether a hub stream event is the usage chunk OpenAI sends last when asked
/// (`stream_options.include_usage`): a data event whose chunk has usage and no choices
/// (`"choices": []`, or none at all) and is not an error. Other chunks cost one substring scan.
pub fn is_usage_only_chunk(event: &[u8]) -> bool {
    if !super::needle::mentions(event, &super::needle::USAGE_FIELD) {
        return false;
    }
    let Some(data) = sse::data_of(event) else {
        return false;
    };
    #[derive(serde::Deserialize)]
    struct Probe<'a> {
        #[serde(default, borrow)]
        choices: Option<&'a RawValue>,
        #[serde(default, borrow)]
        usage: Option<&'a RawValue>,
        #[serde(default, borrow)]
        error: Option<&'a RawValue>,
    }
    let Ok(chunk) = serde_json::from_str::<Probe<'_>>(data.trim()) else {
        return false;
    };
    let present = |raw: Option<&RawValue>| raw.is_some_and(|r| r.get() != "null");
    let no_choices = chunk.choices.is_none_or(|c| {
        let text = c.get();
        text == "null" || (text.starts_with('[') && text[1..].trim_start().starts_with(']'))
    });
    no_choices && present(chunk.usage) && !present(chunk.error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64, read: u64, reasoning: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: read,
            cache_write_tokens: 0,
            reasoning_tokens: reasoning,
        }
    }

    #[test]
    fn chat_usage_is_read_with_its_cached_and_reasoning_details() {
        // The shape of the Chat Completions API reference's usage.
        let answer = br#"{"id":"chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG","object":"chat.completion","created":1741570283,
            "model":"o3-mini-2025-01-31","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"},"finish_reason":"stop"}],
            "usage":{"prompt_tokens":1117,"completion_tokens":46,"total_tokens":1163,
                "prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},
                "completion_tokens_details":{"reasoning_tokens":32,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},
            "service_tier":"default","system_fingerprint":"fp_fc9f1d7035"}"#;
        assert_eq!(
            usage_of_answer(answer).unwrap(),
            Some(usage(1117, 46, 1024, 32))
        );
        let chunk = br#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}

"#;
        assert_eq!(usage_of_event(chunk), Some(usage(2006, 300, 1920, 0)));
    }

    #[test]
    fn usage_readers_survive_what_compatible_providers_send() {
        for (body, expected) in [
            // Details null or missing, as many OpenAI-compatible servers send them.
            (
                r#"{"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_tokens_details":null,"completion_tokens_details":null}}"#,
                Some(usage(10, 2, 0, 0)),
            ),
            (
                r#"{"usage":{"prompt_tokens":10,"completion_tokens":2}}"#,
                Some(usage(10, 2, 0, 0)),
            ),
            // DeepSeek's own cache counts.
            (
                r#"{"usage":{"prompt_tokens":10,"completion_tokens":2,"prompt_cache_hit_tokens":8,"prompt_cache_miss_tokens":2}}"#,
                Some(usage(10, 2, 8, 0)),
            ),
            // Odd values cost only themselves.
            (
                r#"{"usage":{"prompt_tokens":10.0,"completion_tokens":"2","prompt_tokens_details":{"cached_tokens":null},"completion_tokens_details":[]}}"#,
                Some(usage(10, 2, 0, 0)),
            ),
            (r#"{"usage":null}"#, None),
            (r#"{"usage":"lots"}"#, None),
            (r#"[{"usage":{"prompt_tokens":1}}]"#, None),
            ("42", None),
        ] {
            assert_eq!(
                usage_of_answer(body.as_bytes()).unwrap(),
                expected,
                "{body}"
            );
        }
        assert!(usage_of_answer(b"{\"usage\":").is_err());
        assert!(usage_of_answer(b"<html>").is_err());
    }

    #[test]
    fn a_streaming_chat_body_asks_upstream_for_the_usage_chunk() {
        let upstream = |body: &str| {
            let parsed = ChatBody::parse(body.as_bytes()).unwrap();
            String::from_utf8(parsed.to_upstream("up").to_vec()).unwrap()
        };
        // Added last, everything else as it was.
        assert_eq!(
            upstream(r#"{"model":"m","stream":true,"messages":[],"x":{"b":1,"a":2}}"#),
            r#"{"model":"up","stream":true,"messages":[],"x":{"b":1,"a":2},"stream_options":{"include_usage":true}}"#
        );
        // Merged in place, the client's other options kept in their order.
        assert_eq!(
            upstream(
                r#"{"stream_options":{"include_obfuscation":false,"include_usage":false,"z":[1]},"model":"m","messages":[],"stream":true}"#
            ),
            r#"{"stream_options":{"include_obfuscation":false,"include_usage":true,"z":[1]},"model":"up","messages":[],"stream":true}"#
        );
        assert_eq!(
            upstream(r#"{"model":"m","messages":[],"stream":true,"stream_options":null}"#),
            r#"{"model":"up","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#
        );
        // Already asked, or not streaming: untouched.
        for body in [
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#,
            r#"{"model":"m","messages":[],"stream":false,"stream_options":{"include_usage":false}}"#,
            r#"{"model":"m","messages":[]}"#,
        ] {
            assert_eq!(upstream(body), body.replace("\"m\"", "\"up\""));
        }
    }

    #[test]
    fn the_client_ask_is_told_apart_from_the_gateways() {
        let body = |text: &str| ChatBody::parse(text.as_bytes()).unwrap();
        assert!(
            body(r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#)
                .wants_usage_chunk()
        );
        for text in [
            r#"{"model":"m","messages":[],"stream":true}"#,
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":false}}"#,
            r#"{"model":"m","messages":[],"stream":true,"stream_options":{"include_usage":"yes"}}"#,
            r#"{"model":"m","messages":[],"stream":true,"stream_options":null}"#,
        ] {
            let body = body(text);
            assert!(!body.wants_usage_chunk(), "{text}");
            // The session context keeps the client's own body.
            let value = body.to_value();
            assert_eq!(
                value.get("stream_options"),
                serde_json::from_str::<serde_json::Value>(text)
                    .unwrap()
                    .get("stream_options")
            );
        }
        let mut set = body(r#"{"model":"m","messages":[]}"#);
        set.set_stream(true);
        assert!(!set.wants_usage_chunk());
        assert!(
            std::str::from_utf8(&set.to_upstream("m"))
                .unwrap()
                .contains(r#""stream_options":{"include_usage":true}"#)
        );
    }

    #[test]
    fn bodies_in_other_dialects_are_never_amended() {
        let anthropic = br#"{"model":"claude","max_tokens":5,"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let responses = br#"{"model":"gpt","input":"hi","stream":true}"#;
        let claude_style = br#"{"model":"claude","system":"be brief","messages":[],"stream":true}"#;
        for (body, expected) in [
            (ChatBody::parse_native(anthropic).unwrap(), &anthropic[..]),
            (ChatBody::parse_object(responses).unwrap(), &responses[..]),
            (ChatBody::parse(claude_style).unwrap(), &claude_style[..]),
        ] {
            let model = body.model().to_string();
            assert_eq!(&body.to_upstream(&model)[..], expected);
        }
        assert!(ChatBody::parse_native(b"{\"model\":\"m\"}").is_err());
    }

    #[test]
    fn the_usage_only_chunk_is_recognised() {
        let usage_chunk = b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":21}}\n\n";
        assert!(is_usage_only_chunk(usage_chunk));
        assert!(is_usage_only_chunk(
            b"data: {\"choices\": [ ], \"usage\": {\"prompt_tokens\": 1}}\r\n\r\n"
        ));
        assert!(is_usage_only_chunk(
            b"data: {\"id\":\"x\",\"usage\":{\"prompt_tokens\":1}}\n\n"
        ));
        for event in [
            // OpenAI's other chunks say `"usage": null` when the usage chunk was asked for.
            &b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n"[..],
            b"data: {\"choices\":[],\"usage\":null}\n\n",
            // Usage on a chunk with content is not the extra chunk.
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1}}\n\n",
            b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1},\"error\":{\"message\":\"x\"}}\n\n",
            b"data: [DONE]\n\n",
            b": keep-alive\n\n",
            b"data: {\"choices\":[],\"usage\":\n\n",
            b"data: {\"choices\":[{\"delta\":{\"content\":\"the \\\"usage\\\": field\"}}]}\n\n",
        ] {
            assert!(
                !is_usage_only_chunk(event),
                "{}",
                String::from_utf8_lossy(event)
            );
        }
    }

    #[test]
    fn only_model_changes_and_unknown_fields_pass_through_in_order() {
        let body = br#"{"model":"gpt","messages":[{"role":"user","content":"hi \u00e9"}],"x_custom":{"a":[1,2.50]},"stream":false}"#;
        let parsed = ChatBody::parse(body).unwrap();
        assert_eq!(parsed.model(), "gpt");
        let out = parsed.to_upstream("gpt-4o-\"2024\"");
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"model":"gpt-4o-\"2024\"","messages":[{"role":"user","content":"hi \u00e9"}],"x_custom":{"a":[1,2.50]},"stream":false}"#
        );
    }

    #[test]
    fn bad_bodies_are_named() {
        let cases: [(&[u8], Option<&str>); 8] = [
            (b"", None),
            (b"[1,2]", None),
            (b"{\"model\":", None),
            (b"{\"messages\":[]}", Some("model")),
            (b"{\"model\":5,\"messages\":[]}", Some("model")),
            (b"{\"model\":\"  \",\"messages\":[]}", Some("model")),
            (b"{\"model\":\"m\",\"messages\":\"hi\"}", Some("messages")),
            (
                b"{\"model\":\"m\",\"messages\":[],\"stream\":\"yes\"}",
                Some("stream"),
            ),
        ];
        for (body, param) in cases {
            let err = ChatBody::parse(body).unwrap_err();
            assert_eq!(err.param, param, "{}", String::from_utf8_lossy(body));
            assert!(!err.message.is_empty());
        }
    }

    #[test]
    fn known_fields_of_the_wrong_type_are_refused_by_name() {
        for (body, param) in [
            (
                r#"{"model":"m","messages":[],"max_tokens":"ten"}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","messages":[],"max_tokens":1e400}"#,
                "max_tokens",
            ),
            (
                r#"{"model":"m","messages":[],"temperature":1e400}"#,
                "temperature",
            ),
            (r#"{"model":"m","messages":[],"top_p":[]}"#, "top_p"),
            (r#"{"model":"m","messages":[],"tools":[42]}"#, "tools"),
            (
                r#"{"model":"m","messages":[],"tool_choice":7}"#,
                "tool_choice",
            ),
            (r#"{"model":"m","messages":[],"stop":{}}"#, "stop"),
            (r#"{"model":"m","messages":[42]}"#, "messages"),
            (r#"{"model":"m","messages":[{"role":5}]}"#, "messages"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":{}}]}"#,
                "messages",
            ),
        ] {
            assert_eq!(
                ChatBody::parse(body.as_bytes()).unwrap_err().param,
                Some(param),
                "{body}"
            );
        }
        let fine = r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"x"}]},{"role":"assistant","content":null}],"max_tokens":5,"temperature":0.5,"tool_choice":"auto","stop":["x"],"x_custom":{"a":1},"seed":-3,"stream":null}"#;
        assert!(ChatBody::parse(fine.as_bytes()).is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let mut body = String::from("{\"model\":\"m\",\"messages\":[],\"x\":");
        body.push_str(&"[".repeat(10_000));
        body.push_str(&"]".repeat(10_000));
        body.push('}');
        assert!(
            ChatBody::parse(body.as_bytes())
                .unwrap_err()
                .message
                .contains("nests deeper")
        );
        let strings = format!(
            "{{\"model\":\"m\",\"messages\":[{{\"role\":\"user\",\"content\":\"{}\\\"[\"}}]}}",
            "[".repeat(500)
        );
        assert!(
            ChatBody::parse(strings.as_bytes()).is_ok(),
            "brackets inside strings do not count"
        );
    }

    #[test]
    fn gemini_style_input_becomes_messages() {
        use serde_json::json;
        assert_eq!(
            messages_from_input(&json!("hi")).unwrap(),
            json!([{"role": "user", "content": "hi"}])
        );
        let items =
            json!([{"content": "a"}, {"role": "model", "content": [{"text": "b"}, {"text": "c"}]}]);
        assert_eq!(
            messages_from_input(&items).unwrap(),
            json!([{"role": "user", "content": "a"}, {"role": "assistant", "content": "bc"}])
        );
        assert!(messages_from_input(&json!(5)).is_err());
        assert!(messages_from_input(&json!([{"role": "robot", "content": "x"}])).is_err());
    }

    #[test]
    fn claude_style_bodies_are_recognised() {
        let claude =
            ChatBody::parse(br#"{"model":"m","system":"be brief","max_tokens":5,"messages":[]}"#)
                .unwrap();
        assert!(claude.looks_like_anthropic());
        let openai =
            ChatBody::parse(br#"{"model":"m","messages":[{"role":"system","content":"x"}]}"#)
                .unwrap();
        assert!(!openai.looks_like_anthropic());
    }

    #[test]
    fn stream_flag_can_be_set() {
        let mut body = ChatBody::parse(br#"{"model":"m","messages":[]}"#).unwrap();
        assert_eq!(body.stream_flag(), None);
        body.set_stream(true);
        assert_eq!(body.stream_flag(), Some(true));
        assert!(
            std::str::from_utf8(&body.to_upstream("x"))
                .unwrap()
                .ends_with("\"stream\":true,\"stream_options\":{\"include_usage\":true}}")
        );
    }

    #[test]
    fn chunks_are_classified_for_the_commit_rule() {
        let role = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n";
        let text = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let tool =
            b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\"}]}}]}\n\n";
        let finish = b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        let error = b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n";
        assert_eq!(classify_event(role), StreamEventKind::Preamble);
        assert_eq!(
            classify_event(b": keep-alive\n\n"),
            StreamEventKind::Preamble
        );
        assert_eq!(
            classify_event(b"data: not json\n\n"),
            StreamEventKind::Preamble
        );
        assert_eq!(classify_event(text), StreamEventKind::Content);
        assert_eq!(classify_event(tool), StreamEventKind::Content);
        assert_eq!(classify_event(finish), StreamEventKind::Content);
        assert_eq!(classify_event(error), StreamEventKind::Error);
        assert_eq!(classify_event(b"data: [DONE]\n\n"), StreamEventKind::End);
    }

    #[test]
    fn a_stream_is_assembled_into_one_message() {
        let mut assembler = StreamAssembler::default();
        for event in [
            &br#"data: {"choices":[{"delta":{"role":"assistant","content":"Hel"}}]}"#[..],
            br#"data: {"choices":[{"delta":{"content":"lo"}}]}"#,
            br#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get_weather","arguments":"{\"ci"}}]}}]}"#,
            br#"data: {"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}}]}}]}"#,
            br#"data: {"choices":[{"delta":{},"finish_reason":"tool_calls"}]}"#,
            br#"data: {"choices":[],"usage":{"total_tokens":9}}"#,
            b"data: [DONE]",
        ] {
            assembler.observe(event);
        }
        let assembled = assembler.finish();
        assert_eq!(assembled["message"]["content"], "Hello");
        assert_eq!(assembled["message"]["tool_calls"][0]["id"], "call_1");
        assert_eq!(
            assembled["message"]["tool_calls"][0]["function"]["arguments"],
            "{\"city\":\"Paris\"}"
        );
        assert_eq!(assembled["finish_reason"], "tool_calls");
        assert_eq!(assembled["usage"]["total_tokens"], 9);
    }

    #[test]
    fn the_error_event_has_the_seed_shape() {
        let event = error_event(Some(502), "boom");
        let data = sse::event_data(&event).unwrap();
        let value: serde_json::Value = serde_json::from_str(&data).unwrap();
        assert_eq!(value["error"]["type"], "upstream_error");
        assert_eq!(value["error"]["status"], 502);
        assert_eq!(value["error"]["message"], "boom");
    }

    #[test]
    fn events_are_read_in_one_pass_with_garbage_apart() {
        let cases: [(&[u8], Option<StreamEventKind>); 15] = [
            (b"data: {not json\n\n", None),
            (b"data: [1,2]\n\n", Some(StreamEventKind::Preamble)),
            (
                b"data: {\"error\":null,\"choices\":[{\"delta\":{\"content\":\"\"}}]}\n\n",
                Some(StreamEventKind::Preamble),
            ),
            (
                b"data: {\"choices\":[{\"delta\":{\"tool_calls\":[ ]}}]}\n\n",
                Some(StreamEventKind::Preamble),
            ),
            (
                b"data: {\"choices\":[{\"delta\":{\"content\":\" \"}}]}\n\n",
                Some(StreamEventKind::Content),
            ),
            (
                b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
                Some(StreamEventKind::Content),
            ),
            (
                b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hm\"}}]}\n\n",
                Some(StreamEventKind::Content),
            ),
            (
                b"data: {\"error\":{\"message\":\"x\"}}\n\n",
                Some(StreamEventKind::Error),
            ),
            (
                b"data: {\"choices\":\"odd\"}\n\n",
                Some(StreamEventKind::Preamble),
            ),
            // Odd shapes take the lenient second reading: an error still counts as one.
            (
                b"data: {\"error\":{\"message\":\"x\"},\"choices\":\"odd\"}\n\n",
                Some(StreamEventKind::Error),
            ),
            (
                b"data: {\"choices\":[{\"delta\":\"odd\"}],\"error\":null}\n\n",
                Some(StreamEventKind::Preamble),
            ),
            (
                b"data: {\"choices\":[1,{\"delta\":{\"content\":\"hi\"}}]}\n\n",
                Some(StreamEventKind::Preamble),
            ),
            (
                b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"choices\":[]}\n\n",
                Some(StreamEventKind::Preamble),
            ),
            (b"data: {\"choices\":[{\"delta\":\n\n", None),
            (b"data: [DONE]\n\n", Some(StreamEventKind::End)),
        ];
        for (event, kind) in cases {
            assert_eq!(
                read_event(event),
                kind,
                "{}",
                String::from_utf8_lossy(event)
            );
        }
    }
}
