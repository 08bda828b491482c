//! The Redis store (SPEC 7): the key layout and TTLs, state shared by two gateway processes on one
//! Redis, and a Redis outage the gateway serves through and recovers from by itself. Each test
//! starts its own `redis-server`.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support::*;

/// Two mocks `a` and `b` with equal weights behind `chat-model`, on the Redis at `url`.
fn equal_pair(a: &Mock, b: &Mock, url: &str) -> GatewayBuilder {
    Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", 1.0), ("b", "up-b", 1.0)])
        .redis(url)
}

/// `TTL key` in seconds (-2: no key, -1: no TTL).
fn ttl(redis: &RedisServer, key: &str) -> i64 {
    let out = redis.cli(&["TTL", key]);
    out.parse()
        .unwrap_or_else(|_| panic!("TTL {key} answered {out:?}"))
}

/// Waits until `key` exists in Redis and has a TTL, and returns the TTL.
async fn ttl_once_written(redis: &RedisServer, key: &str) -> i64 {
    eventually(
        Duration::from_secs(3),
        &format!("{key} with a TTL"),
        || async {
            let seconds = ttl(redis, key);
            (seconds > 0).then_some(seconds)
        },
    )
    .await
}

/// The session `id` as stored in Redis, once it names `provider` (any provider when `None`).
async fn stored_session(redis: &RedisServer, id: &str, provider: Option<&str>) -> Value {
    let key = format!("llm:session:{id}");
    eventually(
        Duration::from_secs(3),
        &format!("{key} in Redis"),
        || async {
            let raw = redis.cli(&["GET", &key]);
            let session: Value = serde_json::from_str(&raw).ok()?;
            match provider {
                Some(p) if session["provider_id"] != p => None,
                _ => Some(session),
            }
        },
    )
    .await
}

#[tokio::test]
async fn redis_holds_every_key_of_the_layout_with_its_ttl() {
    let redis = RedisServer::start();
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .redis(&redis.url())
        .env("SESSION_TTL", "600")
        .env("MODELS_CACHE_TTL", "120")
        .start()
        .await;

    let response = gateway
        .chat_in_session("keys-1", chat_body(LOGICAL, "Hi"))
        .await;
    assert_eq!(response.status(), 200);
    let (status, _) = gateway.get_json("/v1/models").await;
    assert_eq!(status, 200);

    let session_ttl = ttl_once_written(&redis, "llm:session:keys-1").await;
    assert!(
        (590..=600).contains(&session_ttl),
        "SESSION_TTL 600: {session_ttl}"
    );
    let session = stored_session(&redis, "keys-1", Some("a")).await;
    assert_eq!(session["model_id"], "up-a");
    assert_eq!(session["logical_model"], LOGICAL);

    let history_ttl = ttl_once_written(&redis, "session:keys-1:history").await;
    assert!(history_ttl > 604_000, "CONTEXT_TTL 604800: {history_ttl}");
    assert_eq!(redis.cli(&["TYPE", "session:keys-1:history"]), "list");
    let entry: Value = serde_json::from_str(&redis.cli(&["LINDEX", "session:keys-1:history", "0"]))
        .expect("a context entry is a JSON string");
    assert_eq!(entry["request"]["model"], LOGICAL);

    let models_ttl = ttl_once_written(&redis, "llm:vendor:a:models").await;
    assert!(
        (110..=120).contains(&models_ttl),
        "MODELS_CACHE_TTL 120: {models_ttl}"
    );
    assert!(redis.cli(&["GET", "llm:vendor:a:models"]).contains("up-a"));
    let all_ttl = ttl_once_written(&redis, "gateway:models:all").await;
    assert!((1..=120).contains(&all_ttl), "{all_ttl}");

    let logical: Value = serde_json::from_str(&redis.cli(&["GET", "llm:logical:chat-model"]))
        .expect("llm:logical:chat-model holds the model from LOGICAL_MODELS_FILE");
    assert_eq!(logical["logical_id"], LOGICAL);
    assert_eq!(
        redis.cli(&["SISMEMBER", "llm:logical:#index", LOGICAL]),
        "1",
        "the index set names it"
    );

    let metrics_ttl = ttl_once_written(&redis, "llm:metrics:chat-model:a").await;
    assert!(metrics_ttl > 0);
    assert_eq!(a.chat_requests().await, 1);
}

