//! The management API over the in-memory store (SPEC 4.5): providers, logical models, routing
//! decisions, sessions and context, each with its success and error answers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// How long background writes (sessions, context, metrics) get to land after an answer.
const SETTLE: Duration = Duration::from_secs(2);

/// One mock `a` behind the logical model `chat-model`.
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

/// Two mocks `a` and `b` with equal weights behind `chat-model`.
async fn two_upstreams(extra_env: &[(&str, &str)]) -> (Mock, Mock, Gateway) {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let mut builder = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", 1.0), ("b", "up-b", 1.0)]);
    for (key, value) in extra_env {
        builder = builder.env(key, value);
    }
    (a, b, builder.start().await)
}

fn error_code(body: &Value) -> &Value {
    &assert_error_shape(body)["code"]
}

fn error_param(body: &Value) -> &Value {
    &assert_error_shape(body)["param"]
}

fn provider_ids(upstreams: &Value) -> Vec<String> {
    upstreams
        .as_array()
        .unwrap_or_else(|| panic!("an array of upstreams: {upstreams}"))
        .iter()
        .map(|u| {
            u["provider_id"]
                .as_str()
                .unwrap_or_else(|| panic!("provider_id in {u}"))
                .to_string()
        })
        .collect()
}

/// The session's history once it holds `len` entries.
async fn history_of_len(gateway: &Gateway, session: &str, len: usize) -> Vec<Value> {
    eventually(
        SETTLE,
        &format!("{len} context entries of {session}"),
        || async {
            let (status, body) = gateway.get_json(&format!("/context/{session}")).await;
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["session_id"], session, "{body}");
            let history = body["history"].as_array().expect("history array").clone();
            (history.len() == len).then_some(history)
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Providers

#[tokio::test]
async fn the_provider_list_masks_every_api_key_and_never_shows_the_real_one() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider_with_key("a", &a.url, "sk-secret-alpha-abcd")
        .provider_with_key("b", &b.url, "sk-secret-bravo-wxyz")
        .start()
        .await;

    let response = gateway.get("/providers").send().await.expect("providers");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");

    assert!(!text.contains("sk-secret"), "a key leaked: {text}");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(body["total"], 2, "{body}");
    let providers = body["providers"].as_array().expect("providers array");
    let key_of = |id: &str| {
        providers
            .iter()
            .find(|p| p["id"] == id)
            .unwrap_or_else(|| panic!("provider {id} listed: {body}"))["api_key"]
            .clone()
    };
    assert_eq!(key_of("a"), "****abcd");
    assert_eq!(key_of("b"), "****wxyz");
}

#[tokio::test]
async fn one_provider_is_shown_masked_and_an_unknown_provider_is_404() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider_with_key("a", &a.url, "sk-secret-alpha-abcd")
        .start()
        .await;

    let response = gateway.get("/providers/a").send().await.expect("provider");
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(!text.contains("sk-secret"), "the key leaked: {text}");
    let provider: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(provider["id"], "a");
    assert_eq!(provider["name"], "Provider a");
    assert_eq!(provider["base_url"], a.url.as_str());
    assert_eq!(provider["api_key"], "****abcd");

    let (status, body) = gateway.get_json("/providers/nope").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "provider_not_found");
}

#[tokio::test]
async fn a_providers_models_come_from_its_upstream_and_a_dead_upstream_is_502() {
    let a = Mock::start("a", &["up-x", "up-y"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("dead", &closed_url())
        .start()
        .await;

    let (status, body) = gateway.get_json("/providers/a/models").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 2, "{body}");
    let mut ids: Vec<&str> = body["models"]
        .as_array()
        .expect("models array")
        .iter()
        .map(|m| m["model_id"].as_str().expect("model_id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["up-x", "up-y"]);
    assert!(
        body["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["provider_id"] == "a"),
        "{body}"
    );
    assert_eq!(a.stats().await["model_requests"], 1);

    let (status, body) = gateway.get_json("/providers/dead/models").await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_code(&body), "upstream_unavailable");

    let (status, body) = gateway.get_json("/providers/nope/models").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "provider_not_found");
}

#[tokio::test]
async fn a_live_provider_is_healthy_and_a_closed_port_is_down() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("dead", &closed_url())
        .start()
        .await;

    let (status, live) = gateway.get_json("/providers/a/health").await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["provider_id"], "a");
    assert_eq!(live["status"], "healthy", "{live}");
    assert!(
        live["response_time_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0),
        "{live}"
    );
    assert!(live["last_successful_check"].is_number(), "{live}");
    assert_eq!(
        a.stats().await["model_requests"],
        1,
        "one live call of the models path"
    );

    let (status, dead) = gateway.get_json("/providers/dead/health").await;
    assert_eq!(status, 200, "{dead}");
    assert_eq!(dead["status"], "down", "{dead}");
    assert!(dead.get("response_time_ms").is_some(), "{dead}");
    assert!(dead["error_message"].is_string(), "{dead}");
    assert!(dead["last_successful_check"].is_null(), "{dead}");

    let (status, body) = gateway.get_json("/providers/nope/health").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "provider_not_found");
}

