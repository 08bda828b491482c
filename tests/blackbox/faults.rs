//! Fault injection (SPEC 2.1 timeouts, 5 routing and failover): every retryable status with and
//! without Retry-After, connections reset before any header, SSE garbage, huge answers, clients
//! that go away, many streams at once and slow upstreams. Upstream `a` is weighted so that it is
//! always tried first, `b` second.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

/// A gateway over the one mock `a` (started with `mock_args`).
async fn single(mock_args: &[&str], env: &[(&str, &str)]) -> (Mock, Gateway) {
    let a = Mock::start_with("a", &["up-a"], mock_args);
    let mut builder = Gateway::builder()
        .provider("a", &a.url)
        .logical(&[("a", "up-a", 1.0)]);
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let gateway = builder.start().await;
    (a, gateway)
}

fn chat_of(stream: bool, prompt: &str) -> Value {
    if stream {
        streamed_chat_body(LOGICAL, prompt)
    } else {
        chat_body(LOGICAL, prompt)
    }
}

/// A status fault, with a Retry-After header when `retry_after` is set.
fn status_fault(status: u16, retry_after: Option<u64>) -> Value {
    let mut fault = json!({"status": status});
    if let Some(seconds) = retry_after {
        fault["retry_after"] = json!(seconds);
    }
    fault
}

async fn stat(mock: &Mock, key: &str) -> u64 {
    mock.stats().await[key]
        .as_u64()
        .unwrap_or_else(|| panic!("mock {}: stats.{key} is a number", mock.name))
}

/// Asserts a 200 answered by `b` after `a` failed (whole or streamed) and returns its text.
async fn assert_answered_by_b(response: reqwest::Response, stream: bool, case: &str) -> String {
    assert_eq!(response.status(), 200, "{case}");
    assert_eq!(served_by(&response), "b", "{case}");
    assert_eq!(
        header(&response, "x-apiproxy-model"),
        Some("up-b"),
        "{case}"
    );
    assert_eq!(
        header(&response, "x-apiproxy-attempts"),
        Some("2"),
        "{case}"
    );
    let content = if stream {
        let text = response.text().await.expect("stream body");
        let events = sse_data(&text);
        assert!(!has_error_event(&events), "{case}: {text}");
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{case}: {text}"
        );
        streamed_text(&events)
    } else {
        let body = json_of(response).await;
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_else(|| panic!("{case}: no content in {body}"))
            .to_string()
    };
    assert!(content.starts_with("Hello from b!"), "{case}: {content}");
    content
}

/// `a` answers `status`, with and without Retry-After, whole and streamed: each time `b` answers
/// at once (a Retry-After is a hint for the client, not a reason to wait), each mock called once.
async fn assert_the_first_upstreams_status_fails_over(status: u16) {
    for retry_after in [None, Some(30)] {
        for stream in [false, true] {
            let case = format!("a answers {status}, Retry-After {retry_after:?}, stream {stream}");
            let Pair { a, b, gateway } = pair(&[]).await;
            a.fault(status_fault(status, retry_after)).await;
            let started = Instant::now();

            let response = gateway.chat(chat_of(stream, "Hi")).await;

            assert_answered_by_b(response, stream, &case).await;
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{case}: the failover waited {:?}",
                started.elapsed()
            );
            assert_eq!(a.chat_requests().await, 1, "{case}");
            assert_eq!(b.chat_requests().await, 1, "{case}");
        }
    }
}

#[tokio::test]
async fn a_429_from_the_first_upstream_fails_over_with_or_without_retry_after_streamed_or_not() {
    assert_the_first_upstreams_status_fails_over(429).await;
}

#[tokio::test]
async fn a_500_from_the_first_upstream_fails_over_with_or_without_retry_after_streamed_or_not() {
    assert_the_first_upstreams_status_fails_over(500).await;
}

#[tokio::test]
async fn a_502_from_the_first_upstream_fails_over_with_or_without_retry_after_streamed_or_not() {
    assert_the_first_upstreams_status_fails_over(502).await;
}

#[tokio::test]
async fn a_503_from_the_first_upstream_fails_over_with_or_without_retry_after_streamed_or_not() {
    assert_the_first_upstreams_status_fails_over(503).await;
}

#[tokio::test]
async fn a_504_from_the_first_upstream_fails_over_with_or_without_retry_after_streamed_or_not() {
    assert_the_first_upstreams_status_fails_over(504).await;
}

