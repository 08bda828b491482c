//! Unit tests of the Anthropic translation, both directions.

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::protocol::{Dropped, sse};

fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

fn request(extra: Value) -> Value {
    let mut body = json!({"model": "m", "messages": [user("hi")]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        for (key, value) in extra {
            body.insert(key.clone(), value.clone());
        }
    }
    body
}

fn translate(extra: Value) -> Value {
    request_from_chat(&request(extra), "claude", false).unwrap()
}

fn tool() -> Value {
    json!([{"type": "function", "function": {"name": "f"}}])
}

#[test]
fn defaults_and_sampling() {
    let out = translate(json!({}));
    assert_eq!(out["max_tokens"], DEFAULT_MAX_TOKENS);
    assert_eq!(out["model"], "claude");
    assert_eq!(out["stream"], false);
    assert!(out.get("system").is_none());
    assert_eq!(translate(json!({"temperature": 2}))["temperature"], 1.0);
    assert_eq!(translate(json!({"temperature": -1}))["temperature"], 0.0);
    assert_eq!(translate(json!({"temperature": 0.3}))["temperature"], 0.3);
    assert_eq!(
        translate(json!({"max_tokens": 10, "max_completion_tokens": 20}))["max_tokens"],
        20
    );
    assert_eq!(
        translate(json!({"stop": "x"}))["stop_sequences"],
        json!(["x"])
    );
    let dropped = translate(
        json!({"seed": 1, "frequency_penalty": 1, "presence_penalty": 1,
        "logit_bias": {}, "service_tier": "auto", "store": true, "metadata": {"a": "b"},
        "stream_options": {"include_usage": true}}),
    );
    for key in [
        "seed",
        "frequency_penalty",
        "presence_penalty",
        "logit_bias",
        "service_tier",
        "store",
        "stream_options",
    ] {
        assert!(dropped.get(key).is_none(), "{key}");
    }
    assert!(dropped.get("metadata").is_none());
    assert_eq!(
        translate(json!({"user": "u1"}))["metadata"],
        json!({"user_id": "u1"})
    );
    assert!(request_from_chat(&request(json!({})), "m", true).unwrap()["stream"] == true);
}

#[test]
fn bad_sampling_values_are_named() {
    for (extra, param) in [
        (json!({"max_tokens": 0}), "max_tokens"),
        (
            json!({"max_completion_tokens": "9"}),
            "max_completion_tokens",
        ),
        (json!({"temperature": "hot"}), "temperature"),
        (json!({"stop": [1]}), "stop[0]"),
        (json!({"tools": [{"type": "web_search"}]}), "tools[0].type"),
        (
            json!({"tools": tool(), "tool_choice": "sometimes"}),
            "tool_choice",
        ),
        (json!({"messages": "hi"}), "messages"),
    ] {
        let err = request_from_chat(&request(extra), "m", false).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param));
    }
    assert_eq!(
        request_from_chat(&json!([1]), "m", false)
            .unwrap_err()
            .param,
        None
    );
}

#[test]
fn tool_choice_mapping() {
    let choice = |extra: Value| translate(extra).get("tool_choice").cloned();
    assert_eq!(
        choice(json!({"tools": tool(), "tool_choice": "auto"})),
        Some(json!({"type": "auto"}))
    );
    assert_eq!(
        choice(json!({"tools": tool(), "tool_choice": "none"})),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        choice(json!({"tools": tool(), "tool_choice": "required"})),
        Some(json!({"type": "any"}))
    );
    assert_eq!(
        choice(
            json!({"tools": tool(), "tool_choice": {"type": "function", "function": {"name": "f"}}})
        ),
        Some(json!({"type": "tool", "name": "f"}))
    );
    assert_eq!(
        choice(json!({"tools": tool(), "parallel_tool_calls": false})),
        Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
    );
    assert_eq!(
        choice(json!({"tools": tool(), "tool_choice": "required", "parallel_tool_calls": false})),
        Some(json!({"type": "any", "disable_parallel_tool_use": true}))
    );
    assert_eq!(
        choice(json!({"tools": tool(), "tool_choice": "none", "parallel_tool_calls": false})),
        Some(json!({"type": "none"}))
    );
    assert_eq!(
        choice(json!({"tools": tool(), "parallel_tool_calls": true})),
        None
    );
    // Without tools Anthropic rejects tool_choice; it carries no content, so it is dropped.
    assert_eq!(choice(json!({"tool_choice": "none"})), None);
}