#[tokio::test]
async fn provider_metrics_count_the_chats_it_served_per_logical_model() {
    let (a, gateway) = one_upstream(&[]).await;
    for _ in 0..3 {
        assert_eq!(gateway.chat(chat_body(LOGICAL, "Hi")).await.status(), 200);
    }
    assert_eq!(a.chat_requests().await, 3);

    let metrics = eventually(SETTLE, "three recorded attempts", || async {
        let (status, body) = gateway.get_json("/providers/a/metrics").await;
        assert_eq!(status, 200, "{body}");
        let metrics = body["metrics"].as_array().expect("metrics array").clone();
        metrics
            .first()
            .is_some_and(|m| m["total_requests_1m"] == 3)
            .then_some(metrics)
    })
    .await;
    assert_eq!(metrics.len(), 1, "{metrics:?}");
    let figures = &metrics[0];
    assert_eq!(figures["logical_model"], LOGICAL);
    assert_eq!(figures["provider_id"], "a");
    assert_eq!(figures["error_rate"], 0.0);
    assert_eq!(figures["status"], "healthy");
    assert!(figures["latency_p95_ms"].is_number(), "{figures}");

    let (status, body) = gateway
        .get_json(&format!("/providers/a/metrics?logical_model={LOGICAL}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["metrics"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["metrics"][0]["total_requests_1m"], 3);

    let (status, body) = gateway
        .get_json("/providers/a/metrics?logical_model=other-model")
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["metrics"], json!([]), "{body}");

    let (status, body) = gateway.get_json("/providers/nope/metrics").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "provider_not_found");
}

#[tokio::test]
async fn provider_metrics_count_failed_attempts_in_the_error_rate() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", FIRST), ("b", "up-b", SECOND)])
        .env("PROVIDER_FAILURE_THRESHOLD", "100")
        .start()
        .await;
    a.fault(json!({"status": 500, "times": 1})).await;

    for _ in 0..2 {
        assert_eq!(gateway.chat(chat_body(LOGICAL, "Hi")).await.status(), 200);
    }

    let figures = eventually(SETTLE, "two attempts on a", || async {
        let (_, body) = gateway.get_json("/providers/a/metrics").await;
        let first = body["metrics"][0].clone();
        (first["total_requests_1m"] == 2).then_some(first)
    })
    .await;
    assert_eq!(figures["error_rate"], 0.5, "{figures}");
    assert_eq!(a.chat_requests().await, 2);
    assert_eq!(b.chat_requests().await, 1);
}

// ---------------------------------------------------------------------------------------------
// Logical models