#[tokio::test]
async fn when_both_upstreams_answer_429_the_client_gets_429_with_the_soonest_retry_after() {
    // (a's Retry-After, b's, what the client must be told).
    let cases: [(Option<u64>, Option<u64>, Option<&str>); 4] = [
        (Some(7), Some(3), Some("3")),
        (Some(3), Some(7), Some("3")),
        (None, Some(5), Some("5")),
        // No hint from anyone: any whole number of seconds will do.
        (None, None, None),
    ];
    for (retry_a, retry_b, expected) in cases {
        for stream in [false, true] {
            let case = format!("Retry-After a {retry_a:?}, b {retry_b:?}, stream {stream}");
            let Pair { a, b, gateway } = pair(&[]).await;
            a.fault(status_fault(429, retry_a)).await;
            b.fault(status_fault(429, retry_b)).await;

            let response = gateway.chat(chat_of(stream, "Hi")).await;

            assert_eq!(response.status(), 429, "{case}");
            let retry_after = header(&response, "retry-after")
                .unwrap_or_else(|| panic!("{case}: no Retry-After header"))
                .to_string();
            match expected {
                Some(expected) => assert_eq!(retry_after, expected, "{case}"),
                None => assert!(
                    retry_after.parse::<u64>().is_ok_and(|s| s >= 1),
                    "{case}: Retry-After {retry_after:?}"
                ),
            }
            let body = json_of(response).await;
            assert_error_shape(&body);
            assert_eq!(a.chat_requests().await, 1, "{case}");
            assert_eq!(b.chat_requests().await, 1, "{case}");
        }
    }
}

/// Both upstreams answer `status` (with and without Retry-After), whole and streamed: 502
/// `all_upstreams_failed` naming the logical model and the last status; each mock called once.
async fn assert_both_failing_with_status_is_502(status: u16) {
    for retry_after in [None, Some(30)] {
        for stream in [false, true] {
            let case =
                format!("both answer {status}, Retry-After {retry_after:?}, stream {stream}");
            let Pair { a, b, gateway } = pair(&[]).await;
            a.fault(status_fault(status, retry_after)).await;
            b.fault(status_fault(status, retry_after)).await;

            let response = gateway.chat(chat_of(stream, "Hi")).await;

            assert_eq!(response.status(), 502, "{case}");
            assert_eq!(
                header(&response, "x-apiproxy-attempts"),
                Some("2"),
                "{case}"
            );
            let body = json_of(response).await;
            let error = assert_error_shape(&body);
            assert_eq!(error["code"], "all_upstreams_failed", "{case}: {body}");
            let message = error["message"].as_str().unwrap_or_default();
            assert!(message.contains(LOGICAL), "{case}: {message}");
            assert!(message.contains(&status.to_string()), "{case}: {message}");
            assert_eq!(a.chat_requests().await, 1, "{case}");
            assert_eq!(b.chat_requests().await, 1, "{case}");
        }
    }
}

#[tokio::test]
async fn when_both_upstreams_answer_500_the_client_gets_502_all_upstreams_failed() {
    assert_both_failing_with_status_is_502(500).await;
}

#[tokio::test]
async fn when_both_upstreams_answer_502_the_client_gets_502_all_upstreams_failed() {
    assert_both_failing_with_status_is_502(502).await;
}

#[tokio::test]
async fn when_both_upstreams_answer_503_the_client_gets_502_all_upstreams_failed() {
    assert_both_failing_with_status_is_502(503).await;
}

#[tokio::test]
async fn when_both_upstreams_answer_504_the_client_gets_502_all_upstreams_failed() {
    assert_both_failing_with_status_is_502(504).await;
}

#[tokio::test]
async fn a_429_mixed_with_a_5xx_gives_502_rather_than_429() {
    // 429 only when *every* failure was a 429 (SPEC 4.6), whichever came first.
    for (status_a, status_b) in [(429, 503), (503, 429)] {
        let case = format!("a {status_a}, b {status_b}");
        let Pair { a, b, gateway } = pair(&[]).await;
        a.fault(status_fault(status_a, Some(3))).await;
        b.fault(status_fault(status_b, Some(3))).await;

        let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;

        assert_eq!(response.status(), 502, "{case}");
        let body = json_of(response).await;
        assert_eq!(
            assert_error_shape(&body)["code"],
            "all_upstreams_failed",
            "{case}"
        );
        assert_eq!(a.chat_requests().await, 1, "{case}");
        assert_eq!(b.chat_requests().await, 1, "{case}");
    }
}

