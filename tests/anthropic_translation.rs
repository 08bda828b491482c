//! Golden and property tests of the OpenAI chat <-> Anthropic Messages translation
//! (src/protocol/anthropic.rs). Fixtures live in tests/fixtures/anthropic/: `<case>.chat.*` is the
//! OpenAI side, `<case>.anthropic.*` / `<case>.messages.*` the Anthropic side. Where each file's
//! shape comes from (a vendor's published example, verbatim or adapted, or written by hand to a
//! reference page) is recorded in tests/fixtures/SOURCES.md (checked by tests/fixture_sources.rs).

use std::path::PathBuf;

use apiproxy::protocol::Dropped;
use apiproxy::protocol::anthropic::{
    MessagesStreamWriter, StreamTranslator, chat_from_response, chat_request_from_messages,
    error_from_chat, error_to_chat, messages_response_from_chat, request_from_chat,
};
use apiproxy::protocol::sse::{SseFramer, event_data, event_name};
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const MODEL: &str = "claude-sonnet-4-5-20250929";
const CREATED: i64 = 1_700_000_000;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anthropic")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).unwrap_or_else(|e| panic!("parsing {name}: {e}"))
}

/// The whole events of an SSE file, as the gateway's framer cuts them.
fn sse_events(bytes: &[u8]) -> Vec<Bytes> {
    let mut framer = SseFramer::new();
    let mut events = framer.push(bytes).expect("fixture events are small");
    events.extend(framer.finish());
    events
}

