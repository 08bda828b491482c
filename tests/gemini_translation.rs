//! Golden and property tests of the Gemini translation (src/protocol/gemini.rs).
//!
//! Golden fixtures live in tests/fixtures/gemini/: payloads shaped after Google's public
//! generateContent reference (REST, v1beta) and the OpenAI chat format, each input next to the
//! translation it must give. JSON is compared parsed (key order does not matter); streams compare
//! the sequence of event payloads, `"[DONE]"` standing for `data: [DONE]`.

use std::path::PathBuf;

use apiproxy::protocol::Dropped;
use apiproxy::protocol::gemini::{self, StreamTranslator};
use apiproxy::protocol::sse::{SseFramer, event_data};
use bytes::Bytes;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const MODEL: &str = "gemini-2.0-flash";
const CREATED: i64 = 1_736_942_400;

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/gemini")
        .join(name)
}

fn raw_fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn json_fixture(name: &str) -> Value {
    serde_json::from_slice(&raw_fixture(name))
        .unwrap_or_else(|e| panic!("fixture {name} is not JSON: {e}"))
}

fn assert_json_eq(actual: &Value, expected: &Value, context: &str) {
    if actual != expected {
        panic!(
            "{context}: translation differs from the golden file\n--- actual\n{}\n--- expected\n{}",
            serde_json::to_string_pretty(actual).unwrap_or_default(),
            serde_json::to_string_pretty(expected).unwrap_or_default()
        );
    }
}

/// The payload of one translated event: JSON, or the string "[DONE]".
fn payload(event: &Bytes) -> Value {
    let text = std::str::from_utf8(event).expect("events are UTF-8");
    assert!(
        text.starts_with("data: ") && text.ends_with("\n\n"),
        "not a whole data event: {text:?}"
    );
    let data = event_data(event).expect("event has data");
    if data == "[DONE]" {
        return Value::String(data);
    }
    serde_json::from_str(&data).unwrap_or_else(|e| panic!("event data is not JSON ({e}): {data}"))
}

/// Frames a recorded SSE body, pushes each event through a fresh translator, then finishes.
fn translate_stream(body: &[u8], cuts: &[usize]) -> Vec<Value> {
    let mut framer = SseFramer::new();
    let mut translator = StreamTranslator::new(MODEL, CREATED, "chatcmpl-test".into());
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        for event in framer.push(&body[start..cut]).expect("framing") {
            out.extend(translator.push(&event).expect("translation"));
        }
        start = cut;
    }
    if let Some(event) = framer.finish() {
        out.extend(translator.push(&event).expect("translation"));
    }
    out.extend(translator.finish());
    out.iter().map(payload).collect()
}

// ----------------------------------------------------------------------------------------------
// Golden: OpenAI chat request -> Gemini body
// ----------------------------------------------------------------------------------------------

fn golden_request(case: &str) {
    let chat = json_fixture(&format!("request/{case}.chat.json"));
    let expected = json_fixture(&format!("request/{case}.gemini.json"));
    for stream in [false, true] {
        let body = gemini::request_from_chat(&chat, MODEL, stream)
            .unwrap_or_else(|e| panic!("{case}: {e} (param {:?})", e.param));
        assert_json_eq(&body, &expected, case);
    }
}

#[test]
fn golden_request_plain_text() {
    golden_request("plain_text");
}

#[test]
fn golden_request_multi_turn_drops_hints() {
    golden_request("multi_turn");
}

#[test]
fn golden_request_system_prompt() {
    golden_request("system_prompt");
}

#[test]
fn golden_request_image_inline() {
    golden_request("image_inline");
}

#[test]
fn golden_request_image_file_uri() {
    golden_request("image_file_uri");
}

#[test]
fn golden_request_function_call_with_response() {
    golden_request("function_call");
}

#[test]
fn golden_request_parallel_function_calls() {
    golden_request("parallel_function_calls");
}