// ---------------------------------------------------------------------------------------------
// Connections reset before any header

/// Sends `request` over a fresh connection and reads until the peer closes: what came back.
async fn raw_exchange(url: &str, request: String) -> Result<Vec<u8>, std::io::Error> {
    let addr = url.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await?;
    socket.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await?;
    Ok(answer)
}

fn raw_chat_request(url: &str, body: &Value, auth: bool) -> String {
    let host = url.trim_start_matches("http://");
    let body = body.to_string();
    let auth = if auth {
        format!("Authorization: {AUTH}\r\n")
    } else {
        String::new()
    };
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn the_mock_resets_the_connection_before_sending_any_byte_of_its_answer() {
    let a = Mock::start("a", &["up-a"]);
    a.fault(json!({"reset_before_headers": true})).await;

    for stream in [false, true] {
        let body = if stream {
            streamed_chat_body("up-a", "Hi")
        } else {
            chat_body("up-a", "Hi")
        };
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            raw_exchange(&a.url, raw_chat_request(&a.url, &body, false)),
        )
        .await
        .expect("the mock closes the connection at once");
        // An empty reply (EOF) or a reset, never a status line.
        match answer {
            Ok(bytes) => assert!(
                bytes.is_empty(),
                "stream {stream}: {:?}",
                String::from_utf8_lossy(&bytes)
            ),
            Err(e) => assert_eq!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset,
                "stream {stream}: {e}"
            ),
        }
    }
    assert_eq!(a.chat_requests().await, 2, "the request was read first");
}

#[tokio::test]
async fn a_connection_reset_before_the_headers_fails_over_streamed_or_not() {
    for stream in [false, true] {
        let case = format!("stream {stream}");
        let Pair { a, b, gateway } = pair(&[]).await;
        a.fault(json!({"reset_before_headers": true})).await;

        let response = gateway.chat(chat_of(stream, "Hi")).await;

        assert_answered_by_b(response, stream, &case).await;
        assert_eq!(a.chat_requests().await, 1, "{case}: not retried on a");
        assert_eq!(b.chat_requests().await, 1, "{case}");
    }
}

#[tokio::test]
async fn when_every_upstream_resets_before_its_headers_the_client_gets_502_all_upstreams_failed() {
    for stream in [false, true] {
        let case = format!("stream {stream}");
        let Pair { a, b, gateway } = pair(&[]).await;
        a.fault(json!({"reset_before_headers": true})).await;
        b.fault(json!({"reset_before_headers": true})).await;

        let response = gateway.chat(chat_of(stream, "Hi")).await;

        assert_eq!(response.status(), 502, "{case}");
        let body = json_of(response).await;
        assert_eq!(
            assert_error_shape(&body)["code"],
            "all_upstreams_failed",
            "{case}"
        );
        assert_eq!(a.chat_requests().await, 1, "{case}");
        assert_eq!(b.chat_requests().await, 1, "{case}");
    }
}

// ---------------------------------------------------------------------------------------------
// SSE garbage

/// What the mock's `garbage_lines` puts before its events, in turn.
const GARBAGE: [&str; 3] = ["this is not sse", ": comment", "data: {not json"];

#[tokio::test]
async fn garbage_lines_in_an_upstream_stream_are_tolerated_and_the_client_gets_the_real_content_and_done()
 {
    let (a, gateway) = single(&[], &[]).await;
    a.fault(json!({"garbage_lines": true})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "a");
    let text = response.text().await.expect("stream body");
    let events = sse_data(&text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert!(!has_error_event(&events), "{text}");
    assert_eq!(
        streamed_text(&events),
        "Hello from a! You said: \"Hi\". word1 word2 word3 word4 word5",
        "{text}"
    );
    // The gateway frames events whole and drops `data:` lines that are neither JSON nor [DONE]
    // (protocol::read_event, applied where the upstream adapter frames the stream); comments pass. So the client sees well-formed SSE whose events
    // are each the upstream's own, never a mangled or merged event.
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let well_formed = event
            .strip_prefix("data: ")
            .is_some_and(|data| data == "[DONE]" || serde_json::from_str::<Value>(data).is_ok());
        // A `data:` line that is not JSON is dropped (SPEC 5.5's garbage filter); the other
        // garbage (a line that is no SSE field, a comment) is harmless to SSE parsers and passes.
        assert!(
            well_formed || GARBAGE[..2].contains(&event),
            "an event that is neither JSON, [DONE] nor the upstream's harmless line: {event:?}\n{text}"
        );
    }
    assert!(
        !text.contains(GARBAGE[2]),
        "a data line that is not JSON reached the client:\n{text}"
    );
    assert_eq!(stat(&a, "streams_completed").await, 1);
}