#[tokio::test]
async fn a_session_bound_through_one_gateway_is_honoured_by_another() {
    let redis = RedisServer::start();
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let builder = equal_pair(&a, &b, &redis.url());
    let first = builder.clone().start().await;
    let second = builder.start().await;

    let response = first
        .chat_in_session("shared", chat_body(LOGICAL, "Hi"))
        .await;
    assert_eq!(response.status(), 200);
    let bound = served_by(&response);
    stored_session(&redis, "shared", Some(&bound)).await;
    let (status, session) = second.get_json("/routing/sessions/shared").await;
    assert_eq!(status, 200, "{session}");
    assert_eq!(session["provider_id"], bound.as_str());

    for _ in 0..8 {
        let response = second
            .chat_in_session("shared", chat_body(LOGICAL, "Hi"))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            served_by(&response),
            bound,
            "the other gateway keeps the binding"
        );
    }
    let (sticky, other) = if bound == "a" { (&a, &b) } else { (&b, &a) };
    assert_eq!(sticky.chat_requests().await, 9);
    assert_eq!(other.chat_requests().await, 0);
}

#[tokio::test]
async fn a_logical_model_put_through_one_gateway_is_routed_and_listed_by_another_at_once() {
    let redis = RedisServer::start();
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let builder = equal_pair(&a, &b, &redis.url());
    let first = builder.clone().start().await;
    let second = builder.start().await;
    // The second gateway has listed the models before the change.
    let (_, before) = second.get_json("/v1/models").await;
    assert!(before.to_string().contains(LOGICAL), "{before}");

    let (status, _) = first
        .put_json(
            "/logical-models/shared-model",
            &json!({"upstreams": [{"provider_id": "b", "model_id": "up-b"}]}),
        )
        .await;
    assert_eq!(status, 201);

    let response = second.chat(chat_body("shared-model", "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "b");
    assert_eq!(b.chat_requests().await, 1);
    assert_eq!(a.chat_requests().await, 0);
    let (_, list) = second.get_json("/logical-models").await;
    let ids: Vec<&str> = list["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| m["logical_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [LOGICAL, "shared-model"], "{list}");
    let (_, models) = second.get_json("/v1/models").await;
    assert!(
        models["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["id"] == "shared-model" && m["owned_by"] == "apiproxy"),
        "the other gateway's model list shows it: {models}"
    );

    assert_eq!(
        first.delete_status("/logical-models/shared-model").await,
        204
    );
    let response = second.chat(chat_body("shared-model", "Hi")).await;
    assert_eq!(response.status(), 404, "deleted for every gateway");
    assert_eq!(b.chat_requests().await, 1);
}

#[tokio::test]
async fn max_qps_holds_across_two_gateways_sharing_redis() {
    let redis = RedisServer::start();
    let a = Mock::start("a", &["up-a"]);
    let builder = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .env("LLM_PROVIDER_a_MAX_QPS", "4")
        .redis(&redis.url());
    let first = builder.clone().start().await;
    let second = builder.start().await;
    // Connections to Redis and to the upstream are opened before the measured second.
    for gateway in [&first, &second] {
        assert_eq!(
            gateway.chat(chat_body(LOGICAL, "warm up")).await.status(),
            200
        );
    }
    // As in routing.rs: the exact count needs a burst within one calendar second; up to three
    // bursts are tried, and the test fails if none fit.
    for _ in 0..3 {
        let before = a.chat_requests().await;
        let started = start_of_next_second().await;
        let burst = (0..10).map(|i| {
            let gateway = if i % 2 == 0 { &first } else { &second };
            gateway.chat(chat_body(LOGICAL, "burst"))
        });
        let responses = join_all(burst).await;
        let last = unix_second();

        let ok = responses.iter().filter(|r| r.status() == 200).count() as u64;
        let limited = responses.iter().filter(|r| r.status() == 429).count() as u64;
        assert_eq!(ok + limited, 10);
        for response in responses.iter().filter(|r| r.status() == 429) {
            assert!(header(response, "retry-after").is_some());
        }
        assert_eq!(a.chat_requests().await - before, ok);
        let seconds = last - started + 1;
        assert!(
            ok <= 4 * seconds,
            "{ok} passed in {seconds} s at MAX_QPS 4 shared"
        );
        if seconds == 1 {
            assert_eq!(
                ok, 4,
                "the shared limit is used up exactly, not 4 per gateway"
            );
            return;
        }
    }
    panic!(
        "no burst of 10 fit in one calendar second in three tries: the exact limit was not checked"
    );
}

/// Runs a Redis outage under a gateway that serves `model` over the mocks `a` and `b`: a session
/// bound before, chats (200) and `/health` degraded during it, `/health` ok within a few seconds
/// of the restart (on the same port, empty: no persistence).
async fn outage(redis: &mut RedisServer, gateway: &Gateway, model: &str) {
    let response = gateway
        .chat_in_session("before", chat_body(model, "Hi"))
        .await;
    assert_eq!(response.status(), 200);
    stored_session(redis, "before", None).await;

    redis.stop();
    for _ in 0..5 {
        let response = gateway
            .chat_in_session("before", chat_body(model, "Hi"))
            .await;
        assert_eq!(response.status(), 200, "chat is served without Redis");
        assert_eq!(gateway.chat(chat_body(model, "Hi")).await.status(), 200);
    }
    // `/health` reuses one PING for a second.
    eventually(Duration::from_secs(3), "/health degraded", || async {
        let health = gateway
            .client
            .get(format!("{}/health", gateway.url))
            .send()
            .await
            .expect("/health");
        assert_eq!(health.status(), 200);
        (json_of(health).await == json!({"status": "degraded", "store": "unreachable"}))
            .then_some(())
    })
    .await;

    redis.restart();
    eventually(Duration::from_secs(5), "/health ok again", || async {
        let response = gateway
            .client
            .get(format!("{}/health", gateway.url))
            .send()
            .await;
        let body = json_of(response.ok()?).await;
        (body == json!({"status": "ok"})).then_some(())
    })
    .await;
}

/// After the outage: a new session is bound (in Redis) and the next 5 chats stick to it.
async fn stickiness_is_back(
    redis: &RedisServer,
    gateway: &Gateway,
    model: &str,
    a: &Mock,
    b: &Mock,
) {
    // The gateway gets a few seconds to find its footing again.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let bound = loop {
        let response = gateway
            .chat_in_session("after", chat_body(model, "Hi"))
            .await;
        if response.status() == 200 {
            break served_by(&response);
        }
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline,
            "{model} is still not routed 5 s after Redis came back: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stored_session(redis, "after", Some(&bound)).await;
    let (sticky, other) = if bound == "a" { (a, b) } else { (b, a) };
    let (sticky_before, other_before) = (sticky.chat_requests().await, other.chat_requests().await);
    for _ in 0..5 {
        let response = gateway
            .chat_in_session("after", chat_body(model, "Hi"))
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(served_by(&response), bound);
    }
    assert_eq!(sticky.chat_requests().await, sticky_before + 5);
    assert_eq!(other.chat_requests().await, other_before);
    assert_eq!(
        redis.cli(&["EXISTS", "llm:session:after"]),
        "1",
        "the binding is in Redis"
    );
}

#[tokio::test]
async fn a_redis_outage_degrades_health_but_not_chat_and_the_gateway_recovers_by_itself() {
    let mut redis = RedisServer::start();
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    let gateway = equal_pair(&a, &b, &redis.url()).start().await;

    outage(&mut redis, &gateway, LOGICAL).await;
    assert_eq!(a.chat_requests().await + b.chat_requests().await, 11);

    // The model from LOGICAL_MODELS_FILE must still be routed after Redis came back empty.
    stickiness_is_back(&redis, &gateway, LOGICAL, &a, &b).await;
    assert_eq!(
        redis.cli(&["EXISTS", "llm:logical:chat-model"]),
        "1",
        "the file's model is in Redis again"
    );
}

#[tokio::test]
async fn stickiness_comes_back_after_a_redis_restart_for_a_model_the_providers_list() {
    let mut redis = RedisServer::start();
    // `shared` is listed by both providers: a dynamic model, not stored in Redis.
    let a = Mock::start("a", &["up-a", "shared"]);
    let b = Mock::start("b", &["up-b", "shared"]);
    let gateway = equal_pair(&a, &b, &redis.url()).start().await;

    outage(&mut redis, &gateway, "shared").await;
    assert_eq!(a.chat_requests().await + b.chat_requests().await, 11);

    stickiness_is_back(&redis, &gateway, "shared", &a, &b).await;
}
