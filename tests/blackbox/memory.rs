//! Resident memory under sustained traffic: it must stay flat whether or not anyone reads
//! `/metrics` (histogram samples once piled up until a scrape, about 45 bytes per request).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

/// Requests before the first reading: connection pools, buffers and metric series all exist.
const WARM_UP: u64 = 30_000;
/// Requests in each of the two measured rounds. Before the recorder's upkeep ran on a timer, a debug build
/// kept about 35 bytes a request (10 MiB over 300,000): 6.7 MiB here, twice the bound below.
const LOAD: u64 = 200_000;
/// Growth allowed in a round: allocator slack, not a per-request cost (with the fix a round usually
/// ends within 1 MiB of where it started).
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
    let middle = rss_mib(gateway.pid());
    load(&gateway, LOAD).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after = rss_mib(gateway.pid());
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "RSS {before:.1} MiB after {WARM_UP} requests, {middle:.1} MiB after {LOAD} more, {after:.1} MiB after {LOAD} more again ({seconds:.0} s)"
    );
    // A per-request cost grows the resident size in both rounds (the bug this test was written
    // for: 6.7 MiB a round). The allocator's slack does not: on a 2-core machine one round now and
    // then ends 3-6 MiB up (measured at 1f1afbb too: 0.6, 2.0 and 5.5 MiB in three runs), and the
    // next round stays there. So the smaller of the two growths is held to the bound.
    let growth = (middle - before).min(after - middle);
    assert!(
        growth <= BOUND_MIB,
        "resident memory grew by at least {growth:.1} MiB in each of two rounds of {LOAD} requests (bound {BOUND_MIB} MiB): {before:.1} -> {middle:.1} -> {after:.1} MiB"
    );
    assert_eq!(
        mock.chat_requests().await,
        WARM_UP + 2 * LOAD,
        "every request reached the upstream"
    );
}
