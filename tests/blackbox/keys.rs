//! Roles, virtual keys, limits, budgets and usage (SPEC 3.1) through the real binary: which
//! credential reaches which endpoint, a key's whole life, its limits and budget answered in each
//! client's error shape, usage and cost, and two instances sharing one Redis.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support::*;

const ADMIN: &str = "Bearer root-admin-secret";

/// A gateway with an admin token over one mock whose prices make one token cost 0.001 USD.
pub(crate) fn admin_builder(mock: &Mock) -> GatewayBuilder {
    Gateway::builder()
        .provider("a", &mock.url)
        .logical(&[("a", "up-a", 1.0)])
        .env("APIPROXY_ADMIN_TOKEN", "root-admin-secret")
        .env("LLM_PROVIDER_a_COST_INPUT", "1000")
        .env("LLM_PROVIDER_a_COST_OUTPUT", "1000")
}

async fn gateway_with_admin(mock: &Mock, extra: &[(&str, &str)]) -> Gateway {
    let mut builder = admin_builder(mock);
    for (key, value) in extra {
        builder = builder.env(key, value);
    }
    builder.start().await
}

/// `method path` with `credential` as the Authorization header, and a JSON body when given.
async fn call(
    gateway: &Gateway,
    method: &str,
    path: &str,
    credential: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let url = format!("{}{path}", gateway.url);
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
    let mut request = gateway
        .client
        .request(method, url)
        .header("authorization", credential);
    if let Some(body) = body {
        request = request.json_body(body);
    }
    request.send().await.expect("request")
}

async fn status_and_json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, json_of(response).await)
}

/// Creates a key with the admin token; returns the key object (with its secret in `key`).
async fn create_key(gateway: &Gateway, spec: Value) -> Value {
    let (status, body) =
        status_and_json(call(gateway, "POST", "/keys", ADMIN, Some(&spec)).await).await;
    assert_eq!(status, 201, "{body}");
    body
}

fn bearer(key: &Value) -> String {
    format!("Bearer {}", key["key"].as_str().expect("secret"))
}

async fn chat_as(gateway: &Gateway, credential: &str, model: &str) -> reqwest::Response {
    call(
        gateway,
        "POST",
        "/v1/chat/completions",
        credential,
        Some(&chat_body(model, "hello there")),
    )
    .await
}

