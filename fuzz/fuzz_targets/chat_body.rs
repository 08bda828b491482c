//! Request parsing: any bytes as a chat body; a body that parses must rewrite to valid JSON.
#![no_main]

use apiproxy::protocol::openai::ChatBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = ChatBody::parse(data) {
        let rewritten = body.to_upstream("fuzz-model");
        assert!(serde_json::from_slice::<serde_json::Value>(&rewritten).is_ok());
        let _ = body.looks_like_anthropic();
    }
});