#[test]
fn messages_are_merged_and_strings_kept() {
    let out = translate(json!({"messages": [
        {"role": "assistant", "content": "I start"},
        user("a"), user("b"),
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "r1"},
        user("after"),
    ]}));
    assert_eq!(
        out["messages"],
        json!([
            {"role": "assistant", "content": "I start"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "r1"},
                {"type": "text", "text": "after"}]},
        ])
    );
}

#[test]
fn images_that_cannot_be_sent_are_named() {
    for url in [
        "data:image/png,abc",
        "file:///etc/passwd",
        "data:image/png;base64",
    ] {
        let err = request_from_chat(
            &request(json!({"messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}}]}]})),
            "m",
            false,
        )
        .unwrap_err();
        assert_eq!(
            err.param.as_deref(),
            Some("messages[0].content[0].image_url.url"),
            "{url}"
        );
    }
}

#[test]
fn answer_finish_reasons_and_usage() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ] {
        let answer = json!({"id": "msg_1", "content": [], "stop_reason": stop,
            "usage": {"input_tokens": 1, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 3, "output_tokens": 4}});
        let chat = chat_from_response(&answer, "fallback", 7).unwrap();
        assert_eq!(chat["choices"][0]["finish_reason"], finish);
        assert_eq!(
            chat["usage"],
            json!({"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 2}})
        );
        assert_eq!(chat["model"], "fallback");
        assert_eq!(chat["created"], 7);
        assert_eq!(chat["choices"][0]["message"]["content"], "");
    }
    assert!(chat_from_response(&json!({"type": "message"}), "m", 0).is_err());
}

#[test]
fn upstream_errors() {
    let (status, body) = error_to_chat(
        529,
        br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
    );
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "overloaded_error");
    let (status, body) = error_to_chat(429, b"");
    assert_eq!(status, 429);
    assert_eq!(
        body["error"]["message"],
        "upstream answered with status 429"
    );
    assert_eq!(body["error"]["type"], "upstream_error");
    let (_, body) = error_to_chat(500, br#"{"error":"boom"}"#);
    assert_eq!(body["error"]["message"], "boom");
}

#[test]
fn errors_for_anthropic_clients() {
    for (status, kind) in [
        (400, "invalid_request_error"),
        (413, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (529, "overloaded_error"),
    ] {
        let body = error_from_chat(status, br#"{"error":{"message":"nope","type":"x"}}"#);
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": kind, "message": "nope"}})
        );
    }
    assert_eq!(
        error_from_chat(502, b"bad gateway")["error"]["message"],
        "bad gateway"
    );
}

fn event(kind: &str, data: Value) -> Vec<u8> {
    format!("event: {kind}\ndata: {data}\n\n").into_bytes()
}

#[test]
fn a_cut_anthropic_stream_gets_no_done() {
    let mut translator = StreamTranslator::new("m", 1, "chatcmpl-1".into());
    let out = translator
        .push(&event(
            "message_start",
            json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
        ))
        .unwrap();
    assert_eq!(out.len(), 1);
    assert!(translator.finish().is_empty());

    let mut translator = StreamTranslator::new("m", 1, "chatcmpl-1".into());
    let out = translator
        .push(&event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 2}})))
        .unwrap();
    assert_eq!(out.len(), 2, "the finish chunk, then the usage chunk");
    assert_eq!(
        translator.finish(),
        vec![Bytes::from_static(b"data: [DONE]\n\n")]
    );
    assert!(translator.finish().is_empty());
}

