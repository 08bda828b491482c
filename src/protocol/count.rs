//! Token counting (SPEC 4.8, `POST /v1/messages/count_tokens`): the request for a vendor's own
//! counter, the count read from its answer, and the estimate given when no counter is at hand.

use bytes::Bytes;
use serde_json::{Value, json};

use super::{TranslateError, anthropic, gemini};
use crate::domain::provider::Vendor;

/// Fields of a Messages request that Anthropic's counter refuses: they shape the answer, not the
/// input.
const NOT_COUNTED: [&str; 8] = [
    "max_tokens",
    "stream",
    "stop_sequences",
    "temperature",
    "top_p",
    "top_k",
    "metadata",
    "service_tier",
];

/// The body for a vendor's token counter, from a hub chat request, with `model` as the physical
/// model: Anthropic's Messages request without the answer-shaping fields, or Gemini's
/// `{"generateContentRequest": {...}}`.
pub fn count_tokens_request(
    vendor: Vendor,
    chat: &Value,
    model: &str,
) -> Result<Bytes, TranslateError> {
    let body = match vendor {
        Vendor::Anthropic => {
            let mut request = anthropic::request_from_chat(chat, model, false)?;
            if let Some(object) = request.as_object_mut() {
                for key in NOT_COUNTED {
                    object.remove(key);
                }
            }
            request
        }
        Vendor::Gemini => {
            let mut request = gemini::request_from_chat(chat, model, false)?;
            if let Some(object) = request.as_object_mut() {
                object.remove("generationConfig");
                object.insert("model".into(), json!(format!("models/{model}")));
            }
            json!({"generateContentRequest": request})
        }
        Vendor::OpenAi => {
            return Err(TranslateError::new(
                "OpenAI-compatible providers count no tokens",
                None,
            ));
        }
    };
    Ok(Bytes::from(body.to_string()))
}

/// The count in a counter's answer: Anthropic's `input_tokens` or Gemini's `totalTokens`.
pub fn counted_tokens(answer: &[u8]) -> Option<u64> {
    let answer: Value = serde_json::from_slice(answer).ok()?;
    answer
        .get("input_tokens")
        .or_else(|| answer.get("totalTokens"))
        .and_then(Value::as_u64)
}

/// An estimate of a hub chat request's input tokens when no counter is at hand: about four
/// characters per token over every string in the messages and tools, plus four tokens per message
/// for its framing. It errs high on code and low on CJK text; clients use it to decide when to
/// compact a conversation, where a rough figure serves.
pub fn estimate_tokens(chat: &Value) -> u64 {
    fn chars(value: &Value) -> u64 {
        match value {
            Value::String(text) => text.chars().count() as u64,
            Value::Array(items) => items.iter().map(chars).sum(),
            Value::Object(map) => map.values().map(chars).sum(),
            _ => 0,
        }
    }
    let messages = chat.get("messages").and_then(Value::as_array);
    let framing = messages.map_or(0, |m| m.len() as u64 * 4);
    let text = messages.map_or(0, |m| m.iter().map(chars).sum::<u64>())
        + chat.get("tools").map_or(0, chars);
    text.div_ceil(4) + framing
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_requests_hold_only_the_input() {
        let chat = json!({"model": "x", "max_tokens": 9, "stream": true, "temperature": 0.2,
            "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "hi"}]});
        let anthropic: Value = serde_json::from_slice(
            &count_tokens_request(Vendor::Anthropic, &chat, "claude").unwrap(),
        )
        .unwrap();
        assert_eq!(anthropic["model"], "claude");
        assert_eq!(anthropic["system"], "S");
        for key in NOT_COUNTED {
            assert!(anthropic.get(key).is_none(), "{key}");
        }
        let gemini: Value = serde_json::from_slice(
            &count_tokens_request(Vendor::Gemini, &chat, "gemini-2.5-pro").unwrap(),
        )
        .unwrap();
        let inner = &gemini["generateContentRequest"];
        assert_eq!(inner["model"], "models/gemini-2.5-pro");
        assert_eq!(inner["contents"][0]["parts"][0]["text"], "hi");
        assert!(inner.get("generationConfig").is_none());
        assert!(count_tokens_request(Vendor::OpenAi, &chat, "m").is_err());
    }

    #[test]
    fn counts_are_read_from_either_vendor() {
        assert_eq!(counted_tokens(br#"{"input_tokens": 12}"#), Some(12));
        assert_eq!(
            counted_tokens(br#"{"totalTokens": 7, "cachedContentTokenCount": 1}"#),
            Some(7)
        );
        assert_eq!(counted_tokens(b"nope"), None);
    }

    #[test]
    fn estimates_grow_with_the_text() {
        let short = json!({"messages": [{"role": "user", "content": "hi"}]});
        let long = json!({"messages": [{"role": "user", "content": "hello ".repeat(100)}],
            "tools": [{"type": "function", "function": {"name": "f", "description": "d".repeat(40)}}]});
        // "user" and "hi": six characters, two tokens, plus the framing of one message.
        assert_eq!(estimate_tokens(&short), 2 + 4);
        assert!(estimate_tokens(&long) > 150);
        assert_eq!(estimate_tokens(&json!(null)), 0);
    }
}
