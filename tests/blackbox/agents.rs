//! What coding agents send, through the real binary (SPEC 4.8): Claude-Code-shaped Messages
//! requests and Codex-shaped Responses requests reach a chat upstream with what it cannot honour
//! dropped and counted, namespace calls come back in their namespace, agent session ids bind the
//! session without a history, and `POST /v1/messages/count_tokens` counts or estimates.

use serde_json::{Value, json};

use crate::support::*;

/// The value of the series named exactly `series` (name and labels) on `/metrics`, 0 when absent.
async fn metric(gateway: &Gateway, series: &str) -> f64 {
    gateway
        .metrics_text()
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The shape Claude Code 2.1.328 sends (tests/fixtures/agents/claude_code_messages_first.json),
/// cut down: a system-role message inside `messages`, adaptive thinking, beta-only fields,
/// `cache_control`, a server tool next to its own tools.
fn claude_code_body(stream: bool) -> Value {
    json!({
        "model": LOGICAL, "max_tokens": 32000, "stream": stream,
        "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Create hello.txt"}]},
            {"role": "system", "content": [{"type": "text", "text": "Working directory: /tmp/x"}]}
        ],
        "tools": [
            {"name": "Write", "description": "Write a file", "input_schema": {"type": "object",
                "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
        ],
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "high"},
        "metadata": {"user_id": "{\"device_id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"}"}
    })
}

#[tokio::test]
async fn a_claude_code_request_reaches_a_chat_upstream_with_what_it_cannot_honour_counted() {
    let (mock, gateway) = vendor_gateway("openai").await;
    let response = gateway
        .post("/v1/messages?beta=true")
        .header(
            "x-claude-code-session-id",
            "5b1c0e6e-1f1c-4c2e-9d63-000000000001",
        )
        .header(
            "anthropic-beta",
            "claude-code-20250219,interleaved-thinking-2025-05-14",
        )
        .json_body(&claude_code_body(false))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let message = json_of(response).await;
    assert_eq!(message["type"], "message", "{message}");
    // The mock answers a request with tools by calling the first one.
    assert_eq!(message["stop_reason"], "tool_use", "{message}");
    assert_eq!(message["content"][0]["name"], "Write", "{message}");

    let sent = mock.stats().await["last_request"].clone();
    let roles: Vec<&str> = sent["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["role"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(roles, ["system", "user", "system"], "{sent}");
    assert_eq!(sent["tools"].as_array().map(Vec::len), Some(1), "{sent}");
    for field in [
        "thinking",
        "context_management",
        "output_config",
        "reasoning_effort",
        "user",
    ] {
        assert!(
            sent.get(field).is_none(),
            "{field} reached the chat upstream: {sent}"
        );
    }
    assert!(!sent.to_string().contains("cache_control"), "{sent}");

    for field in [
        "thinking",
        "context_management",
        "output_config",
        "cache_control",
        "server_tool",
        "metadata.user_id",
    ] {
        let series =
            format!("apiproxy_dropped_fields_total{{endpoint=\"messages\",field=\"{field}\"}}");
        assert_eq!(metric(&gateway, &series).await, 1.0, "{series}");
    }

    // The agent's own session id binds the session to the upstream, and keeps no history.
    let session = "claude-code:5b1c0e6e-1f1c-4c2e-9d63-000000000001";
    let (status, binding) = gateway
        .get_json(&format!("/routing/sessions/{session}"))
        .await;
    assert_eq!(status, 200, "{binding}");
    assert_eq!(binding["provider_id"], "openai", "{binding}");
    let (status, context) = gateway.get_json(&format!("/context/{session}")).await;
    assert_eq!(status, 200);
    assert_eq!(context["history"], json!([]), "{context}");
}

#[tokio::test]
async fn a_claude_code_stream_through_gemini_is_anthropic_events_and_not_refused() {
    let (_mock, gateway) = vendor_gateway("gemini").await;
    let response = gateway
        .post("/v1/messages")
        .json_body(&claude_code_body(true))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    let kinds: Vec<String> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("message_start"),
        "{text}"
    );
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("message_stop"),
        "{text}"
    );
    assert!(text.contains("\"name\":\"Write\""), "{text}");
}