#[tokio::test]
async fn garbage_lines_before_the_first_content_do_not_commit_the_stream() {
    let Pair { a, b, gateway } = pair(&[]).await;
    // Garbage and the role-only chunk, then the connection is cut: nothing a client needs was
    // sent, so the gateway must still fail over.
    a.fault(json!({"garbage_lines": true, "drop_after_events": 1}))
        .await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "b");
    assert_eq!(header(&response, "x-apiproxy-attempts"), Some("2"));
    let text = response.text().await.expect("stream body");
    assert!(
        !GARBAGE.iter().any(|g| text.contains(g)),
        "a's held-back garbage leaked into b's stream: {text}"
    );
    let events = sse_data(&text);
    assert!(
        streamed_text(&events).starts_with("Hello from b!"),
        "{text}"
    );
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
}

// ---------------------------------------------------------------------------------------------
// Huge answers

/// A field of `/proc/<pid>/status` in KiB (VmRSS, VmHWM).
fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/status: {e}"));
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

const MIB: usize = 1024 * 1024;

#[tokio::test]
async fn a_50_mib_answer_is_relayed_whole_and_an_80_mib_one_over_the_cap_fails_over_with_the_gateway_staying_small()
 {
    let Pair { a, b, gateway } = pair(&[]).await;

    // 50 MiB of text: under the 64 MiB cap on a held answer, relayed as it is.
    a.fault(json!({"huge_body_mib": 50, "times": 1})).await;
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(served_by(&response), "a");
    let body = response.bytes().await.expect("the 50 MiB body");
    let text_start = body
        .windows(12)
        .position(|w| w == b"\"content\":\"x")
        .expect("a content field")
        + 11;
    let text_len = body[text_start..]
        .iter()
        .position(|c| *c != b'x')
        .expect("the text ends");
    assert_eq!(text_len, 50 * MIB, "every byte of the text arrived");
    assert!(body.starts_with(b"{\"id\":\"chatcmpl-mock\""));
    assert!(body.ends_with(b"}}"), "the JSON is whole");

    // 80 MiB: over the cap, so a's attempt fails and b answers.
    a.fault(json!({"huge_body_mib": 80, "times": 1})).await;
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_answered_by_b(response, false, "a sends 80 MiB").await;
    assert_eq!(a.chat_requests().await, 2);
    assert_eq!(b.chat_requests().await, 1);

    // Both over the cap: 502 naming the reason.
    a.fault(json!({"huge_body_mib": 80, "times": 1})).await;
    b.fault(json!({"huge_body_mib": 80, "times": 1})).await;
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 502);
    let body = json_of(response).await;
    let error = assert_error_shape(&body);
    assert_eq!(error["code"], "all_upstreams_failed", "{body}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("larger than")),
        "{body}"
    );
    assert_eq!(a.chat_requests().await, 3);
    assert_eq!(b.chat_requests().await, 2);

    // Still healthy, still answering, and memory stayed bounded.
    let (status, _) = gateway.get_json("/health").await;
    assert_eq!(status, 200);
    let response = gateway.chat(chat_body(LOGICAL, "Hi")).await;
    assert_eq!(response.status(), 200);
    let peak = proc_status_kib(gateway.pid(), "VmHWM") / 1024;
    let now = proc_status_kib(gateway.pid(), "VmRSS") / 1024;
    eprintln!("gateway memory after 50 + 3 x 80 MiB answers: peak {peak} MiB, now {now} MiB");
    assert!(peak < 400, "peak RSS {peak} MiB");
    assert!(now < 400, "RSS {now} MiB");
}

