//! Handler tests through salvo's TestClient: auth, error shapes and stream detection, over a chat
//! service whose upstream is a mockall fake.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use salvo::http::StatusCode;
use salvo::prelude::*;
use salvo::test::{ResponseExt, TestClient};
use secrecy::SecretString;
use serde_json::{Value, json};

use super::service;
use crate::app::{Options, assemble};
use crate::domain::exchange::{Answer, UpstreamEvent, UpstreamReply};
use crate::domain::failover::StreamEventKind;
use crate::domain::health::BreakerPolicy;
use crate::domain::model::{LogicalModel, PhysicalModel};
use crate::domain::ports::{Clock, LogicalModelStore, MockUpstreamClient};
use crate::domain::provider::{ProviderConfig, ProviderRegistry};
use crate::domain::service::chat::ChatSettings;
use crate::outbound::memory::MemoryStores;
use crate::outbound::system::SystemClock;

const URL: &str = "http://127.0.0.1:8000";
const TOKEN: &str = "Bearer dGltZWxpbmU=";

fn provider() -> ProviderConfig {
    ProviderConfig {
        name: "P".into(),
        base_url: "http://p.test".into(),
        api_key: SecretString::from("sk-test".to_string()),
        static_models: Some(vec![]),
        ..crate::domain::provider::provider_for_tests("p")
    }
}

/// The upstream fake answers like OpenAI would, streaming when asked to; it records nothing.
fn fake_upstream() -> MockUpstreamClient {
    let mut upstream = MockUpstreamClient::new();
    upstream.expect_chat().returning(|_, request| {
        if request.stream {
            let events = [
                (
                    StreamEventKind::Content,
                    &b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n"[..],
                ),
                (StreamEventKind::End, b"data: [DONE]\n\n"),
            ];
            let events = events
                .into_iter()
                .map(|(kind, bytes)| Ok(UpstreamEvent::new(kind, Bytes::from_static(bytes))))
                .collect();
            return Ok(UpstreamReply::streamed(200, events));
        }
        let answer = Answer {
            bytes: Bytes::from_static(b"{\"choices\":[{\"message\":{\"content\":\"hi\"}}]}"),
            ..Answer::default()
        };
        Ok(UpstreamReply::answered(200, answer))
    });
    upstream
}

async fn app(max_body_bytes: usize) -> Service {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let stores = MemoryStores::new(clock.clone());
    let upstream = PhysicalModel {
        provider_id: "p".into(),
        model_id: "up".into(),
        endpoint: String::new(),
        base_weight: 1.0,
        region: None,
        max_qps: None,
        meta_hash: None,
        updated_at: 0.0,
        pricing: None,
    };
    stores
        .logical_models
        .put(LogicalModel::dynamic("m", vec![upstream], 0.0))
        .await
        .unwrap();
    let options = Options {
        models_cache_ttl: Duration::from_secs(60),
        breaker: BreakerPolicy {
            failure_threshold: 3,
            cooldown_seconds: 30.0,
            probe_lease_seconds: 600.0,
        },
        chat: ChatSettings {
            session_ttl: Duration::from_secs(60),
            ..ChatSettings::default()
        },
        auth_token: SecretString::from("timeline".to_string()),
        admin_token: None,
        metrics_public: false,
        max_body_bytes,
        admission: crate::inbound::http::Admission::default(),
        log_bodies: false,
        metrics_handle: None,
        traffic: None,
    };
    service(assemble(
        Arc::new(ProviderRegistry::new(vec![provider()])),
        stores.into(),
        Arc::new(fake_upstream()),
        clock,
        options,
    ))
}

async fn error_of(response: &mut salvo::Response) -> Value {
    let body: Value = response.take_json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["error"]["type"].is_string() && body["error"]["code"].is_string(),
        "{body}"
    );
    body
}