/// The shape Codex CLI 0.169.0 sends (tests/fixtures/agents/codex_responses_first.json), cut
/// down: developer messages, a namespace tool first, a built-in tool, Codex's own fields.
fn codex_body(stream: bool) -> Value {
    json!({
        "model": LOGICAL, "stream": stream, "store": false, "tool_choice": "auto",
        "parallel_tool_calls": true, "reasoning": {"summary": "auto"},
        "include": ["reasoning.encrypted_content"], "prompt_cache_key": "01a24ebd-0000-4000-8000-000000000002",
        "client_metadata": {"session_id": "01a24ebd-0000-4000-8000-000000000002"},
        "input": [
            {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Spawn a helper"}]}
        ],
        "tools": [
            {"type": "namespace", "name": "multi_agent_v1", "description": "Agents.", "tools": [
                {"type": "function", "name": "spawn_agent", "description": "Spawns an agent.", "strict": false,
                 "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}}]},
            {"type": "function", "name": "exec_command", "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}},
            {"type": "web_search", "external_web_access": true}
        ]
    })
}

#[tokio::test]
async fn a_codex_request_gets_its_namespace_call_back_in_the_namespace() {
    let (mock, gateway) = vendor_gateway("anthropic").await;
    let response = gateway
        .post("/v1/responses")
        .header("session-id", "01a24ebd-0000-4000-8000-000000000002")
        .json_body(&codex_body(false))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    let call = &body["output"][0];
    assert_eq!(call["type"], "function_call", "{body}");
    assert_eq!(call["name"], "spawn_agent", "{body}");
    assert_eq!(call["namespace"], "multi_agent_v1", "{body}");

    // The Anthropic upstream got the developer message as its system prompt and function tools.
    let sent = mock.stats().await["last_request"].clone();
    assert_eq!(sent["system"], "You are Codex.", "{sent}");
    let names: Vec<&str> = sent["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(
        names,
        ["multi_agent_v1__spawn_agent", "exec_command"],
        "{sent}"
    );

    for field in [
        "web_search",
        "store",
        "include",
        "prompt_cache_key",
        "client_metadata",
    ] {
        let series =
            format!("apiproxy_dropped_fields_total{{endpoint=\"responses\",field=\"{field}\"}}");
        assert_eq!(metric(&gateway, &series).await, 1.0, "{series}");
    }
    let (status, binding) = gateway
        .get_json("/routing/sessions/codex:01a24ebd-0000-4000-8000-000000000002")
        .await;
    assert_eq!(status, 200, "{binding}");
}

#[tokio::test]
async fn a_codex_stream_ends_its_namespace_call_item_as_declared() {
    let (_mock, gateway) = vendor_gateway("openai").await;
    let response = gateway
        .post("/v1/responses")
        .json_body(&codex_body(true))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let events: Vec<Value> = sse_data(&response.text().await.expect("body"))
        .iter()
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect();
    let done = events
        .iter()
        .find(|e| e["type"] == "response.output_item.done" && e["item"]["type"] == "function_call")
        .unwrap_or_else(|| panic!("no function call item: {events:?}"));
    assert_eq!(done["item"]["name"], "spawn_agent");
    assert_eq!(done["item"]["namespace"], "multi_agent_v1");
    assert_eq!(
        events.last().map(|e| e["type"].clone()),
        Some(json!("response.completed"))
    );
}

fn count_body() -> Value {
    json!({
        "model": LOGICAL,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "How many tokens is this sentence, roughly?"}],
        "tools": [{"name": "Write", "input_schema": {"type": "object"}}]
    })
}

#[tokio::test]
async fn tokens_are_counted_by_the_vendors_that_can_and_estimated_otherwise() {
    for vendor in ["anthropic", "gemini", "openai"] {
        let (mock, gateway) = vendor_gateway(vendor).await;
        let response = gateway
            .post("/v1/messages/count_tokens")
            .header("anthropic-version", "2023-06-01")
            .json_body(&count_body())
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{vendor}");
        let how = header(&response, "x-apiproxy-token-count").map(str::to_string);
        let count = json_of(response).await["input_tokens"].as_u64();
        let stats = mock.stats().await;
        let path = stats["last_headers"][":path"].as_str().unwrap_or_default();
        match vendor {
            "anthropic" => {
                assert_eq!((count, how.as_deref()), (Some(4242), Some("counted")));
                assert!(path.ends_with("/v1/messages/count_tokens"), "{path}");
                // The client's own body, only the model rewritten.
                assert_eq!(stats["last_request"]["model"], "anthropic-model");
                assert_eq!(stats["last_request"]["system"], "You are terse.");
            }
            "gemini" => {
                assert_eq!((count, how.as_deref()), (Some(4242), Some("counted")));
                assert!(path.ends_with("/models/gemini-model:countTokens"), "{path}");
                let inner = &stats["last_request"]["generateContentRequest"];
                assert_eq!(inner["model"], "models/gemini-model", "{stats}");
            }
            _ => {
                assert_eq!(how.as_deref(), Some("estimated"));
                let count = count.expect("a count");
                assert!((10..100).contains(&count), "{count}");
                assert_eq!(mock.chat_requests().await, 0, "nothing was sent upstream");
            }
        }
    }
}

#[tokio::test]
async fn a_count_for_an_unknown_model_is_a_404_in_anthropic_shape() {
    let (_mock, gateway) = vendor_gateway("openai").await;
    let mut body = count_body();
    body["model"] = json!("no-such-model");
    let (status, error) = gateway.post_json("/v1/messages/count_tokens", &body).await;
    assert_eq!(status, 404);
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["error"]["type"], "not_found_error", "{error}");
}

/// A gateway whose logical model has a provider taking the Responses API natively (`RESPONSES=true`)
/// first and an ordinary OpenAI-vendor provider second.
async fn responses_gateway() -> (Mock, Mock, Gateway) {
    let native = Mock::start("native", &["native-model"]);
    let chat = Mock::start("chat", &["chat-model-b"]);
    let gateway = Gateway::builder()
        .provider("native", &native.url)
        .env("LLM_PROVIDER_native_RESPONSES", "true")
        .provider("chat", &chat.url)
        .logical_models(json!([{"logical_id": LOGICAL, "upstreams": [
            {"provider_id": "native", "model_id": "native-model", "base_weight": 1000.0},
            {"provider_id": "chat", "model_id": "chat-model-b", "base_weight": 0.001}]}]))
        .start()
        .await;
    (native, chat, gateway)
}

#[tokio::test]
async fn responses_go_as_they_are_to_a_provider_that_takes_them() {
    let (native, chat, gateway) = responses_gateway().await;
    let response = gateway
        .post("/v1/responses")
        .json_body(&codex_body(false))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("native"));
    let body = json_of(response).await;
    assert_eq!(
        body["id"], "resp_mock",
        "the upstream's own Response: {body}"
    );
    let stats = native.stats().await;
    assert_eq!(stats["last_headers"][":path"], "/v1/responses");
    // Nothing dropped: built-in tools, namespaces and Codex's fields reach OpenAI as sent.
    let mut expected = codex_body(false);
    expected["model"] = json!("native-model");
    assert_eq!(stats["last_request"], expected);
    assert_eq!(chat.chat_requests().await, 0);
    let series = "apiproxy_dropped_fields_total{endpoint=\"responses\",field=\"web_search\"}";
    assert_eq!(metric(&gateway, series).await, 0.0);

    let streamed = gateway
        .post("/v1/responses")
        .json_body(&codex_body(true))
        .send()
        .await
        .expect("send");
    assert_eq!(streamed.status(), 200);
    let text = streamed.text().await.expect("body");
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"response.created"), "{text}");
    assert_eq!(kinds.last(), Some(&"response.completed"), "{text}");
    assert!(
        text.contains("\"id\":\"resp_mock\""),
        "relayed as it is: {text}"
    );
}

