//! Dynamic models, provider pinning and the model list (SPEC 4.1, 4.2 model resolution).

use serde_json::Value;

use crate::support::*;

/// Two providers and no logical model file: `a` lists `up-x`, `b` lists `up-y`.
async fn dynamic() -> (Mock, Mock, Gateway) {
    let a = Mock::start("a", &["up-x"]);
    let b = Mock::start("b", &["up-y"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .start()
        .await;
    (a, b, gateway)
}

#[tokio::test]
async fn a_model_that_a_provider_lists_can_be_requested_by_name() {
    let (a, b, gateway) = dynamic().await;

    let response = gateway.chat(chat_body("up-x", "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("a"));
    assert_eq!(header(&response, "x-apiproxy-model"), Some("up-x"));
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 0);
    assert_eq!(a.stats().await["last_request"]["model"], "up-x");
}

#[tokio::test]
async fn a_provider_prefix_pins_the_request_to_that_provider() {
    let (a, b, gateway) = dynamic().await;

    let response = gateway.chat(chat_body("b/anything", "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-apiproxy-provider"), Some("b"));
    assert_eq!(header(&response, "x-apiproxy-model"), Some("anything"));
    assert_eq!(a.chat_requests().await, 0);
    assert_eq!(b.chat_requests().await, 1);
    assert_eq!(
        b.stats().await["last_request"]["model"],
        "anything",
        "the prefix is stripped upstream"
    );
}

#[tokio::test]
async fn a_model_no_provider_lists_is_not_found() {
    let (a, b, gateway) = dynamic().await;

    let response = gateway.chat(chat_body("up-z", "Hi")).await;

    assert_eq!(response.status(), 404);
    let body = json_of(response).await;
    assert_eq!(assert_error_shape(&body)["code"], "model_not_found");
    assert_eq!(a.chat_requests().await + b.chat_requests().await, 0);
}

#[tokio::test]
async fn the_model_list_shows_every_providers_models_owned_by_the_provider() {
    let (_a, _b, gateway) = dynamic().await;

    let response = gateway.get("/v1/models").send().await.expect("models");

    assert_eq!(response.status(), 200);
    let body = json_of(response).await;
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().expect("data array");
    let owner = |id: &str| {
        data.iter()
            .find(|m| m["id"] == id)
            .map(|m| m["owned_by"].clone())
    };
    assert_eq!(owner("up-x"), Some(Value::from("a")), "{body}");
    assert_eq!(owner("up-y"), Some(Value::from("b")), "{body}");
    for model in data {
        assert_eq!(model["object"], "model", "{model}");
        assert!(
            model["created"].is_i64() || model["created"].is_u64(),
            "{model}"
        );
    }
}

#[tokio::test]
async fn the_model_list_shows_logical_models_owned_by_apiproxy() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;

    let body = json_of(gateway.get("/models").send().await.expect("models")).await;

    let data = body["data"].as_array().expect("data array");
    let logical = data
        .iter()
        .find(|m| m["id"] == LOGICAL)
        .unwrap_or_else(|| panic!("{LOGICAL} listed: {body}"));
    assert_eq!(logical["owned_by"], "apiproxy");
    assert!(
        data.iter()
            .any(|m| m["id"] == "up-a" && m["owned_by"] == "a")
    );
}

#[tokio::test]
async fn one_model_is_found_by_id_and_an_unknown_one_is_404() {
    let (_a, _b, gateway) = dynamic().await;

    let found = gateway.get("/v1/models/up-y").send().await.expect("get");
    assert_eq!(found.status(), 200);
    let model = json_of(found).await;
    assert_eq!(model["id"], "up-y");
    assert_eq!(model["owned_by"], "b");
    assert_eq!(model["object"], "model");

    let missing = gateway.get("/v1/models/nope").send().await.expect("get");
    assert_eq!(missing.status(), 404);
    let body = json_of(missing).await;
    assert_eq!(assert_error_shape(&body)["code"], "model_not_found");
}

#[tokio::test]
async fn the_model_list_is_fetched_once_per_provider_within_the_cache_ttl() {
    let (a, b, gateway) = dynamic().await;

    for _ in 0..3 {
        let response = gateway.get("/v1/models").send().await.expect("models");
        assert_eq!(response.status(), 200);
    }
    let response = gateway.chat(chat_body("up-x", "Hi")).await;
    assert_eq!(response.status(), 200);

    assert_eq!(a.stats().await["model_requests"], 1);
    assert_eq!(b.stats().await["model_requests"], 1);
}
