//! Client protocols besides chat completions: the Anthropic Messages API (translated and native),
//! the Responses API, Claude-style and Gemini-style bodies on the chat endpoint, and each format's
//! failure event after the stream started.

use serde_json::{Value, json};

use crate::support::*;

async fn gateway_over(vendor: Option<&str>) -> (Mock, Gateway) {
    let id = vendor.unwrap_or("oa");
    let mock = Mock::start(id, &["up-model"]);
    let mut builder = Gateway::builder().provider(id, &mock.url);
    if let Some(vendor) = vendor {
        builder = builder.env(&format!("LLM_PROVIDER_{id}_VENDOR"), vendor);
    }
    (
        mock,
        builder.logical(&[(id, "up-model", 1.0)]).start().await,
    )
}

fn messages_body(stream: bool) -> Value {
    json!({"model": LOGICAL, "max_tokens": 64, "stream": stream, "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello Claude", "cache_control": {"type": "ephemeral"}}]}]})
}

#[tokio::test]
async fn messages_to_an_anthropic_provider_pass_through_with_only_the_model_rewritten() {
    let (mock, gateway) = gateway_over(Some("anthropic")).await;
    let response = gateway
        .post("/v1/messages")
        .header("anthropic-beta", "prompt-caching-2024-07-31")
        .json_body(&messages_body(false))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert_eq!(
        (answer["type"].as_str(), answer["role"].as_str()),
        (Some("message"), Some("assistant"))
    );
    let stats = mock.stats().await;
    let mut expected = messages_body(false);
    expected["model"] = json!("up-model");
    assert_eq!(
        stats["last_request"], expected,
        "nothing but the model changed (cache_control kept)"
    );
    assert_eq!(
        stats["last_headers"]["anthropic-beta"],
        "prompt-caching-2024-07-31"
    );
}