#[tokio::test]
async fn logical_models_are_listed_fetched_and_an_unknown_one_is_404() {
    let (a, gateway) = one_upstream(&[]).await;

    let (status, list) = gateway.get_json("/logical-models").await;
    assert_eq!(status, 200);
    assert_eq!(list["total"], 1, "{list}");
    assert_eq!(list["models"][0]["logical_id"], LOGICAL);

    let (status, model) = gateway
        .get_json(&format!("/logical-models/{LOGICAL}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(model["logical_id"], LOGICAL);
    assert_eq!(model["enabled"], true);
    assert_eq!(provider_ids(&model["upstreams"]), ["a"]);
    assert_eq!(model["upstreams"][0]["model_id"], "up-a");
    assert_eq!(
        model["upstreams"][0]["endpoint"],
        format!("{}/v1/chat/completions", a.url),
        "derived from the provider's BASE_URL"
    );

    let (status, body) = gateway
        .get_json(&format!("/logical-models/{LOGICAL}/upstreams"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(provider_ids(&body["upstreams"]), ["a"]);

    let (status, body) = gateway.get_json("/logical-models/nope").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "logical_model_not_found");
    let (status, body) = gateway.get_json("/logical-models/nope/upstreams").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "logical_model_not_found");
}

#[tokio::test]
async fn put_creates_a_logical_model_with_201_and_replaces_it_with_200() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .start()
        .await;

    let (status, created) = gateway
        .put_json(
            "/logical-models/fresh",
            &json!({"upstreams": [{"provider_id": "a", "model_id": "up-a", "base_weight": 2.0}]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["logical_id"], "fresh");
    assert_eq!(created["display_name"], "fresh", "defaults to the id");
    assert_eq!(created["upstreams"][0]["base_weight"], 2.0);

    let (status, replaced) = gateway
        .put_json(
            "/logical-models/fresh",
            &json!({"logical_id": "fresh", "description": "now on b",
                    "upstreams": [{"provider_id": "b", "model_id": "up-b"}]}),
        )
        .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(provider_ids(&replaced["upstreams"]), ["b"]);

    let (_, stored) = gateway.get_json("/logical-models/fresh").await;
    assert_eq!(stored["description"], "now on b");
    assert_eq!(provider_ids(&stored["upstreams"]), ["b"]);
    let (_, list) = gateway.get_json("/logical-models").await;
    assert_eq!(list["total"], 1, "replaced, not added: {list}");
}

#[tokio::test]
async fn put_with_a_zero_weight_is_400_naming_the_upstreams_weight() {
    let (_a, gateway) = one_upstream(&[]).await;

    let (status, body) = gateway
        .put_json(
            "/logical-models/zero",
            &json!({"upstreams": [{"provider_id": "a", "model_id": "up-a", "base_weight": 0}]}),
        )
        .await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(error_param(&body), "upstreams[0].base_weight");
    assert_eq!(error_code(&body), "invalid_logical_model");
    let (status, _) = gateway.get_json("/logical-models/zero").await;
    assert_eq!(status, 404, "nothing was stored");
}

#[tokio::test]
async fn put_with_an_unconfigured_provider_is_400_naming_the_provider() {
    let (_a, gateway) = one_upstream(&[]).await;

    let (status, body) = gateway
        .put_json(
            "/logical-models/ghost",
            &json!({"upstreams": [{"provider_id": "a", "model_id": "up-a"},
                                  {"provider_id": "ghost", "model_id": "x"}]}),
        )
        .await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(error_param(&body), "upstreams[1].provider_id");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("ghost")),
        "{body}"
    );
    let (status, _) = gateway.get_json("/logical-models/ghost").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn put_ignores_a_client_sent_endpoint_and_chat_goes_to_the_providers_base_url() {
    let (a, gateway) = one_upstream(&[]).await;
    let evil = Mock::start("evil", &["up-a"]);
    let derived = format!("{}/v1/chat/completions", a.url);

    let (status, created) = gateway
        .put_json(
            "/logical-models/safe",
            &json!({"upstreams": [{"provider_id": "a", "model_id": "up-a",
                                   "endpoint": format!("{}/v1/chat/completions", evil.url)}]}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["upstreams"][0]["endpoint"], derived.as_str());

    let (_, stored) = gateway.get_json("/logical-models/safe").await;
    assert_eq!(stored["upstreams"][0]["endpoint"], derived.as_str());
    let (_, upstreams) = gateway.get_json("/logical-models/safe/upstreams").await;
    assert_eq!(upstreams["upstreams"][0]["endpoint"], derived.as_str());

    let (_, evil_put) = gateway
        .put_json(
            "/logical-models/safe",
            &json!({"upstreams": [{"provider_id": "a", "model_id": "up-a", "endpoint": "http://evil"}]}),
        )
        .await;
    assert!(
        !evil_put.to_string().contains("evil"),
        "the client's endpoint is not kept: {evil_put}"
    );

    let response = gateway.chat(chat_body("safe", "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(
        evil.chat_requests().await,
        0,
        "the key never follows a client URL"
    );
}

#[tokio::test]
async fn put_with_a_logical_id_other_than_the_paths_is_400() {
    let (_a, gateway) = one_upstream(&[]).await;

    let (status, body) = gateway
        .put_json(
            "/logical-models/one",
            &json!({"logical_id": "two", "upstreams": [{"provider_id": "a", "model_id": "up-a"}]}),
        )
        .await;

    assert_eq!(status, 400, "{body}");
    assert_eq!(error_param(&body), "logical_id");
    for id in ["one", "two"] {
        let (status, _) = gateway.get_json(&format!("/logical-models/{id}")).await;
        assert_eq!(status, 404, "{id} was not stored");
    }
}

#[tokio::test]
async fn put_with_a_body_that_is_not_json_is_400() {
    let (_a, gateway) = one_upstream(&[]).await;

    for bad in ["{not json", "", "[1, 2]"] {
        let response = gateway
            .put("/logical-models/broken")
            .header("content-type", "application/json")
            .body(bad)
            .send()
            .await
            .expect("PUT");
        assert_eq!(response.status(), 400, "body {bad:?}");
        let body = json_of(response).await;
        assert_error_shape(&body);
    }
    let (status, _) = gateway.get_json("/logical-models/broken").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn delete_removes_a_logical_model_once_and_then_it_is_404() {
    let (_a, gateway) = one_upstream(&[]).await;

    assert_eq!(
        gateway
            .delete_status(&format!("/logical-models/{LOGICAL}"))
            .await,
        204
    );

    let (status, body) = gateway
        .get_json(&format!("/logical-models/{LOGICAL}"))
        .await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "logical_model_not_found");
    let response = gateway
        .delete(&format!("/logical-models/{LOGICAL}"))
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 404);
    assert_eq!(
        error_code(&json_of(response).await),
        "logical_model_not_found"
    );
    let (_, list) = gateway.get_json("/logical-models").await;
    assert_eq!(list["total"], 0, "{list}");
}

#[tokio::test]
async fn a_model_created_by_put_is_routable_and_listed_at_once_and_gone_after_delete() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .start()
        .await;
    // Fill the model-list cache first: the new model must show despite it.
    let (_, before) = gateway.get_json("/v1/models").await;
    assert!(
        !before["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "team-model")
    );

    let (status, _) = gateway
        .put_json(
            "/logical-models/team-model",
            &json!({"upstreams": [{"provider_id": "b", "model_id": "up-b"}]}),
        )
        .await;
    assert_eq!(status, 201);

    let response = gateway.chat(chat_body("team-model", "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "b");
    assert_eq!(header(&response, "x-apiproxy-model"), Some("up-b"));
    assert_eq!(b.chat_requests().await, 1);
    assert_eq!(a.chat_requests().await, 0);
    let (_, models) = gateway.get_json("/v1/models").await;
    let listed = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "team-model")
        .unwrap_or_else(|| panic!("team-model in /v1/models: {models}"))
        .clone();
    assert_eq!(listed["owned_by"], "apiproxy");

    assert_eq!(
        gateway.delete_status("/logical-models/team-model").await,
        204
    );

    let response = gateway.chat(chat_body("team-model", "Hi")).await;
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(&json_of(response).await), "model_not_found");
    assert_eq!(b.chat_requests().await, 1, "no upstream call after delete");
    let (_, models) = gateway.get_json("/v1/models").await;
    assert!(
        !models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "team-model"),
        "deleted models leave the list: {models}"
    );
}

#[tokio::test]
async fn a_disabled_logical_model_answers_503_model_disabled_without_calling_upstreams() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical_models(json!([{"logical_id": "off", "enabled": false,
                                "upstreams": [{"provider_id": "a", "model_id": "up-a"}]}]))
        .start()
        .await;

    let response = gateway.chat(chat_body("off", "Hi")).await;

    assert_eq!(response.status(), 503);
    assert_eq!(error_code(&json_of(response).await), "model_disabled");
    assert_eq!(a.chat_requests().await, 0);
    let (_, models) = gateway.get_json("/v1/models").await;
    assert!(
        !models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "off"),
        "a disabled model is not listed: {models}"
    );
}

