//! Native Anthropic and Gemini providers behind an OpenAI-speaking client: answers, streams and
//! tool calls come back in OpenAI format, vendor auth goes the vendor's way, and failover crosses
//! vendors.

use serde_json::{Value, json};

use crate::support::*;

fn tool_body(stream: bool) -> Value {
    json!({
        "model": LOGICAL,
        "stream": stream,
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    })
}

async fn assert_plain_answer(vendor: &str) {
    let (mock, gateway) = vendor_gateway(vendor).await;
    let response = gateway.chat(chat_body(LOGICAL, "Bonjour")).await;
    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    let text = body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(
        text.starts_with(&format!("Hello from {vendor}!")) && text.contains("Bonjour"),
        "{body}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(
        body["usage"]["total_tokens"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
    let stats = mock.stats().await;
    let headers = &stats["last_headers"];
    assert!(
        headers.get("authorization").is_none(),
        "no Bearer for {vendor}: {headers}"
    );
    match vendor {
        "anthropic" => {
            assert_eq!(headers["x-api-key"], provider_key(vendor));
            assert_eq!(headers["anthropic-version"], "2023-06-01");
            assert_eq!(stats["last_request"]["model"], "anthropic-model");
            assert_eq!(
                stats["last_request"]["max_tokens"], 4096,
                "Anthropic requires max_tokens"
            );
            assert_eq!(stats["last_request"]["messages"][0]["role"], "user");
        }
        _ => {
            assert_eq!(headers["x-goog-api-key"], provider_key(vendor));
            assert_eq!(
                stats["last_request"]["contents"][0]["parts"][0]["text"],
                "Bonjour"
            );
        }
    }
}

async fn assert_streamed_answer(vendor: &str) {
    let (_mock, gateway) = vendor_gateway(vendor).await;
    let response = gateway.chat(streamed_chat_body(LOGICAL, "Stream me")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), Some("text/event-stream"));
    let events = sse_data(&response.text().await.expect("body"));
    assert_eq!(
        events.last().map(String::as_str),
        Some("[DONE]"),
        "{events:?}"
    );
    assert!(!has_error_event(&events), "{events:?}");
    let text = streamed_text(&events);
    assert!(
        text.starts_with(&format!("Hello from {vendor}!")) && text.contains("Stream me"),
        "{text}"
    );
    let chunks: Vec<Value> = events
        .iter()
        .filter_map(|e| serde_json::from_str(e).ok())
        .collect();
    let ids: std::collections::HashSet<&str> =
        chunks.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one stable chunk id: {ids:?}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop"),
        "{events:?}"
    );
}

async fn assert_tool_call(vendor: &str, stream: bool) {
    let (_mock, gateway) = vendor_gateway(vendor).await;
    let response = gateway.chat(tool_body(stream)).await;
    assert_eq!(response.status(), 200);
    let (name, arguments, finish) = if stream {
        let events = sse_data(&response.text().await.expect("body"));
        let chunks: Vec<Value> = events
            .iter()
            .filter_map(|e| serde_json::from_str(e).ok())
            .collect();
        let mut name = String::new();
        let mut arguments = String::new();
        let mut finish = Value::Null;
        for chunk in &chunks {
            for call in chunk
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                assert_eq!(call["index"], 0);
                name.push_str(
                    call.pointer("/function/name")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
                arguments.push_str(
                    call.pointer("/function/arguments")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                );
            }
            if !chunk["choices"][0]["finish_reason"].is_null()
                && chunk["choices"][0]["finish_reason"].is_string()
            {
                finish = chunk["choices"][0]["finish_reason"].clone();
            }
        }
        (name, arguments, finish)
    } else {
        let body = json_of(response).await;
        let call = &body["choices"][0]["message"]["tool_calls"][0];
        assert!(
            call["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{body}"
        );
        (
            call["function"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            call["function"]["arguments"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            body["choices"][0]["finish_reason"].clone(),
        )
    };
    assert_eq!(name, "get_weather");
    let arguments: Value = serde_json::from_str(&arguments).expect("arguments are JSON");
    assert_eq!(arguments, json!({"city": "Paris"}));
    assert_eq!(finish, "tool_calls");
}

#[tokio::test]
async fn an_anthropic_provider_answers_in_openai_format_with_its_own_auth() {
    assert_plain_answer("anthropic").await;
}

#[tokio::test]
async fn a_gemini_provider_answers_in_openai_format_with_its_own_auth() {
    assert_plain_answer("gemini").await;
}

#[tokio::test]
async fn an_anthropic_stream_arrives_as_openai_chunks() {
    assert_streamed_answer("anthropic").await;
}

#[tokio::test]
async fn a_gemini_stream_arrives_as_openai_chunks() {
    assert_streamed_answer("gemini").await;
}

#[tokio::test]
async fn an_anthropic_tool_call_arrives_as_openai_tool_calls() {
    assert_tool_call("anthropic", false).await;
    assert_tool_call("anthropic", true).await;
}

#[tokio::test]
async fn a_gemini_function_call_arrives_as_openai_tool_calls() {
    assert_tool_call("gemini", false).await;
    assert_tool_call("gemini", true).await;
}

#[tokio::test]
async fn a_tool_result_round_trip_reaches_the_anthropic_provider() {
    let (mock, gateway) = vendor_gateway("anthropic").await;
    let body = json!({"model": LOGICAL, "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees and sunny"}
    ]});
    let response = gateway.chat(body).await;
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("18 degrees"),
        "{answer}"
    );
    let sent = &mock.stats().await["last_request"];
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(
        sent["messages"][1]["content"][0]["input"],
        json!({"city": "Paris"})
    );
    assert_eq!(sent["messages"][2]["content"][0]["type"], "tool_result");
    assert_eq!(sent["messages"][2]["content"][0]["tool_use_id"], "call_1");
}