#[tokio::test]
async fn a_streamed_event_larger_than_the_framer_bound_before_any_content_fails_over() {
    let Pair { a, b, gateway } = pair(&[]).await;
    // One 20 MiB content event: over the 16 MiB an event may take (protocol/sse.rs), so the
    // attempt fails before anything was sent to the client.
    a.fault(json!({"huge_body_mib": 20})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_answered_by_b(response, true, "a streams a 20 MiB event").await;
    assert_eq!(a.chat_requests().await, 1);
    assert_eq!(b.chat_requests().await, 1);
    let (status, _) = gateway.get_json("/health").await;
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------
// Clients that go away

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_gets_the_upstream_request_cancelled_long_before_its_end()
 {
    let (a, gateway) = single(&["--reply-words", "50"], &[]).await;
    // 52 events 200 ms apart: more than 10 s if nobody stops it.
    a.fault(json!({"event_delay_ms": 200})).await;

    // A raw connection, so that dropping it closes the socket at once.
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = raw_chat_request(&gateway.url, &streamed_chat_body(LOGICAL, "Hi"), true);
    socket.write_all(request.as_bytes()).await.expect("send");
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    // Read until two content chunks arrived: the stream is committed and flowing.
    while !String::from_utf8_lossy(&received).contains("word1") {
        let n = tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buffer))
            .await
            .expect("stream chunks within 5 s")
            .expect("read");
        assert!(
            n > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
    }
    let head = String::from_utf8_lossy(&received).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("Hello from a!"), "{head}");
    assert_eq!(stat(&a, "streams_cancelled").await, 0);

    drop(socket);
    let dropped = Instant::now();

    // Cancellation is immediate (the elapsed time is printed); 3 s is margin for a loaded
    // machine, still well before the stream would have ended on its own.
    eventually(
        Duration::from_secs(3),
        "the mock to see its stream cancelled",
        || async { (stat(&a, "streams_cancelled").await == 1).then_some(()) },
    )
    .await;
    eprintln!(
        "upstream cancelled {:?} after the client left",
        dropped.elapsed()
    );
    assert_eq!(stat(&a, "streams_completed").await, 0);
    assert_eq!(a.chat_requests().await, 1);
    // And the gateway is none the worse.
    a.clear_fault().await;
    let response = gateway.chat(streamed_chat_body(LOGICAL, "Again")).await;
    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.expect("body"));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
}

// ---------------------------------------------------------------------------------------------
// Many streams at once

/// The soft and hard limits on open files of this process.
fn open_files_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap_or_default();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    match numbers.as_slice() {
        [soft, hard, ..] => (*soft, *hard),
        _ => (1024, 1024),
    }
}

/// How many concurrent streams this machine's open-file limit allows, wanting `wanted`.
///
/// Each stream costs one socket in this test process, two in the gateway (client side and
/// upstream) and one in the mock. 500 streams need about 1,000 descriptors in the gateway, too
/// close to the common default soft limit of 1,024. Processes inherit the limit of their parent,
/// so before starting the gateway the test raises its own soft limit towards the hard limit with
/// `prlimit(1)` (util-linux; raising the soft limit needs no privilege). Where it cannot, the
/// caller fails rather than test less than its name says.
fn streams_the_fd_limit_allows(wanted: u64) -> u64 {
    let needed = 2 * wanted + 256;
    let (soft, hard) = open_files_limits();
    if soft < needed && hard > soft {
        let target = needed.max(4096).min(hard);
        let _ = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={target}:{hard}"))
            .status();
    }
    let (soft, _) = open_files_limits();
    let allowed = wanted.min(soft.saturating_sub(256) / 2);
    if allowed < wanted {
        eprintln!("open-file limit {soft}: running {allowed} concurrent streams, not {wanted}");
    }
    allowed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_streams_through_one_gateway_all_arrive_byte_for_byte() {
    let streams = streams_the_fd_limit_allows(500) as usize;
    // Never quietly fewer: the name promises 500 (.ci/run raises the limit).
    assert_eq!(
        streams, 500,
        "the open-file limit allows only {streams} streams: raise it (ulimit -n 4096)"
    );
    let (a, gateway) = single(&[], &[]).await;
    // 11 events 100 ms apart: each stream lasts about a second, so they all overlap.
    a.fault(json!({"event_delay_ms": 100})).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most_open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));

    let tasks: Vec<_> = (0..streams)
        .map(|i| {
            let (client, url) = (client.clone(), gateway.url.clone());
            let (open, most_open) = (open.clone(), most_open.clone());
            tokio::spawn(async move {
                let prompt = format!("stream number {i:03}");
                let response = client
                    .post(format!("{url}/v1/chat/completions"))
                    .header("authorization", AUTH)
                    .json_body(&streamed_chat_body(LOGICAL, &prompt))
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("stream {i}: {e}"));
                let now_open = open.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                most_open.fetch_max(now_open, std::sync::atomic::Ordering::SeqCst);
                let status = response.status();
                let text = response
                    .text()
                    .await
                    .unwrap_or_else(|e| panic!("stream {i}: {e}"));
                open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                (prompt, status, text)
            })
        })
        .collect();
    let mut received = Vec::new();
    for task in tasks {
        received.push(task.await.expect("stream task"));
    }

    let most_open = most_open.load(std::sync::atomic::Ordering::SeqCst);
    eprintln!("{streams} streams, at most {most_open} open at once");
    assert!(
        most_open >= streams / 2,
        "the streams did not overlap: at most {most_open} of {streams} open at once"
    );
    // What the mock sends for each prompt, asked directly (without the delay): the gateway must
    // have passed every byte on unchanged.
    a.clear_fault().await;
    let direct = reqwest::Client::new();
    let expected: Vec<String> = futures_util::stream::iter(received.iter())
        .map(|(prompt, _, _)| {
            let direct = direct.clone();
            let url = format!("{}/v1/chat/completions", a.url);
            let body = streamed_chat_body("up-a", prompt);
            async move {
                direct
                    .post(url)
                    .json_body(&body)
                    .send()
                    .await
                    .expect("direct to the mock")
                    .text()
                    .await
                    .expect("direct body")
            }
        })
        .buffered(32)
        .collect()
        .await;
    for ((prompt, status, text), expected) in received.iter().zip(&expected) {
        assert_eq!(*status, 200, "{prompt}: {text}");
        let events = sse_data(text);
        assert_eq!(
            events.last().map(String::as_str),
            Some("[DONE]"),
            "{prompt}: {text}"
        );
        assert!(
            streamed_text(&events).contains(&format!("You said: \"{prompt}\".")),
            "{prompt}: {text}"
        );
        assert_eq!(text, expected, "{prompt}: not what the mock sent");
    }
    let stats = a.stats().await;
    assert_eq!(stats["chat_requests"], 2 * streams as u64);
    assert_eq!(stats["streams_completed"], 2 * streams as u64);
    assert_eq!(stats["streams_cancelled"], 0);
}