fn chat_post() -> salvo::test::RequestBuilder {
    TestClient::post(format!("{URL}/v1/chat/completions"))
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_the_token() {
    let app = app(1 << 20).await;
    let mut res = TestClient::get(format!("{URL}/health")).send(&app).await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    assert_eq!(
        res.take_json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );

    for (header, value) in [
        (None, ""),
        (Some("authorization"), "Bearer wrong"),
        (Some("authorization"), "Token dGltZWxpbmU="),
    ] {
        let mut request = TestClient::get(format!("{URL}/v1/models"));
        if let Some(name) = header {
            request = request.add_header(name, value, true);
        }
        let mut res = request.send(&app).await;
        assert_eq!(res.status_code, Some(StatusCode::UNAUTHORIZED), "{value}");
        assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
        assert_eq!(
            error_of(&mut res).await["error"]["type"],
            "authentication_error"
        );
    }
    for (name, value) in [
        ("authorization", TOKEN),
        ("authorization", "Bearer timeline"),
        ("x-api-key", "dGltZWxpbmU="),
    ] {
        let res = TestClient::get(format!("{URL}/v1/models"))
            .add_header(name, value, true)
            .send(&app)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::OK), "{name}: {value}");
    }
}

#[tokio::test]
async fn bad_bodies_get_400_with_the_field_named() {
    let app = app(1 << 20).await;
    for (body, param) in [
        ("{not json", Value::Null),
        ("[]", Value::Null),
        (r#"{"messages":[]}"#, json!("model")),
        (r#"{"model":"m","messages":{}}"#, json!("messages")),
    ] {
        let mut res = chat_post()
            .add_header("authorization", TOKEN, true)
            .raw_json(body)
            .send(&app)
            .await;
        assert_eq!(res.status_code, Some(StatusCode::BAD_REQUEST), "{body}");
        let error = error_of(&mut res).await;
        assert_eq!(error["error"]["param"], param, "{body}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn an_oversized_body_is_413_and_an_unknown_model_404() {
    let app = app(200).await;
    let big = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(500)}]});
    let mut res = chat_post()
        .add_header("authorization", TOKEN, true)
        .json(&big)
        .send(&app)
        .await;
    assert_eq!(res.status_code, Some(StatusCode::PAYLOAD_TOO_LARGE));
    assert_eq!(
        error_of(&mut res).await["error"]["code"],
        "request_too_large"
    );
    let mut res = chat_post()
        .add_header("authorization", TOKEN, true)
        .json(&json!({"model": "ghost", "messages": []}))
        .send(&app)
        .await;
    assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND));
    assert_eq!(error_of(&mut res).await["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_shape() {
    let app = app(1 << 20).await;
    let mut res = TestClient::get(format!("{URL}/v2/nothing"))
        .add_header("authorization", TOKEN, true)
        .send(&app)
        .await;
    assert_eq!(res.status_code, Some(StatusCode::NOT_FOUND));
    assert_eq!(error_of(&mut res).await["error"]["code"], "not_found");
    // A known path with a method it does not take: 405 (or 404 where the router cannot tell),
    // always with the error shape, never a bare status.
    for (method, path) in [
        ("DELETE", "/v1/chat/completions"),
        ("PATCH", "/providers"),
        ("PUT", "/health"),
    ] {
        let url = format!("{URL}{path}");
        let request = match method {
            "DELETE" => TestClient::delete(url),
            "PATCH" => TestClient::patch(url),
            _ => TestClient::put(url),
        };
        let mut res = request
            .add_header("authorization", TOKEN, true)
            .send(&app)
            .await;
        let status = res.status_code.expect("a status");
        assert!(
            status == StatusCode::METHOD_NOT_ALLOWED || status == StatusCode::NOT_FOUND,
            "{method} {path}: {status}"
        );
        let code = error_of(&mut res).await["error"]["code"].clone();
        assert!(
            code == "method_not_allowed" || code == "not_found",
            "{method} {path}: {code}"
        );
    }
}

async fn chat(app: &Service, body: Value, accept: Option<&str>) -> salvo::Response {
    let mut request = chat_post()
        .add_header("authorization", TOKEN, true)
        .json(&body);
    if let Some(accept) = accept {
        request = request.add_header("accept", accept, true);
    }
    request.send(app).await
}

fn content_type(res: &salvo::Response) -> String {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn streaming_follows_the_flag_then_the_accept_header() {
    let app = app(1 << 20).await;
    let plain = json!({"model": "m", "messages": []});
    let mut res = chat(&app, plain.clone(), None).await;
    assert_eq!(content_type(&res), "application/json");
    assert!(res.take_string().await.unwrap().contains("\"hi\""));

    let mut res = chat(&app, plain.clone(), Some("text/event-stream")).await;
    assert_eq!(content_type(&res), "text/event-stream");
    assert!(
        res.take_string()
            .await
            .unwrap()
            .ends_with("data: [DONE]\n\n")
    );

    let explicit_false = json!({"model": "m", "messages": [], "stream": false});
    let res = chat(&app, explicit_false, Some("text/event-stream")).await;
    assert_eq!(
        content_type(&res),
        "application/json",
        "an explicit false wins over Accept"
    );

    let explicit_true = json!({"model": "m", "messages": [], "stream": true});
    let res = chat(&app, explicit_true, None).await;
    assert_eq!(content_type(&res), "text/event-stream");
    assert_eq!(res.headers().get("x-apiproxy-provider").unwrap(), "p");
    assert_eq!(res.headers().get("x-apiproxy-model").unwrap(), "up");
    assert_eq!(res.headers().get("x-apiproxy-attempts").unwrap(), "1");
}

#[tokio::test]
async fn a_client_request_id_is_kept_and_one_is_made_otherwise() {
    let app = app(1 << 20).await;
    let res = TestClient::get(format!("{URL}/health"))
        .add_header("x-request-id", "abc-123", true)
        .send(&app)
        .await;
    assert_eq!(res.headers().get("x-request-id").unwrap(), "abc-123");
    let res = TestClient::get(format!("{URL}/health")).send(&app).await;
    assert!(
        res.headers()
            .get("x-request-id")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("req_")
    );
}

/// Every `$ref` string inside `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|v| refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_generated_openapi_document_is_whole() {
    let app = app(1 << 20).await;
    let mut res = TestClient::get(format!("{URL}/openapi.json"))
        .send(&app)
        .await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    let doc: Value = res.take_json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let mut targets = Vec::new();
    refs(&doc, &mut targets);
    assert!(targets.len() > 100, "{} refs", targets.len());
    for target in targets {
        let pointer = target.strip_prefix('#').expect("a local $ref");
        assert!(doc.pointer(pointer).is_some(), "{target} resolves");
    }

    let mut ids = std::collections::HashSet::new();
    let mut open = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(
            !path.contains("{*"),
            "{path}: catch-alls are plain parameters"
        );
        for (method, operation) in item.as_object().unwrap() {
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_owned()), "{id} is unique");
            assert!(operation["summary"].is_string(), "{id} has a summary");
            assert!(operation["tags"][0].is_string(), "{id} has a tag");
            // Every `{name}` of the path is a declared path parameter.
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                let declared = operation["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path}: {name} is declared");
            }
            match operation["security"].as_array().map(Vec::len) {
                Some(0) => open.push(path.clone()),
                Some(2) => assert!(operation["responses"]["401"].is_object(), "{id}: 401"),
                other => panic!("{id}: security {other:?}"),
            }
        }
    }
    open.sort();
    // The console's static files are open like /docs: they hold no data (the page calls the
    // admin endpoints with the token typed in).
    assert_eq!(
        open,
        [
            "/docs",
            "/health",
            "/openapi.json",
            "/ui",
            "/ui/console.css",
            "/ui/console.js"
        ]
    );
}

#[tokio::test]
async fn without_a_recorder_the_console_stats_have_no_samples() {
    let app = app(1 << 20).await;
    let mut res = TestClient::get(format!("{URL}/admin/stats?since=0"))
        .add_header("authorization", TOKEN, true)
        .send(&app)
        .await;
    assert_eq!(res.status_code, Some(StatusCode::OK));
    let body: Value = res.take_json().await.unwrap();
    assert_eq!(
        body,
        json!({"interval_seconds": 2, "window_seconds": 900, "samples": []})
    );
}
