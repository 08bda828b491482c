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
async fn sigterm_stops_accepting_new_connections() {
    let a = Mock::start("a", &["up-a"]);
    let mut gateway = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)])
        .start()
        .await;

    let kill = std::process::Command::new("kill")
        .args(["-TERM", &gateway.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());

    let started = Instant::now();
    let status = loop {
        if let Some(status) = gateway.child().try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "an idle gateway exits promptly on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    let refused = reqwest::Client::new()
        .get(format!("{}/health", gateway.url))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "nothing answers after shutdown");
}
