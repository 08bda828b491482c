//! Stream resume (SPEC 5.5, opt-in): a stream cut after content on provider `a` goes on on `b`
//! with the answer so far, and the client gets one stream (its own format, the first stream's
//! ids) ending with the `: apiproxy-resumed` comment; without the opt-in, the error event stays.

use serde_json::{Value, json};

use crate::support::*;

const RESUME_HEADER: &str = "x-apiproxy-stream-resume";
/// What `a` writes before the cut: the role chunk and three words (the mock's reply to "Hi").
const PARTIAL: &str = "Hello from a! You said: \"Hi\".";
const CONTINUE_INSTRUCTION: &str = "Your previous answer was cut off. Continue it exactly where it stopped, from the next character: do not repeat anything already written and do not add any preamble.";

/// Mocks `a` (picked first) and `b`, and `a` cutting its stream after four events.
async fn two_mocks(vendor: Option<&str>) -> (Mock, Mock, GatewayBuilder) {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let mut builder = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url);
    if let Some(vendor) = vendor {
        builder = builder
            .env("LLM_PROVIDER_a_VENDOR", vendor)
            .env("LLM_PROVIDER_b_VENDOR", vendor);
    }
    // The delay lets the first events leave before the cut (see streaming.rs).
    a.fault(json!({"drop_after_events": 4, "event_delay_ms": 50}))
        .await;
    (a, b, builder)
}

async fn stream(gateway: &Gateway, path: &str, body: &Value, resume: bool) -> (u16, String) {
    let mut request = gateway.post(path).json_body(body);
    if resume {
        request = request.header(RESUME_HEADER, "true");
    }
    let response = request.send().await.expect("send");
    let status = response.status().as_u16();
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("a"));
    (status, response.text().await.expect("stream body"))
}

/// The marker is the comment just before the stream's last event.
fn assert_marker_before_the_end(text: &str, last: &str) {
    let marker = ": apiproxy-resumed provider=b attempts=2\n\n";
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("no resume marker in {text}"));
    assert_eq!(
        text[at + marker.len()..].trim_end(),
        last.trim_end(),
        "{text}"
    );
}

/// A resumed OpenAI chat stream: one stream, A's partial text then B's answer, under A's ids.
async fn assert_resumed_chat(a: &Mock, b: &Mock, text: &str) {
    let events = sse_data(text);
    assert!(!has_error_event(&events), "{text}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let content = streamed_text(&events);
    let rest = content
        .strip_prefix(PARTIAL)
        .unwrap_or_else(|| panic!("A's partial text first: {content}"));
    assert!(rest.starts_with("Hello from b!"), "then B's: {content}");
    assert_marker_before_the_end(text, "data: [DONE]");
    let chunks: Vec<Value> = events
        .iter()
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect();
    // One response: every chunk carries the first stream's id and model, one role.
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"]), "{text}");
    assert!(chunks.iter().all(|c| c["model"] == "up-a"), "{text}");
    let roles = chunks
        .iter()
        .filter(|c| c.pointer("/choices/0/delta/role").is_some())
        .count();
    assert_eq!(roles, 1, "{text}");
    // B got the conversation, the partial answer and the continuation instruction.
    let sent = &b.stats().await["last_request"];
    assert_eq!(sent["model"], "up-b");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": PARTIAL},
            {"role": "user", "content": CONTINUE_INSTRUCTION},
        ]),
    );
    assert_eq!((a.chat_requests().await, b.chat_requests().await), (1, 1));
}

#[tokio::test]
async fn with_the_header_a_stream_cut_on_a_goes_on_on_b_as_one_stream() {
    let (a, b, builder) = two_mocks(None).await;
    let gateway = builder
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .start()
        .await;
    let body = streamed_chat_body(LOGICAL, "Hi");
    let (status, text) = stream(&gateway, "/v1/chat/completions", &body, true).await;
    assert_eq!(status, 200);
    assert_resumed_chat(&a, &b, &text).await;
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"apiproxy_stream_resumes_total{provider="a",outcome="resumed"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn without_the_opt_in_the_cut_stream_still_ends_with_the_error_event() {
    let (a, b, builder) = two_mocks(None).await;
    let gateway = builder
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .start()
        .await;
    let body = streamed_chat_body(LOGICAL, "Hi");
    let (status, text) = stream(&gateway, "/v1/chat/completions", &body, false).await;
    assert_eq!(status, 200);
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().expect("events")).expect("JSON");
    assert_eq!(last["error"]["type"], "upstream_error", "{text}");
    assert_eq!(streamed_text(&events), PARTIAL);
    assert!(!text.contains("apiproxy-resumed"), "{text}");
    assert_eq!((a.chat_requests().await, b.chat_requests().await), (1, 0));
}

