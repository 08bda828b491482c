//! Graceful shutdown (SPEC 8): SIGTERM lets in-flight streams finish, then the process exits 0.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_and_exits_zero() {
    // Six events (role, three words, finish, [DONE]) 200 ms apart: about a second of streaming.
    let a = Mock::start_with("a", &["up-a"], &["--reply-words", "3"]);
    let mut gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .env("SHUTDOWN_GRACE_SECONDS", "4")
        .start()
        .await;
    a.fault(json!({"event_delay_ms": 200})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut text = String::new();
    let first = body
        .next()
        .await
        .expect("a first chunk")
        .expect("first chunk readable");
    text.push_str(&String::from_utf8_lossy(&first));

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &gateway.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let signalled = Instant::now();

    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("stream cut after SIGTERM: {e}; got {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert!(!has_error_event(&events), "{text}");
    assert!(
        streamed_text(&events).starts_with("Hello from a!"),
        "{text}"
    );

    let status = loop {
        if let Some(status) = gateway.child().try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(5),
            "apiproxy still running {:?} after SIGTERM (grace 4 s)",
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
}

#[tokio::test]
async fn sigterm_stops_accepting_new_connections_while_a_stream_is_still_running() {
    // A stream of 12 events 300 ms apart keeps the gateway in its grace period for seconds.
    let a = Mock::start_with("a", &["up-a"], &["--reply-words", "10"]);
    let mut gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .env("SHUTDOWN_GRACE_SECONDS", "20")
        .start()
        .await;
    a.fault(json!({"event_delay_ms": 300})).await;
    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("readable");
    let mut text = String::from_utf8_lossy(&first).to_string();

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &gateway.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());

    // The event measured is the refusal itself, not a clock: poll until a new connection is
    // refused, and require that it happens while the stream is still open.
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let signalled = Instant::now();
    loop {
        let attempt = fresh.get(format!("{}/health", gateway.url)).send().await;
        if attempt.is_err() {
            break;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(3),
            "new connections still answered {:?} after SIGTERM",
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gateway.child().try_wait().expect("try_wait").is_none(),
        "the refusal came during the grace period, not after the exit"
    );

    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("stream cut after SIGTERM: {e}; got {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    let status = loop {
        if let Some(status) = gateway.child().try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "apiproxy still running {:?} after SIGTERM",
            signalled.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let refused = fresh.get(format!("{}/health", gateway.url)).send().await;
    assert!(refused.is_err(), "nothing answers after shutdown");
}