/// One event, parsed for comparison: its `event:` name and its data (JSON, or the raw text for
/// `[DONE]`).
fn parsed_event(event: &[u8]) -> (Option<String>, Value) {
    let data = event_data(event)
        .unwrap_or_else(|| panic!("event without data: {:?}", String::from_utf8_lossy(event)));
    let data = data.trim();
    let value = if data == "[DONE]" {
        Value::String("[DONE]".into())
    } else {
        serde_json::from_str(data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"))
    };
    (event_name(event).map(str::to_string), value)
}

fn assert_events_eq(got: &[Bytes], expected_file: &str) {
    let expected: Vec<_> = sse_events(&fixture(expected_file))
        .iter()
        .map(|e| parsed_event(e))
        .collect();
    let got: Vec<_> = got.iter().map(|e| parsed_event(e)).collect();
    for (i, (g, e)) in got.iter().zip(expected.iter()).enumerate() {
        assert_eq!(g, e, "{expected_file}: event {i} differs");
    }
    assert_eq!(
        got.len(),
        expected.len(),
        "{expected_file}: number of events"
    );
}

/// Every OpenAI event the translator writes is exactly `data: <one line>\n\n`.
fn assert_openai_framing(events: &[Bytes]) {
    for event in events {
        let text = std::str::from_utf8(event).expect("utf-8");
        let body = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap_or_else(|| panic!("bad framing: {text:?}"));
        assert!(!body.contains('\n'), "one line of data: {text:?}");
        assert!(body == "[DONE]" || serde_json::from_str::<Value>(body).is_ok());
    }
}

/// Every Anthropic event the writer emits is exactly `event: <type>\ndata: <json>\n\n` and the
/// data's `type` matches the event name.
fn assert_anthropic_framing(events: &[Bytes]) {
    for event in events {
        let text = std::str::from_utf8(event).expect("utf-8");
        let mut lines = text
            .strip_suffix("\n\n")
            .expect("blank line end")
            .split('\n');
        let name = lines
            .next()
            .and_then(|l| l.strip_prefix("event: "))
            .expect("event line");
        let data = lines
            .next()
            .and_then(|l| l.strip_prefix("data: "))
            .expect("data line");
        assert!(lines.next().is_none(), "two lines only: {text:?}");
        let payload: Value = serde_json::from_str(data).expect("JSON data");
        assert_eq!(payload["type"], name);
    }
}

// ------------------------------------------------------------------------------------------
// Golden: hub -> Anthropic requests
// ------------------------------------------------------------------------------------------

fn golden_request(case: &str, stream: bool) {
    let chat = json_fixture(&format!("{case}.chat.json"));
    let expected = json_fixture(&format!("{case}.anthropic.json"));
    let got = request_from_chat(&chat, MODEL, stream).expect("translates");
    assert_eq!(got, expected, "{case}:\n{got:#}");
}

#[test]
fn golden_request_plain_text() {
    golden_request("request_plain_text", false);
}

#[test]
fn golden_request_multi_turn_merges_roles_and_drops_openai_only_hints() {
    golden_request("request_multi_turn", true);
}

#[test]
fn golden_request_system_and_sampling() {
    golden_request("request_system", false);
}

#[test]
fn golden_request_images_base64_and_url() {
    golden_request("request_image", false);
}

#[test]
fn golden_request_tool_call_with_its_result() {
    golden_request("request_tool_result", false);
}

#[test]
fn golden_request_parallel_tool_calls() {
    golden_request("request_parallel_tools", false);
}

// ------------------------------------------------------------------------------------------
// Golden: Anthropic answers -> hub
// ------------------------------------------------------------------------------------------

fn golden_response(case: &str) {
    let response = json_fixture(&format!("{case}.anthropic.json"));
    let expected = json_fixture(&format!("{case}.chat.json"));
    let got = chat_from_response(&response, "fallback-model", CREATED).expect("translates");
    assert_eq!(got, expected, "{case}:\n{got:#}");
}

#[test]
fn golden_response_text() {
    golden_response("response_text");
}

#[test]
fn golden_response_tool_use_with_thinking() {
    golden_response("response_tool_use");
}

#[test]
fn golden_response_parallel_tool_use_and_cache_usage() {
    golden_response("response_parallel_tool_use");
}

#[test]
fn golden_response_max_tokens() {
    golden_response("response_max_tokens");
}

fn golden_error(case: &str, status: u16, extension: &str) {
    let body = fixture(&format!("{case}.anthropic.{extension}"));
    let expected = json_fixture(&format!("{case}.chat.json"));
    let (status, got) = error_to_chat(status, &body);
    assert_eq!(json!({"status": status, "body": got}), expected, "{case}");
}

#[test]
fn golden_error_body() {
    golden_error("error_invalid_request", 400, "json");
}

#[test]
fn golden_error_529_becomes_retryable_503() {
    golden_error("error_overloaded", 529, "json");
}

#[test]
fn golden_error_not_found_published_example() {
    // Verbatim the example of Anthropic's "Errors" page (error shapes).
    golden_error("error_not_found", 404, "json");
}

#[test]
fn golden_error_not_json() {
    golden_error("error_not_json", 502, "txt");
}

fn golden_stream(case: &str) -> Vec<Bytes> {
    let mut translator = StreamTranslator::new(MODEL, CREATED, "chatcmpl-test".into());
    let mut out = Vec::new();
    for event in sse_events(&fixture(&format!("{case}.anthropic.sse"))) {
        out.extend(translator.push(&event).expect("valid events"));
    }
    out.extend(translator.finish());
    assert_openai_framing(&out);
    assert_events_eq(&out, &format!("{case}.chat.sse"));
    out
}

#[test]
fn golden_stream_text() {
    golden_stream("stream_text");
}

#[test]
fn golden_stream_tool_calls_with_input_json_delta() {
    golden_stream("stream_tool_use");
}

#[test]
fn golden_stream_published_tool_use_example() {
    // Verbatim the "Streaming request with tool use" response of Anthropic's streaming page.
    golden_stream("stream_tool_use_example");
}

#[test]
fn golden_stream_published_thinking_example_without_usage() {
    // Verbatim the "Streaming request with extended thinking" response of Anthropic's streaming
    // page: its message_start and message_delta carry no usage at all.
    golden_stream("stream_thinking_example");
}

#[test]
fn golden_stream_error_event_ends_without_done() {
    let out = golden_stream("stream_error");
    assert!(!out.iter().any(|e| e.as_ref() == b"data: [DONE]\n\n"));
}

#[test]
fn a_stream_split_anywhere_by_the_framer_translates_the_same() {
    let raw = fixture("stream_tool_use.anthropic.sse");
    let translate = |chunks: &[&[u8]]| {
        let mut framer = SseFramer::new();
        let mut translator = StreamTranslator::new(MODEL, CREATED, "chatcmpl-test".into());
        let mut out = Vec::new();
        for chunk in chunks {
            for event in framer.push(chunk).unwrap() {
                out.extend(translator.push(&event).unwrap());
            }
        }
        out
    };
    let whole = translate(&[&raw]);
    for cut in (0..raw.len()).step_by(7) {
        assert_eq!(
            translate(&[&raw[..cut], &raw[cut..]]),
            whole,
            "cut at {cut}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Golden: the /v1/messages ingress (Anthropic -> hub -> Anthropic)
// ------------------------------------------------------------------------------------------

fn golden_ingress_request(case: &str) {
    let request = json_fixture(&format!("{case}.messages.json"));
    let expected = json_fixture(&format!("{case}.chat.json"));
    let got = chat_request_from_messages(&request, &mut Dropped::new()).expect("translates");
    assert_eq!(got, expected, "{case}:\n{got:#}");
}

#[test]
fn golden_ingress_request_text_system_blocks_and_sampling() {
    golden_ingress_request("ingress_request_text");
}

#[test]
fn golden_ingress_request_tools_images_and_results() {
    golden_ingress_request("ingress_request_tools");
}

fn golden_ingress_response(case: &str) {
    let chat = json_fixture(&format!("{case}.chat.json"));
    let expected = json_fixture(&format!("{case}.messages.json"));
    let got = messages_response_from_chat(&chat, "claude-sonnet-4-5").expect("translates");
    assert_eq!(got, expected, "{case}:\n{got:#}");
}

#[test]
fn golden_ingress_response_text() {
    golden_ingress_response("ingress_response_text");
}

#[test]
fn golden_ingress_response_tool_calls() {
    golden_ingress_response("ingress_response_tool_calls");
}

#[test]
fn golden_ingress_error() {
    let body = fixture("ingress_error_rate_limit.chat.json");
    let expected = json_fixture("ingress_error_rate_limit.messages.json");
    assert_eq!(error_from_chat(429, &body), expected);
}

fn golden_ingress_stream(case: &str) {
    let mut writer = MessagesStreamWriter::new("claude-sonnet-4-5", "msg_test".into());
    let mut out = Vec::new();
    for event in sse_events(&fixture(&format!("{case}.chat.sse"))) {
        out.extend(writer.push(&event));
    }
    out.extend(writer.finish());
    assert_anthropic_framing(&out);
    assert_events_eq(&out, &format!("{case}.messages.sse"));
}

#[test]
fn golden_ingress_stream_text_with_trailing_usage_chunk() {
    golden_ingress_stream("ingress_stream_text");
}

#[test]
fn golden_ingress_stream_tool_calls() {
    golden_ingress_stream("ingress_stream_tool_calls");
}

#[test]
fn golden_ingress_stream_error() {
    golden_ingress_stream("ingress_stream_error");
}

// ------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------

const KEYS: &[&str] = &[
    "type",
    "role",
    "content",
    "text",
    "messages",
    "tool_calls",
    "function",
    "arguments",
    "name",
    "id",
    "image_url",
    "url",
    "source",
    "media_type",
    "data",
    "tool_call_id",
    "tool_use_id",
    "input",
    "index",
    "delta",
    "choices",
    "usage",
    "error",
    "message",
    "stop_reason",
    "finish_reason",
    "tools",
    "tool_choice",
    "system",
    "n",
    "stop",
    "max_tokens",
    "temperature",
    "content_block",
    "partial_json",
    "parameters",
    "input_schema",
    "thinking",
    "refusal",
    "prompt_tokens",
    "completion_tokens",
    "input_tokens",
    "output_tokens",
    "stop_sequences",
    "metadata",
    "user_id",
    "user",
    "stream",
    "parallel_tool_calls",
    "disable_parallel_tool_use",
    "response_format",
    "logprobs",
    "audio",
    "modalities",
    "top_p",
    "top_k",
    "max_completion_tokens",
    "model",
];

const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "text",
    "image_url",
    "image",
    "input_audio",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
    "auto",
    "none",
    "required",
    "any",
    "base64",
    "url",
    "custom",
    "data:image/png;base64,AAAA",
    "data:,x",
    "https://example.com/a.png",
    "ftp://x",
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "text_delta",
    "input_json_delta",
    "thinking_delta",
    "signature_delta",
    "end_turn",
    "tool_use",
    "max_tokens",
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "{\"a\":1}",
    "{}",
    "[1]",
    "",
    "[DONE]",
    "audio",
];

fn arb_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (0u64..5).prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(WORDS).prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    arb_leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        prop::sample::select(KEYS).prop_map(str::to_string),
                        ".{0,6}"
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

const EVENT_NAMES: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
    "unknown",
];

/// An SSE event: arbitrary bytes, or a well-framed event with arbitrary JSON data, or `[DONE]`.
fn arb_event() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (prop::sample::select(EVENT_NAMES), arb_json()).prop_map(|(name, mut data)| {
            if let Value::Object(map) = &mut data {
                map.entry("type").or_insert_with(|| Value::from(name));
            }
            format!("event: {name}\ndata: {data}\n\n").into_bytes()
        }),
        arb_json().prop_map(|data| format!("data: {data}\n\n").into_bytes()),
        Just(b"data: [DONE]\n\n".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_function_panics_on_any_json(value in arb_json(), stream in any::<bool>(), status in any::<u16>()) {
        let _ = request_from_chat(&value, "m", stream);
        let _ = chat_from_response(&value, "m", CREATED);
        let _ = chat_request_from_messages(&value, &mut Dropped::new());
        let _ = messages_response_from_chat(&value, "m");
        let text = value.to_string();
        let (_, body) = error_to_chat(status, text.as_bytes());
        prop_assert!(body["error"]["message"].is_string());
        let body = error_from_chat(status, text.as_bytes());
        prop_assert_eq!(&body["type"], "error");
        // The same value as a request's messages or an answer's content gets deeper coverage.
        let _ = request_from_chat(&json!({"messages": [value.clone()], "tools": [value.clone()]}), "m", stream);
        let _ = request_from_chat(&json!({"messages": [{"role": "user", "content": [value.clone()]}, {"role": "assistant", "tool_calls": [value.clone()]}]}), "m", stream);
        let _ = chat_request_from_messages(&json!({"messages": [{"role": "user", "content": [value.clone()]}, {"role": "assistant", "content": [value.clone()]}, {"role": "system", "content": [value.clone()]}], "system": [value.clone()], "tools": [value.clone()], "tool_choice": value.clone(), "thinking": value.clone()}), &mut Dropped::new());
        let _ = chat_from_response(&json!({"content": [value.clone()], "usage": value.clone()}), "m", CREATED);
        let _ = messages_response_from_chat(&json!({"choices": [{"message": value.clone(), "finish_reason": value.clone()}]}), "m");
    }

    #[test]
    fn no_function_panics_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256), status in any::<u16>()) {
        let _ = error_to_chat(status, &bytes);
        let _ = error_from_chat(status, &bytes);
        let mut translator = StreamTranslator::new("m", CREATED, "chatcmpl-x".into());
        let _ = translator.push(&bytes);
        let _ = translator.finish();
        let mut writer = MessagesStreamWriter::new("m", "msg_x".into());
        let _ = writer.push(&bytes);
        let _ = writer.finish();
    }

    #[test]
    fn streams_never_panic_and_stay_well_formed(events in prop::collection::vec(arb_event(), 0..24)) {
        let mut translator = StreamTranslator::new("m", CREATED, "chatcmpl-x".into());
        let mut writer = MessagesStreamWriter::new("m", "msg_x".into());
        let mut chat_out = Vec::new();
        let mut messages_out = Vec::new();
        for event in &events {
            if let Ok(out) = translator.push(event) {
                chat_out.extend(out);
            }
            messages_out.extend(writer.push(event));
        }
        chat_out.extend(translator.finish());
        messages_out.extend(writer.finish());
        messages_out.extend(writer.finish());
        assert_openai_framing(&chat_out);
        assert_anthropic_framing(&messages_out);
        let done = chat_out.iter().filter(|e| e.as_ref() == b"data: [DONE]\n\n").count();
        prop_assert!(done <= 1);
        if done == 1 {
            prop_assert_eq!(chat_out.last().map(|e| e.as_ref()), Some(&b"data: [DONE]\n\n"[..]));
        }
        let stops = messages_out.iter().filter(|e| e.starts_with(b"event: message_stop")).count();
        let errors = messages_out.iter().filter(|e| e.starts_with(b"event: error")).count();
        prop_assert_eq!(stops + errors, 1, "one ending, nothing after it");
        prop_assert!(messages_out.last().is_some_and(|e| e.starts_with(b"event: message_stop") || e.starts_with(b"event: error")));
    }
}