#[tokio::test]
async fn a_logical_model_with_stream_resume_resumes_without_the_header() {
    let (a, b, builder) = two_mocks(None).await;
    let upstreams = json!([
        {"provider_id": "a", "model_id": "up-a", "base_weight": FIRST},
        {"provider_id": "b", "model_id": "up-b", "base_weight": SECOND},
    ]);
    let gateway = builder
        .logical_models(
            json!([{"logical_id": LOGICAL, "upstreams": upstreams, "stream_resume": true}]),
        )
        .start()
        .await;
    let (status, model) = gateway
        .get_json(&format!("/logical-models/{LOGICAL}"))
        .await;
    assert_eq!((status, &model["stream_resume"]), (200, &json!(true)));
    let body = streamed_chat_body(LOGICAL, "Hi");
    let (status, text) = stream(&gateway, "/v1/chat/completions", &body, false).await;
    assert_eq!(status, 200);
    assert_resumed_chat(&a, &b, &text).await;
}

/// `/v1/messages` to Anthropic providers passes Anthropic's own stream through: the continuation
/// is Anthropic's prefill, and its events join the client's open text block.
#[tokio::test]
async fn an_anthropic_stream_goes_on_with_a_prefill_in_the_same_message() {
    let (a, b, builder) = two_mocks(Some("anthropic")).await;
    // Anthropic's stream: message_start, ping, the text block's start, then a word: cut after
    // two words.
    a.fault(json!({"drop_after_events": 5, "event_delay_ms": 50}))
        .await;
    let gateway = builder
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .start()
        .await;
    let body = json!({"model": LOGICAL, "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]});
    let (status, text) = stream(&gateway, "/v1/messages", &body, true).await;
    assert_eq!(status, 200);
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect();
    let count = |kind: &str| events.iter().filter(|e| e["type"] == kind).count();
    assert_eq!(
        (
            count("message_start"),
            count("content_block_start"),
            count("message_stop")
        ),
        (1, 1, 1),
        "one message, one text block: {text}"
    );
    assert_eq!(count("error"), 0, "{text}");
    let written: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    let partial = "Hello from a! You said:";
    let rest = written
        .strip_prefix(partial)
        .unwrap_or_else(|| panic!("A's text first: {written}"));
    assert!(rest.starts_with("Hello from b!"), "{written}");
    assert!(
        events
            .iter()
            .filter(|e| e.get("index").is_some())
            .all(|e| e["index"] == 0),
        "{text}"
    );
    assert_marker_before_the_end(
        &text,
        "event: message_stop\ndata: {\"type\":\"message_stop\"}",
    );
    // B got the partial answer as the start of its own (a prefill).
    let sent = &b.stats().await["last_request"];
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": partial},
        ])
    );
}

/// `/v1/messages` to OpenAI providers: the hub stream is resumed, then written as Anthropic events.
#[tokio::test]
async fn a_translated_messages_stream_goes_on_too() {
    let (_a, b, builder) = two_mocks(None).await;
    let gateway = builder
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .start()
        .await;
    let body = json!({"model": LOGICAL, "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]});
    let (status, text) = stream(&gateway, "/v1/messages", &body, true).await;
    assert_eq!(status, 200);
    assert!(
        text.contains(": apiproxy-resumed provider=b attempts=2"),
        "{text}"
    );
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .filter_map(|data| serde_json::from_str(data).ok())
        .collect();
    assert!(events.iter().all(|e| e["type"] != "error"), "{text}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "message_start")
            .count(),
        1
    );
    let written: String = events
        .iter()
        .filter_map(|e| e.pointer("/delta/text").and_then(Value::as_str))
        .collect();
    assert!(written.starts_with(PARTIAL), "{written}");
    assert!(
        written[PARTIAL.len()..].starts_with("Hello from b!"),
        "{written}"
    );
    assert_eq!(b.chat_requests().await, 1);
}