// ----------------------------------------------------------------------------------------------
// Golden: Gemini answer -> OpenAI chat.completion
// ----------------------------------------------------------------------------------------------

fn golden_response(case: &str) {
    let response = json_fixture(&format!("response/{case}.gemini.json"));
    let expected = json_fixture(&format!("response/{case}.chat.json"));
    let chat = gemini::chat_from_response(&response, MODEL, CREATED)
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_json_eq(&chat, &expected, case);
    // The same answer again gives the same ids.
    let again = gemini::chat_from_response(&response, MODEL, CREATED).expect("second run");
    assert_eq!(chat, again, "{case}: translation is not deterministic");
}

#[test]
fn golden_response_plain_text() {
    golden_response("plain_text");
}

#[test]
fn golden_response_two_candidates() {
    golden_response("two_candidates_max_tokens");
}

#[test]
fn golden_response_function_call() {
    golden_response("function_call");
}

#[test]
fn golden_response_parallel_function_calls() {
    golden_response("parallel_function_calls");
}

#[test]
fn golden_response_blocked_prompt() {
    golden_response("blocked_prompt");
}

#[test]
fn stream_pieces_as_one_json_array_read_like_one_answer() {
    // streamGenerateContent without alt=sse answers one JSON array of the same pieces.
    let body = raw_fixture("stream/text.sse");
    let mut framer = SseFramer::new();
    let pieces: Vec<Value> = framer
        .push(&body)
        .expect("framing")
        .iter()
        .map(|event| serde_json::from_str(&event_data(event).expect("data")).expect("json"))
        .collect();
    let chat = gemini::chat_from_response(&Value::Array(pieces), MODEL, CREATED).expect("array");
    assert_eq!(chat["id"], "chatcmpl-TvKHaIuZD_Gfz7IPlaCj0Qk");
    assert_eq!(
        chat["choices"][0]["message"]["content"],
        "The sky appears blue because of Rayleigh scattering: air molecules scatter short blue \
         wavelengths of sunlight more than red ones.\n"
    );
    assert_eq!(chat["choices"][0]["finish_reason"], "stop");
    assert_eq!(chat["usage"]["total_tokens"], 33);
}

// ----------------------------------------------------------------------------------------------
// Golden: streams
// ----------------------------------------------------------------------------------------------

fn golden_stream(case: &str) {
    let body = raw_fixture(&format!("stream/{case}.sse"));
    let expected = json_fixture(&format!("stream/{case}.chunks.json"));
    let whole = translate_stream(&body, &[]);
    assert_json_eq(&Value::Array(whole.clone()), &expected, case);
    // Upstream chunks may cut events anywhere: every cut gives the same events.
    for cut in (1..body.len()).step_by(7) {
        assert_eq!(
            translate_stream(&body, &[cut]),
            whole,
            "{case}: cut at {cut}"
        );
    }
}

#[test]
fn golden_stream_text() {
    golden_stream("text");
}

#[test]
fn golden_stream_function_call() {
    golden_stream("function_call");
}

#[test]
fn a_stream_without_a_finish_reason_gets_no_done() {
    let body = raw_fixture("stream/text.sse");
    let mut framer = SseFramer::new();
    let events = framer.push(&body).expect("framing");
    let mut translator = StreamTranslator::new(MODEL, CREATED, "chatcmpl-test".into());
    let mut out = Vec::new();
    for event in &events[..events.len() - 1] {
        out.extend(translator.push(event).expect("translation"));
    }
    assert_eq!(out.len(), 3, "role chunk and two text chunks");
    assert!(translator.finish().is_empty());
}

// ----------------------------------------------------------------------------------------------
// Golden: errors
// ----------------------------------------------------------------------------------------------

fn golden_error(case: &str) {
    let input = json_fixture(&format!("error/{case}.json"));
    let expected = json_fixture(&format!("error/{case}.expected.json"));
    let status = input["status"].as_u64().expect("status") as u16;
    let body = serde_json::to_vec(&input["body"]).expect("body");
    let (status, error) = gemini::error_to_chat(status, &body);
    assert_json_eq(&json!({"status": status, "body": error}), &expected, case);
}