// --- round trip: chat -> Anthropic -> chat -------------------------------------------------

#[derive(Debug, Clone)]
struct Call {
    id: String,
    name: String,
    arguments: Map<String, Value>,
    result: String,
}

#[derive(Debug, Clone)]
struct Exchange {
    user: String,
    assistant: String,
    calls: Vec<Call>,
}

fn arb_arguments() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::vec(
        (
            "[a-z_]{1,8}",
            prop_oneof![
                ".{0,10}".prop_map(Value::String),
                any::<i64>().prop_map(Value::from),
                any::<bool>().prop_map(Value::Bool),
                prop::collection::vec(any::<i32>().prop_map(Value::from), 0..3)
                    .prop_map(Value::Array),
            ],
        ),
        0..4,
    )
    .prop_map(|entries| entries.into_iter().collect())
}

fn arb_exchange() -> impl Strategy<Value = Exchange> {
    (
        ".{1,20}",
        ".{0,20}",
        prop::collection::vec(
            (
                "[A-Za-z0-9]{1,10}",
                "[a-z_]{1,12}",
                arb_arguments(),
                ".{0,12}",
            ),
            0..3,
        ),
    )
        .prop_map(|(user, assistant, calls)| Exchange {
            user,
            assistant,
            calls: calls
                .into_iter()
                .enumerate()
                .map(|(k, (id, name, arguments, result))| Call {
                    id: format!("toolu_{k}_{id}"),
                    name,
                    arguments,
                    result,
                })
                .collect(),
        })
}

