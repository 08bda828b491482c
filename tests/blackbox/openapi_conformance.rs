//! The served `/openapi.json` tells the truth: every endpoint's real answers (successes and
//! errors) validate against the schema the document gives for that path, method and status.
//! This is what keeps the documentation types in `src/inbound/http/openapi/schemas.rs` in step
//! with what the handlers actually write.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

/// One request to make, and the operation of the document it exercises.
struct Case {
    method: Method,
    /// The request's path.
    path: &'static str,
    /// The document's path template it matches.
    template: &'static str,
    body: Option<Value>,
    /// The status the case is written to get.
    expect: u16,
    /// Sends no token (the 401 answers).
    anonymous: bool,
}

fn case(method: Method, path: &'static str, template: &'static str, expect: u16) -> Case {
    Case {
        method,
        path,
        template,
        body: None,
        expect,
        anonymous: false,
    }
}

impl Case {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    fn anonymous(mut self) -> Self {
        self.anonymous = true;
        self
    }
}

fn cases() -> Vec<Case> {
    use Method as M;
    let chat = chat_body(LOGICAL, "hello");
    let claude = json!({"model": LOGICAL, "max_tokens": 64, "system": "be brief",
        "messages": [{"role": "user", "content": "hello"}]});
    let logical =
        json!({"upstreams": [{"provider_id": "a", "model_id": "up-a", "base_weight": 2.0}]});
    vec![
        case(M::GET, "/health", "/health", 200),
        case(M::GET, "/openapi.json", "/openapi.json", 200),
        case(M::POST, "/v1/chat/completions", "/v1/chat/completions", 200).body(chat.clone()),
        case(M::POST, "/v1/chat/completions", "/v1/chat/completions", 200).body(claude.clone()),
        case(M::POST, "/v1/chat/completions", "/v1/chat/completions", 404)
            .body(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})),
        case(M::POST, "/v1/chat/completions", "/v1/chat/completions", 400).body(json!({"model": 7})),
        case(M::POST, "/v1/chat/completions", "/v1/chat/completions", 401)
            .body(chat.clone())
            .anonymous(),
        case(M::POST, "/v1/messages", "/v1/messages", 200).body(claude.clone()),
        case(M::POST, "/v1/messages", "/v1/messages", 400).body(json!({"model": LOGICAL})),
        case(M::POST, "/v1/messages", "/v1/messages", 401)
            .body(claude.clone())
            .anonymous(),
        case(M::POST, "/v1/messages/count_tokens", "/v1/messages/count_tokens", 200)
            .body(claude.clone()),
        case(M::POST, "/v1/messages/count_tokens", "/v1/messages/count_tokens", 400)
            .body(json!({"model": LOGICAL})),
        case(M::POST, "/v1/messages/count_tokens", "/v1/messages/count_tokens", 404)
            .body(json!({"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]})),
        case(M::POST, "/v1/responses", "/v1/responses", 200)
            .body(json!({"model": LOGICAL, "input": "hello", "instructions": "be brief"})),
        case(M::POST, "/v1/responses", "/v1/responses", 400).body(json!({"input": "no model"})),
        case(M::POST, "/v1beta/models/chat-model:generateContent", "/v1beta/models/{id}", 200)
            .body(json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]})),
        case(M::POST, "/v1beta/models/no-such-model:generateContent", "/v1beta/models/{id}", 404)
            .body(json!({"contents": "hello"})),
        case(M::POST, "/v1beta/models/chat-model:countTokens", "/v1beta/models/{id}", 200)
            .body(json!({"contents": "hello"})),
        case(M::POST, "/v1beta/models/chat-model:generateContent", "/v1beta/models/{id}", 400)
            .body(json!([1])),
        case(M::POST, "/v1/models/chat-model:generateContent", "/v1/models/{id}", 200)
            .body(json!({"contents": "hello"})),
        case(M::GET, "/v1beta/models", "/v1beta/models", 200),
        case(M::GET, "/v1beta/models/chat-model", "/v1beta/models/{id}", 200),
        case(M::GET, "/v1beta/models/nope", "/v1beta/models/{id}", 404),
        case(M::GET, "/v1/models", "/v1/models", 200),
        case(M::GET, "/models", "/models", 200),
        case(M::GET, "/v1/models/up-a", "/v1/models/{id}", 200),
        case(M::GET, "/v1/models/nope", "/v1/models/{id}", 404),
        case(M::GET, "/providers", "/providers", 200),
        case(M::GET, "/providers", "/providers", 401).anonymous(),
        case(M::GET, "/providers/a", "/providers/{id}", 200),
        case(M::GET, "/providers/nope", "/providers/{id}", 404),
        case(M::GET, "/providers/a/models", "/providers/{id}/models", 200),
        case(M::GET, "/providers/a/health", "/providers/{id}/health", 200),
        case(M::GET, "/providers/a/metrics", "/providers/{id}/metrics", 200),
        case(M::GET, "/logical-models", "/logical-models", 200),
        case(M::GET, "/logical-models/chat-model", "/logical-models/{id}", 200),
        case(M::GET, "/logical-models/nope", "/logical-models/{id}", 404),
        case(M::PUT, "/logical-models/extra", "/logical-models/{id}", 201).body(logical.clone()),
        case(M::PUT, "/logical-models/extra", "/logical-models/{id}", 200).body(logical),
        case(M::PUT, "/logical-models/bad", "/logical-models/{id}", 400).body(json!({"upstreams": 3})),
        case(M::GET, "/logical-models/extra/upstreams", "/logical-models/{id}/upstreams", 200),
        case(M::DELETE, "/logical-models/extra", "/logical-models/{id}", 204),
        case(M::DELETE, "/logical-models/extra", "/logical-models/{id}", 404),
        case(M::POST, "/routing/decide", "/routing/decide", 200)
            .body(json!({"logical_model": LOGICAL, "conversation_id": "conv-1"})),
        case(M::POST, "/routing/decide", "/routing/decide", 400).body(json!({"logical_model": 1})),
        case(M::GET, "/routing/sessions/conv-1", "/routing/sessions/{id}", 200),
        case(M::GET, "/routing/sessions/nope", "/routing/sessions/{id}", 404),
        case(M::DELETE, "/routing/sessions/conv-1", "/routing/sessions/{id}", 204),
        // `broken`: one upstream on a closed port, so every attempt fails (502).
        case(M::PUT, "/logical-models/broken", "/logical-models/{id}", 201).body(
            json!({"upstreams": [{"provider_id": "down", "model_id": "gone"}]}),
        ),
        case(M::POST, "/v1/chat/completions", "/v1/chat/completions", 502)
            .body(chat_body("broken", "hello")),
        case(M::POST, "/v1/messages", "/v1/messages", 502).body(
            json!({"model": "broken", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]}),
        ),
        case(M::POST, "/v1/responses", "/v1/responses", 502)
            .body(json!({"model": "broken", "input": "hello"})),
        case(M::POST, "/v1/responses", "/v1/responses", 404)
            .body(json!({"model": "no-such-model", "input": "hello"})),
        case(M::GET, "/context/conv-2", "/context/{id}", 200),
        case(M::DELETE, "/context/conv-2", "/context/{id}", 204),
        case(M::POST, "/keys", "/keys", 201).body(
            json!({"name": "documented", "team": "t", "rpm": 5, "budget_usd": 1.5}),
        ),
        case(M::POST, "/keys", "/keys", 400).body(json!({"name": "x", "rpm": "fast"})),
        case(M::GET, "/keys", "/keys", 200),
        case(M::GET, "/keys/key_000000000000000000000000", "/keys/{id}", 404),
        case(M::PATCH, "/keys/key_000000000000000000000000", "/keys/{id}", 404).body(json!({"enabled": false})),
        case(M::POST, "/keys/key_000000000000000000000000/rotate", "/keys/{id}/rotate", 404),
        case(M::DELETE, "/keys/key_000000000000000000000000", "/keys/{id}", 404),
        case(M::GET, "/usage?group_by=model", "/usage", 200),
        case(M::GET, "/usage?group_by=week", "/usage", 400),
        // The gateway token is no virtual key: it has no usage of its own.
        case(M::GET, "/v1/usage", "/v1/usage", 400),
        case(M::GET, "/admin/stats", "/admin/stats", 200),
        case(M::GET, "/admin/stats?since=1765130000000", "/admin/stats", 200),
        case(M::GET, "/admin/stats?since=soon", "/admin/stats", 400),
        // Last: it puts the start-up logical models back (the same files, read again).
        case(M::POST, "/admin/reload", "/admin/reload", 200),
    ]
}