// ---------------------------------------------------------------------------------------------
// Routing decisions

#[tokio::test]
async fn routing_decide_names_the_selected_upstream_its_alternatives_and_every_candidates_score() {
    let (a, b, gateway) = two_upstreams(&[]).await;

    let (status, decision) = gateway
        .post_json("/routing/decide", &json!({"logical_model": LOGICAL}))
        .await;

    assert_eq!(status, 200, "{decision}");
    assert_eq!(decision["logical_model"], LOGICAL);
    assert_eq!(decision["strategy_used"], "balanced");
    assert!(decision["decision_time"].is_number(), "{decision}");
    assert!(decision["reasoning"].is_string(), "{decision}");
    let selected = decision["selected_upstream"]["provider_id"]
        .as_str()
        .expect("selected provider")
        .to_string();
    let alternatives = provider_ids(&decision["alternative_upstreams"]);
    assert_eq!(alternatives.len(), 1, "{decision}");
    assert_ne!(alternatives[0], selected);
    let candidates = decision["all_candidates"].as_array().expect("candidates");
    assert_eq!(candidates.len(), 2, "{decision}");
    for candidate in candidates {
        assert!(
            candidate["score"].as_f64().is_some_and(|s| s > 0.0),
            "{candidate}"
        );
        assert!(candidate["upstream"]["provider_id"].is_string());
    }
    assert_eq!(
        a.chat_requests().await + b.chat_requests().await,
        0,
        "a decision calls no upstream"
    );

    let (status, decision) = gateway
        .post_json(
            "/routing/decide",
            &json!({"logical_model": LOGICAL, "strategy": "cost_first"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(decision["strategy_used"], "cost_first");
}

#[tokio::test]
async fn routing_decide_rejects_an_unknown_strategy_and_model_and_a_disabled_model() {
    let (_a, gateway) = one_upstream(&[]).await;
    let (status, _) = gateway
        .put_json(
            "/logical-models/off",
            &json!({"enabled": false, "upstreams": [{"provider_id": "a", "model_id": "up-a"}]}),
        )
        .await;
    assert_eq!(status, 201);

    let (status, body) = gateway
        .post_json(
            "/routing/decide",
            &json!({"logical_model": LOGICAL, "strategy": "fastest_please"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_param(&body), "strategy");

    let (status, body) = gateway
        .post_json(
            "/routing/decide",
            &json!({"logical_model": "no-such-model"}),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(error_code(&body), "model_not_found");

    let (status, body) = gateway
        .post_json("/routing/decide", &json!({"logical_model": "off"}))
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "model_disabled");
}

#[tokio::test]
async fn routing_decide_never_selects_an_excluded_provider() {
    let (_a, _b, gateway) = two_upstreams(&[]).await;

    for _ in 0..20 {
        let (status, decision) = gateway
            .post_json(
                "/routing/decide",
                &json!({"logical_model": LOGICAL, "exclude_providers": ["a"]}),
            )
            .await;
        assert_eq!(status, 200, "{decision}");
        assert_eq!(decision["selected_upstream"]["provider_id"], "b");
        assert_eq!(decision["alternative_upstreams"], json!([]), "{decision}");
        assert_eq!(decision["all_candidates"].as_array().map(Vec::len), Some(1));
    }

    let (status, body) = gateway
        .post_json(
            "/routing/decide",
            &json!({"logical_model": LOGICAL, "exclude_providers": ["a", "b"]}),
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(error_code(&body), "no_available_upstream");
}

#[tokio::test]
async fn routing_decide_honours_a_matching_preferred_region_ignoring_case() {
    let (_a, _b, gateway) = two_upstreams(&[
        ("LLM_PROVIDER_a_REGION", "us-east"),
        ("LLM_PROVIDER_b_REGION", "EU-West"),
    ])
    .await;

    for _ in 0..20 {
        let (status, decision) = gateway
            .post_json(
                "/routing/decide",
                &json!({"logical_model": LOGICAL, "preferred_region": "eu-WEST"}),
            )
            .await;
        assert_eq!(status, 200, "{decision}");
        assert_eq!(decision["selected_upstream"]["provider_id"], "b");
        assert_eq!(
            decision["all_candidates"].as_array().map(Vec::len),
            Some(1),
            "only the region's upstreams: {decision}"
        );
    }
}

#[tokio::test]
async fn routing_decide_ignores_a_preferred_region_no_provider_is_in() {
    let (_a, _b, gateway) = two_upstreams(&[
        ("LLM_PROVIDER_a_REGION", "us-east"),
        ("LLM_PROVIDER_b_REGION", "eu-west"),
    ])
    .await;

    let mut selected = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (status, decision) = gateway
            .post_json(
                "/routing/decide",
                &json!({"logical_model": LOGICAL, "preferred_region": "ap-south"}),
            )
            .await;
        assert_eq!(status, 200, "{decision}");
        assert_eq!(
            decision["all_candidates"].as_array().map(Vec::len),
            Some(2),
            "{decision}"
        );
        selected.insert(
            decision["selected_upstream"]["provider_id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(
        selected.into_iter().collect::<Vec<_>>(),
        ["a", "b"],
        "both equal-weight providers are picked (odds of not: 2^-39)"
    );
}

#[tokio::test]
async fn routing_decide_with_a_conversation_id_binds_the_session_to_the_selection() {
    let (_a, _b, gateway) = two_upstreams(&[]).await;

    let (status, decision) = gateway
        .post_json(
            "/routing/decide",
            &json!({"logical_model": LOGICAL, "conversation_id": "conv-1"}),
        )
        .await;
    assert_eq!(status, 200, "{decision}");
    let selected = decision["selected_upstream"].clone();

    // The comparisons below would pass on two missing fields: make sure there is something.
    assert!(
        selected["provider_id"].is_string() && selected["model_id"].is_string(),
        "{selected}"
    );
    let (status, session) = gateway.get_json("/routing/sessions/conv-1").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["conversation_id"], "conv-1");
    assert_eq!(session["logical_model"], LOGICAL);
    assert_eq!(session["provider_id"], selected["provider_id"]);
    assert_eq!(session["model_id"], selected["model_id"]);
    assert_eq!(session["message_count"], 1);

    for _ in 0..10 {
        let (_, again) = gateway
            .post_json(
                "/routing/decide",
                &json!({"logical_model": LOGICAL, "conversation_id": "conv-1"}),
            )
            .await;
        assert_eq!(
            again["selected_upstream"]["provider_id"], selected["provider_id"],
            "the bound session decides: {again}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sessions

#[tokio::test]
async fn a_chat_with_a_session_id_binds_a_session_that_can_be_read_and_deleted() {
    let (a, gateway) = one_upstream(&[]).await;

    let (status, body) = gateway.get_json("/routing/sessions/s-1").await;
    assert_eq!(status, 404);
    assert_eq!(error_code(&body), "session_not_found");

    for _ in 0..2 {
        let response = gateway
            .chat_in_session("s-1", chat_body(LOGICAL, "Hi"))
            .await;
        assert_eq!(response.status(), 200);
        // Wait for this binding before the next request, so message_count is deterministic.
        let expected = a.chat_requests().await;
        eventually(SETTLE, "the session binding", || async {
            let (status, session) = gateway.get_json("/routing/sessions/s-1").await;
            (status == 200 && session["message_count"] == expected).then_some(())
        })
        .await;
    }

    let (_, session) = gateway.get_json("/routing/sessions/s-1").await;
    assert_eq!(session["conversation_id"], "s-1");
    assert_eq!(session["logical_model"], LOGICAL);
    assert_eq!(session["provider_id"], "a");
    assert_eq!(session["model_id"], "up-a");
    assert_eq!(session["message_count"], 2);
    assert!(
        session["last_accessed"].as_f64() >= session["created_at"].as_f64(),
        "{session}"
    );

    assert_eq!(gateway.delete_status("/routing/sessions/s-1").await, 204);
    let (status, _) = gateway.get_json("/routing/sessions/s-1").await;
    assert_eq!(status, 404);
    let response = gateway
        .delete("/routing/sessions/s-1")
        .send()
        .await
        .expect("DELETE");
    assert_eq!(response.status(), 404);
    assert_eq!(error_code(&json_of(response).await), "session_not_found");
}

// ---------------------------------------------------------------------------------------------
// Context

#[tokio::test]
async fn a_sessions_context_keeps_each_exchange_newest_first_as_json() {
    let (_a, gateway) = one_upstream(&[]).await;

    let first = gateway
        .chat_in_session("ctx-1", chat_body(LOGICAL, "first question"))
        .await;
    assert_eq!(first.status(), 200);
    history_of_len(&gateway, "ctx-1", 1).await;
    let second = gateway
        .chat_in_session("ctx-1", chat_body(LOGICAL, "second question"))
        .await;
    assert_eq!(second.status(), 200);

    let history = history_of_len(&gateway, "ctx-1", 2).await;

    let prompts: Vec<&Value> = history
        .iter()
        .map(|e| &e["request"]["messages"][0]["content"])
        .collect();
    assert_eq!(
        prompts,
        [&json!("second question"), &json!("first question")]
    );
    for entry in &history {
        assert!(entry["request"].is_object(), "{entry}");
        assert!(entry["response"].is_object(), "{entry}");
        assert_eq!(entry["request"]["model"], LOGICAL);
        assert!(entry["created_at"].is_number(), "{entry}");
    }
    let reply = history[0]["response"]["choices"][0]["message"]["content"]
        .as_str()
        .expect("the upstream's reply");
    assert!(
        reply.starts_with("Hello from a! You said: \"second question\"."),
        "{reply}"
    );
}

#[tokio::test]
async fn a_streamed_chats_context_entry_holds_the_assembled_text() {
    let (_a, gateway) = one_upstream(&[]).await;

    let response = gateway
        .chat_in_session("ctx-s", streamed_chat_body(LOGICAL, "stream it"))
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream body");
    let streamed = streamed_text(&sse_data(&text));
    assert!(streamed.starts_with("Hello from a!"), "{streamed}");

    let history = history_of_len(&gateway, "ctx-s", 1).await;

    let entry = &history[0];
    assert_eq!(entry["request"]["stream"], true);
    assert_eq!(entry["response"]["message"]["role"], "assistant", "{entry}");
    assert_eq!(
        entry["response"]["message"]["content"],
        streamed.as_str(),
        "{entry}"
    );
    assert!(!entry.to_string().contains("data:"), "no raw SSE: {entry}");
}

#[tokio::test]
async fn deleting_a_context_empties_its_history() {
    let (_a, gateway) = one_upstream(&[]).await;
    let response = gateway
        .chat_in_session("ctx-d", chat_body(LOGICAL, "Hi"))
        .await;
    assert_eq!(response.status(), 200);
    history_of_len(&gateway, "ctx-d", 1).await;

    assert_eq!(gateway.delete_status("/context/ctx-d").await, 204);

    let (status, body) = gateway.get_json("/context/ctx-d").await;
    assert_eq!(status, 200);
    assert_eq!(body["history"], json!([]), "{body}");
    assert_eq!(
        gateway.delete_status("/context/ctx-d").await,
        204,
        "deleting an empty context is fine too"
    );
    let (status, body) = gateway.get_json("/context/never-used").await;
    assert_eq!(status, 200);
    assert_eq!(body["history"], json!([]));
}

#[tokio::test]
async fn context_max_entries_caps_a_sessions_history() {
    let (a, gateway) = one_upstream(&[("CONTEXT_MAX_ENTRIES", "2")]).await;

    for n in 1..=4 {
        let response = gateway
            .chat_in_session("ctx-cap", chat_body(LOGICAL, &format!("question {n}")))
            .await;
        assert_eq!(response.status(), 200);
        // Wait until this entry is the newest before sending the next one.
        eventually(SETTLE, "the newest context entry", || async {
            let (_, body) = gateway.get_json("/context/ctx-cap").await;
            (body["history"][0]["request"]["messages"][0]["content"] == format!("question {n}"))
                .then_some(())
        })
        .await;
    }

    let history = history_of_len(&gateway, "ctx-cap", 2).await;
    let prompts: Vec<&Value> = history
        .iter()
        .map(|e| &e["request"]["messages"][0]["content"])
        .collect();
    assert_eq!(prompts, [&json!("question 4"), &json!("question 3")]);
    assert_eq!(a.chat_requests().await, 4);
}
