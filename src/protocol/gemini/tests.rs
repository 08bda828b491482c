//! Unit tests of the Gemini translation.

use bytes::Bytes;
use serde_json::{Value, json};

use super::answer::finish_reason;
use super::request::{PLACEHOLDER_SIGNATURE, image_part, needs_thought_signature};
use super::schema::clean_schema;
use super::*;
use crate::protocol::Dropped;
use crate::protocol::sse;

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
    let body =
        br#"[{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}]"#;
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
    assert_eq!(events.len(), 3);
    let finish = data_of(&events[1]);
    assert_eq!(finish["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(data_of(&events[2])["usage"]["prompt_tokens"], 7);
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
    let chat = chat_request_from_gemini(&request, "gemini-2.0-flash", &mut Dropped::new()).unwrap();
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
        chat_request_from_gemini(&unknown, "m", &mut Dropped::new())
            .unwrap_err()
            .param
            .as_deref(),
        Some("contents[0].parts[0].executableCode")
    );
    // Built-in tools run at Google: dropped and noted, the function declarations kept.
    let searching = json!({"contents": "hi", "tools": [{"googleSearch": {}},
        {"functionDeclarations": [{"name": "f"}]}, {"codeExecution": {}}]});
    let mut dropped = Dropped::new();
    let chat = chat_request_from_gemini(&searching, "m", &mut dropped).unwrap();
    assert_eq!(chat["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(dropped.labels(), ["builtin_tool", "builtin_tool"]);
}

#[test]
fn a_translated_stream_ends_with_openais_usage_chunk_details_named() {
    use crate::domain::exchange::Usage;
    use crate::protocol::openai;
    let mut translator = StreamTranslator::new("gemini-2.5-flash", 1, "chatcmpl-g".into());
    let mut out = Vec::new();
    for piece in [
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Pa"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 12000, "cachedContentTokenCount": 8000, "totalTokenCount": 12000},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
        json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "ris."}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 12000, "candidatesTokenCount": 350, "totalTokenCount": 12835,
                "cachedContentTokenCount": 8000, "toolUsePromptTokenCount": 65, "thoughtsTokenCount": 420},
            "modelVersion": "gemini-2.5-flash", "responseId": "r1"}),
    ] {
        out.extend(
            translator
                .push(format!("data: {piece}\r\n\r\n").as_bytes())
                .unwrap(),
        );
    }
    out.extend(translator.finish());
    let chunks: Vec<Value> = out
        .iter()
        .filter_map(|e| serde_json::from_str(&sse::event_data(e)?).ok())
        .collect();
    let finish = &chunks[chunks.len() - 2];
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish.get("usage"), None);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 12065, "completion_tokens": 770, "total_tokens": 12835,
            "prompt_tokens_details": {"cached_tokens": 8000},
            "completion_tokens_details": {"reasoning_tokens": 420}})
    );
    assert_eq!(
        out.last().unwrap(),
        &Bytes::from_static(b"data: [DONE]\n\n")
    );
    let reported: Vec<Usage> = out
        .iter()
        .filter_map(|e| openai::usage_of_event(e))
        .collect();
    assert_eq!(
        reported,
        [Usage {
            prompt_tokens: 12_065,
            completion_tokens: 770,
            cache_read_tokens: 8000,
            cache_write_tokens: 0,
            reasoning_tokens: 420,
        }]
    );
    assert_eq!(
        out.iter()
            .filter(|e| openai::is_usage_only_chunk(e))
            .count(),
        1
    );
}

#[test]
fn usage_reported_after_the_finish_goes_out_again() {
    let mut translator = StreamTranslator::new("m", 1, "chatcmpl-g".into());
    let first = translator
        .push(b"data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"x\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\n\n")
        .unwrap();
    assert_eq!(first.len(), 4, "role, text, finish, usage");
    let same = translator
        .push(b"data: {\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":1}}\n\n")
        .unwrap();
    assert!(same.is_empty(), "the same counts are not sent twice");
    let later = translator
        .push(b"data: {\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2}}\n\n")
        .unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(data_of(&later[0])["usage"]["completion_tokens"], 2);
    let whole = chat_from_response(
        &json!({"candidates": [], "usageMetadata": {"promptTokenCount": 3, "toolUsePromptTokenCount": 2,
            "candidatesTokenCount": 1, "thoughtsTokenCount": 4, "cachedContentTokenCount": 1}}),
        "m",
        1,
    )
    .unwrap();
    assert_eq!(
        whole["usage"],
        json!({"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10,
            "prompt_tokens_details": {"cached_tokens": 1},
            "completion_tokens_details": {"reasoning_tokens": 4}})
    );
}