#[tokio::test]
async fn every_answer_validates_against_the_served_document() {
    let a = Mock::start("a", &["up-a"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("down", &closed_url())
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;
    let (status, doc) = gateway.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    // The validation bites: a provider without its fields is not a `Provider`.
    let provider = json!({"$ref": "#/components/schemas/Provider"});
    assert!(!validates(&doc, &provider, &json!({"id": "a"})));
    // A conversation with context, for /context/{id} to show.
    let reply = gateway
        .chat_in_session("conv-2", chat_body(LOGICAL, "remember me"))
        .await;
    assert_eq!(reply.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut checked = std::collections::BTreeSet::new();
    for case in cases() {
        let mut request = gateway
            .client
            .request(case.method.clone(), format!("{}{}", gateway.url, case.path));
        if !case.anonymous {
            request = request.header("authorization", "Bearer dGltZWxpbmU=");
        }
        if let Some(body) = &case.body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let content_type = header(&response, "content-type")
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.expect("body");
        let what = format!("{} {} -> {status}", case.method, case.path);
        let method = case.method.as_str().to_lowercase();
        let operation = &doc["paths"][case.template][&method];
        assert!(
            operation.is_object(),
            "{what}: the document has no {method} {}",
            case.template
        );
        // Every status a case expects is documented by its own code: the `default` response
        // (relayed upstream errors, 405, 500) would accept anything, so it may not stand in.
        let responses = &operation["responses"];
        let documented = responses
            .get(status.to_string())
            .unwrap_or_else(|| panic!("{what}: status {status} is not documented by its code"));
        assert_eq!(status, case.expect, "{what}: {text}");
        checked.insert(format!("{method} {} {status}", case.template));
        if status == 204 {
            assert!(text.is_empty(), "{what}: a 204 has no body");
            continue;
        }
        assert!(
            content_type.starts_with("application/json"),
            "{what}: {content_type}"
        );
        let schema = &documented["content"]["application/json"]["schema"];
        assert!(schema.is_object(), "{what}: no JSON schema documented");
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_valid(&doc, schema, &body, &what);
    }
    // Every operation of the document was exercised at least once.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if path == "/admin/requests/live" {
                continue; // Server-sent events: checked by console_api.rs.
            }
            if path == "/docs" || path == "/metrics" || path == "/ui" || path.starts_with("/ui/") {
                continue; // HTML, JS, CSS and Prometheus text: checked by their own tests.
            }
            let prefix = format!("{method} {path} ");
            assert!(
                checked.iter().any(|c| c.starts_with(&prefix)),
                "{method} {path} was not exercised"
            );
        }
    }
}

/// What is wrong with `instance` by `schema`, resolving `$ref`s against the document's components.
fn violations(doc: &Value, schema: &Value, instance: &Value, what: &str) -> Vec<String> {
    let mut root = schema.clone();
    root["components"] = doc["components"].clone();
    let validator = jsonschema::draft202012::new(&root)
        .unwrap_or_else(|e| panic!("{what}: the documented schema does not compile: {e}"));
    validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

fn validates(doc: &Value, schema: &Value, instance: &Value) -> bool {
    violations(doc, schema, instance, "probe").is_empty()
}

fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors = violations(doc, schema, instance, what);
    assert!(
        errors.is_empty(),
        "{what}: the answer does not match the document:\n{}\nanswer: {instance}",
        errors.join("\n")
    );
}
