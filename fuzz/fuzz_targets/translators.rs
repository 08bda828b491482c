//! Every request and answer translator (and the token-count helpers) on any JSON value.
#![no_main]

use apiproxy::protocol::{anthropic, gemini, responses};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let _ = anthropic::request_from_chat(&value, "m", true);
    let _ = anthropic::chat_from_response(&value, "m", 0);
    let _ = anthropic::chat_request_from_messages(&value, &mut apiproxy::protocol::Dropped::new());
    let _ = anthropic::messages_response_from_chat(&value, "m");
    let _ = anthropic::error_to_chat(500, data);
    let _ = anthropic::error_from_chat(500, data);
    let _ = gemini::request_from_chat(&value, "m", false);
    let _ = gemini::chat_from_response(&value, "m", 0);
    let _ = gemini::chat_request_from_gemini(&value, "m", &mut apiproxy::protocol::Dropped::new());
    let _ = gemini::error_to_chat(429, data);
    let _ = responses::chat_request_from_responses(&value, &mut apiproxy::protocol::Dropped::new());
    let _ = responses::response_from_chat(&value, &value);
    let _ = gemini::response_from_chat(&value, "m");
    let _ = gemini::error_from_chat(500, data);
    let _ = apiproxy::protocol::count_tokens_request(apiproxy::domain::provider::Vendor::Gemini, &value, "m");
    let _ = apiproxy::protocol::count_tokens_request(apiproxy::domain::provider::Vendor::Anthropic, &value, "m");
    let _ = apiproxy::protocol::estimate_tokens(&value);
    let _ = anthropic::strip_translated_thinking(data);
});
