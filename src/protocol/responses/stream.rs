//! Chat chunk events -> the Responses event sequence.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::{
    message_item, reasoning_item, reasoning_text, response_shell, usage_from_chat,
};
use super::tools::{ToolKind, Toolbox, call_item, custom_input};
use super::{new_id, now};
use crate::protocol::openai::{Chunk, read_chunk};

/// An output item of a streamed Response.
enum Item {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        /// The chat name; the item shows the name the client declared.
        name: String,
        arguments: String,
        /// The chat tool-call index.
        index: u64,
    },
}

/// Turns OpenAI chunk events into the Responses event sequence.
pub struct ResponsesStreamWriter {
    request: Value,
    toolbox: Toolbox,
    id: String,
    created_at: i64,
    model: String,
    sequence: u64,
    started: bool,
    /// Output items in order; the last may still be open.
    items: Vec<Item>,
    open: bool,
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
            toolbox: Toolbox::of(request),
            id: new_id("resp"),
            created_at: now(),
            sequence: 0,
            started: false,
            items: Vec::new(),
            open: false,
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

    fn item_value(&self, item: &Item, status: &str) -> Value {
        match item {
            Item::Reasoning { id, text } => reasoning_item(id, text),
            Item::Message { id, text } => message_item(id, text, status),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => call_item(&self.toolbox, id, call_id, name, arguments, status),
        }
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
                .map(|item| self.item_value(item, done))
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
        let index = self.items.len() - 1;
        let (kind, payload) = match &self.items[index] {
            Item::Reasoning { id, text } => {
                let part = json!({"type": "summary_text", "text": text});
                let head = json!({"item_id": id, "output_index": index, "summary_index": 0});
                let mut text_done = head.clone();
                text_done["text"] = json!(text);
                let mut part_done = head;
                part_done["part"] = part;
                self.emit(out, "response.reasoning_summary_text.done", text_done);
                self.emit(out, "response.reasoning_summary_part.done", part_done);
                self.finish_item(out, index);
                return;
            }
            Item::Message { id, text } => {
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                let text_done = json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []});
                let part_done =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part});
                self.emit(out, "response.output_text.done", text_done);
                ("response.content_part.done", part_done)
            }
            Item::Call {
                id,
                name,
                arguments,
                ..
            } => match self.toolbox.declared(name) {
                Some(tool) if tool.kind == ToolKind::Custom => (
                    "response.custom_tool_call_input.done",
                    json!({"item_id": id, "output_index": index, "input": custom_input(arguments)}),
                ),
                _ => (
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "arguments": arguments}),
                ),
            },
        };
        self.emit(out, kind, payload);
        self.finish_item(out, index);
    }

    fn finish_item(&mut self, out: &mut Vec<Bytes>, index: usize) {
        let done = self.item_value(&self.items[index], "completed");
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": done}),
        );
    }

    /// Opens `item` after closing the open one, with its `.added` events.
    fn open_item(&mut self, out: &mut Vec<Bytes>, item: Item) {
        self.close_item(out);
        let index = self.items.len();
        let added = self.item_value(&item, "in_progress");
        let part = match &item {
            Item::Reasoning { id, .. } => Some((
                "response.reasoning_summary_part.added",
                json!({"item_id": id, "output_index": index, "summary_index": 0,
                    "part": {"type": "summary_text", "text": ""}}),
            )),
            Item::Message { id, .. } => Some((
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
            )),
            Item::Call { .. } => None,
        };
        self.items.push(item);
        self.open = true;
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": added}),
        );
        if let Some((kind, payload)) = part {
            self.emit(out, kind, payload);
        }
    }

    /// Reasoning (`reasoning` true) or answer text into the open item of that kind.
    fn text(&mut self, out: &mut Vec<Bytes>, delta: &str, reasoning: bool) {
        let continues = self.open
            && match self.items.last() {
                Some(Item::Reasoning { .. }) => reasoning,
                Some(Item::Message { .. }) => !reasoning,
                _ => false,
            };
        if !continues {
            let text = String::new();
            let item = if reasoning {
                Item::Reasoning {
                    id: new_id("rs"),
                    text,
                }
            } else {
                Item::Message {
                    id: new_id("msg"),
                    text,
                }
            };
            self.open_item(out, item);
        }
        let index = self.items.len() - 1;
        let (kind, payload) = match self.items.last_mut() {
            Some(Item::Reasoning { id, text }) => {
                text.push_str(delta);
                (
                    "response.reasoning_summary_text.delta",
                    json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": delta}),
                )
            }
            Some(Item::Message { id, text }) => {
                text.push_str(delta);
                (
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta, "logprobs": []}),
                )
            }
            _ => return,
        };
        self.emit(out, kind, payload);
    }

    fn tool_call(&mut self, out: &mut Vec<Bytes>, call: &Value) {
        let chat_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
        let continues = self.open
            && matches!(self.items.last(), Some(Item::Call { index, .. }) if *index == chat_index);
        if !continues {
            let field = |pointer: &str| {
                call.pointer(pointer)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            let item = Item::Call {
                id: new_id("fc"),
                call_id: field("/id"),
                name: field("/function/name"),
                arguments: String::new(),
                index: chat_index,
            };
            self.open_item(out, item);
        }
        let delta = call
            .pointer("/function/arguments")
            .and_then(Value::as_str)
            .unwrap_or("");
        if delta.is_empty() {
            return;
        }
        let index = self.items.len() - 1;
        let Some(Item::Call {
            id,
            name,
            arguments,
            ..
        }) = self.items.last_mut()
        else {
            return;
        };
        arguments.push_str(delta);
        // A custom tool's input is a string inside the JSON arguments: it is sent whole at the end.
        if self.toolbox.declared(name).map(|t| t.kind) == Some(ToolKind::Custom) {
            return;
        }
        let payload = json!({"item_id": id, "output_index": index, "delta": delta});
        self.emit(out, "response.function_call_arguments.delta", payload);
    }

    /// One whole OpenAI SSE event in, zero or more Responses events out.
    pub fn push(&mut self, event: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        if self.ended {
            return out;
        }
        let chunk = match read_chunk(event) {
            Chunk::Data(chunk) => chunk,
            Chunk::Done => return self.finish(),
            Chunk::Error(message) => return vec![self.failure(&message)],
            Chunk::Noise => return out,
        };
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
        if let Some(reasoning) = choice.get("delta").and_then(reasoning_text) {
            self.text(&mut out, reasoning, true);
        }
        if let Some(text) = choice
            .pointer("/delta/content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            self.text(&mut out, text, false);
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
