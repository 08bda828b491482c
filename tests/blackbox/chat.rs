//! Non-streamed chat through one healthy upstream (SPEC 4.2).

use serde_json::json;

use crate::support::*;

async fn one_upstream() -> (Mock, Gateway) {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;
    (a, gateway)
}

#[tokio::test]
async fn a_non_streamed_chat_returns_the_upstream_reply_with_routing_headers() {
    let (a, gateway) = one_upstream().await;

    let response = gateway.chat(chat_body(LOGICAL, "Hello there")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("a"));
    assert_eq!(header(&response, "x-apiproxy-model"), Some("up-a"));
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("1"));
    let request_id = header(&response, "x-request-id").expect("X-Request-Id");
    assert!(!request_id.is_empty());
    assert!(
        header(&response, "content-type").is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        response.headers()
    );
    let body = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    let content = body["choices"][0]["message"]["content"]
        .as_str()
        .expect("a message content");
    assert!(
        content.starts_with("Hello from a! You said: \"Hello there\"."),
        "{content}"
    );
    assert_eq!(a.chat_requests().await, 1);
}

#[tokio::test]
async fn the_upstream_sees_the_physical_model_the_unknown_fields_and_the_provider_key() {
    let (a, gateway) = one_upstream().await;
    let mut body = chat_body(LOGICAL, "Hi");
    body["x_custom"] = json!({"k": [1, 2]});
    body["temperature"] = json!(0.25);

    let response = gateway.chat(body).await;

    assert_eq!(response.status(), 200);
    let stats = a.stats().await;
    let seen = &stats["last_request"];
    assert_eq!(seen["model"], "up-a", "model rewritten: {seen}");
    assert_eq!(
        seen["x_custom"],
        json!({"k": [1, 2]}),
        "passed through: {seen}"
    );
    assert_eq!(seen["temperature"], json!(0.25));
    assert_eq!(
        seen["messages"],
        json!([{"role": "user", "content": "Hi"}]),
        "{seen}"
    );
    assert_eq!(
        stats["last_headers"]["authorization"],
        format!("Bearer {}", provider_key("a")),
        "{stats}"
    );
}

#[tokio::test]
async fn a_client_request_id_is_echoed_back() {
    let (_a, gateway) = one_upstream().await;

    let response = gateway
        .post("/v1/chat/completions")
        .header("x-request-id", "my-trace-42")
        .json_body(&chat_body(LOGICAL, "Hi"))
        .send()
        .await
        .expect("chat");

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-request-id"), Some("my-trace-42"));
}

#[tokio::test]
async fn each_request_without_an_id_gets_a_fresh_one() {
    let (_a, gateway) = one_upstream().await;

    let first = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    let second = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    let first = header(&first, "x-request-id")
        .expect("first id")
        .to_string();
    let second = header(&second, "x-request-id")
        .expect("second id")
        .to_string();
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_hundred_kib_prompt_is_accepted_with_the_default_body_limit() {
    let (a, gateway) = one_upstream().await;
    let prompt = "x".repeat(100 * 1024);

    let response = gateway.chat(chat_body(LOGICAL, &prompt)).await;

    assert_eq!(response.status(), 200);
    let stats = a.stats().await;
    let seen = stats["last_request"]["messages"][0]["content"]
        .as_str()
        .expect("content")
        .len();
    assert_eq!(seen, 100 * 1024, "the whole prompt reached the upstream");
}

#[tokio::test]
async fn a_base_url_ending_in_v1_does_not_double_the_path() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &format!("{}/v1", a.url))
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;

    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(a.chat_requests().await, 1);
}

/// The OpenAI pass-through takes nothing away and adds nothing: the client gets the upstream's
/// answer byte for byte, whole or streamed (the mock's answers are deterministic, so the same
/// request sent straight to it is the reference).
#[tokio::test]
async fn an_openai_upstream_answer_reaches_the_client_byte_for_byte() {
    let (a, gateway) = one_upstream().await;
    for stream in [false, true] {
        let mut body = chat_body(LOGICAL, "Same bytes, please");
        body["stream"] = json!(stream);

        let through = gateway.chat(body.clone()).await;
        assert_eq!(through.status(), 200, "stream={stream}");
        let through = through.bytes().await.expect("the gateway's answer");

        body["model"] = json!("up-a");
        let direct = client()
            .post(format!("{}/v1/chat/completions", a.url))
            .header("authorization", format!("Bearer {}", provider_key("a")))
            .json_body(&body)
            .send()
            .await
            .expect("the mock's answer");
        assert_eq!(direct.status(), 200, "stream={stream}");
        let direct = direct.bytes().await.expect("the mock's answer");

        assert!(direct.len() > 50, "stream={stream}: {direct:?}");
        assert_eq!(
            String::from_utf8_lossy(&through),
            String::from_utf8_lossy(&direct),
            "stream={stream}"
        );
        assert_eq!(through, direct, "stream={stream}");
    }
    assert_eq!(a.chat_requests().await, 4);
}