fn build_chat(system: &Option<String>, exchanges: &[Exchange]) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for exchange in exchanges {
        messages.push(json!({"role": "user", "content": exchange.user}));
        let mut assistant = json!({"role": "assistant", "content": exchange.assistant});
        if !exchange.calls.is_empty() {
            let calls: Vec<Value> = exchange
                .calls
                .iter()
                .map(|c| {
                    json!({"id": c.id, "type": "function", "function": {
                        "name": c.name,
                        "arguments": Value::Object(c.arguments.clone()).to_string(),
                    }})
                })
                .collect();
            assistant["tool_calls"] = Value::Array(calls);
        }
        messages.push(assistant);
        for call in &exchange.calls {
            messages.push(json!({"role": "tool", "tool_call_id": call.id, "content": call.result}));
        }
    }
    json!({"model": "m", "messages": messages})
}

/// What must survive the round trip: per message its role, text, tool calls (id, name, parsed
/// arguments) and tool_call_id. Text parts and plain strings are the same text; a null content is
/// empty text.
/// (role, text, tool calls as (id, name, arguments), tool_call_id) per message.
type Normalized = Vec<(String, String, Vec<(String, String, Value)>, Option<String>)>;

fn normalize(chat: &Value) -> Normalized {
    chat["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            let text = match &m["content"] {
                Value::String(s) => s.clone(),
                Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect(),
                _ => String::new(),
            };
            let calls = m["tool_calls"]
                .as_array()
                .map(|calls| {
                    calls
                        .iter()
                        .map(|c| {
                            let args: Value = serde_json::from_str(
                                c["function"]["arguments"]
                                    .as_str()
                                    .expect("arguments string"),
                            )
                            .expect("arguments JSON");
                            (
                                c["id"].as_str().unwrap_or("").to_string(),
                                c["function"]["name"].as_str().unwrap_or("").to_string(),
                                args,
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            (
                m["role"].as_str().unwrap_or("").to_string(),
                text,
                calls,
                m["tool_call_id"].as_str().map(str::to_string),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_simple_chat_survives_the_round_trip(
        system in prop::option::of(".{1,20}"),
        exchanges in prop::collection::vec(arb_exchange(), 1..5),
    ) {
        let chat = build_chat(&system, &exchanges);
        let anthropic = request_from_chat(&chat, "claude", false).expect("simple chats translate");
        let mut back = chat_request_from_messages(&anthropic, &mut Dropped::new()).expect("and come back");
        prop_assert_eq!(&back["model"], "claude");
        back["model"] = Value::from("m");
        prop_assert_eq!(normalize(&back), normalize(&chat));
    }

    #[test]
    fn a_simple_answer_survives_the_round_trip(
        text in ".{0,20}",
        calls in prop::collection::vec(("[A-Za-z0-9]{1,10}", "[a-z_]{1,12}", arb_arguments()), 0..3),
        input_tokens in 0u64..1_000_000,
        output_tokens in 0u64..1_000_000,
    ) {
        let mut content = Vec::new();
        if !text.is_empty() {
            content.push(json!({"type": "text", "text": text}));
        }
        for (id, name, arguments) in &calls {
            content.push(json!({"type": "tool_use", "id": id, "name": name, "input": arguments}));
        }
        let stop = if calls.is_empty() { "end_turn" } else { "tool_use" };
        let message = json!({
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude",
            "content": content, "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        });
        let chat = chat_from_response(&message, "claude", CREATED).expect("translates");
        let back = messages_response_from_chat(&chat, "claude").expect("and comes back");
        prop_assert_eq!(back, message);
    }
}

#[test]
fn rejections_name_the_field() {
    let cases = [
        (json!({"messages": [], "n": 2}), "n"),
        (json!({"messages": [], "logprobs": true}), "logprobs"),
        (
            json!({"messages": [], "response_format": {"type": "xml"}}),
            "response_format.type",
        ),
        (
            json!({"messages": [], "audio": {"voice": "alloy"}}),
            "audio",
        ),
        (
            json!({"messages": [], "modalities": ["text", "audio"]}),
            "modalities",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {}}]}]}),
            "messages[0].content[0].type",
        ),
        (
            json!({"messages": [{"role": "narrator", "content": "x"}]}),
            "messages[0].role",
        ),
        (json!({"messages": [{"content": "x"}]}), "messages[0].role"),
        (
            json!({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "[1,2]"}}
            ]}]}),
            "messages[1].tool_calls[1].function.arguments",
        ),
    ];
    for (chat, param) in cases {
        let err = request_from_chat(&chat, MODEL, false).expect_err(param);
        assert_eq!(err.param.as_deref(), Some(param), "{chat}");
        assert!(!err.message.is_empty());
    }
}

