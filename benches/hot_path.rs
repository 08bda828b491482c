//! Micro-benchmarks of the per-request hot path: body parse and model rewrite, stream framing and
//! classification, scoring and the failover order. `cargo bench --bench hot_path`.

use apiproxy::domain::health::{AttemptSample, MetricsWindow, ProviderStatus, RoutingMetrics};
use apiproxy::domain::model::PhysicalModel;
use apiproxy::domain::routing::{ScoreInputs, Scored, Strategy, failover_order, score};
use apiproxy::protocol::openai::{ChatBody, classify_event};
use apiproxy::protocol::sse::SseFramer;
use divan::black_box;

fn main() {
    divan::main();
}

fn chat_body(prompt_bytes: usize) -> Vec<u8> {
    format!(
        r#"{{"model":"gpt-4o","temperature":0.2,"messages":[{{"role":"system","content":"You are terse."}},{{"role":"user","content":"{}"}}],"tools":[{{"type":"function","function":{{"name":"get_weather","parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}}}}}}}}]}}"#,
        "x".repeat(prompt_bytes)
    )
    .into_bytes()
}

#[divan::bench(args = [100, 10_000, 100_000])]
fn parse_and_rewrite_model(bencher: divan::Bencher, prompt_bytes: usize) {
    let body = chat_body(prompt_bytes);
    bencher
        .counter(divan::counter::BytesCount::new(body.len()))
        .bench(|| {
            let parsed = ChatBody::parse(black_box(&body)).expect("valid body");
            parsed.to_upstream(black_box("gpt-4o-2024-08-06"))
        });
}

const STREAM: &[u8] = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" world\"},\"finish_reason\":null}]}\n\n\
data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n\
data: [DONE]\n\n";

#[divan::bench]
fn frame_a_stream_in_small_chunks() -> usize {
    let mut framer = SseFramer::new();
    let mut events = 0;
    for chunk in black_box(STREAM).chunks(37) {
        events += framer.push(chunk).expect("bounded").len();
    }
    events
}

#[divan::bench]
fn classify_a_content_chunk() {
    let event = b"data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"finish_reason\":null}]}\n\n";
    black_box(classify_event(black_box(event)));
}

fn upstream(provider: &str, weight: f64) -> PhysicalModel {
    PhysicalModel {
        provider_id: provider.into(),
        model_id: "m".into(),
        endpoint: String::new(),
        base_weight: weight,
        region: None,
        max_qps: None,
        meta_hash: None,
        updated_at: 0.0,
    }
}

#[divan::bench(args = [2, 8])]
fn score_and_order_candidates(bencher: divan::Bencher, candidates: usize) {
    let metrics = RoutingMetrics {
        logical_model: "l".into(),
        provider_id: "p".into(),
        latency_p95_ms: 800.0,
        latency_p99_ms: 1200.0,
        error_rate: 0.02,
        success_qps_1m: 10.0,
        total_requests_1m: 600,
        last_updated: 0.0,
        status: ProviderStatus::Healthy,
    };
    let upstreams: Vec<PhysicalModel> = (0..candidates)
        .map(|i| upstream(&format!("p{i}"), 1.0 + i as f64))
        .collect();
    bencher.bench(|| {
        let scored: Vec<Scored> = upstreams
            .iter()
            .map(|u| Scored {
                upstream: u.clone(),
                score: score(
                    u.base_weight,
                    ScoreInputs {
                        metrics: Some(&metrics),
                        relative_cost: Some(0.5),
                    },
                    Strategy::Balanced,
                ),
            })
            .collect();
        failover_order(scored, None, black_box(0.37))
    });
}

#[divan::bench]
fn aggregate_a_busy_metrics_window(bencher: divan::Bencher) {
    let mut window = MetricsWindow::default();
    for i in 0..60_000u32 {
        let at = 1000.0 + f64::from(i) / 1000.0;
        window.record(AttemptSample {
            at,
            latency_ms: f64::from(i % 900),
            ttfb_ms: 1.0,
            success: i % 50 != 0,
        });
    }
    bencher.bench(|| window.aggregate(black_box("l"), "p", 1059.5));
}
