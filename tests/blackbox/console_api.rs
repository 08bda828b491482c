//! The console's data endpoints (issue 20) through the real binary: `GET /admin/stats` samples
//! the proxied traffic every 2 s, `GET /admin/requests/live` streams one record per finished
//! proxied request (a stream's when it ends) and lets go of its subscription when the client
//! goes away; both are admin only, and both work over the Redis store too.

use std::time::Duration;

use serde_json::{Value, json};

use crate::redis_server::RedisServer;
use crate::support::*;

const ADMIN: &str = "Bearer root-admin-secret";

/// A gateway over one mock whose prices make one token cost 0.001 USD, with an admin token apart
/// from the gateway token (the keys tests' own).
fn builder(mock: &Mock) -> GatewayBuilder {
    crate::keys::admin_builder(mock)
}

async fn admin_get(gateway: &Gateway, path: &str) -> reqwest::Response {
    gateway
        .client
        .get(format!("{}{path}", gateway.url))
        .header("authorization", ADMIN)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn stats(gateway: &Gateway, query: &str) -> Value {
    let response = admin_get(gateway, &format!("/admin/stats{query}")).await;
    assert_eq!(response.status(), 200);
    json_of(response).await
}

/// A chat request with `credential`; asserts it was answered.
async fn chat_with(gateway: &Gateway, credential: &str, body: Value) -> reqwest::Response {
    let response = gateway
        .client
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("authorization", credential)
        .json_body(&body)
        .send()
        .await
        .expect("POST /v1/chat/completions");
    assert_eq!(response.status(), 200);
    response
}

/// Chat requests until a sample shows traffic; that sample.
async fn busy_sample(gateway: &Gateway) -> Value {
    eventually(Duration::from_secs(15), "a sample with traffic", || async {
        for _ in 0..3 {
            let answer = chat_with(gateway, AUTH, chat_body(LOGICAL, "hello")).await;
            let _ = answer.text().await;
        }
        let body = stats(gateway, "").await;
        body["samples"]
            .as_array()
            .and_then(|samples| {
                samples
                    .iter()
                    .find(|s| s["requests_per_second"].as_f64() > Some(0.0))
            })
            .cloned()
    })
    .await
}

fn assert_busy(sample: &Value) {
    assert!(sample["at"].as_u64() > Some(1_700_000_000_000), "{sample}");
    assert!(
        sample["requests_per_second"].as_f64() > Some(0.0),
        "{sample}"
    );
    assert_eq!(sample["error_rate"], json!(0.0), "{sample}");
    for latency in ["overhead_ms", "upstream_ms"] {
        for p in ["p50", "p99"] {
            let value = sample[latency][p].as_f64();
            assert!(value.is_some_and(|v| v >= 0.0), "{latency}.{p}: {sample}");
        }
        assert!(
            sample[latency]["p99"].as_f64() >= sample[latency]["p50"].as_f64(),
            "{sample}"
        );
    }
    assert!(sample["tokens_per_minute"].as_f64() > Some(0.0), "{sample}");
    assert!(sample["cost_per_hour_usd"].as_f64() > Some(0.0), "{sample}");
}

#[tokio::test]
async fn stats_sample_the_proxied_traffic_and_since_filters() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = builder(&mock).start().await;
    let body = stats(&gateway, "").await;
    assert_eq!(body["interval_seconds"], 2);
    assert_eq!(body["window_seconds"], 900);
    assert!(body["samples"].is_array(), "{body}");

    let sample = busy_sample(&gateway).await;
    assert_busy(&sample);

    // Samples come every 2 s, oldest first; `since` keeps the later ones only.
    let samples = eventually(Duration::from_secs(10), "three samples", || async {
        let body = stats(&gateway, "").await;
        let samples = body["samples"].as_array().cloned().unwrap_or_default();
        (samples.len() >= 3).then_some(samples)
    })
    .await;
    // Idle intervals (before the traffic) have null percentiles: the document says so.
    let (_, doc) = gateway.get_json("/openapi.json").await;
    assert_documented(&doc, "ConsoleStats", &stats(&gateway, "").await);
    assert!(
        samples.iter().any(|s| s["overhead_ms"]["p50"].is_null()),
        "an idle sample: {samples:?}"
    );
    let ats: Vec<u64> = samples.iter().map(|s| s["at"].as_u64().unwrap()).collect();
    assert!(ats.windows(2).all(|w| w[0] < w[1]), "{ats:?}");
    let since = ats[ats.len() - 2];
    let later = stats(&gateway, &format!("?since={since}")).await;
    let later: Vec<u64> = later["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["at"].as_u64().unwrap())
        .collect();
    assert!(
        !later.is_empty() && later.iter().all(|at| *at > since),
        "{later:?}"
    );
    assert_eq!(later[0], ats[ats.len() - 1]);
    let none = stats(&gateway, &format!("?since={}", u64::MAX)).await;
    assert_eq!(none["samples"], json!([]));

    let response = admin_get(&gateway, "/admin/stats?since=yesterday").await;
    assert_eq!(response.status(), 400);
    let body = json_of(response).await;
    assert_eq!(assert_error_shape(&body)["param"], "since", "{body}");
}

/// An open `GET /admin/requests/live`, read event by event.
struct LiveFeed {
    response: reqwest::Response,
    buffer: String,
}

impl LiveFeed {
    async fn open(gateway: &Gateway) -> LiveFeed {
        let response = admin_get(gateway, "/admin/requests/live").await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "content-type"), Some("text/event-stream"));
        let mut feed = LiveFeed {
            response,
            buffer: String::new(),
        };
        // The first keep-alive comes at once: the subscription is in place.
        assert_eq!(feed.next_event().await, ": keep-alive");
        feed
    }

    /// The next event or comment, without its blank line.
    async fn next_event(&mut self) -> String {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event = self.buffer[..end].to_string();
                self.buffer.drain(..end + 2);
                return event;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("an event within 10 s")
                .expect("the feed is readable")
                .expect("the feed is still open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// The next `request` event's record.
    async fn next_record(&mut self) -> Value {
        loop {
            let event = self.next_event().await;
            if let Some(rest) = event.strip_prefix("event: request\ndata: ") {
                return serde_json::from_str(rest).unwrap_or_else(|e| panic!("{e}: {rest}"));
            }
            assert!(
                event.starts_with(':'),
                "only comments besides records: {event}"
            );
        }
    }
}

/// Asserts that `instance` is a valid `name` of the served document's components.
fn assert_documented(doc: &Value, name: &str, instance: &Value) {
    let mut root = json!({"$ref": format!("#/components/schemas/{name}")});
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root).expect("the schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "not a {name}: {errors:?}\n{instance}");
}

/// The fields every record has, with their types.
fn assert_record_shape(record: &Value) {
    for field in ["request_id", "endpoint", "key"] {
        assert!(record[field].is_string(), "{field}: {record}");
    }
    for field in ["at", "status", "attempts", "failovers"] {
        assert!(record[field].is_u64(), "{field}: {record}");
    }
    assert!(record["stream"].is_boolean(), "{record}");
    assert!(record["latency_ms"].as_f64() > Some(0.0), "{record}");
    for nullable in ["logical_model", "provider", "model", "tokens", "cost_usd"] {
        assert!(record.get(nullable).is_some(), "{nullable}: {record}");
    }
}

#[tokio::test]
async fn the_live_feed_shows_each_finished_request_with_its_key_tokens_and_cost() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = builder(&mock).start().await;
    let key = {
        let response = gateway
            .client
            .post(format!("{}/keys", gateway.url))
            .header("authorization", ADMIN)
            .json_body(&json!({"name": "console-bot"}))
            .send()
            .await
            .expect("POST /keys");
        assert_eq!(response.status(), 201);
        json_of(response).await
    };
    let key_auth = format!("Bearer {}", key["key"].as_str().expect("secret"));
    let (_, doc) = gateway.get_json("/openapi.json").await;
    let mut feed = LiveFeed::open(&gateway).await;

    // A whole answer to a virtual key.
    let answer = chat_with(&gateway, &key_auth, chat_body(LOGICAL, "hello")).await;
    let request_id = header(&answer, "x-request-id").unwrap().to_string();
    let answer = json_of(answer).await;
    let record = feed.next_record().await;
    assert_record_shape(&record);
    assert_documented(&doc, "LiveRequest", &record);
    assert_eq!(record["request_id"], request_id.as_str(), "{record}");
    assert_eq!(record["endpoint"], "/v1/chat/completions");
    assert_eq!(record["key"], "console-bot");
    assert_eq!(record["logical_model"], LOGICAL);
    assert_eq!(record["provider"], "a");
    assert_eq!(record["model"], "up-a");
    assert_eq!(record["status"], 200);
    assert_eq!(record["stream"], false);
    assert_eq!(
        (record["attempts"].as_u64(), record["failovers"].as_u64()),
        (Some(1), Some(0))
    );
    let usage = &answer["usage"];
    assert_eq!(
        record["tokens"]["prompt"], usage["prompt_tokens"],
        "{record}"
    );
    assert_eq!(
        record["tokens"]["completion"], usage["completion_tokens"],
        "{record}"
    );
    let tokens =
        usage["prompt_tokens"].as_f64().unwrap() + usage["completion_tokens"].as_f64().unwrap();
    let cost = record["cost_usd"].as_f64().expect("a cost");
    assert!((cost - tokens * 0.001).abs() < 1e-9, "{record}");

    // A stream with the gateway token: sent when it ends, with the usage the mock reported.
    let streamed = chat_with(&gateway, AUTH, streamed_chat_body(LOGICAL, "hello")).await;
    let streamed_id = header(&streamed, "x-request-id").unwrap().to_string();
    let text = streamed.text().await.expect("the stream");
    assert!(text.contains("[DONE]"), "{text}");
    let record = feed.next_record().await;
    assert_record_shape(&record);
    assert_documented(&doc, "LiveRequest", &record);
    assert_eq!(record["request_id"], streamed_id.as_str(), "{record}");
    assert_eq!(record["key"], "gateway");
    assert_eq!(record["stream"], true);
    assert_eq!(record["status"], 200);
    assert!(
        record["tokens"]["completion"].as_u64() > Some(0),
        "{record}"
    );
    assert!(record["cost_usd"].as_f64() > Some(0.0), "{record}");

    // A refused request is a finished request too: no provider answered it.
    let refused = gateway
        .post("/v1/chat/completions")
        .json_body(&chat_body("no-such-model", "hello"))
        .send()
        .await
        .expect("send");
    assert_eq!(refused.status(), 404);
    let record = feed.next_record().await;
    assert_record_shape(&record);
    assert_documented(&doc, "LiveRequest", &record);
    assert_eq!(record["status"], 404);
    assert_eq!(record["logical_model"], "no-such-model");
    assert_eq!(
        (record["provider"].clone(), record["tokens"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(record["attempts"], 0);

    // Every proxied endpoint is in the feed; token counts are not.
    let calls = [
        (
            "/v1/responses",
            json!({"model": LOGICAL, "input": "hello"}),
            "/v1/responses",
        ),
        (
            "/v1/messages",
            json!({"model": LOGICAL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}),
            "/v1/messages",
        ),
        (
            "/v1beta/models/chat-model:countTokens",
            json!({"contents": "hello"}),
            "",
        ),
        (
            "/v1beta/models/chat-model:generateContent",
            json!({"contents": "hello"}),
            "/v1beta/models/{model}:generateContent",
        ),
        (
            "/v1beta/models/chat-model:streamGenerateContent?alt=sse",
            json!({"contents": "hello"}),
            "/v1beta/models/{model}:streamGenerateContent",
        ),
        (
            "/v1/models/chat-model:generateContent",
            json!({"contents": "hello"}),
            "/v1/models/{model}:generateContent",
        ),
    ];
    for (path, body, endpoint) in calls {
        let response = gateway
            .post(path)
            .json_body(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200, "{path}");
        let _ = response.text().await;
        if endpoint.is_empty() {
            continue;
        }
        let record = feed.next_record().await;
        assert_record_shape(&record);
        assert_documented(&doc, "LiveRequest", &record);
        assert_eq!(record["endpoint"], endpoint, "{path}: {record}");
        assert_eq!(record["provider"], "a", "{path}: {record}");
        assert_eq!(record["logical_model"], LOGICAL, "{path}: {record}");
    }
}

/// `apiproxy_console_subscribers` on `/metrics`.
async fn subscribers(gateway: &Gateway) -> Option<u64> {
    let text = admin_get(gateway, "/metrics").await.text().await.ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("apiproxy_console_subscribers "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

#[tokio::test]
async fn a_client_that_goes_away_ends_its_subscription() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = builder(&mock).start().await;
    assert_eq!(subscribers(&gateway).await, Some(0));
    let first = LiveFeed::open(&gateway).await;
    let second = LiveFeed::open(&gateway).await;
    assert_eq!(subscribers(&gateway).await, Some(2));
    drop(first);
    eventually(Duration::from_secs(5), "one subscriber left", || async {
        (subscribers(&gateway).await == Some(1)).then_some(())
    })
    .await;
    drop(second);
    eventually(Duration::from_secs(5), "no subscriber left", || async {
        (subscribers(&gateway).await == Some(0)).then_some(())
    })
    .await;
    // Nobody watches: requests are served as before.
    let answer = chat_with(&gateway, AUTH, chat_body(LOGICAL, "hello")).await;
    assert_eq!(served_by(&answer), "a");
}

#[tokio::test]
async fn the_console_data_is_for_the_admin_only() {
    let mock = Mock::start("a", &["up-a"]);
    let gateway = builder(&mock).start().await;
    for path in ["/admin/stats", "/admin/requests/live"] {
        let url = format!("{}{path}", gateway.url);
        let anonymous = gateway.client.get(&url).send().await.expect("send");
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_error_shape(&json_of(anonymous).await);
        // The gateway token is a client token once an admin token is set.
        let client = gateway.get(path).send().await.expect("send");
        assert_eq!(client.status(), 403, "{path}");
        let body = json_of(client).await;
        assert_eq!(
            assert_error_shape(&body)["code"],
            "admin_required",
            "{body}"
        );
    }
    let (status, doc) = gateway.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    for (path, id) in [
        ("/admin/stats", "getConsoleStats"),
        ("/admin/requests/live", "getLiveRequests"),
    ] {
        let operation = &doc["paths"][path]["get"];
        assert_eq!(operation["operationId"], id, "{path}");
        assert_eq!(operation["tags"], json!(["console"]), "{path}");
    }
}

#[tokio::test]
async fn both_work_over_the_redis_store() {
    let redis = RedisServer::start();
    let mock = Mock::start("a", &["up-a"]);
    let gateway = builder(&mock).redis(&redis.url()).start().await;
    let (_, doc) = gateway.get_json("/openapi.json").await;
    let mut feed = LiveFeed::open(&gateway).await;
    let answer = chat_with(&gateway, AUTH, chat_body(LOGICAL, "hello")).await;
    let request_id = header(&answer, "x-request-id").unwrap().to_string();
    let _ = answer.text().await;
    let record = feed.next_record().await;
    assert_record_shape(&record);
    assert_documented(&doc, "LiveRequest", &record);
    assert_eq!(record["request_id"], request_id.as_str());
    assert!(record["cost_usd"].as_f64() > Some(0.0), "{record}");
    drop(feed);
    assert_busy(&busy_sample(&gateway).await);
}