#[tokio::test]
async fn a_failing_native_responses_provider_fails_over_to_a_translated_one() {
    let (native, _chat, gateway) = responses_gateway().await;
    native.fault(json!({"status": 503})).await;
    for stream in [false, true] {
        let response = gateway
            .post("/v1/responses")
            .json_body(&codex_body(stream))
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "stream {stream}");
        assert_eq!(header(&response, "x-apiproxy-provider"), Some("chat"));
        // After the first failure the native provider cools down and is not tried again.
        let attempts = if stream { "1" } else { "2" };
        assert_eq!(header(&response, "x-apiproxy-attempts"), Some(attempts));
        let text = response.text().await.expect("body");
        // The chat provider's answer, translated into a Response with the namespace call.
        assert!(text.contains("\"namespace\":\"multi_agent_v1\""), "{text}");
    }
}

/// Types a newer client may send that the gateway does not know (an input item, a content part, a
/// block, a built-in tool) are dropped and counted, and the rest is answered (SPEC 4.8).
#[tokio::test]
async fn unknown_types_a_newer_client_sends_are_dropped_and_counted_not_refused() {
    let (mock, gateway) = vendor_gateway("openai").await;
    let (status, body) = gateway
        .post_json(
            "/v1/responses",
            &json!({"model": LOGICAL, "input": [
                {"type": "hologram", "id": "h_1"},
                {"role": "user", "content": [{"type": "input_hologram"}, {"type": "input_text", "text": "Hi"}]}
            ], "tools": [{"type": "hologram_search"}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let sent = mock.stats().await["last_request"].clone();
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    );
    assert!(sent.get("tools").is_none(), "{sent}");
    for (endpoint, field) in [
        ("responses", "input_item"),
        ("responses", "content_part"),
        ("responses", "other_tool"),
    ] {
        let series =
            format!("apiproxy_dropped_fields_total{{endpoint=\"{endpoint}\",field=\"{field}\"}}");
        assert_eq!(metric(&gateway, &series).await, 1.0, "{series}");
    }
    let (status, body) = gateway
        .post_json(
            "/v1/messages",
            &json!({"model": LOGICAL, "max_tokens": 16, "messages": [{"role": "user",
                "content": [{"type": "hologram"}, {"type": "text", "text": "Hi"}]}]}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let series = "apiproxy_dropped_fields_total{endpoint=\"messages\",field=\"content_block\"}";
    assert_eq!(metric(&gateway, series).await, 1.0);
}
