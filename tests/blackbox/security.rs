//! The security suite (docs/security.md): one test per finding of the hardening review, each of
//! which failed before its fix, and the defences that were already sound, kept under test.

use std::time::Duration;

use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support::*;

fn one_provider(mock: &Mock) -> GatewayBuilder {
    Gateway::builder()
        .provider("mock", &mock.url)
        .logical(&[("mock", "up", 1.0)])
}

/// A Redis of its own, the mock `mock` and a gateway over both with `env` set.
async fn on_redis(env: &[(&str, &str)]) -> (RedisServer, Mock, Gateway) {
    let redis = RedisServer::start();
    let mock = Mock::start("mock", &["up"]);
    let mut builder = one_provider(&mock).redis(&redis.url());
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let gateway = builder.start().await;
    (redis, mock, gateway)
}

// ---- 1: the public default token never serves beyond loopback ----------------------------------

#[test]
fn the_default_or_a_blank_token_refuses_to_start_on_a_public_address() {
    for token in [None, Some(""), Some("   "), Some("timeline")] {
        let mut env = vec![("HOST", "0.0.0.0")];
        if let Some(token) = token {
            env.push(("APIPROXY_AUTH_TOKEN", token));
        }
        let output = run_apiproxy(&["check-config"], &env);
        let text = output_text(&output);
        assert!(
            !output.status.success(),
            "check-config with {token:?} on 0.0.0.0 passed: {text}"
        );
        assert!(
            text.contains("APIPROXY_AUTH_TOKEN") && text.contains("encode-token"),
            "the refusal names the variable and the way out: {text}"
        );
        assert_serve_refuses(&env);
    }
    // The flag counts like the variable.
    let output = run_apiproxy(&["check-config", "--host", "0.0.0.0"], &[]);
    assert!(!output.status.success(), "{}", output_text(&output));
    // With a token of one's own, or on loopback, it starts.
    let own = run_apiproxy(
        &["check-config"],
        &[
            ("HOST", "0.0.0.0"),
            ("APIPROXY_AUTH_TOKEN", "a-secret-of-mine"),
        ],
    );
    assert!(own.status.success(), "{}", output_text(&own));
    let loopback = run_apiproxy(&["check-config"], &[("HOST", "127.0.0.1")]);
    assert!(loopback.status.success(), "{}", output_text(&loopback));
    assert!(output_text(&loopback).contains("warning"));
}

