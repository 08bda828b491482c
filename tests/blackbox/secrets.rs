//! Secrets stay secret: provider keys and the gateway token never reach logs (at DEBUG, with
//! failing upstreams), error answers or management answers; bodies are logged only with LOG_BODIES.

use base64::Engine;
use serde_json::json;

use crate::support::*;

const TOKEN: &str = "gw-token-SECRET-4711";
const PROMPT: &str = "my private prompt 8831";

fn encoded_token() -> String {
    base64::engine::general_purpose::STANDARD.encode(TOKEN)
}

async fn leaky_setup(log_bodies: bool) -> (Mock, Mock, Gateway) {
    let failing = Mock::start("failing", &["m"]);
    failing.fault(json!({"status": 500})).await;
    let refusing = Mock::start("refusing", &["m"]);
    refusing.fault(json!({"status": 401})).await;
    let gateway = Gateway::builder()
        .provider("failing", &failing.url)
        .provider("dead", &closed_url())
        .provider("refusing", &refusing.url)
        .env("LLM_PROVIDER_refusing_RETRYABLE_STATUS_CODES", "none")
        .env("APIPROXY_AUTH_TOKEN", TOKEN)
        .env("LOG_LEVEL", "DEBUG")
        .env("LOG_BODIES", if log_bodies { "true" } else { "false" })
        .logical(&[
            ("failing", "m", 1_000_000.0),
            ("dead", "m", 1.0),
            ("refusing", "m", 0.000_001),
        ])
        .start()
        .await;
    (failing, refusing, gateway)
}

fn assert_no_secret(text: &str, where_: &str) {
    for secret in [
        provider_key("failing"),
        provider_key("dead"),
        provider_key("refusing"),
        TOKEN.to_string(),
        encoded_token(),
    ] {
        assert!(
            !text.contains(&secret),
            "{where_} contains the secret {secret}:\n{text}"
        );
    }
}

#[tokio::test]
async fn no_key_or_token_appears_in_debug_logs_errors_or_management_answers() {
    let (_failing, _refusing, gateway) = leaky_setup(false).await;
    let client = reqwest::Client::new();
    let auth = format!("Bearer {}", encoded_token());
    let mut answers = String::new();
    for stream in [false, true] {
        let mut body = chat_body(LOGICAL, PROMPT);
        body["stream"] = json!(stream);
        let response = client
            .post(format!("{}/v1/chat/completions", gateway.url))
            .header("authorization", &auth)
            .header("cookie", "session=abc")
            .json_body(&body)
            .send()
            .await
            .expect("send");
        assert!(response.status().is_client_error() || response.status().is_server_error());
        answers.push_str(&response.text().await.unwrap_or_default());
    }
    // Wrong tokens, in every header form.
    for (name, value) in [
        ("authorization", format!("Bearer {TOKEN}x")),
        ("x-api-key", format!("{}x", encoded_token())),
    ] {
        let response = client
            .get(format!("{}/v1/models", gateway.url))
            .header(name, value)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 401);
        answers.push_str(&response.text().await.unwrap_or_default());
    }
    for path in [
        "/providers",
        "/providers/failing",
        "/providers/dead/health",
        "/providers/failing/metrics",
        "/logical-models",
        "/v1/models",
    ] {
        let response = client
            .get(format!("{}{path}", gateway.url))
            .header("authorization", &auth)
            .send()
            .await
            .expect("send");
        answers.push_str(&response.text().await.unwrap_or_default());
    }
    assert_no_secret(&answers, "an API answer");
    let log = gateway.log();
    assert!(log.contains("DEBUG"), "the test must run at DEBUG: {log}");
    assert!(
        log.contains("[redacted]"),
        "the access log shows headers, redacted: {log}"
    );
    assert_no_secret(&log, "the log");
    assert!(
        !log.contains(PROMPT),
        "bodies are not logged without LOG_BODIES"
    );
}

#[tokio::test]
async fn log_bodies_true_logs_the_request_body_but_still_no_secret() {
    let (_failing, _refusing, gateway) = leaky_setup(true).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", gateway.url))
        .header("authorization", format!("Bearer {}", encoded_token()))
        .json_body(&chat_body(LOGICAL, PROMPT))
        .send()
        .await
        .expect("send");
    let _ = response.text().await;
    let log = gateway.log();
    assert!(log.contains(PROMPT), "LOG_BODIES=true logs the body: {log}");
    assert_no_secret(&log, "the log");
}