#[test]
fn anthropic_stream_oddities() {
    let mut translator = StreamTranslator::new("m", 1, "chatcmpl-1".into());
    assert!(translator.push(b": comment\n\n").unwrap().is_empty());
    assert!(
        translator
            .push(&event("ping", json!({"type": "ping"})))
            .unwrap()
            .is_empty()
    );
    assert!(
        translator
            .push(&event("future_event", json!({"type": "future_event"})))
            .unwrap()
            .is_empty()
    );
    assert!(translator.push(b"event: x\ndata: {not json\n\n").is_err());
    // An input delta for a block that never started is dropped, not invented.
    let orphan = event(
        "content_block_delta",
        json!({"type": "content_block_delta", "index": 5,
        "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
    );
    assert!(translator.push(&orphan).unwrap().is_empty());
    // The event name is used when the data has no type.
    let out = translator
        .push(&event(
            "content_block_delta",
            json!({"index": 0, "delta": {"type": "text_delta", "text": "x"}}),
        ))
        .unwrap();
    assert_eq!(out.len(), 1);
    let stop = translator
        .push(&event("message_stop", json!({"type": "message_stop"})))
        .unwrap();
    assert_eq!(
        stop.len(),
        3,
        "a finish chunk (and its usage chunk) is owed before [DONE]"
    );
    assert!(
        translator
            .push(&event("message_stop", json!({"type": "message_stop"})))
            .unwrap()
            .is_empty()
    );
}

fn chunk(delta: Value, finish: Value) -> Vec<u8> {
    format!(
        "data: {}\n\n",
        json!({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
    .into_bytes()
}

fn names(events: &[Bytes]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| sse::event_name(e).map(str::to_string))
        .collect()
}

#[test]
fn the_writer_closes_what_is_open_when_the_upstream_ends() {
    let mut writer = MessagesStreamWriter::new("m", "msg_1".into());
    let mut out = writer.push(&chunk(json!({"content": "Hi"}), Value::Null));
    out.extend(writer.finish());
    assert_eq!(
        names(&out),
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(writer.finish().is_empty());
    assert!(
        writer
            .push(&chunk(json!({"content": "late"}), Value::Null))
            .is_empty()
    );
}

#[test]
fn the_writer_holds_message_delta_for_the_usage_chunk() {
    let mut writer = MessagesStreamWriter::new("m", "msg_1".into());
    let out = writer.push(&chunk(json!({"content": "Hi"}), json!("length")));
    assert_eq!(
        names(&out).last().map(String::as_str),
        Some("content_block_stop")
    );
    let out =
        writer.push(br#"data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"prompt_tokens_details":{"cached_tokens":2}}}"#);
    assert_eq!(names(&out), ["message_delta"]);
    let delta: Value = serde_json::from_str(&sse::event_data(&out[0]).unwrap()).unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    // Cached prompt tokens are Anthropic's cache reads, outside its `input_tokens`.
    assert_eq!(
        delta["usage"],
        json!({"input_tokens": 3, "output_tokens": 7, "cache_read_input_tokens": 2, "cache_creation_input_tokens": 0})
    );
    assert_eq!(names(&writer.push(b"data: [DONE]\n\n")), ["message_stop"]);
}

#[test]
fn the_writer_ends_with_an_error_event() {
    let mut writer = MessagesStreamWriter::new("m", "msg_1".into());
    let error = writer.error("boom \"quoted\"");
    assert_eq!(
        error,
        Bytes::from_static(b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom \\\"quoted\\\"\"}}\n\n")
    );
    assert!(writer.finish().is_empty());
}

#[test]
fn ingress_requests_refuse_only_what_is_malformed() {
    let base = |messages: Value| json!({"model": "m", "max_tokens": 5, "messages": messages});
    for (body, param) in [
        (
            base(json!([{"role": "user", "content": [{"text": "no type"}]}])),
            "messages[0].content[0].type",
        ),
        (
            base(json!([{"role": "tool", "content": "x"}])),
            "messages[0].role",
        ),
        (
            base(
                json!([{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
            "content": [{"type": "image", "source": {}}]}]}]),
            ),
            "messages[0].content[0].content[0].source.type",
        ),
        (
            json!({"messages": [], "tool_choice": {"type": "sometimes"}}),
            "tool_choice.type",
        ),
        (
            json!({"messages": [], "system": [{"type": "image"}]}),
            "system[0]",
        ),
        (
            json!({"messages": [], "thinking": {"type": "maybe"}}),
            "thinking.type",
        ),
    ] {
        let err = chat_request_from_messages(&body, &mut Dropped::new()).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(param), "{body}");
    }
}

/// What Claude Code sends that chat cannot carry is dropped and noted, never refused (SPEC 4.8).
#[test]
fn ingress_requests_drop_and_note_what_chat_cannot_honour() {
    let body = json!({
        "model": "m", "max_tokens": 5, "stream": true,
        "system": [{"type": "text", "text": "S", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "document", "source": {}}, {"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hm", "signature": "sig"},
                {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}},
                {"type": "tool_use", "id": "t1", "name": "Read", "input": {"p": 1}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "out"},
                {"type": "image", "source": {"type": "url", "url": "http://x/i.png"}},
                {"type": "search_result", "source": "s"}]}]},
            {"role": "system", "content": "reminder"},
            {"role": "user", "content": "go on"}],
        "tools": [{"name": "Read", "input_schema": {"type": "object"}},
                  {"type": "web_search_20250305", "name": "web_search"}],
        "thinking": {"type": "adaptive"},
        "context_management": {"edits": []},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "u".repeat(100)},
        "some_future_field": 1,
    });
    let mut dropped = Dropped::new();
    let chat = chat_request_from_messages(&body, &mut dropped).expect("translates");
    assert_eq!(
        dropped.labels(),
        [
            "context_management",
            "output_config",
            "other_field",
            "cache_control",
            "content_block",
            "thinking_block",
            "content_block",
            "content_block",
            "server_tool",
            "thinking",
            "metadata.user_id",
        ]
    );
    let roles: Vec<&str> = chat["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "system",
            "user",
            "assistant",
            "tool",
            "user",
            "system",
            "user"
        ]
    );
    assert_eq!(chat["messages"][3]["content"], "out");
    assert_eq!(
        chat["messages"][4]["content"][0]["image_url"]["url"],
        "http://x/i.png"
    );
    assert_eq!(chat["messages"][5]["content"], "reminder");
    assert_eq!(chat["tools"].as_array().map(Vec::len), Some(1));
    assert!(chat.get("reasoning_effort").is_none());
    assert!(chat.get("user").is_none());
}

