//! Production edges at the door (SPEC 2): clients that stall mid-body get 408 within
//! `CLIENT_BODY_TIMEOUT`, idle keep-alive connections are closed, and past `MAX_IN_FLIGHT` new
//! requests are refused at once with 503 while running streams are never cut.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

fn addr_of(gateway: &Gateway) -> String {
    gateway.url.trim_start_matches("http://").to_string()
}

/// Reads from `stream` until it closes or `within` passes; what was read and whether it closed.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => return (out, false),
        }
    }
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408_and_frees_its_place() {
    let mock = Mock::start("oa", &["up-model"]);
    let gateway = Gateway::builder()
        .provider("oa", &mock.url)
        .logical(&[("oa", "up-model", 1.0)])
        .env("CLIENT_BODY_TIMEOUT", "1")
        .env("MAX_IN_FLIGHT", "1")
        .start()
        .await;
    let mut stream = TcpStream::connect(addr_of(&gateway))
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let waited = started.elapsed();
    let text = String::from_utf8_lossy(&answer).to_string();
    assert!(
        text.starts_with("HTTP/1.1 408"),
        "a stalled body gets 408: {text}"
    );
    assert!(text.contains("\"request_timeout\""), "{text}");
    assert!(text.contains("CLIENT_BODY_TIMEOUT"), "{text}");
    assert!(
        closed,
        "the connection is closed after the 408 (its body may still come)"
    );
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
        "answered after the 1 s timeout, not before and not much later: {waited:?}"
    );
    // MAX_IN_FLIGHT=1: the stalled request gave its place back, so the next one is served.
    let response = gateway.chat(chat_body(LOGICAL, "after the stall")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        mock.chat_requests().await,
        1,
        "the stalled body never went upstream"
    );
}

#[tokio::test]
async fn a_body_that_arrives_slowly_but_in_time_is_served() {
    let mock = Mock::start("oa", &["up-model"]);
    let gateway = Gateway::builder()
        .provider("oa", &mock.url)
        .logical(&[("oa", "up-model", 1.0)])
        .env("CLIENT_BODY_TIMEOUT", "5")
        .start()
        .await;
    let body = serde_json::to_vec(&chat_body(LOGICAL, "slow but steady")).expect("body");
    let mut stream = TcpStream::connect(addr_of(&gateway))
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {AUTH}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).await.expect("first half");
    tokio::time::sleep(Duration::from_millis(600)).await;
    stream.write_all(rest).await.expect("second half");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
    let text = String::from_utf8_lossy(&answer).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// An idle keep-alive connection does not stay open for good: waiting for the next request's head
/// is bounded by the 30 s header timeout, after which the gateway closes it.
#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let gateway = Gateway::builder().start().await;
    let mut stream = TcpStream::connect(addr_of(&gateway))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
        .await
        .expect("an answer")
        .expect("read");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let (rest, closed) = read_until_closed(&mut stream, Duration::from_secs(45)).await;
    let idle = idle_from.elapsed();
    assert!(rest.is_empty(), "nothing more is sent: {rest:?}");
    assert!(closed, "the idle connection is closed within 45 s");
    assert!(
        idle >= Duration::from_secs(25),
        "kept open while a client may still send its next request: {idle:?}"
    );
}

async fn overloaded(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 503);
    assert_eq!(header(&response, "retry-after"), Some("1"));
    let body = json_of(response).await;
    assert_eq!(assert_error_shape(&body)["code"], "overloaded", "{body}");
    body
}

#[tokio::test]
async fn past_max_in_flight_new_requests_are_refused_at_once_and_health_still_answers() {
    let mock = Mock::start("oa", &["up-model"]);
    let gateway = Gateway::builder()
        .provider("oa", &mock.url)
        .logical(&[("oa", "up-model", 1.0)])
        .env("MAX_IN_FLIGHT", "2")
        .start()
        .await;
    mock.fault(json!({"delay_ms": 3000})).await;
    let held: Vec<_> = (0..2)
        .map(|i| {
            let request = gateway
                .post("/v1/chat/completions")
                .json_body(&chat_body(LOGICAL, &format!("held {i}")));
            tokio::spawn(async move { request.send().await.expect("held chat").status() })
        })
        .collect();
    eventually(
        Duration::from_secs(5),
        "both held requests upstream",
        || async { (mock.chat_requests().await == 2).then_some(()) },
    )
    .await;
    let started = Instant::now();
    let refused = gateway.chat(chat_body(LOGICAL, "one too many")).await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "refused at once, not after the held ones: {:?}",
        started.elapsed()
    );
    let body = overloaded(refused).await;
    assert!(
        body.to_string().contains("MAX_IN_FLIGHT"),
        "the message names the limit: {body}"
    );
    // Anthropic clients get the refusal in Anthropic's error shape.
    let refused = gateway
        .post("/v1/messages")
        .json_body(&json!({"model": LOGICAL, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("messages");
    assert_eq!(refused.status(), 503);
    assert_eq!(json_of(refused).await["type"], "error");
    let health = gateway.get("/health").send().await.expect("health");
    assert_eq!(health.status(), 200, "/health is never refused");
    for task in held {
        assert_eq!(task.await.expect("join"), 200, "the held requests finish");
    }
    assert_eq!(
        mock.chat_requests().await,
        2,
        "refused requests never went upstream"
    );
    mock.clear_fault().await;
    let after = gateway.chat(chat_body(LOGICAL, "room again")).await;
    assert_eq!(after.status(), 200);
    let metrics = gateway.metrics_text().await;
    assert!(
        metrics
            .lines()
            .any(|line| line.starts_with("apiproxy_shed_requests_total 2")),
        "both refusals are counted:\n{metrics}"
    );
}

#[tokio::test]
async fn a_running_stream_holds_its_place_and_is_never_cut_to_make_room() {
    let mock = Mock::start("oa", &["up-model"]);
    let gateway = Gateway::builder()
        .provider("oa", &mock.url)
        .logical(&[("oa", "up-model", 1.0)])
        .env("MAX_IN_FLIGHT", "1")
        .start()
        .await;
    mock.fault(json!({"event_delay_ms": 150})).await;
    let mut stream = gateway
        .post("/v1/chat/completions")
        .json_body(&streamed_chat_body(
            LOGICAL,
            "one two three four five six seven eight",
        ))
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.expect("read").expect("a first chunk");
    assert!(!first.is_empty());
    // The handler has returned, but the stream is still running: it keeps its place.
    overloaded(gateway.chat(chat_body(LOGICAL, "while streaming")).await).await;
    let mut text = String::from_utf8_lossy(&first).to_string();
    while let Some(chunk) = stream.chunk().await.expect("the stream is not cut") {
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        text.contains("data: [DONE]"),
        "the stream ran to its end: {text}"
    );
    assert!(!has_error_event(&sse_data(&text)));
    mock.clear_fault().await;
    let after = gateway.chat(chat_body(LOGICAL, "after the stream")).await;
    assert_eq!(after.status(), 200, "the ended stream gave its place back");
}