#[test]
fn golden_error_resource_exhausted() {
    golden_error("resource_exhausted");
}

#[test]
fn golden_error_list_wrapped() {
    golden_error("invalid_argument_list");
}

#[test]
fn a_non_json_error_body_is_relayed_as_text() {
    let (status, error) = gemini::error_to_chat(504, b"upstream request timeout");
    assert_eq!(status, 504);
    assert_eq!(error["error"]["message"], "upstream request timeout");
    assert_eq!(error["error"]["param"], Value::Null);
}

// ----------------------------------------------------------------------------------------------
// Golden: native Gemini body -> OpenAI chat request
// ----------------------------------------------------------------------------------------------

fn golden_native(case: &str) {
    let request = json_fixture(&format!("native/{case}.gemini.json"));
    let expected = json_fixture(&format!("native/{case}.chat.json"));
    let chat = gemini::chat_request_from_gemini(&request, MODEL, &mut Dropped::new())
        .unwrap_or_else(|e| panic!("{case}: {e} (param {:?})", e.param));
    assert_json_eq(&chat, &expected, case);
}

#[test]
fn golden_native_multimodal_snake_case() {
    golden_native("multimodal");
}

#[test]
fn golden_native_function_calling() {
    golden_native("function_calling");
}

#[test]
fn model_ids_drop_the_models_prefix() {
    assert_eq!(
        gemini::model_id("models/gemini-2.0-flash"),
        "gemini-2.0-flash"
    );
    assert_eq!(gemini::model_id("gemini-2.5-pro"), "gemini-2.5-pro");
}

// ----------------------------------------------------------------------------------------------
// Properties
// ----------------------------------------------------------------------------------------------

/// Keys and strings the translators look at, so arbitrary JSON reaches deep code paths.
const KEYS: &[&str] = &[
    "messages",
    "role",
    "content",
    "type",
    "text",
    "image_url",
    "url",
    "input_audio",
    "file",
    "file_data",
    "data",
    "format",
    "tool_calls",
    "function",
    "name",
    "arguments",
    "tool_call_id",
    "id",
    "tools",
    "parameters",
    "properties",
    "items",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "$defs",
    "enum",
    "const",
    "required",
    "tool_choice",
    "function_call",
    "functions",
    "stop",
    "n",
    "max_tokens",
    "temperature",
    "response_format",
    "json_schema",
    "schema",
    "logprobs",
    "modalities",
    "audio",
    "candidates",
    "index",
    "parts",
    "thought",
    "functionCall",
    "args",
    "functionResponse",
    "response",
    "finishReason",
    "usageMetadata",
    "promptTokenCount",
    "candidatesTokenCount",
    "thoughtsTokenCount",
    "totalTokenCount",
    "promptFeedback",
    "blockReason",
    "responseId",
    "error",
    "code",
    "status",
    "message",
    "contents",
    "systemInstruction",
    "system_instruction",
    "inlineData",
    "inline_data",
    "mimeType",
    "fileData",
    "fileUri",
    "toolConfig",
    "functionCallingConfig",
    "mode",
    "allowedFunctionNames",
    "generationConfig",
    "stopSequences",
    "maxOutputTokens",
    "responseMimeType",
    "responseSchema",
    "functionDeclarations",
];

