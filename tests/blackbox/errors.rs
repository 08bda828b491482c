//! Client errors and authentication (SPEC 3, 4.6).

use crate::support::*;

async fn one_upstream(extra_env: &[(&str, &str)]) -> (Mock, Gateway) {
    let a = Mock::start("a", &["up-a"]);
    let mut builder = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)]);
    for (key, value) in extra_env {
        builder = builder.env(key, value);
    }
    (a, builder.start().await)
}

#[tokio::test]
async fn an_unknown_model_is_404_model_not_found() {
    let (a, gateway) = one_upstream(&[]).await;

    let response = gateway.chat(chat_body("no-such-model", "Hi")).await;

    assert_eq!(response.status(), 404);
    let body = json_of(response).await;
    let error = assert_error_shape(&body);
    assert_eq!(error["code"], "model_not_found", "{body}");
    assert_eq!(a.chat_requests().await, 0);
}

#[tokio::test]
async fn malformed_json_is_400_with_the_error_shape() {
    let (a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(r#"{"model": "chat-model", "messages": [ "#)
        .send()
        .await
        .expect("chat");

    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    let error = assert_error_shape(&body);
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    assert_eq!(a.chat_requests().await, 0);
}

#[tokio::test]
async fn a_body_without_a_model_is_400_naming_the_param() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .chat(serde_json::json!({"messages": [{"role": "user", "content": "Hi"}]}))
        .await;

    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    assert_eq!(assert_error_shape(&body)["param"], "model", "{body}");
}

#[tokio::test]
async fn a_body_larger_than_max_request_body_bytes_is_413() {
    let (a, gateway) = one_upstream(&[("MAX_REQUEST_BODY_BYTES", "1000")]).await;
    let prompt = "x".repeat(2000);

    let response = gateway.chat(chat_body(LOGICAL, &prompt)).await;

    assert_eq!(response.status(), 413);
    let body = json_of(response).await;
    assert_error_shape(&body);
    assert_eq!(a.chat_requests().await, 0);
}

#[tokio::test]
async fn a_body_under_max_request_body_bytes_is_served() {
    let (_a, gateway) = one_upstream(&[("MAX_REQUEST_BODY_BYTES", "1000")]).await;

    let response = gateway.chat(chat_body(LOGICAL, "short")).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn an_unknown_route_is_404_with_the_error_shape() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway.get("/v1/nope").send().await.expect("get");

    assert_eq!(response.status(), 404);
    let body = json_of(response).await;
    assert_error_shape(&body);
}

#[tokio::test]
async fn a_request_without_a_token_is_401_with_www_authenticate() {
    let (a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .json_body(&chat_body(LOGICAL, "Hi"))
        .send()
        .await
        .expect("chat");

    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
    let body = json_of(response).await;
    assert_error_shape(&body);
    assert_eq!(a.chat_requests().await, 0);
}

#[tokio::test]
async fn a_wrong_token_is_401() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .client
        .get(format!("{}/v1/models", gateway.url))
        .header("authorization", "Bearer bm9wZQ==")
        .send()
        .await
        .expect("models");

    assert_eq!(response.status(), 401);
    assert_eq!(header(&response, "www-authenticate"), Some("Bearer"));
}

#[tokio::test]
async fn the_x_api_key_header_is_accepted_as_the_token() {
    let (a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("x-api-key", TOKEN)
        .json_body(&chat_body(LOGICAL, "Hi"))
        .send()
        .await
        .expect("chat");

    assert_eq!(response.status(), 200);
    assert_eq!(a.chat_requests().await, 1);
}

#[tokio::test]
async fn health_needs_no_token() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .client
        .get(format!("{}/health", gateway.url))
        .send()
        .await
        .expect("health");

    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn the_client_token_is_never_forwarded_to_the_upstream() {
    let (a, gateway) = one_upstream(&[]).await;

    for (header, value) in [
        ("authorization", AUTH.to_string()),
        ("authorization", "Bearer timeline".to_string()),
        ("x-api-key", TOKEN.to_string()),
        ("x-api-key", "timeline".to_string()),
    ] {
        let response = gateway
            .client
            .post(format!("{}/v1/chat/completions", gateway.url))
            .header(header, &value)
            .json_body(&chat_body(LOGICAL, "Hi"))
            .send()
            .await
            .expect("chat");
        assert_eq!(response.status(), 200, "{header}: {value}");
        let stats = a.stats().await;
        // Every header the upstream got (the mock records them all) and the body it got.
        let seen = format!("{}{}", stats["last_headers"], stats["last_request"]);
        for form in [TOKEN, "timeline"] {
            assert!(!seen.contains(form), "{form} reached the upstream: {seen}");
        }
    }
}

#[tokio::test]
async fn the_plain_token_is_accepted_too() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .client
        .get(format!("{}/v1/models", gateway.url))
        .header("authorization", "Bearer timeline")
        .send()
        .await
        .expect("models");

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_authorization_header_wins_over_a_right_x_api_key() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .client
        .get(format!("{}/v1/models", gateway.url))
        .header("authorization", "Bearer bm9wZQ==")
        .header("x-api-key", TOKEN)
        .send()
        .await
        .expect("models");

    assert_eq!(response.status(), 401);
}
