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
        pricing: None,
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

fn tool_chat() -> serde_json::Value {
    serde_json::json!({
        "model": "m", "max_tokens": 256, "temperature": 0.3,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}, {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}]},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 degrees"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    })
}

#[divan::bench]
fn translate_a_tool_conversation_to_anthropic() {
    let chat = tool_chat();
    black_box(
        apiproxy::protocol::anthropic::request_from_chat(black_box(&chat), "claude", false).ok(),
    );
}

#[divan::bench]
fn translate_a_tool_conversation_to_gemini() {
    let chat = tool_chat();
    black_box(
        apiproxy::protocol::gemini::request_from_chat(black_box(&chat), "gemini", false).ok(),
    );
}

#[divan::bench]
fn translate_a_responses_request_to_chat() {
    let request = serde_json::json!({"model": "m", "instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]});
    black_box(
        apiproxy::protocol::responses::chat_request_from_responses(
            black_box(&request),
            &mut apiproxy::protocol::Dropped::new(),
        )
        .ok(),
    );
}

const ANTHROPIC_STREAM: [&str; 6] = [
    "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":[],\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
    "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
    "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n",
    "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
];

#[divan::bench]
fn translate_an_anthropic_stream_to_chunks() -> usize {
    let mut translator =
        apiproxy::protocol::anthropic::StreamTranslator::new("c", 0, "chatcmpl-1".into());
    ANTHROPIC_STREAM
        .iter()
        .map(|e| {
            translator
                .push(black_box(e.as_bytes()))
                .map_or(0, |out| out.len())
        })
        .sum()
}

#[divan::bench]
fn rewrite_a_chunk_stream_as_responses_events() -> usize {
    let mut writer = apiproxy::protocol::responses::ResponsesStreamWriter::new(
        &serde_json::json!({"model": "m", "input": "x"}),
    );
    let mut events = 0;
    for chunk in STREAM
        .split_inclusive(|b| *b == b'\n')
        .filter(|l| l.starts_with(b"data:"))
    {
        events += writer.push(black_box(chunk)).len();
    }
    events + writer.finish().len()
}