const WORDS: &[&str] = &[
    "user",
    "assistant",
    "system",
    "developer",
    "tool",
    "function",
    "model",
    "text",
    "image_url",
    "input_audio",
    "file",
    "refusal",
    "data:image/png;base64,AAAA",
    "data:;base64,",
    "data:x",
    "https://example.com/a.png",
    "gs://bucket/a.webp",
    "STOP",
    "MAX_TOKENS",
    "SAFETY",
    "FINISH_REASON_UNSPECIFIED",
    "{\"a\":1}",
    "[1]",
    "",
    "ANY",
    "AUTO",
    "NONE",
    "auto",
    "none",
    "required",
    "json_object",
    "json_schema",
    "#/$defs/A",
    "#",
    "object",
    "string",
    "null",
    "application/json",
    "image/png",
    "audio/wav",
    "RESOURCE_EXHAUSTED",
    "id_1",
];

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1.0e12f64..1.0e12).prop_map(|f| json!(f)),
        prop::sample::select(WORDS).prop_map(|w| json!(w)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS).prop_map(str::to_string),
                        1 => "[a-z$_]{0,8}",
                    ],
                    inner,
                ),
                0..8
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Every translated event is one whole `data: ...\n\n` event with JSON or `[DONE]`.
fn assert_whole_events(events: &[Bytes]) {
    for event in events {
        payload(event);
    }
}

/// A successful Gemini body alternates user/model turns, none of them empty.
fn assert_well_formed_request(body: &Value) {
    let contents = body["contents"].as_array().expect("contents");
    assert!(!contents.is_empty());
    for pair in contents.windows(2) {
        assert_ne!(pair[0]["role"], pair[1]["role"], "turns alternate");
    }
    for content in contents {
        assert!(!content["parts"].as_array().expect("parts").is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn nothing_panics_on_arbitrary_json(value in arb_json(), stream in any::<bool>(), status in any::<u16>()) {
        for model in [MODEL, "gemini-3-pro-preview"] {
            if let Ok(body) = gemini::request_from_chat(&value, model, stream) {
                assert_well_formed_request(&body);
            }
        }
        let wrapped = json!({"messages": value.clone(), "tools": value.clone(), "response_format": value.clone()});
        let _ = gemini::request_from_chat(&wrapped, MODEL, stream);
        let _ = gemini::chat_from_response(&value, MODEL, CREATED);
        let _ = gemini::chat_request_from_gemini(&value, MODEL, &mut Dropped::new());
        let wrapped = json!({"contents": value.clone(), "tools": value.clone(), "generationConfig": value.clone()});
        let _ = gemini::chat_request_from_gemini(&wrapped, MODEL, &mut Dropped::new());
        let (same, error) = gemini::error_to_chat(status, value.to_string().as_bytes());
        prop_assert_eq!(same, status);
        prop_assert!(error["error"]["message"].is_string());
        let mut translator = StreamTranslator::new(MODEL, CREATED, "chatcmpl-prop".into());
        for event in [format!("data: {value}\n\n"), format!("data: {}\n\n", json!({"candidates": [value.clone()]}))] {
            if let Ok(events) = translator.push(event.as_bytes()) {
                assert_whole_events(&events);
            }
        }
        assert_whole_events(&translator.finish());
    }

    #[test]
    fn nothing_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), text in ".{0,64}") {
        let mut translator = StreamTranslator::new(MODEL, CREATED, "chatcmpl-prop".into());
        for event in [bytes.clone(), [b"data: ".as_slice(), &bytes].concat(), format!("data: {text}\n\n").into_bytes()] {
            if let Ok(events) = translator.push(&event) {
                assert_whole_events(&events);
            }
        }
        assert_whole_events(&translator.finish());
        let _ = gemini::error_to_chat(500, &bytes);
        let _ = gemini::model_id(&text);
    }

    #[test]
    fn a_simple_chat_survives_the_round_trip(chat in arb_chat()) {
        round_trip(&chat)?;
    }
}

#[derive(Debug, Clone)]
struct Turn {
    user: String,
    text: Option<String>,
    calls: Vec<(String, Value, String)>,
}

#[derive(Debug, Clone)]
struct SimpleChat {
    system: Option<String>,
    turns: Vec<Turn>,
}

fn arb_text() -> impl Strategy<Value = String> {
    "[a-zA-Z][a-zA-Z0-9 ,.!?é]{0,24}"
}