#[test]
fn thinking_is_noted_not_sent_and_server_tools_take_their_tool_choice_along() {
    for thinking in [
        json!({"type": "enabled", "budget_tokens": 31999}),
        json!({"type": "adaptive", "display": "omitted"}),
    ] {
        let mut dropped = Dropped::new();
        let chat =
            chat_request_from_messages(&request(json!({"thinking": thinking})), &mut dropped)
                .unwrap();
        assert!(chat.get("reasoning_effort").is_none());
        assert_eq!(dropped.labels(), ["thinking"]);
    }
    let only_server_tools = request(
        json!({"tools": [{"type": "web_search_20250305", "name": "w"}],
        "tool_choice": {"type": "any"}}),
    );
    let mut dropped = Dropped::new();
    let chat = chat_request_from_messages(&only_server_tools, &mut dropped).unwrap();
    assert!(chat.get("tool_choice").is_none() && chat.get("tools").is_none());
    assert_eq!(dropped.labels(), ["server_tool", "tool_choice"]);
}

#[test]
fn ingress_answers() {
    let chat = json!({"id": "chatcmpl-9", "choices": [{"message": {"role": "assistant", "content": "x",
        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "finish_reason": "stop"}]});
    let message = messages_response_from_chat(&chat, "m").unwrap();
    assert_eq!(message["id"], "msg_9");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["content"][1]["input"], json!({"a": 1}));
    let bad = json!({"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}}]});
    assert_eq!(
        messages_response_from_chat(&bad, "m")
            .unwrap_err()
            .param
            .as_deref(),
        Some("choices[0].message.tool_calls[0].function.arguments")
    );
    assert!(messages_response_from_chat(&json!({"choices": []}), "m").is_err());
}

/// Reasoning from another vendor comes back as thinking blocks carrying the gateway's signature,
/// whole and streamed (the signature as a `signature_delta` before the block stops).
#[test]
fn reasoning_becomes_thinking_blocks_with_the_gateway_signature() {
    let chat = json!({"id": "chatcmpl-r", "choices": [{"finish_reason": "stop", "message": {
        "role": "assistant", "reasoning_content": "Let me think.", "content": "Done."}}]});
    let message = messages_response_from_chat(&chat, "m").unwrap();
    assert_eq!(
        message["content"],
        json!([{"type": "thinking", "thinking": "Let me think.", "signature": TRANSLATED_SIGNATURE},
            {"type": "text", "text": "Done."}])
    );

    let mut writer = MessagesStreamWriter::new("m", "msg_r".into());
    let mut out = writer.push(&chunk(json!({"reasoning_content": "Hm"}), Value::Null));
    out.extend(writer.push(&chunk(json!({"content": "Yes"}), json!("stop"))));
    out.extend(writer.finish());
    let events: Vec<Value> = out
        .iter()
        .map(|e| serde_json::from_str(&sse::event_data(e).unwrap()).unwrap())
        .collect();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            let delta = e["delta"]["type"].as_str().unwrap_or("");
            let block = e["content_block"]["type"].as_str().unwrap_or("");
            format!("{} {delta}{block}", e["type"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "message_start ",
            "ping ",
            "content_block_start thinking",
            "content_block_delta thinking_delta",
            "content_block_delta signature_delta",
            "content_block_stop ",
            "content_block_start text",
            "content_block_delta text_delta",
            "content_block_stop ",
            "message_delta ",
            "message_stop ",
        ]
    );
    assert_eq!(events[4]["delta"]["signature"], TRANSLATED_SIGNATURE);
}

#[test]
fn only_the_gateways_own_thinking_is_stripped_for_anthropic() {
    assert_eq!(
        strip_translated_thinking(br#"{"model":"m","messages":[]}"#),
        None
    );
    let body = json!({"model": "m", "messages": [{"role": "assistant", "content": [
        {"type": "thinking", "thinking": "a", "signature": TRANSLATED_SIGNATURE},
        {"type": "thinking", "thinking": "b", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "t"}]}]});
    let stripped: Value =
        serde_json::from_slice(&strip_translated_thinking(body.to_string().as_bytes()).unwrap())
            .unwrap();
    assert_eq!(
        stripped["messages"][0]["content"],
        json!([{"type": "thinking", "thinking": "b", "signature": "EqQBCgIYAhIM"}, {"type": "text", "text": "t"}])
    );
}

#[test]
fn a_translated_stream_ends_with_openais_usage_chunk_cache_reads_named() {
    use crate::domain::exchange::Usage;
    use crate::protocol::openai;
    let mut translator = StreamTranslator::new("claude", 1, "chatcmpl-1".into());
    let mut out = Vec::new();
    for (kind, data) in [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "content": [], "model": "claude-sonnet-4-5", "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 25, "cache_creation_input_tokens": 10, "cache_read_input_tokens": 2000,
                    "output_tokens": 1}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": 15}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ] {
        out.extend(translator.push(&event(kind, data)).unwrap());
    }
    let chunks: Vec<Value> = out
        .iter()
        .filter_map(|e| serde_json::from_str(&sse::event_data(e)?).ok())
        .collect();
    let finish = &chunks[chunks.len() - 2];
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(finish.get("usage"), None);
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 2035, "completion_tokens": 15, "total_tokens": 2050,
            "prompt_tokens_details": {"cached_tokens": 2000}})
    );
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        out.last().unwrap(),
        &Bytes::from_static(b"data: [DONE]\n\n")
    );
    // The hub reader sees the counts, and the usage chunk is the one a client may not have asked for.
    let reported: Vec<Usage> = out
        .iter()
        .filter_map(|e| openai::usage_of_event(e))
        .collect();
    assert_eq!(
        reported,
        [Usage {
            prompt_tokens: 2035,
            completion_tokens: 15,
            cache_read_tokens: 2000,
            ..Usage::default()
        }]
    );
    let usage_only: Vec<bool> = out.iter().map(|e| openai::is_usage_only_chunk(e)).collect();
    assert_eq!(
        usage_only.iter().filter(|only| **only).count(),
        1,
        "only the usage chunk"
    );
    assert!(usage_only[usage_only.len() - 2]);
}
