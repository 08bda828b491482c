//! Load tool for streams, used by bench/run.sh: time to first byte and stream throughput, or holding
//! many slow streams open at once. oha measures whole responses; streams need their first byte.
//!
//!   stream_probe ttfb <url> <token> <model> <requests> <concurrency>
//!   stream_probe hold <url> <token> <model> <streams> <seconds>
//!   stream_probe churn <url> <token> <model> <streams> <seconds>
//!
//! Prints one JSON object on stdout.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn request(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    model: &str,
) -> reqwest::RequestBuilder {
    let body = format!(
        r#"{{"model":"{model}","stream":true,"messages":[{{"role":"user","content":"benchmark"}}]}}"#
    );
    client
        .post(url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body)
}

/// Sequentially per worker: send, time the first body chunk, read to the end.
async fn ttfb(url: String, token: String, model: String, requests: usize, concurrency: usize) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (client, url, token, model, next) = (
            client.clone(),
            url.clone(),
            token.clone(),
            model.clone(),
            next.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut firsts = Vec::new();
            let mut errors = 0usize;
            while next.fetch_add(1, Ordering::Relaxed) < requests {
                let sent = Instant::now();
                let Ok(response) = request(&client, &url, &token, &model).send().await else {
                    errors += 1;
                    continue;
                };
                if !response.status().is_success() {
                    errors += 1;
                    continue;
                }
                let mut body = response.bytes_stream();
                let mut first = None;
                let mut complete = false;
                while let Some(chunk) = body.next().await {
                    let Ok(chunk) = chunk else { break };
                    if first.is_none() && !chunk.is_empty() {
                        first = Some(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    if chunk.windows(6).any(|w| w == b"[DONE]") {
                        complete = true;
                    }
                }
                match (first, complete) {
                    (Some(ms), true) => firsts.push(ms),
                    _ => errors += 1,
                }
            }
            (firsts, errors)
        }));
    }
    let mut firsts = Vec::new();
    let mut errors = 0;
    for worker in workers {
        let (f, e) = worker.await.expect("worker");
        firsts.extend(f);
        errors += e;
    }
    let elapsed = started.elapsed().as_secs_f64();
    firsts.sort_by(f64::total_cmp);
    println!(
        "{{\"streams\":{},\"errors\":{},\"streams_per_sec\":{:.1},\"ttfb_p50_ms\":{:.3},\"ttfb_p90_ms\":{:.3},\"ttfb_p99_ms\":{:.3}}}",
        firsts.len(),
        errors,
        firsts.len() as f64 / elapsed,
        percentile(&firsts, 0.5),
        percentile(&firsts, 0.9),
        percentile(&firsts, 0.99)
    );
}

/// Opens `streams` streams, reads each slowly (one chunk a second), holds them for `seconds`.
async fn hold(url: String, token: String, model: String, streams: usize, seconds: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let open = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..streams {
        let (client, url, token, model, open, failed) = (
            client.clone(),
            url.clone(),
            token.clone(),
            model.clone(),
            open.clone(),
            failed.clone(),
        );
        tasks.push(tokio::spawn(async move {
            match request(&client, &url, &token, &model).send().await {
                Ok(response) if response.status().is_success() => {
                    open.fetch_add(1, Ordering::Relaxed);
                    let mut body = response.bytes_stream();
                    while Instant::now() < deadline {
                        match tokio::time::timeout(Duration::from_secs(1), body.next()).await {
                            Ok(Some(Ok(_))) | Err(_) => {
                                tokio::time::sleep(Duration::from_secs(1)).await
                            }
                            _ => break,
                        }
                    }
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
        // Ramp up rather than stampede the listen backlog.
        if tasks.len() % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Report once everything is open, then keep holding until the deadline.
    let ramp_deadline = Instant::now() + Duration::from_secs(seconds);
    while open.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed) < streams
        && Instant::now() < ramp_deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "open={} failed={}",
        open.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    println!(
        "{{\"open\":{},\"failed\":{}}}",
        open.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    for task in tasks {
        let _ = task.await;
    }
}

/// Keeps `streams` streams open for `seconds`: each worker reads its stream to the end and opens
/// the next at once, so streams are set up and torn down all the time (the soak's load).
async fn churn(url: String, token: String, model: String, streams: usize, seconds: u64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(streams)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for worker in 0..streams {
        let (client, url, token, model) =
            (client.clone(), url.clone(), token.clone(), model.clone());
        workers.push(tokio::spawn(async move {
            // Staggered starts (10 ms apart): streams of equal length started together would stay
            // in step, and every sample would catch all of them at the same phase.
            tokio::time::sleep(Duration::from_millis(10 * worker as u64)).await;
            let (mut completed, mut failed) = (0usize, 0usize);
            while Instant::now() < deadline {
                let outcome = async {
                    let response = request(&client, &url, &token, &model).send().await.ok()?;
                    if !response.status().is_success() {
                        return None;
                    }
                    let mut body = response.bytes_stream();
                    let mut done = false;
                    while let Some(chunk) = body.next().await {
                        done |= chunk.ok()?.windows(6).any(|w| w == b"[DONE]");
                    }
                    done.then_some(())
                };
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, outcome).await {
                    Ok(Some(())) => completed += 1,
                    Ok(None) => {
                        failed += 1;
                        // Not a busy loop when the gateway refuses.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    // Cut off by the deadline: neither.
                    Err(_) => {}
                }
            }
            (completed, failed)
        }));
    }
    let (mut completed, mut failed) = (0, 0);
    for worker in workers {
        let (c, f) = worker.await.expect("worker");
        completed += c;
        failed += f;
    }
    println!("{{\"completed\":{completed},\"failed\":{failed}}}");
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let number = |i: usize| arg(i).parse::<usize>().unwrap_or(1);
    match arg(1).as_str() {
        "ttfb" => ttfb(arg(2), arg(3), arg(4), number(5), number(6)).await,
        "hold" => hold(arg(2), arg(3), arg(4), number(5), number(6) as u64).await,
        "churn" => churn(arg(2), arg(3), arg(4), number(5), number(6) as u64).await,
        _ => {
            eprintln!(
                "usage: stream_probe ttfb|hold|churn <url> <token> <model> <n> <concurrency|seconds>"
            );
            std::process::exit(2);
        }
    }
}