fn arb_args() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            "[a-z]{1,6}",
            prop_oneof![
                any::<i32>().prop_map(|n| json!(n)),
                any::<bool>().prop_map(Value::Bool),
                arb_text().prop_map(Value::String),
                prop::collection::vec(any::<i16>(), 0..3).prop_map(|v| json!(v)),
            ],
        ),
        0..4,
    )
    .prop_map(|fields| Value::Object(fields.into_iter().collect()))
}

fn arb_chat() -> impl Strategy<Value = SimpleChat> {
    let call = ("[a-z_]{1,8}", arb_args(), arb_text());
    let turn = (
        arb_text(),
        prop::option::of(arb_text()),
        prop::collection::vec(call, 0..4),
    )
        .prop_map(|(user, text, calls)| Turn {
            user,
            // An assistant turn says something: text, calls or both.
            text: if calls.is_empty() && text.is_none() {
                Some("ok".into())
            } else {
                text
            },
            calls,
        });
    (
        prop::option::of(arb_text()),
        prop::collection::vec(turn, 1..5),
    )
        .prop_map(|(system, turns)| SimpleChat { system, turns })
}

fn chat_messages(chat: &SimpleChat) -> Vec<Value> {
    let mut messages = Vec::new();
    if let Some(system) = &chat.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (t, turn) in chat.turns.iter().enumerate() {
        messages.push(json!({"role": "user", "content": turn.user}));
        let mut assistant = json!({"role": "assistant", "content": turn.text});
        if !turn.calls.is_empty() {
            assistant["tool_calls"] = turn
                .calls
                .iter()
                .enumerate()
                .map(|(k, (name, args, _))| {
                    json!({"id": format!("id_{t}_{k}"), "type": "function",
                           "function": {"name": name, "arguments": args.to_string()}})
                })
                .collect();
        }
        messages.push(assistant);
        for (k, (_, _, result)) in turn.calls.iter().enumerate() {
            messages.push(
                json!({"role": "tool", "tool_call_id": format!("id_{t}_{k}"), "content": result}),
            );
        }
    }
    messages
}

fn round_trip(chat: &SimpleChat) -> Result<(), TestCaseError> {
    let original = chat_messages(chat);
    let body =
        gemini::request_from_chat(&json!({"model": MODEL, "messages": original}), MODEL, false)
            .map_err(|e| TestCaseError::fail(format!("forward: {e} ({:?})", e.param)))?;
    assert_well_formed_request(&body);
    let back = gemini::chat_request_from_gemini(&body, MODEL, &mut Dropped::new())
        .map_err(|e| TestCaseError::fail(format!("back: {e} ({:?})", e.param)))?;
    prop_assert_eq!(&back["model"], MODEL);
    let back = back["messages"].as_array().cloned().unwrap_or_default();
    prop_assert_eq!(back.len(), original.len(), "{:#?}", back);
    // The ids of the back-translated calls, by original id.
    let mut ids: std::collections::HashMap<String, String> = Default::default();
    for (before, after) in original.iter().zip(&back) {
        prop_assert_eq!(&before["role"], &after["role"]);
        prop_assert_eq!(&before["content"], &after["content"]);
        let calls_before = before["tool_calls"].as_array().cloned().unwrap_or_default();
        let calls_after = after["tool_calls"].as_array().cloned().unwrap_or_default();
        prop_assert_eq!(calls_before.len(), calls_after.len());
        for (a, b) in calls_before.iter().zip(&calls_after) {
            prop_assert_eq!(&a["function"]["name"], &b["function"]["name"]);
            prop_assert_eq!(&a["function"]["arguments"], &b["function"]["arguments"]);
            prop_assert_eq!(&b["type"], "function");
            ids.insert(
                a["id"].as_str().unwrap_or_default().to_string(),
                b["id"].as_str().unwrap_or_default().to_string(),
            );
        }
        if before["role"] == "tool" {
            let expected = ids.get(before["tool_call_id"].as_str().unwrap_or_default());
            prop_assert_eq!(expected.map(String::as_str), after["tool_call_id"].as_str());
        }
    }
    Ok(())
}
