//! Stream handling: any bytes, cut anywhere, through the SSE framer and every stream reader.
#![no_main]

use apiproxy::protocol::responses::ResponsesStreamWriter;
use apiproxy::protocol::sse::SseFramer;
use apiproxy::domain::exchange::Dialect;
use apiproxy::protocol::{anthropic, classify, gemini};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(1, |b| usize::from(*b).max(1));
    let mut framer = SseFramer::new();
    let mut claude = anthropic::StreamTranslator::new("m", 0, "chatcmpl-f".into());
    let mut google = gemini::StreamTranslator::new("m", 0, "chatcmpl-f".into());
    let mut writer = anthropic::MessagesStreamWriter::new("m", "msg_f".into());
    let mut responses =
        ResponsesStreamWriter::new(&serde_json::json!({"model": "m", "input": "x",
            "tools": [{"type": "custom", "name": "c"}, {"type": "namespace", "name": "n",
                "tools": [{"type": "function", "name": "f"}]}]}));
    let mut gemini_client = gemini::GeminiStreamWriter::new("m");
    for chunk in data.chunks(cut) {
        let Ok(events) = framer.push(chunk) else {
            return;
        };
        for event in events {
            let _ = classify(Dialect::Hub, &event);
            let _ = classify(Dialect::Anthropic, &event);
            let _ = classify(Dialect::Responses, &event);
            let _ = classify(Dialect::Gemini, &event);
            let _ = gemini::usage_of(&event);
            let _ = gemini_client.push(&event);
            let _ = claude.push(&event);
            let _ = google.push(&event);
            let _ = writer.push(&event);
            let _ = responses.push(&event);
        }
    }
    let _ = framer.finish();
    let _ = (
        claude.finish(),
        google.finish(),
        writer.finish(),
        responses.finish(),
        gemini_client.finish(),
    );
});
