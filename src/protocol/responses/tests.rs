//! Unit tests of the Responses translation.

use bytes::Bytes;
use serde_json::{Value, json};

use super::*;
use crate::protocol::{Dropped, sse};

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
    let chat = chat_request_from_responses(&request, &mut Dropped::new()).unwrap();
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
fn malformed_requests_name_the_field() {
    for (request, param) in [
        (json!({"input": "hi"}), "model"),
        (json!({"model": "m"}), "input"),
        (
            json!({"model": "m", "input": [{"content": "no role"}]}),
            "input[0].type",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"name": "f"}]}),
            "tools[0].type",
        ),
        (
            json!({"model": "m", "input": "x", "tools": [{"type": "namespace", "tools": []}]}),
            "tools[0].name",
        ),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"text": "no type"}]}]}),
            "input[0].content[0]",
        ),
        (
            json!({"model": "m", "input": [{"type": "function_call", "name": "f"}]}),
            "input[0].call_id",
        ),
    ] {
        assert_eq!(
            chat_request_from_responses(&request, &mut Dropped::new())
                .unwrap_err()
                .param
                .as_deref(),
            Some(param),
            "{request}"
        );
    }
}

/// What Codex sends that chat cannot carry is dropped and noted, never refused (SPEC 4.8).
#[test]
fn built_in_tools_items_and_fields_are_dropped_and_noted() {
    let request = json!({
        "model": "m", "stream": true, "store": false, "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "k", "client_metadata": {"a": "b"}, "reasoning": {"summary": "auto"},
        "tools": [{"type": "web_search"}, {"type": "function", "name": "shell", "parameters": {"type": "object"}}],
        "tool_choice": "auto", "parallel_tool_calls": false,
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "rules"}]},
            {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xyz"},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"type": "message", "role": "user", "content": [{"type": "input_file", "file_id": "f"}, {"type": "input_text", "text": "go"}]}
        ]
    });
    let mut dropped = Dropped::new();
    let chat = chat_request_from_responses(&request, &mut dropped).unwrap();
    let mut labels = dropped.labels();
    labels.sort_unstable();
    assert_eq!(
        labels,
        [
            "client_metadata",
            "content_part",
            "include",
            "input_item",
            "input_item",
            "prompt_cache_key",
            "reasoning.summary",
            "store",
            "web_search"
        ]
    );
    assert_eq!(
        chat["messages"][0],
        json!({"role": "system", "content": [{"type": "text", "text": "rules"}]})
    );
    assert_eq!(
        chat["messages"][1]["content"],
        json!([{"type": "text", "text": "go"}])
    );
    assert_eq!(chat["tools"].as_array().map(Vec::len), Some(1));
    assert_eq!(chat["parallel_tool_calls"], false);
    assert!(chat.get("reasoning_effort").is_none());
}

/// Namespace and custom tools go to chat as functions and their calls come back as declared, in a
/// whole answer and in a stream.
#[test]
fn namespace_and_custom_tools_round_trip() {
    let request = json!({
        "model": "m",
        "tools": [
            {"type": "custom", "name": "apply_patch", "description": "Patch files.",
             "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
            {"type": "namespace", "name": "mcp__files", "description": "Files.", "tools": [
                {"type": "function", "name": "read", "parameters": {"type": "object", "properties": {"p": {"type": "string"}}}}]}
        ],
        "tool_choice": {"type": "custom", "name": "apply_patch"},
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "read", "namespace": "mcp__files", "arguments": "{\"p\":\"a\"}"},
            {"type": "function_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "data"}]},
            {"type": "custom_tool_call", "call_id": "c2", "name": "apply_patch", "input": "*** Begin"},
            {"type": "custom_tool_call_output", "call_id": "c2", "output": "ok"}
        ]
    });
    let chat = chat_request_from_responses(&request, &mut Dropped::new()).unwrap();
    let names: Vec<&str> = chat["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["apply_patch", "mcp__files__read"]);
    assert_eq!(
        chat["tools"][0]["function"]["parameters"]["required"],
        json!(["input"])
    );
    assert_eq!(chat["tool_choice"]["function"]["name"], "apply_patch");
    let calls = &chat["messages"];
    assert_eq!(
        calls[0]["tool_calls"][0]["function"]["name"],
        "mcp__files__read"
    );
    assert_eq!(
        calls[1],
        json!({"role": "tool", "tool_call_id": "c1", "content": "data"})
    );
    assert_eq!(
        calls[2]["tool_calls"][0]["function"]["arguments"],
        json!({"input": "*** Begin"}).to_string()
    );

    let answer = json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "k1", "type": "function", "function": {"name": "mcp__files__read", "arguments": "{\"p\":\"b\"}"}},
        {"id": "k2", "type": "function", "function": {"name": "apply_patch", "arguments": "{\"input\":\"*** Begin Patch\"}"}}]},
        "finish_reason": "tool_calls"}]});
    let response = response_from_chat(&answer, &request);
    let output = &response["output"];
    assert_eq!(output[0]["type"], "function_call");
    assert_eq!(output[0]["name"], "read");
    assert_eq!(output[0]["namespace"], "mcp__files");
    assert_eq!(output[1]["type"], "custom_tool_call");
    assert_eq!(output[1]["name"], "apply_patch");
    assert_eq!(output[1]["input"], "*** Begin Patch");

    let mut writer = ResponsesStreamWriter::new(&request);
    let mut all = Vec::new();
    for chunk in [
        json!({"choices": [{"delta": {"reasoning_content": "think"}}]}),
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "id": "k2", "function": {"name": "apply_patch", "arguments": "{\"input\":"}}]}}]}),
        json!({"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": "\"*** Begin Patch\"}"}}]}, "finish_reason": "tool_calls"}]}),
    ] {
        all.extend(writer.push(format!("data: {chunk}\n\n").as_bytes()));
    }
    all.extend(writer.finish());
    let events = events(&all);
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[7].1["item"]["summary"][0]["text"], "think");
    assert_eq!(events[10].1["item"]["type"], "custom_tool_call");
    assert_eq!(events[10].1["item"]["input"], "*** Begin Patch");
    assert_eq!(
        events[11].1["response"]["output"][1]["input"],
        "*** Begin Patch"
    );
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