#[tokio::test]
async fn messages_to_an_openai_provider_are_translated_both_ways() {
    let (mock, gateway) = gateway_over(None).await;
    let response = gateway
        .post("/v1/messages")
        .json_body(&messages_body(false))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert_eq!(answer["type"], "message");
    assert!(
        answer["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .contains("Hello Claude"),
        "{answer}"
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    let sent = &mock.stats().await["last_request"];
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["max_tokens"], 64);
}

#[tokio::test]
async fn a_streamed_message_from_an_openai_provider_has_the_anthropic_event_sequence() {
    let (_mock, gateway) = gateway_over(None).await;
    let response = gateway
        .post("/v1/messages")
        .json_body(&messages_body(true))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let body = response.text().await.expect("body");
    let names: Vec<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"), "{body}");
    assert!(
        names.contains(&"ping") && names.contains(&"content_block_delta"),
        "{names:?}"
    );
    assert_eq!(
        &names[names.len() - 2..],
        ["message_delta", "message_stop"],
        "{names:?}"
    );
}

#[tokio::test]
async fn messages_errors_come_in_anthropic_shape() {
    let (_mock, gateway) = gateway_over(Some("anthropic")).await;
    for (body, status) in [
        (
            json!({"model": LOGICAL, "messages": [{"role": "user", "content": "x"}]}),
            400,
        ),
        (
            json!({"model": "nope", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}),
            404,
        ),
        (json!([1, 2]), 400),
    ] {
        let response = gateway
            .post("/v1/messages")
            .json_body(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), status, "{body}");
        let error = json_of(response).await;
        assert_eq!(error["type"], "error", "{error}");
        assert!(
            error["error"]["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("_error")),
            "{error}"
        );
        assert!(
            error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{error}"
        );
    }
}

async fn stream_cut_after_content(vendor: Option<&str>, path: &str, body: Value) -> String {
    let (mock, gateway) = gateway_over(vendor).await;
    mock.fault(json!({"drop_after_events": 4, "event_delay_ms": 30}))
        .await;
    let response = gateway
        .post(path)
        .json_body(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    response.text().await.expect("body")
}

#[tokio::test]
async fn a_messages_stream_cut_after_content_ends_with_an_error_event_translated_or_native() {
    for vendor in [None, Some("anthropic")] {
        let body = stream_cut_after_content(vendor, "/v1/messages", messages_body(true)).await;
        let last = body.trim_end().rsplit("\n\n").next().unwrap_or_default();
        assert!(last.starts_with("event: error"), "{vendor:?}: {body}");
        assert!(!body.contains("message_stop"), "{vendor:?}");
    }
}

#[tokio::test]
async fn a_responses_stream_cut_after_content_ends_with_response_failed() {
    let body = json!({"model": LOGICAL, "input": "Hello", "stream": true});
    let text = stream_cut_after_content(None, "/v1/responses", body).await;
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.last(), Some(&"response.failed"), "{names:?}");
    assert!(!names.contains(&"response.completed"));
}

#[tokio::test]
async fn a_claude_style_body_on_chat_completions_is_answered_in_anthropic_format() {
    let (_mock, gateway) = gateway_over(None).await;
    let response = gateway.chat(messages_body(false)).await;
    assert_eq!(response.status(), 200);
    let answer = json_of(response).await;
    assert_eq!(answer["type"], "message", "{answer}");
}

/// SPEC 4.2: `max_tokens_to_sample` (one of the markers of a Claude-style body) stands for
/// `max_tokens` when that is absent; Anthropic upstreams get `max_tokens` only, others the limit.
#[tokio::test]
async fn max_tokens_to_sample_stands_for_max_tokens_on_a_claude_style_body() {
    for vendor in [Some("anthropic"), None] {
        let (mock, gateway) = gateway_over(vendor).await;
        let mut body = messages_body(false);
        body.as_object_mut().map(|b| b.remove("max_tokens"));
        body["max_tokens_to_sample"] = json!(77);
        let response = gateway.chat(body).await;
        assert_eq!(response.status(), 200, "{vendor:?}");
        let answer = json_of(response).await;
        assert_eq!(answer["type"], "message", "{vendor:?}: {answer}");
        let sent = &mock.stats().await["last_request"];
        match vendor {
            Some(_) => {
                assert_eq!(sent["max_tokens"], 77, "{sent}");
                assert!(sent.get("max_tokens_to_sample").is_none(), "{sent}");
            }
            None => assert!(
                sent["max_tokens"] == 77 || sent["max_completion_tokens"] == 77,
                "the limit reaches the OpenAI upstream: {sent}"
            ),
        }
    }
}

#[tokio::test]
async fn gemini_style_input_and_native_contents_on_chat_completions_are_converted() {
    let (mock, gateway) = gateway_over(None).await;
    let response = gateway
        .chat(json!({"model": LOGICAL, "input": [{"role": "user", "content": "Hi from input"}]}))
        .await;
    assert_eq!(response.status(), 200);
    assert!(
        json_of(response).await["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("Hi from input")
    );
    let response = gateway
        .chat(json!({"model": LOGICAL, "contents": [{"role": "user", "parts": [{"text": "Hi from contents"}]}]}))
        .await;
    assert_eq!(response.status(), 200);
    let sent = &mock.stats().await["last_request"];
    assert_eq!(sent["messages"][0]["role"], "user");
    assert!(
        sent["messages"][0]["content"]
            .to_string()
            .contains("Hi from contents"),
        "{sent}"
    );
}

fn document_body() -> Value {
    json!({"model": LOGICAL, "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A short document."}},
        {"type": "text", "text": "Summarise it"}
    ]}]})
}

#[tokio::test]
async fn content_only_anthropic_understands_still_reaches_an_anthropic_provider() {
    let (mock, gateway) = gateway_over(Some("anthropic")).await;
    let response = gateway
        .post("/v1/messages")
        .json_body(&document_body())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let sent = &mock.stats().await["last_request"];
    assert_eq!(
        sent["messages"][0]["content"][0]["type"], "document",
        "passed through untouched: {sent}"
    );
}

/// Other vendors get the request without what they cannot carry (SPEC 4.8): the document is
/// dropped, the rest answered.
#[tokio::test]
async fn content_only_anthropic_understands_is_dropped_for_other_vendors() {
    let (mock, gateway) = gateway_over(None).await;
    let response = gateway
        .post("/v1/messages")
        .json_body(&document_body())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let sent = &mock.stats().await["last_request"];
    assert_eq!(
        sent["messages"][0]["content"],
        json!([{"type": "text", "text": "Summarise it"}]),
        "{sent}"
    );
}

/// A block the hub cannot read at all (no `type`) can still go to Anthropic natively; with no
/// Anthropic candidate it is a 400 that says so.
#[tokio::test]
async fn a_malformed_block_is_a_400_when_no_anthropic_provider_can_take_it() {
    let (mock, gateway) = gateway_over(None).await;
    let response = gateway
        .post("/v1/messages")
        .json_body(
            &json!({"model": LOGICAL, "max_tokens": 64, "messages": [{"role": "user",
            "content": [{"source": {"type": "text", "data": "no type"}}]}]}),
        )
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let error = json_of(response).await;
    assert_eq!(error["error"]["type"], "invalid_request_error", "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Anthropic"),
        "{error}"
    );
    assert_eq!(mock.chat_requests().await, 0);
}