/// `apiproxy serve` with `env` exits at once with an error naming the token variable (killed and
/// failed if it is still running after 10 s, as it would be if it served).
fn assert_serve_refuses(env: &[(&str, &str)]) {
    let mut command = clean_command(apiproxy_bin());
    command
        .args(["serve", "--port", "0", "--env-file", "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn apiproxy");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().expect("try_wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("apiproxy serve with {env:?} is serving instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    assert!(!output.status.success());
    assert!(output_text(&output).contains("APIPROXY_AUTH_TOKEN"));
}

#[tokio::test]
async fn the_open_api_document_does_not_print_the_default_token() {
    let gateway = Gateway::builder().start().await;
    let document = client()
        .get(format!("{}/openapi.json", gateway.url))
        .send()
        .await
        .expect("GET /openapi.json")
        .text()
        .await
        .expect("body");
    assert!(
        !document.contains("dGltZWxpbmU="),
        "the default token's Base64 is printed"
    );
    assert!(document.contains("encode-token"));
}

// ---- 2: ids cannot name the store's own keys; data errors are not outages ----------------------

#[tokio::test]
async fn logical_models_named_like_the_index_keys_are_ordinary_models_on_redis() {
    let redis = RedisServer::start();
    let mock = Mock::start("mock", &["up"]);
    let gateway = Gateway::builder()
        .provider("mock", &mock.url)
        .redis(&redis.url())
        .start()
        .await;
    for id in ["index", "deleted"] {
        let (status, body) = gateway
            .put_json(
                &format!("/logical-models/{id}"),
                &json!({"upstreams": [{"provider_id": "mock", "model_id": "up"}]}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = gateway
        .put_json(
            "/logical-models/other",
            &json!({"upstreams": [{"provider_id": "mock", "model_id": "up"}]}),
        )
        .await;
    assert_eq!(status, 201, "a later PUT still works: {body}");
    let (status, listed) = gateway.get_json("/logical-models").await;
    assert_eq!(status, 200, "{listed}");
    let mut ids: Vec<&str> = listed["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["logical_id"].as_str())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["deleted", "index", "other"]);
    let response = gateway.chat(chat_body("index", "hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(redis.cli(&["TYPE", "llm:logical:#index"]), "set");
    let health = gateway.get_json("/health").await.1;
    assert_eq!(health["status"], "ok", "{health}");
}

/// Three chats one after another at the start of a second, against `MAX_QPS=1`: one is served, the
/// rest are 429 (two may be served when the burst straddles a second boundary; never three).
async fn assert_max_qps_of_one_holds(gateway: &Gateway) {
    start_of_next_second().await;
    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = gateway
            .chat(chat_body(LOGICAL, &format!("burst {i}")))
            .await;
        statuses.push(response.status().as_u16());
    }
    let served = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (1..=2).contains(&served) && statuses.contains(&429),
        "MAX_QPS=1 let {served} of 3 through: {statuses:?}"
    );
}

#[tokio::test]
async fn a_wrongly_typed_redis_key_is_a_data_error_and_max_qps_never_fails_open() {
    let (redis, _mock, gateway) = on_redis(&[("LLM_PROVIDER_mock_MAX_QPS", "1")]).await;
    // The finding's own request: a model named like the index set (a GET on a set was WRONGTYPE).
    let index = gateway.chat(chat_body("index", "hi")).await;
    assert_eq!(index.status(), 404);
    // And every metrics write meets WRONGTYPE, whatever the key layout. Before the fix each was an
    // outage: all Redis use failed fast for a second and MAX_QPS let everything through.
    for key in ["llm:metrics:index:mock", "llm:metrics:#index:mock"] {
        redis.cli(&["SET", key, "not a set"]);
    }
    assert_max_qps_of_one_holds(&gateway).await;
    let health = gateway.get_json("/health").await.1;
    assert_eq!(
        health["status"], "ok",
        "a data error is not an outage: {health}"
    );
}

#[tokio::test]
async fn max_qps_still_holds_while_redis_is_down() {
    let (mut redis, _mock, gateway) = on_redis(&[("LLM_PROVIDER_mock_MAX_QPS", "1")]).await;
    assert_eq!(gateway.chat(chat_body(LOGICAL, "warm")).await.status(), 200);
    redis.stop();
    assert_max_qps_of_one_holds(&gateway).await;
}

#[tokio::test]
async fn index_sets_of_earlier_versions_move_to_their_new_keys_at_start_up() {
    let redis = RedisServer::start();
    let mock = Mock::start("mock", &["up"]);
    let model =
        json!({"logical_id": "kept", "upstreams": [{"provider_id": "mock", "model_id": "up"}]});
    redis.cli(&["SET", "llm:logical:kept", &model.to_string()]);
    redis.cli(&["SADD", "llm:logical:index", "kept"]);
    redis.cli(&["SADD", "llm:logical:deleted", "gone"]);
    let gateway = Gateway::builder()
        .provider("mock", &mock.url)
        .redis(&redis.url())
        .start()
        .await;
    let (status, listed) = gateway.get_json("/logical-models").await;
    assert_eq!(status, 200);
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["models"][0]["logical_id"], "kept");
    assert_eq!(redis.cli(&["EXISTS", "llm:logical:index"]), "0");
    assert_eq!(
        redis.cli(&["SISMEMBER", "llm:logical:#deleted", "gone"]),
        "1"
    );
}

#[tokio::test]
async fn logical_model_ids_outside_the_id_alphabet_are_refused() {
    let mock = Mock::start("mock", &["up"]);
    let gateway = one_provider(&mock).start().await;
    for id in ["a%20b", "a%7Bb%7D", "a%23index", &"x".repeat(257)] {
        let (status, body) = gateway
            .put_json(
                &format!("/logical-models/{id}"),
                &json!({"upstreams": [{"provider_id": "mock", "model_id": "up"}]}),
            )
            .await;
        assert_eq!(status, 400, "{id}: {body}");
        assert_error_shape(&body);
    }
}

// ---- 3: a model name cannot reach another upstream path ----------------------------------------

#[tokio::test]
async fn a_pinned_model_with_path_traversal_never_reaches_the_upstream() {
    let mock = Mock::start("gem", &["gemini-2.0-flash"]);
    let gateway = Gateway::builder()
        .provider("gem", &mock.url)
        .env("LLM_PROVIDER_gem_VENDOR", "gemini")
        .start()
        .await;
    for model in [
        "gem/../../../admin/secret?q=",
        "gem/..",
        "gem/a#b",
        "gem/a\\b",
        "gem/%2e%2e",
        "gem/a\u{7}b",
    ] {
        let response = gateway.chat(chat_body(model, "hi")).await;
        assert_eq!(response.status(), 400, "{model:?}");
        let body = json_of(response).await;
        assert_eq!(assert_error_shape(&body)["param"], "model", "{body}");
    }
    assert_eq!(
        mock.chat_requests().await,
        0,
        "nothing reached the upstream"
    );
    // An ordinary pinned name still works.
    let response = gateway.chat(chat_body("gem/gemini-2.0-flash", "hi")).await;
    assert_eq!(response.status(), 200);
}

// ---- 4 and 11: model names are bounded before routing or any header ----------------------------

#[tokio::test]
async fn an_over_long_model_name_is_400_before_routing_on_every_endpoint() {
    let (_redis, mock, gateway) = on_redis(&[]).await;
    let long = format!("mock/{}", "A".repeat(300 * 1024));
    let chat = gateway.chat(chat_body(&long, "hi")).await;
    assert_eq!(chat.status(), 400);
    assert!(header(&chat, "x-apiproxy-model").is_none());
    let body = json_of(chat).await;
    let message = assert_error_shape(&body)["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.len() < 1024, "the error does not echo the name");
    let messages = gateway
        .post("/v1/messages")
        .json_body(&json!({"model": long, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("POST /v1/messages");
    assert_eq!(messages.status(), 400);
    let responses = gateway
        .post("/v1/responses")
        .json_body(&json!({"model": long, "input": "hi"}))
        .send()
        .await
        .expect("POST /v1/responses");
    assert_eq!(responses.status(), 400);
    // 256 bytes is the bound.
    let at_bound = format!("mock/{}", "a".repeat(251));
    assert_eq!(at_bound.len(), 256);
    let response = gateway.chat(chat_body(&at_bound, "hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(mock.chat_requests().await, 1);
}

// ---- 5: conversation ids are checked like session ids ------------------------------------------

#[tokio::test]
async fn a_conversation_id_outside_the_id_bounds_is_400_and_stores_nothing() {
    let (redis, _mock, gateway) = on_redis(&[]).await;
    for id in [
        "a\r\nb".to_string(),
        "x".repeat(1024 * 1024),
        "a b".into(),
        String::new(),
    ] {
        let (status, body) = gateway
            .post_json(
                "/routing/decide",
                &json!({"logical_model": LOGICAL, "conversation_id": id}),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(assert_error_shape(&body)["param"], "conversation_id");
    }
    assert_eq!(redis.cli(&["KEYS", "llm:session:*"]), "");
    for bad in ["a b", "a{b}"] {
        let response = gateway
            .post("/v1/chat/completions")
            .header("x-session-id", bad)
            .json_body(&chat_body(LOGICAL, "hi"))
            .send()
            .await
            .expect("chat");
        assert_eq!(response.status(), 400, "{bad}");
    }
    let (status, _) = gateway.get_json("/context/a%20b").await;
    assert_eq!(status, 400);
}

// ---- 6: relayed upstream errors never carry the provider's secrets ------------------------------

#[tokio::test]
async fn an_upstream_error_that_echoes_credentials_reaches_the_client_redacted() {
    let mock = Mock::start("mock", &["up"]);
    let key = provider_key("mock");
    let gateway = one_provider(&mock)
        .env(
            "LLM_PROVIDER_mock_CUSTOM_HEADERS_JSON",
            r#"{"x-org-token":"org-secret-value-42"}"#,
        )
        .start()
        .await;
    let echoed = format!(
        r#"{{"error":{{"message":"invalid key {key} for org org-secret-value-42","type":"invalid_request_error"}}}}"#
    );
    for status in [401, 503] {
        mock.fault(json!({"status": status, "body": echoed})).await;
        for stream in [false, true] {
            let body = if stream {
                streamed_chat_body(LOGICAL, "hi")
            } else {
                chat_body(LOGICAL, "hi")
            };
            let response = gateway.chat(body).await;
            let text = response.text().await.expect("body");
            assert!(
                !text.contains(&key) && !text.contains("org-secret-value-42"),
                "status {status}, stream {stream}: {text}"
            );
            assert!(text.contains("[redacted]"), "{text}");
        }
        let messages = gateway
            .post("/v1/messages")
            .json_body(&json!({"model": LOGICAL, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .expect("POST /v1/messages")
            .text()
            .await
            .expect("body");
        assert!(!messages.contains(&key), "{messages}");
    }
}

// ---- 7: client-invented names are not metric labels --------------------------------------------

#[tokio::test]
async fn token_counters_label_pinned_names_as_other() {
    let mock = Mock::start("mock", &["up"]);
    let gateway = one_provider(&mock).start().await;
    for i in 0..5 {
        let response = gateway
            .chat(chat_body(&format!("mock/invented-{i}"), "hi"))
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = gateway.chat(chat_body(LOGICAL, "hi")).await;
    assert_eq!(response.status(), 200);
    let metrics = gateway.metrics_text().await;
    assert!(!metrics.contains("invented-"), "{metrics}");
    assert!(
        metrics.contains(r#"model="other""#) && metrics.contains(r#"model="up""#),
        "{metrics}"
    );
}

// ---- 8: logged bodies cannot forge log lines ---------------------------------------------------

#[tokio::test]
async fn a_body_with_newlines_cannot_forge_a_log_line() {
    let mock = Mock::start("mock", &["up"]);
    let gateway = one_provider(&mock).env("LOG_BODIES", "true").start().await;
    // Bodies are logged as they arrive, before parsing: a raw newline is what could forge a line.
    let forged =
        "{\"model\": \"x\",\n2026-12-06T00:00:00Z  INFO apiproxy: FORGED admin logged in\r\n}";
    let response = gateway
        .post("/v1/chat/completions")
        .header("content-type", "application/json")
        .body(forged)
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), 400);
    let log = eventually(Duration::from_secs(3), "the body log line", || async {
        let log = gateway.log();
        log.contains("FORGED").then_some(log)
    })
    .await;
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("FORGED")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].contains("apiproxy::bodies") && lines[0].contains("\\n2026"),
        "the body text started a line of its own: {}",
        lines[0]
    );
}

// ---- 9: context storage has an overall bound ---------------------------------------------------

async fn context_of(gateway: &Gateway, session: &str) -> usize {
    let (status, body) = gateway.get_json(&format!("/context/{session}")).await;
    assert_eq!(status, 200, "{body}");
    body["history"].as_array().map_or(0, Vec::len)
}

async fn check_context_bound(gateway: &Gateway) {
    for i in 0..40 {
        let response = gateway
            .chat_in_session(&format!("s{i}"), chat_body(LOGICAL, "hi"))
            .await;
        assert_eq!(response.status(), 200);
    }
    let kept = eventually(Duration::from_secs(5), "the newest context", || async {
        let n = context_of(gateway, "s39").await;
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(kept, 1);
    let mut remembered = 0;
    for i in 0..40 {
        remembered += context_of(gateway, &format!("s{i}")).await;
    }
    assert!(
        (1..=16).contains(&remembered),
        "CONTEXT_MAX_SESSIONS=16 kept {remembered} histories"
    );
    assert_eq!(context_of(gateway, "s0").await, 0, "the oldest went first");
}

#[tokio::test]
async fn context_histories_are_bounded_in_number_in_memory() {
    let mock = Mock::start("mock", &["up"]);
    let gateway = one_provider(&mock)
        .env("CONTEXT_MAX_SESSIONS", "16")
        .start()
        .await;
    check_context_bound(&gateway).await;
}

#[tokio::test]
async fn context_histories_are_bounded_in_number_on_redis() {
    let (_redis, _mock, gateway) = on_redis(&[("CONTEXT_MAX_SESSIONS", "16")]).await;
    check_context_bound(&gateway).await;
}

// ---- 10: operators' views mask credentials; clients get no store internals ---------------------

#[tokio::test]
async fn base_urls_are_masked_and_store_errors_are_generic() {
    let mock = Mock::start("mock", &["up"]);
    let with_credentials = mock
        .url
        .replacen("http://", "http://user:url-password-1@", 1)
        + "?api-key=url-query-secret";
    let mut redis = RedisServer::start();
    let gateway = Gateway::builder()
        .provider("mock", &with_credentials)
        .logical(&[("mock", "up", 1.0)])
        .redis(&redis.url())
        .start()
        .await;
    for path in ["/providers", "/providers/mock", "/logical-models"] {
        let (status, body) = gateway.get_json(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains("url-password-1") && !text.contains("url-query-secret"),
            "{path}: {text}"
        );
    }
    let (_, decided) = gateway
        .post_json("/routing/decide", &json!({"logical_model": LOGICAL}))
        .await;
    assert!(!decided.to_string().contains("url-password-1"), "{decided}");
    redis.stop();
    let (status, body) = gateway.get_json("/routing/sessions/abc").await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        !message.to_lowercase().contains("redis") && !message.contains("127.0.0.1"),
        "{message}"
    );
}

#[tokio::test]
async fn health_pings_redis_at_most_about_once_a_second() {
    let redis = RedisServer::start();
    let gateway = Gateway::builder().redis(&redis.url()).start().await;
    let pings = |redis: &RedisServer| -> u64 {
        let stats = redis.cli(&["INFO", "commandstats"]);
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let before = pings(&redis);
    let started = std::time::Instant::now();
    for _ in 0..200 {
        let (status, body) = gateway.get_json("/health").await;
        assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    }
    let seconds = started.elapsed().as_secs_f64();
    let used = pings(&redis) - before;
    assert!(
        (used as f64) <= seconds.ceil() + 2.0,
        "200 health checks in {seconds:.1} s sent {used} PINGs"
    );
}

// ---- Sound defences, kept under test ------------------------------------------------------------

#[tokio::test]
async fn every_spelling_of_a_protected_path_needs_the_token() {
    let gateway = Gateway::builder().start().await;
    for path in [
        "/providers",
        "//providers",
        "/./providers",
        "/%70roviders",
        "/providers/",
        "/logical-models/",
        "/metrics",
        "/v1/../providers",
    ] {
        let response = client()
            .get(format!("{}{path}", gateway.url))
            .send()
            .await
            .expect("GET");
        assert!(
            matches!(response.status().as_u16(), 401 | 404),
            "{path} answered {} without a token",
            response.status()
        );
    }
}

#[tokio::test]
async fn client_headers_never_override_or_reach_upstream_credentials() {
    let mock = Mock::start("mock", &["up"]);
    let gateway = one_provider(&mock).start().await;
    let response = gateway
        .post("/v1/chat/completions")
        .header("x-api-key", "client-chosen-key")
        .header("x-goog-api-key", "client-chosen-key")
        .header("host", "evil.example")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("cookie", "session=client-cookie")
        .json_body(&chat_body(LOGICAL, "hi"))
        .send()
        .await
        .expect("chat");
    assert_eq!(response.status(), 200);
    let stats = mock.stats().await;
    let headers = &stats["last_headers"];
    let text = headers.to_string().to_lowercase();
    assert_eq!(
        headers["authorization"],
        Value::String(format!("Bearer {}", provider_key("mock")))
    );
    for leaked in [
        "client-chosen-key",
        "6.6.6.6",
        "evil.example",
        "client-cookie",
        TOKEN,
    ] {
        assert!(
            !text.contains(&leaked.to_lowercase()),
            "{leaked} reached the upstream: {text}"
        );
    }
}

/// A one-shot HTTP server on a free port that answers every request with `response`; returns its
/// URL and a counter of the connections it accepted.
fn raw_upstream(response: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buffer = [0u8; 65536];
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn upstream_redirects_are_not_followed_with_the_key() {
    let (elsewhere, visits) = raw_upstream(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}".into(),
    );
    let (redirecting, _) = raw_upstream(format!(
        "HTTP/1.1 307 Temporary Redirect\r\nlocation: {elsewhere}/v1/chat/completions\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    ));
    let gateway = Gateway::builder()
        .provider("mock", &redirecting)
        .logical(&[("mock", "up", 1.0)])
        .start()
        .await;
    let response = gateway.chat(chat_body(LOGICAL, "hi")).await;
    assert_ne!(response.status(), 200, "the redirect was followed");
    assert_eq!(
        visits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect target was contacted"
    );
}
