//! Resident memory under sustained traffic: it must stay flat whether or not anyone reads
//! `/metrics` (histogram samples once piled up until a scrape, about 45 bytes per request).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Requests before the first reading: connection pools, buffers and metric series all exist.
const WARM_UP: u64 = 30_000;
/// Requests between the two readings. Before the recorder's upkeep ran on a timer, a debug build
/// kept about 35 bytes a request (10 MiB over 300,000): 6.7 MiB here, twice the bound below.
const LOAD: u64 = 200_000;
/// Growth allowed between the readings: allocator slack, not a per-request cost (with the fix the
/// two readings differ by less than 1 MiB either way).
const BOUND_MIB: f64 = 3.0;
/// Concurrent client connections.
const CONNECTIONS: u64 = 24;
/// One request in this many streams (the rest are plain completions).
const STREAM_EVERY: u64 = 3;

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc status");
    kib / 1024.0
}

/// Sends `total` chat requests over `CONNECTIONS` keep-alive connections, one in
/// `STREAM_EVERY` streaming, each read to its end; fails on any non-200 answer.
async fn load(gateway: &Gateway, total: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS as usize)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let next = Arc::new(AtomicU64::new(0));
    let url = format!("{}/v1/chat/completions", gateway.url);
    let mut workers = Vec::new();
    for _ in 0..CONNECTIONS {
        let (client, next, url) = (client.clone(), next.clone(), url.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return;
                }
                let stream = n % STREAM_EVERY == 0;
                let body = json!({
                    "model": LOGICAL,
                    "stream": stream,
                    "messages": [{"role": "user", "content": "hello"}],
                });
                let response = client
                    .post(&url)
                    .header("authorization", AUTH)
                    .json_body(&body)
                    .send()
                    .await
                    .unwrap_or_else(|e| panic!("request {n}: {e}"));
                assert_eq!(response.status(), 200, "request {n}");
                let text = response.bytes().await.expect("read the answer");
                if stream {
                    assert!(
                        text.ends_with(b"data: [DONE]\n\n"),
                        "stream {n} did not end with [DONE]"
                    );
                }
            }
        }));
    }
    for worker in workers {
        worker.await.expect("load worker");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_flat_over_200k_requests_with_nobody_reading_metrics() {
    let mock = Mock::start("fast", &["fast-model"]);
    let gateway = Gateway::builder()
        .provider("fast", &mock.url)
        .logical(&[("fast", "fast-model", 1.0)])
        .env("LOG_LEVEL", "WARNING")
        .start()
        .await;
    let started = Instant::now();
    load(&gateway, WARM_UP).await;
    // Past one metrics upkeep, so both readings are taken in the same state.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let before = rss_mib(gateway.pid());
    load(&gateway, LOAD).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = rss_mib(gateway.pid());
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "RSS {before:.1} MiB after {WARM_UP} requests, {after:.1} MiB after {LOAD} more ({seconds:.0} s)"
    );
    assert!(
        after <= before + BOUND_MIB,
        "resident memory grew by {:.1} MiB over {LOAD} requests (bound {BOUND_MIB} MiB): {before:.1} -> {after:.1} MiB",
        after - before
    );
    assert_eq!(
        mock.chat_requests().await,
        WARM_UP + LOAD,
        "every request reached the upstream"
    );
}
