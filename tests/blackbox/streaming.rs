//! Streamed chat (SPEC 4.2 streaming detection, 5.5 errors after the first byte).

use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn a_streamed_chat_relays_the_upstream_chunks_and_ends_with_done() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Stream me")).await;

    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type").is_some_and(|v| v.starts_with("text/event-stream")),
        "{:?}",
        response.headers()
    );
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("a"));
    assert_eq!(header(&response, "x-apiproxy-model"), Some("up-a"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("1"));
    let text = response.text().await.expect("stream body");
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert!(!has_error_event(&events), "{text}");
    let content = streamed_text(&events);
    assert!(
        content.starts_with("Hello from a! You said: \"Stream me\"."),
        "{content}"
    );
    let first: Value = serde_json::from_str(&events[0]).expect("a JSON chunk");
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "up-a");
    let stats = a.stats().await;
    assert_eq!(stats["last_request"]["stream"], true);
    assert_eq!(stats["last_request"]["model"], "up-a");
}

#[tokio::test]
async fn an_event_stream_accept_header_streams_when_the_body_says_nothing() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;

    let response = gateway
        .post("/v1/chat/completions")
        .header("accept", "text/event-stream")
        .json_body(&chat_body(LOGICAL, "Hi"))
        .send()
        .await
        .expect("chat");

    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type").is_some_and(|v| v.starts_with("text/event-stream")),
        "{:?}",
        response.headers()
    );
    let events = sse_data(&response.text().await.expect("body"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert!(streamed_text(&events).starts_with("Hello from a!"));
    let stats = a.stats().await;
    assert_eq!(
        stats["last_request"]["stream"], true,
        "streaming inferred from Accept sets \"stream\": true upstream"
    );
}

#[tokio::test]
async fn an_explicit_stream_false_wins_over_an_event_stream_accept_header() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;
    let mut body = chat_body(LOGICAL, "Hi");
    body["stream"] = json!(false);

    let response = gateway
        .post("/v1/chat/completions")
        .header("accept", "text/event-stream")
        .json_body(&body)
        .send()
        .await
        .expect("chat");

    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type").is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        response.headers()
    );
    let body = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(a.stats().await["last_request"]["stream"], false);
}

#[tokio::test]
async fn an_upstream_failure_after_the_first_content_ends_the_stream_with_an_error_event() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .start()
        .await;
    // The role chunk and three words, then the connection is cut. The delay lets the first events
    // reach the gateway: without it the mock aborts the connection before its headers leave.
    a.fault(json!({"drop_after_events": 4, "event_delay_ms": 50}))
        .await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("a"));
    let text = response.text().await.expect("stream body");
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().expect("some events"))
        .unwrap_or_else(|e| panic!("the last event is not JSON ({e}): {text}"));
    assert_eq!(last["error"]["type"], "upstream_error", "{text}");
    assert!(last["error"]["message"].is_string(), "{text}");
    assert!(last["error"].get("status").is_some(), "{text}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{text}");
    assert!(
        streamed_text(&events).starts_with("Hello from a! You said:"),
        "the content before the failure was relayed: {text}"
    );
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(
        b.chat_requests().await,
        0,
        "no second attempt after the first byte"
    );
}

#[tokio::test]
async fn a_stream_that_goes_silent_after_its_first_content_ends_with_an_error_event_at_the_idle_timeout()
 {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .env("UPSTREAM_IDLE_TIMEOUT", "1")
        .start()
        .await;
    // The first content arrives after 1.2 s (within the 60 s first-byte bound), the next 1.2 s
    // later: past the 1 s idle bound.
    a.fault(json!({"event_delay_ms": 1200})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream body");
    let events = sse_data(&text);
    let last: Value = serde_json::from_str(events.last().expect("some events"))
        .unwrap_or_else(|e| panic!("the last event is not JSON ({e}): {text}"));
    assert_eq!(last["error"]["type"], "upstream_error", "{text}");
    assert_eq!(streamed_text(&events), "Hello from a!", "{text}");
    assert_eq!(b.chat_requests().await, 0);
}
