//! `/metrics`: Prometheus text with requests, latency and overhead histograms, upstream attempts by
//! provider, vendor and outcome, failovers, tokens, store errors and open streams; authenticated.

use serde_json::json;

use crate::support::*;

fn value_of(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|line| line.starts_with(series))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

#[tokio::test]
async fn metrics_count_requests_attempts_failovers_tokens_and_overhead() {
    let a = Mock::start("a", &["up-a"]);
    let b = Mock::start("b", &["up-b"]);
    a.fault(json!({"status": 503, "times": 1})).await;
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .provider("b", &b.url)
        .logical(&[("a", "up-a", 1_000_000.0), ("b", "up-b", 0.000_001)])
        .start()
        .await;
    assert_eq!(gateway.chat(chat_body(LOGICAL, "one")).await.status(), 200);
    let mut streamed = streamed_chat_body(LOGICAL, "two");
    streamed["stream_options"] = json!({"include_usage": true});
    let response = gateway.chat(streamed).await;
    assert_eq!(response.status(), 200);
    let _ = response.text().await;

    let unauthenticated = reqwest::get(format!("{}/metrics", gateway.url))
        .await
        .expect("send");
    assert_eq!(unauthenticated.status(), 401);
    let response = gateway.get("/metrics").send().await.expect("send");
    assert_eq!(response.status(), 200);
    assert!(
        header(&response, "content-type")
            .unwrap_or_default()
            .starts_with("text/plain")
    );
    let text = response.text().await.expect("body");
    assert_eq!(
        value_of(
            &text,
            r#"apiproxy_requests_total{endpoint="/v1/chat/completions",status="200"}"#
        ),
        2.0
    );
    assert_eq!(
        value_of(&text, r#"apiproxy_failovers_total{provider="a"}"#),
        1.0
    );
    assert_eq!(
        value_of(
            &text,
            r#"apiproxy_upstream_attempts_total{provider="a",vendor="openai",outcome="failed_over"}"#
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &text,
            r#"apiproxy_upstream_attempts_total{provider="b",vendor="openai",outcome="success"}"#
        ),
        1.0
    );
    assert_eq!(
        value_of(
            &text,
            r#"apiproxy_upstream_attempts_total{provider="a",vendor="openai",outcome="success"}"#
        ),
        1.0
    );
    assert!(
        value_of(
            &text,
            r#"apiproxy_tokens_total{provider="a",model="up-a",kind="completion"}"#
        ) > 0.0,
        "usage from the stream"
    );
    assert!(
        value_of(
            &text,
            r#"apiproxy_tokens_total{provider="b",model="up-b",kind="prompt"}"#
        ) > 0.0,
        "usage from the answer"
    );
    assert_eq!(
        value_of(
            &text,
            r#"apiproxy_gateway_overhead_seconds_count{endpoint="/v1/chat/completions"}"#
        ),
        2.0
    );
    assert!(
        text.contains("apiproxy_request_duration_seconds_bucket"),
        "latency histogram"
    );
    assert_eq!(value_of(&text, "apiproxy_open_streams"), 0.0);
    assert_eq!(value_of(&text, "apiproxy_store_errors_total"), 0.0);
}

/// The gauge and the store-error counter move: one held stream shows as 1 and back to 0 when it
/// ends; a stopped Redis shows as store errors.
#[tokio::test]
async fn open_streams_and_store_errors_follow_what_happens() {
    use futures_util::StreamExt;
    let redis_server = crate::redis_server::RedisServer::start();
    let a = Mock::start_with("a", &["up-a"], &["--reply-words", "6"]);
    let gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .redis(&redis_server.url())
        .start()
        .await;
    let metrics = || async {
        let response = gateway.get("/metrics").send().await.expect("GET /metrics");
        response.text().await.expect("text")
    };
    a.fault(json!({"event_delay_ms": 300})).await;
    let response = gateway.chat(streamed_chat_body(LOGICAL, "held")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let _first = body.next().await.expect("a first chunk").expect("readable");
    assert_eq!(value_of(&metrics().await, "apiproxy_open_streams"), 1.0);
    while let Some(chunk) = body.next().await {
        chunk.expect("the stream reads to its end");
    }
    eventually(
        std::time::Duration::from_secs(3),
        "the gauge back at 0",
        || async { (value_of(&metrics().await, "apiproxy_open_streams") == 0.0).then_some(()) },
    )
    .await;
    a.clear_fault().await;

    assert_eq!(
        value_of(&metrics().await, "apiproxy_store_errors_total"),
        0.0
    );
    let mut redis_server = redis_server;
    redis_server.stop();
    for _ in 0..3 {
        assert_eq!(
            gateway.chat(chat_body(LOGICAL, "no store")).await.status(),
            200
        );
    }
    let errors = value_of(&metrics().await, "apiproxy_store_errors_total");
    assert!(errors >= 1.0, "store errors after Redis stopped: {errors}");
}