// --- stream round trip: Anthropic events -> chat chunks -> Anthropic events ------------------

#[derive(Debug, Clone, PartialEq)]
enum StreamBlock {
    Text(String),
    Tool {
        id: String,
        name: String,
        arguments: String,
    },
}

fn arb_stream_block() -> impl Strategy<Value = Vec<StreamBlockPieces>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(".{0,8}", 0..4).prop_map(StreamBlockPieces::Text),
            (
                "[A-Za-z0-9]{1,10}",
                "[a-z_]{1,10}",
                prop::collection::vec(".{0,8}", 0..4)
            )
                .prop_map(|(id, name, pieces)| StreamBlockPieces::Tool {
                    id: format!("toolu_{id}"),
                    name,
                    pieces
                }),
        ],
        0..5,
    )
}

#[derive(Debug, Clone)]
enum StreamBlockPieces {
    Text(Vec<String>),
    Tool {
        id: String,
        name: String,
        pieces: Vec<String>,
    },
}

fn anthropic_sse(kind: &str, payload: Value) -> Vec<u8> {
    format!("event: {kind}\ndata: {payload}\n\n").into_bytes()
}

/// The content of an Anthropic event stream as blocks, with consecutive text blocks merged and
/// empty ones dropped (chat has one text channel, so block boundaries between texts are not
/// kept), plus the stop reason and the usage of the last message_delta.
fn reassemble(events: &[Vec<u8>]) -> (Vec<StreamBlock>, Option<Value>, Option<Value>) {
    let mut blocks: Vec<StreamBlock> = Vec::new();
    let mut stop = None;
    let mut usage = None;
    for event in events {
        let Some(data) = event_data(event) else {
            continue;
        };
        let payload: Value = serde_json::from_str(&data).expect("JSON");
        match payload["type"].as_str().unwrap_or("") {
            "content_block_start" => {
                let block = &payload["content_block"];
                if block["type"] == "tool_use" {
                    blocks.push(StreamBlock::Tool {
                        id: block["id"].as_str().unwrap_or("").into(),
                        name: block["name"].as_str().unwrap_or("").into(),
                        arguments: String::new(),
                    });
                } else {
                    blocks.push(StreamBlock::Text(String::new()));
                }
            }
            "content_block_delta" => match (blocks.last_mut(), &payload["delta"]) {
                (Some(StreamBlock::Text(text)), delta) => {
                    text.push_str(delta["text"].as_str().unwrap_or(""))
                }
                (Some(StreamBlock::Tool { arguments, .. }), delta) => {
                    arguments.push_str(delta["partial_json"].as_str().unwrap_or(""))
                }
                (None, _) => panic!("delta before any block"),
            },
            "message_delta" => {
                stop = Some(payload["delta"]["stop_reason"].clone());
                usage = Some(payload["usage"].clone());
            }
            _ => {}
        }
    }
    let mut merged: Vec<StreamBlock> = Vec::new();
    for block in blocks {
        match (merged.last_mut(), block) {
            (_, StreamBlock::Text(text)) if text.is_empty() => {}
            (Some(StreamBlock::Text(previous)), StreamBlock::Text(text)) => {
                previous.push_str(&text)
            }
            (_, block) => merged.push(block),
        }
    }
    (merged, stop, usage)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn a_stream_survives_anthropic_to_chat_to_anthropic(
        blocks in arb_stream_block(),
        stop in prop::sample::select(&["end_turn", "max_tokens", "tool_use"][..]),
        input_tokens in 0u64..100_000,
        output_tokens in 0u64..100_000,
    ) {
        let mut upstream = vec![anthropic_sse("message_start", json!({"type": "message_start", "message": {
            "id": "msg_up", "type": "message", "role": "assistant", "model": "claude", "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}))];
        for (index, block) in blocks.iter().enumerate() {
            let (start, deltas): (Value, Vec<Value>) = match block {
                StreamBlockPieces::Text(pieces) => (
                    json!({"type": "text", "text": ""}),
                    pieces.iter().map(|p| json!({"type": "text_delta", "text": p})).collect(),
                ),
                StreamBlockPieces::Tool { id, name, pieces } => (
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    pieces.iter().map(|p| json!({"type": "input_json_delta", "partial_json": p})).collect(),
                ),
            };
            upstream.push(anthropic_sse("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": start})));
            if index == 0 {
                upstream.push(anthropic_sse("ping", json!({"type": "ping"})));
            }
            for delta in deltas {
                upstream.push(anthropic_sse("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": delta})));
            }
            upstream.push(anthropic_sse("content_block_stop", json!({"type": "content_block_stop", "index": index})));
        }
        upstream.push(anthropic_sse("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
        upstream.push(anthropic_sse("message_stop", json!({"type": "message_stop"})));

        let mut translator = StreamTranslator::new("claude", CREATED, "chatcmpl-rt".into());
        let mut writer = MessagesStreamWriter::new("claude", "msg_rt".into());
        let mut chunks = Vec::new();
        let mut downstream: Vec<Vec<u8>> = Vec::new();
        for event in &upstream {
            for chunk in translator.push(event).expect("valid stream") {
                downstream.extend(writer.push(&chunk).into_iter().map(|b| b.to_vec()));
                chunks.push(chunk);
            }
        }
        for chunk in translator.finish() {
            downstream.extend(writer.push(&chunk).into_iter().map(|b| b.to_vec()));
            chunks.push(chunk);
        }
        downstream.extend(writer.finish().into_iter().map(|b| b.to_vec()));
        assert_openai_framing(&chunks);
        prop_assert_eq!(chunks.last().map(|c| c.as_ref()), Some(&b"data: [DONE]\n\n"[..]));
        let (expected_blocks, _, _) = reassemble(&upstream);
        let (got_blocks, got_stop, got_usage) = reassemble(&downstream);
        prop_assert_eq!(got_blocks, expected_blocks);
        // A turn with tool calls that "just stopped" is reported as tool_use (clients loop on it).
        let has_tools = blocks.iter().any(|b| matches!(b, StreamBlockPieces::Tool { .. }));
        let expected_stop = if has_tools && stop == "end_turn" { "tool_use" } else { stop };
        prop_assert_eq!(got_stop, Some(Value::from(expected_stop)));
        prop_assert_eq!(got_usage, Some(json!({"input_tokens": input_tokens, "output_tokens": output_tokens})));
        prop_assert_eq!(downstream.iter().filter(|e| e.starts_with(b"event: message_stop")).count(), 1);
    }
}

/// A JSON `response_format` becomes a system instruction (Anthropic has no JSON mode every model
/// takes), and `top_p` gives way to `temperature`, which recent Claude models refuse together.
#[test]
fn json_formats_become_instructions_and_temperature_wins_over_top_p() {
    let chat = json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        "temperature": 1, "top_p": 0.95,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": {"type": "object",
            "properties": {"next_speaker": {"type": "string"}}}}}});
    let request = request_from_chat(&chat, "claude", false).expect("translates");
    let system = request["system"].as_str().unwrap_or_default();
    assert!(
        system.starts_with("Be brief.\n\nAnswer with one JSON object"),
        "{system}"
    );
    assert!(system.contains(r#""next_speaker""#), "{system}");
    assert_eq!(request["temperature"], 1.0);
    assert!(request.get("top_p").is_none(), "{request}");
    let object = json!({"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}});
    let request = request_from_chat(&object, "claude", false).expect("translates");
    assert!(
        request["system"]
            .as_str()
            .unwrap_or_default()
            .contains("JSON object")
    );
}