// ---------------------------------------------------------------------------------------------
// Slow upstreams (SPEC 2.1 UPSTREAM_IDLE_TIMEOUT)

#[tokio::test]
async fn a_stream_dripping_an_event_every_300_ms_completes_under_a_one_second_idle_timeout() {
    let (a, gateway) = single(&[], &[("UPSTREAM_IDLE_TIMEOUT", "1")]).await;
    a.fault(json!({"event_delay_ms": 300})).await;

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream body");
    let events = sse_data(&text);
    assert!(!has_error_event(&events), "{text}");
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    assert_eq!(
        streamed_text(&events),
        "Hello from a! You said: \"Hi\". word1 word2 word3 word4 word5"
    );
    assert_eq!(stat(&a, "streams_completed").await, 1);
    assert_eq!(stat(&a, "streams_cancelled").await, 0);
}

#[tokio::test]
async fn a_stream_dripping_an_event_every_1500_ms_ends_with_an_error_event_after_its_first_content_under_a_one_second_idle_timeout()
 {
    let (a, gateway) = single(&[], &[("UPSTREAM_IDLE_TIMEOUT", "1")]).await;
    // The first content comes 1.5 s in (within the 60 s first-byte bound); the next 1.5 s later,
    // past the 1 s idle bound.
    a.fault(json!({"event_delay_ms": 1500})).await;
    let started = Instant::now();

    let response = gateway.chat(streamed_chat_body(LOGICAL, "Hi")).await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("stream body");
    let elapsed = started.elapsed();
    let events = sse_data(&text);
    assert_eq!(streamed_text(&events), "Hello from a!", "{text}");
    let last: Value = serde_json::from_str(events.last().expect("some events"))
        .unwrap_or_else(|e| panic!("the last event is not JSON ({e}): {text}"));
    assert_eq!(last["error"]["type"], "upstream_error", "{text}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "{text}");
    assert!(
        elapsed < Duration::from_secs(4),
        "cut at the idle timeout, took {elapsed:?}"
    );
    // Having given up on it, the gateway lets go of the upstream request.
    eventually(
        Duration::from_secs(2),
        "the mock to see its stream cancelled",
        || async { (stat(&a, "streams_cancelled").await == 1).then_some(()) },
    )
    .await;
    assert_eq!(a.chat_requests().await, 1);
}
