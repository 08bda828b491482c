//! Failover between upstreams (SPEC 5.1, 5.5). Upstream `a` is weighted so that it is always tried
//! first, `b` second.

use serde_json::json;

use crate::support::*;

/// A gateway whose first upstream `dead` refuses connections and whose second is the mock `b`.
async fn dead_then_b() -> (Mock, Gateway) {
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider("dead", &closed_url())
        .provider("b", &b.url)
        .logical(&[("dead", "up-dead", FIRST), ("b", "up-b", SECOND)])
        .start()
        .await;
    (b, gateway)
}

async fn assert_streamed_by_b(response: reqwest::Response) {
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    assert_eq!(header(&response, "x-apiproxy-model"), Some("up-b"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    let text = response.text().await.expect("stream body");
    let events = sse_data(&text);
    assert!(!has_error_event(&events), "no error event: {text}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let content = streamed_text(&events);
    assert!(content.starts_with("Hello from b!"), "{content}");
    assert!(!text.contains("Hello from a"), "{text}");
}

#[tokio::test]
async fn a_500_from_the_first_upstream_fails_over_to_the_second() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 500})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    assert_eq!(header(&response, "x-apiproxy-model"), Some("up-b"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    let body = json_of(response).await;
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("content");
    assert!(content.starts_with("Hello from b!"), "{content}");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
    assert_eq!(b.stats().await["last_request"]["model"], "up-b");
}

#[tokio::test]
async fn a_non_streamed_chat_fails_over_when_the_first_upstream_refuses_connections() {
    let (b, gateway) = dead_then_b().await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_stream_that_drops_before_its_first_content_fails_over_invisibly() {
    let Pair { a, b, gateway } = pair(&[]).await;
    // Only the role-only chunk, then the connection is cut.
    a.fault(json!({"drop_after_events": 1})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_streamed_by_b(response).await;
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_stream_that_goes_silent_after_its_role_chunk_fails_over_at_the_first_byte_timeout() {
    let Pair { a, b, gateway } = pair(&[("UPSTREAM_FIRST_BYTE_TIMEOUT", "1")]).await;
    // 200, headers and the role-only chunk at once, then 1.5 s of silence before any content.
    a.fault(json!({"event_delay_ms": 1500})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_streamed_by_b(response).await;
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_stream_whose_first_event_is_an_error_fails_over() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"error_event_first": true})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_streamed_by_b(response).await;
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_stream_fails_over_when_the_first_upstream_refuses_connections() {
    let (b, gateway) = dead_then_b().await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_streamed_by_b(response).await;
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_stream_fails_over_when_the_first_upstream_hangs_before_its_headers() {
    let Pair { a, b, gateway } = pair(&[("UPSTREAM_FIRST_BYTE_TIMEOUT", "1")]).await;
    a.fault(json!({"hang": true})).await;
    let started = std::time::Instant::now();

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_streamed_by_b(response).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "the hang was cut at the first-byte timeout, took {:?}",
        started.elapsed()
    );
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_non_streamed_chat_fails_over_when_the_first_upstream_hangs() {
    let Pair { a, b, gateway } = pair(&[("UPSTREAM_FIRST_BYTE_TIMEOUT", "1")]).await;
    a.fault(json!({"hang": true})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_non_streamed_answer_cut_off_mid_body_fails_over() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"drop_after_events": 1})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    let body = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn a_200_whose_body_is_not_json_fails_over() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"invalid_json": true})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    let body = json_of(response).await;
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .is_some_and(|c| c.starts_with("Hello from b!")),
        "{body}"
    );
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn retryable_status_codes_none_relays_a_500_without_failover() {
    let Pair { a, b, gateway } = pair(&[("LLM_PROVIDER_a_RETRYABLE_STATUS_CODES", "none")]).await;
    a.fault(json!({"status": 500})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 500);
    let body = json_of(response).await;
    assert_eq!(body["error"]["message"], "mock a says 500", "{body}");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 0);
}

#[tokio::test]
async fn an_upstream_404_is_relayed_with_its_own_status() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 404})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 404);
    let body = json_of(response).await;
    assert_eq!(body["error"]["message"], "mock a says 404", "{body}");
    assert_eq!(b.chat_requests().await, 0);
}

#[tokio::test]
async fn a_non_retryable_400_is_relayed_without_failover() {
    let Pair { a, b, gateway } = pair(&[]).await;
    let upstream_error = json!({"error": {"message": "bad field from a", "type": "invalid_request_error", "param": "messages", "code": "bad_field"}});
    a.fault(json!({"status": 400, "body": upstream_error.to_string()}))
        .await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    assert_eq!(body, upstream_error, "the upstream's own error body");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 0, "no failover on a 400");
}

#[tokio::test]
async fn a_default_400_body_from_the_upstream_keeps_its_message() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 400})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    assert_eq!(body["error"]["message"], "mock a says 400", "{body}");
    assert_eq!(b.chat_requests().await, 0);
}

#[tokio::test]
async fn a_non_retryable_400_on_a_stream_is_relayed_without_failover() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 400})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    assert_eq!(body["error"]["message"], "mock a says 400", "{body}");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 0);
}

#[tokio::test]
async fn when_every_upstream_answers_500_the_client_gets_502_all_upstreams_failed() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 500})).await;
    b.fault(json!({"status": 500})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 502);
    let body = json_of(response).await;
    let error = assert_error_shape(&body);
    assert_eq!(error["code"], "all_upstreams_failed", "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(LOGICAL),
        "names the logical model: {message}"
    );
    assert!(message.contains("500"), "names the last status: {message}");
    assert_eq!(a.chat_requests().await, 1, "each candidate at most once");
    assert_eq!(b.chat_requests().await, 1, "each candidate at most once");
}

#[tokio::test]
async fn when_every_upstream_answers_429_the_client_gets_429_with_retry_after() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 429, "retry_after": 7})).await;
    b.fault(json!({"status": 429, "retry_after": 3})).await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 429);
    let retry_after = header(&response, "retry-after")
        .expect("a Retry-After header")
        .to_string();
    // The soonest any candidate would accept again (specs/001-model-routing).
    assert_eq!(
        retry_after, "3",
        "Retry-After is the smallest upstream value"
    );
    let body = json_of(response).await;
    assert_error_shape(&body);
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn when_every_streamed_attempt_fails_the_client_gets_a_502_before_any_stream() {
    let Pair { a, b, gateway } = pair(&[]).await;
    a.fault(json!({"status": 503})).await;
    b.fault(json!({"drop_after_events": 1})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 502);
    let body = json_of(response).await;
    assert_eq!(assert_error_shape(&body)["code"], "all_upstreams_failed");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}