async fn failover_gateway() -> (Mock, Mock, Gateway) {
    let openai = Mock::start("openai-a", &["gpt-a"]);
    let claude = Mock::start("anthropic", &["claude-a"]);
    openai.fault(json!({"status": 500})).await;
    let gateway = Gateway::builder()
        .provider("oa", &openai.url)
        .provider("anthropic", &claude.url)
        .logical(&[
            ("oa", "gpt-a", 1_000_000.0),
            ("anthropic", "claude-a", 0.000_001),
        ])
        .start()
        .await;
    (openai, claude, gateway)
}

#[tokio::test]
async fn an_openai_provider_failing_500_fails_over_to_anthropic_in_one_clean_answer() {
    let (openai, claude, gateway) = failover_gateway().await;
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("anthropic"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    let body = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Hello from anthropic!")
    );
    assert_eq!(
        (openai.chat_requests().await, claude.chat_requests().await),
        (1, 1)
    );
}

#[tokio::test]
async fn a_stream_fails_over_from_openai_to_anthropic_without_a_trace_of_the_failure() {
    let (openai, claude, gateway) = failover_gateway().await;
    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("anthropic"));
    let events = sse_data(&response.text().await.expect("body"));
    assert!(!has_error_event(&events), "{events:?}");
    assert!(streamed_text(&events).starts_with("Hello from anthropic!"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(
        (openai.chat_requests().await, claude.chat_requests().await),
        (1, 1)
    );
}

#[tokio::test]
async fn anthropic_overloaded_529_is_retried_on_the_next_provider() {
    let claude = Mock::start("anthropic", &["claude-a"]);
    let backup = Mock::start("backup", &["gpt-b"]);
    claude.fault(json!({"status": 529})).await;
    let gateway = Gateway::builder()
        .provider("anthropic", &claude.url)
        .provider("backup", &backup.url)
        .logical(&[
            ("anthropic", "claude-a", 1_000_000.0),
            ("backup", "gpt-b", 0.000_001),
        ])
        .start()
        .await;
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("backup"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    assert_eq!(claude.chat_requests().await, 1, "the 529 was one attempt");
    assert_eq!(backup.chat_requests().await, 1, "the backup answered once");
}

#[tokio::test]
async fn a_vendor_error_is_relayed_in_openai_shape_with_its_status() {
    let (mock, gateway) = vendor_gateway("gemini").await;
    mock.fault(json!({"status": 400})).await;
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    let error = assert_error_shape(&body);
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("mock gemini says 400"),
        "{body}"
    );
}

#[tokio::test]
async fn gemini_models_are_listed_by_their_plain_id() {
    let mock = Mock::start("gemini", &["gemini-2.0-flash"]);
    let gateway = Gateway::builder()
        .provider("gemini", &mock.url)
        .start()
        .await;
    let (status, models) = gateway.get_json("/v1/models").await;
    assert_eq!(status, 200);
    assert!(
        models["data"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|m| m["id"] == "gemini-2.0-flash" && m["owned_by"] == "gemini"),
        "{models}"
    );
    let response = gateway.chat(chat_body("gemini-2.0-flash", "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        mock.stats().await["last_request"]["contents"][0]["parts"][0]["text"],
        "Hi"
    );
}