#[tokio::test]
async fn management_needs_the_admin_token_and_inference_takes_every_client_credential() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = gateway_with_admin(&mock, &[]).await;
    let key = create_key(&gateway, json!({"name": "app"})).await;
    let key_auth = bearer(&key);
    let id = key["id"].as_str().unwrap().to_string();
    let admin_only: Vec<(&str, String)> = vec![
        ("GET", "/providers".into()),
        ("GET", "/providers/a".into()),
        ("GET", "/providers/a/models".into()),
        ("GET", "/providers/a/health".into()),
        ("GET", "/providers/a/metrics".into()),
        ("GET", "/logical-models".into()),
        ("GET", format!("/logical-models/{LOGICAL}")),
        ("GET", format!("/logical-models/{LOGICAL}/upstreams")),
        ("PUT", "/logical-models/x".into()),
        ("DELETE", "/logical-models/x".into()),
        ("POST", "/routing/decide".into()),
        ("GET", "/routing/sessions/s".into()),
        ("DELETE", "/routing/sessions/s".into()),
        ("GET", "/context/s".into()),
        ("DELETE", "/context/s".into()),
        ("GET", "/keys".into()),
        ("POST", "/keys".into()),
        ("GET", format!("/keys/{id}")),
        ("PATCH", format!("/keys/{id}")),
        ("DELETE", format!("/keys/{id}")),
        ("POST", format!("/keys/{id}/rotate")),
        ("GET", "/usage".into()),
        ("GET", "/metrics".into()),
    ];
    for credential in [AUTH, key_auth.as_str()] {
        for (method, path) in &admin_only {
            let (status, body) =
                status_and_json(call(&gateway, method, path, credential, Some(&json!({}))).await)
                    .await;
            assert_eq!(status, 403, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "admin_required", "{method} {path}");
            assert_eq!(body["error"]["type"], "permission_error");
        }
    }
    // The admin token is let through every one of them (whatever each then answers).
    for (method, path) in &admin_only {
        if *method == "DELETE" && path.starts_with("/keys/") {
            continue; // keeps the key for the inference calls below
        }
        let response = call(&gateway, method, path, ADMIN, Some(&json!({}))).await;
        let status = response.status().as_u16();
        assert!(status != 401 && status != 403, "{method} {path}: {status}");
    }
    // Rotation above gave the key a new secret: read it again.
    let (_, rotated) =
        status_and_json(call(&gateway, "POST", &format!("/keys/{id}/rotate"), ADMIN, None).await)
            .await;
    let key_auth = bearer(&rotated);
    for credential in [AUTH, key_auth.as_str()] {
        let chat = chat_as(&gateway, credential, LOGICAL).await;
        assert_eq!(chat.status(), 200, "chat with {credential}");
        let messages = call(
            &gateway,
            "POST",
            "/v1/messages",
            credential,
            Some(&json!({"model": LOGICAL, "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
        assert_eq!(messages.status(), 200);
        let responses = call(
            &gateway,
            "POST",
            "/v1/responses",
            credential,
            Some(&json!({"model": LOGICAL, "input": "hi"})),
        )
        .await;
        assert_eq!(responses.status(), 200);
        let count = call(
            &gateway,
            "POST",
            "/v1/messages/count_tokens",
            credential,
            Some(&json!({"model": LOGICAL, "messages": [{"role": "user", "content": "hi"}]})),
        )
        .await;
        assert_eq!(count.status(), 200);
        let gemini = gateway
            .client
            .post(format!(
                "{}/v1beta/models/{LOGICAL}:generateContent",
                gateway.url
            ))
            .header("x-goog-api-key", credential.trim_start_matches("Bearer "))
            .json_body(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(gemini.status(), 200);
        for path in ["/models", "/v1/models", &format!("/v1/models/{LOGICAL}")] {
            let list = call(&gateway, "GET", path, credential, None).await;
            assert_eq!(list.status(), 200, "{path}");
        }
    }
    // X-API-Key carries a key as well as Authorization does.
    let with_header = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("x-api-key", rotated["key"].as_str().unwrap())
        .json_body(&chat_body(LOGICAL, "hi"))
        .send()
        .await
        .unwrap();
    assert_eq!(with_header.status(), 200);
}

#[tokio::test]
async fn a_key_is_shown_once_changed_rotated_and_revoked_and_bad_fields_are_named() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = gateway_with_admin(&mock, &[]).await;
    let key = create_key(
        &gateway,
        json!({"name": "ci", "team": "platform", "metadata": {"owner": "ana"}}),
    )
    .await;
    let secret = key["key"].as_str().unwrap().to_string();
    let id = key["id"].as_str().unwrap().to_string();
    assert!(
        secret.starts_with("sk-apx-") && secret.len() > 30,
        "{secret}"
    );
    assert_eq!(key["prefix"].as_str().unwrap(), &secret[..10]);
    assert_eq!(key["budget_period"], "monthly");
    assert_eq!(key["team"], "platform");

    // Lists and reads never show the secret again.
    for path in ["/keys".to_string(), format!("/keys/{id}")] {
        let text = call(&gateway, "GET", &path, ADMIN, None)
            .await
            .text()
            .await
            .unwrap();
        assert!(!text.contains(&secret), "{path} shows the secret");
        assert!(text.contains(&id), "{path}: {text}");
        assert!(!text.contains("secret_hash"), "{path}: {text}");
    }
    let (_, list) = status_and_json(call(&gateway, "GET", "/keys", ADMIN, None).await).await;
    assert_eq!(list["total"], 1);

    let auth = format!("Bearer {secret}");
    assert_eq!(key["last_used_at"], Value::Null);
    assert_eq!(chat_as(&gateway, &auth, LOGICAL).await.status(), 200);
    let used = eventually(Duration::from_secs(3), "last_used_at set", || async {
        let (_, now) =
            status_and_json(call(&gateway, "GET", &format!("/keys/{id}"), ADMIN, None).await).await;
        now["last_used_at"].as_str().map(str::to_string)
    })
    .await;
    assert!(used.ends_with('Z'), "{used}");

    // Disabled: refused at once on this instance (it forgets what it cached), then back.
    let patch = |body: Value| {
        let path = format!("/keys/{id}");
        let gateway = &gateway;
        async move { status_and_json(call(gateway, "PATCH", &path, ADMIN, Some(&body)).await).await }
    };
    let (status, changed) = patch(json!({"enabled": false, "rpm": 100})).await;
    assert_eq!(
        (status, &changed["enabled"], &changed["rpm"]),
        (200, &json!(false), &json!(100))
    );
    assert_eq!(changed["name"], "ci", "fields not sent stay");
    let refused = chat_as(&gateway, &auth, LOGICAL).await;
    assert_eq!(refused.status(), 401);
    let body = json_of(refused).await;
    assert_eq!(body["error"]["code"], "invalid_api_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("disabled")
    );
    let (status, changed) = patch(json!({"enabled": true, "rpm": null})).await;
    assert_eq!(
        (status, &changed["rpm"]),
        (200, &Value::Null),
        "null clears a limit"
    );
    assert_eq!(chat_as(&gateway, &auth, LOGICAL).await.status(), 200);

    // Bad changes are refused whole, naming the field.
    for (change, field) in [
        (json!({"rpm": 0}), "rpm"),
        (json!({"budget_usd": -1}), "budget_usd"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"name": ""}), "name"),
        (json!({"metadata": [1]}), "metadata"),
        (json!({"budget_period": "weekly"}), "budget_period"),
        (json!({"secret_hash": "x"}), "secret_hash"),
    ] {
        let (status, body) = patch(change.clone()).await;
        assert_eq!(status, 400, "{change}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(field),
            "{change}: {body}"
        );
    }
    let (status, body) = status_and_json(
        call(
            &gateway,
            "POST",
            "/keys",
            ADMIN,
            Some(&json!({"team": "x"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400, "name is required: {body}");

    // An expiry in the past refuses the key.
    let (status, _) = patch(json!({"expires_at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(status, 200);
    let expired = json_of(chat_as(&gateway, &auth, LOGICAL).await).await;
    assert!(
        expired["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{expired}"
    );
    patch(json!({"expires_at": null})).await;

    // Rotation: the old secret stops, the new one works.
    let (status, rotated) =
        status_and_json(call(&gateway, "POST", &format!("/keys/{id}/rotate"), ADMIN, None).await)
            .await;
    assert_eq!(status, 200);
    let new_secret = rotated["key"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(chat_as(&gateway, &auth, LOGICAL).await.status(), 401);
    let new_auth = format!("Bearer {new_secret}");
    assert_eq!(chat_as(&gateway, &new_auth, LOGICAL).await.status(), 200);

    // Revocation.
    let deleted = call(&gateway, "DELETE", &format!("/keys/{id}"), ADMIN, None).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(chat_as(&gateway, &new_auth, LOGICAL).await.status(), 401);
    for (method, path) in [
        ("GET", format!("/keys/{id}")),
        ("DELETE", format!("/keys/{id}")),
        ("POST", format!("/keys/{id}/rotate")),
    ] {
        let (status, body) =
            status_and_json(call(&gateway, method, &path, ADMIN, None).await).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (404, &json!("key_not_found")),
            "{method} {path}"
        );
    }
    // A made-up key is refused like any wrong token.
    let made_up = "Bearer sk-apx-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(chat_as(&gateway, made_up, LOGICAL).await.status(), 401);
}

#[tokio::test]
async fn models_rpm_and_parallel_limits_refuse_in_each_clients_shape() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = gateway_with_admin(&mock, &[]).await;
    let key = create_key(
        &gateway,
        json!({"name": "narrow", "models": ["chat-*"], "rpm": 3}),
    )
    .await;
    let auth = bearer(&key);

    // A model outside the key's globs: 403 in OpenAI's and Anthropic's shapes.
    let (status, body) = status_and_json(chat_as(&gateway, &auth, "up-a").await).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("model_not_allowed")),
        "{body}"
    );
    let anthropic = call(
        &gateway,
        "POST",
        "/v1/messages",
        &auth,
        Some(&json!({"model": "up-a", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    let (status, body) = status_and_json(anthropic).await;
    assert_eq!(
        (status, &body["type"], &body["error"]["type"]),
        (403, &json!("error"), &json!("permission_error")),
        "{body}"
    );

    // rpm 3: the headers count down, the fourth request is refused with Retry-After.
    for remaining in ["2", "1", "0"] {
        let response = chat_as(&gateway, &auth, LOGICAL).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("3"));
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests"),
            Some(remaining)
        );
        let reset = header(&response, "x-ratelimit-reset-requests").unwrap();
        assert!(reset.ends_with('s'), "{reset}");
    }
    let refused = chat_as(&gateway, &auth, LOGICAL).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&refused, "x-ratelimit-remaining-requests"),
        Some("0")
    );
    let body = json_of(refused).await;
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("rpm"),
        "{body}"
    );
    let gemini = gateway
        .client
        .post(format!(
            "{}/v1beta/models/{LOGICAL}:generateContent",
            gateway.url
        ))
        .header("x-goog-api-key", key["key"].as_str().unwrap())
        .json_body(&json!({"contents": [{"parts": [{"text": "hi"}]}]}))
        .send()
        .await
        .unwrap();
    let (status, body) = status_and_json(gemini).await;
    assert_eq!(
        (status, &body["error"]["status"]),
        (429, &json!("RESOURCE_EXHAUSTED")),
        "{body}"
    );
    // Only the admitted requests reached the upstream.
    assert_eq!(mock.chat_requests().await, 3);

    // max_parallel 1: a second request while the first is held is refused, then admitted.
    let slow = create_key(
        &gateway,
        json!({"name": "one-at-a-time", "max_parallel": 1}),
    )
    .await;
    let slow_auth = bearer(&slow);
    mock.fault(json!({"delay_ms": 800})).await;
    let first = chat_as(&gateway, &slow_auth, LOGICAL);
    let second = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chat_as(&gateway, &slow_auth, LOGICAL).await
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(first.status(), 200);
    assert_eq!(second.status(), 429);
    assert_eq!(
        json_of(second).await["error"]["code"],
        "rate_limit_exceeded"
    );
    mock.clear_fault().await;
    assert_eq!(
        chat_as(&gateway, &slow_auth, LOGICAL).await.status(),
        200,
        "the slot came back"
    );
}

/// The cost of an answer at 0.001 USD per token, from its usage.
fn cost_of(answer: &Value) -> f64 {
    let usage = &answer["usage"];
    (usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()) as f64
        * 0.001
}

#[tokio::test]
async fn a_budget_refuses_with_insufficient_quota_and_usage_adds_up_per_group() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = gateway_with_admin(&mock, &[]).await;
    let key = create_key(
        &gateway,
        json!({"name": "capped", "team": "research", "budget_usd": 0.2, "budget_period": "daily"}),
    )
    .await;
    let auth = bearer(&key);
    let id = key["id"].as_str().unwrap();
    let mut spent = 0.0;
    let mut answered = 0;
    let refusal = loop {
        let mut body = chat_body(LOGICAL, "hello there");
        body["max_tokens"] = json!(20);
        let response = call(&gateway, "POST", "/v1/chat/completions", &auth, Some(&body)).await;
        if response.status() != 200 {
            break response;
        }
        spent += cost_of(&json_of(response).await);
        answered += 1;
        assert!(answered < 100, "the budget never refused");
    };
    assert_eq!(refusal.status(), 429);
    let retry: u64 = header(&refusal, "retry-after").unwrap().parse().unwrap();
    assert!(retry <= 86_400, "until the next UTC day: {retry}");
    let body = json_of(refusal).await;
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota");
    assert!(spent <= 0.2 + 1e-9, "spent {spent}");
    assert!(answered >= 2);

    // The gateway token's own request counts under `gateway`.
    assert_eq!(gateway.chat(chat_body(LOGICAL, "hi")).await.status(), 200);

    let (_, key_now) =
        status_and_json(call(&gateway, "GET", &format!("/keys/{id}"), ADMIN, None).await).await;
    let recorded = eventually(Duration::from_secs(3), "spending settled", || async {
        let (_, key_now) =
            status_and_json(call(&gateway, "GET", &format!("/keys/{id}"), ADMIN, None).await).await;
        let spent_now = key_now["spent_usd"].as_f64().unwrap();
        ((spent_now - spent).abs() < 1e-9).then_some(spent_now)
    })
    .await;
    assert!((recorded - spent).abs() < 1e-9, "{key_now}");

    let (status, mine) =
        status_and_json(call(&gateway, "GET", "/v1/usage", &auth, None).await).await;
    assert_eq!(status, 200, "{mine}");
    assert_eq!(mine["key_id"], id);
    assert_eq!(mine["requests"], answered);
    assert!(mine["period"].as_str().unwrap().starts_with("d:"));
    assert!((mine["spent_usd"].as_f64().unwrap() - spent).abs() < 1e-9);
    let (status, _) = status_and_json(call(&gateway, "GET", "/v1/usage", AUTH, None).await).await;
    assert_eq!(status, 400, "the gateway token has no own usage");

    let usage = |group: &'static str| {
        let gateway = &gateway;
        async move {
            let (status, body) = status_and_json(
                call(
                    gateway,
                    "GET",
                    &format!("/usage?group_by={group}"),
                    ADMIN,
                    None,
                )
                .await,
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["usage"].as_array().unwrap().clone()
        }
    };
    let by_key = usage("key").await;
    let row = |rows: &[Value], group: &str| {
        rows.iter()
            .find(|r| r["group"] == group)
            .unwrap_or_else(|| panic!("no row {group} in {rows:?}"))
            .clone()
    };
    let mine = row(&by_key, id);
    assert_eq!(mine["requests"], answered);
    assert!(
        (mine["cost_usd"].as_f64().unwrap() - spent).abs() < 1e-9,
        "{mine}"
    );
    assert_eq!(row(&by_key, "gateway")["requests"], 1);
    assert_eq!(row(&usage("team").await, "research")["requests"], answered);
    assert_eq!(
        row(&usage("model").await, LOGICAL)["requests"],
        answered + 1
    );
    assert_eq!(row(&usage("provider").await, "a")["requests"], answered + 1);
    let days = usage("day").await;
    assert_eq!(days.len(), 1);
    assert!(days[0]["input_tokens"].as_u64().unwrap() > 0);

    for query in [
        "group_by=week",
        "from=2026-13-01",
        "from=2026-12-02&to=2026-12-01",
    ] {
        let (status, body) =
            status_and_json(call(&gateway, "GET", &format!("/usage?{query}"), ADMIN, None).await)
                .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    let metrics = call(&gateway, "GET", "/metrics", ADMIN, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("apiproxy_cost_nano_usd_total{team=\"research\""),
        "{metrics}"
    );
    assert!(metrics.contains("apiproxy_team_tokens_total{team=\"research\""));
}

#[tokio::test]
async fn secrets_stay_out_of_logs_and_answers_at_debug() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = gateway_with_admin(&mock, &[("LOG_LEVEL", "DEBUG")]).await;
    let key = create_key(&gateway, json!({"name": "quiet"})).await;
    let secret = key["key"].as_str().unwrap().to_string();
    let hash = apiproxy::domain::keys::secret_hash(&secret);
    assert_eq!(
        chat_as(&gateway, &format!("Bearer {secret}"), LOGICAL)
            .await
            .status(),
        200
    );
    let bad = chat_as(
        &gateway,
        "Bearer sk-apx-wrongwrongwrongwrongwrongwrongwr",
        LOGICAL,
    )
    .await;
    assert_eq!(bad.status(), 401);
    let listed = call(&gateway, "GET", "/keys", ADMIN, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(!listed.contains(&hash) && !listed.contains(&secret));
    let log = gateway.log();
    assert!(log.contains("DEBUG"), "the log is at DEBUG");
    for needle in [
        secret.as_str(),
        hash.as_str(),
        "root-admin-secret",
        "sk-apx-wrongwrong",
    ] {
        assert!(!log.contains(needle), "the log shows {needle}");
    }
}

#[tokio::test]
async fn two_instances_share_one_budget_and_a_revocation_within_a_second_and_a_half() {
    let redis = RedisServer::start();
    let mock = Mock::start("a", &["up-a"]);
    let start = || admin_builder(&mock).redis(&redis.url()).start();
    let (a, b) = tokio::join!(start(), start());
    let budget = 1.0;
    let key = create_key(
        &a,
        json!({"name": "shared", "budget_usd": budget, "budget_period": "total"}),
    )
    .await;
    let auth = bearer(&key);
    let id = key["id"].as_str().unwrap().to_string();

    // 200 requests at once, half on each instance.
    let requests = (0..200).map(|i| {
        let gateway = if i % 2 == 0 { &a } else { &b };
        let auth = auth.clone();
        async move {
            let mut body = chat_body(LOGICAL, "hello there");
            body["max_tokens"] = json!(20);
            let response = call(gateway, "POST", "/v1/chat/completions", &auth, Some(&body)).await;
            let status = response.status().as_u16();
            (status, json_of(response).await)
        }
    });
    let results = join_all(requests).await;
    let answered: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 200)
        .map(|(_, b)| b)
        .collect();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 429 && b["error"]["code"] == "insufficient_quota")
        .count();
    assert_eq!(
        answered.len() + refused,
        200,
        "{:?}",
        results.iter().find(|(s, _)| *s != 200 && *s != 429)
    );
    assert!(refused > 0 && !answered.is_empty());
    let real: f64 = answered.iter().map(|b| cost_of(b)).sum();
    // Each answer cost less than its reservation, so the real spending stays within the budget.
    assert!(real <= budget + 1e-9, "spent {real} of {budget}");
    let settled = eventually(
        Duration::from_secs(3),
        "spending settled on both",
        || async {
            let (_, on_b) =
                status_and_json(call(&b, "GET", &format!("/keys/{id}"), ADMIN, None).await).await;
            let spent = on_b["spent_usd"].as_f64().unwrap();
            ((spent - real).abs() < 1e-9).then_some(spent)
        },
    )
    .await;
    assert!(settled <= budget + 1e-9);

    // Revoked on A, refused on B within 1.5 s.
    assert_eq!(
        chat_as(&b, &auth, LOGICAL).await.status(),
        429,
        "B knows the key (out of budget)"
    );
    let deleted = call(&a, "DELETE", &format!("/keys/{id}"), ADMIN, None).await;
    assert_eq!(deleted.status(), 204);
    let revoked_at = Instant::now();
    loop {
        if chat_as(&b, &auth, LOGICAL).await.status() == 401 {
            break;
        }
        assert!(
            revoked_at.elapsed() < Duration::from_millis(1500),
            "B still takes the revoked key"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(revoked_at.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn an_rpm_limit_shared_by_two_instances_holds_within_five_percent_over_a_minute() {
    let redis = RedisServer::start();
    let mock = Mock::start("a", &["up-a"]);
    let start = || admin_builder(&mock).redis(&redis.url()).start();
    let (a, b) = tokio::join!(start(), start());
    let rpm = 120;
    let key = create_key(&a, json!({"name": "paced", "rpm": rpm})).await;
    let auth = bearer(&key);
    // Four requests a second for 66 s, alternating instances: twice what the limit lets through.
    let began = Instant::now();
    let mut admitted: Vec<Duration> = Vec::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(250));
    for i in 0..264 {
        ticks.tick().await;
        let gateway = if i % 2 == 0 { &a } else { &b };
        let sent = began.elapsed();
        let status = chat_as(gateway, &auth, LOGICAL).await.status().as_u16();
        assert!(status == 200 || status == 429, "{status}");
        if status == 200 {
            admitted.push(sent);
        }
    }
    let in_window = |from: Duration| {
        admitted
            .iter()
            .filter(|t| **t >= from && **t < from + Duration::from_secs(60))
            .count()
    };
    let first_minute = in_window(admitted[0]);
    let tolerance = rpm / 20;
    assert!(
        first_minute.abs_diff(rpm) <= tolerance,
        "{first_minute} admitted in the first minute for rpm {rpm}"
    );
    for t in &admitted {
        let count = in_window(*t);
        assert!(
            count <= rpm + tolerance,
            "{count} admitted in the minute from {t:?}"
        );
    }
    assert!(admitted.len() > rpm, "the window slid: {}", admitted.len());
}
