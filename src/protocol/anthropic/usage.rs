//! The tokens an Anthropic answer or stream reports, in the gateway's terms (OpenAI's conventions):
//! Anthropic's `input_tokens` leaves out its cache reads and writes, which the prompt includes.

use crate::domain::exchange::Usage;
use crate::protocol::openai::NotJson;
use crate::protocol::sse;
use crate::protocol::tokens::{Count, read_event_object, read_object};

/// Anthropic's `usage` object: in a Message, in `message_start`'s message and in `message_delta`
/// (where every count is cumulative and only `output_tokens` is always there).
#[derive(Debug, Default, serde::Deserialize)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Count,
    #[serde(default)]
    output_tokens: Count,
    #[serde(default)]
    cache_read_input_tokens: Count,
    #[serde(default)]
    cache_creation_input_tokens: Count,
}

impl From<AnthropicUsage> for Usage {
    fn from(usage: AnthropicUsage) -> Self {
        let cache_read = usage.cache_read_input_tokens.get();
        let cache_write = usage.cache_creation_input_tokens.get();
        Usage {
            prompt_tokens: usage
                .input_tokens
                .get()
                .saturating_add(cache_read)
                .saturating_add(cache_write),
            completion_tokens: usage.output_tokens.get(),
            cache_read_tokens: cache_read,
            cache_write_tokens: cache_write,
            // Anthropic counts thinking inside output_tokens and reports no part of it apart.
            reasoning_tokens: 0,
        }
    }
}

#[derive(serde::Deserialize)]
struct WithUsage {
    #[serde(default)]
    usage: Option<AnthropicUsage>,
}

/// Checks that a whole Anthropic answer (a Message) is JSON and reads its usage, in one pass.
pub fn usage_of_answer(body: &[u8]) -> Result<Option<Usage>, NotJson> {
    // Valid JSON of another shape (an array, a usage that is no object) is still JSON.
    Ok(read_object::<WithUsage>(body)?
        .and_then(|answer| answer.usage)
        .map(Usage::from))
}

/// The tokens one event of a native Anthropic stream reports: `message_start` (the input, cache
/// reads and writes, and the first output count) and `message_delta` (the cumulative output, and
/// in newer API versions the input again). The domain merges the reports of one stream by taking
/// the largest of each count. Other events cost one substring scan.
pub fn usage_of_event(event: &[u8]) -> Option<Usage> {
    if !crate::protocol::needle::mentions(event, &crate::protocol::needle::USAGE_NAME) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Event {
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        message: Option<WithUsage>,
        #[serde(default)]
        usage: Option<AnthropicUsage>,
    }
    let data = sse::data_of(event)?;
    let event_data: Event = read_event_object(&data)?;
    let kind = match &event_data.kind {
        Some(kind) => kind.as_str(),
        None => sse::event_name(event)?,
    };
    let usage = match kind {
        "message_start" => event_data.message?.usage?,
        "message_delta" => event_data.usage?,
        _ => return None,
    };
    Some(usage.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(prompt: u64, completion: u64, read: u64, write: u64) -> Usage {
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cache_read_tokens: read,
            cache_write_tokens: write,
            reasoning_tokens: 0,
        }
    }

    #[test]
    fn a_message_counts_its_cache_reads_and_writes_in_the_prompt() {
        // The shape of the Messages API reference's response, with prompt caching.
        let answer = br#"{"id":"msg_013Zva2CMHLNnXjNJJKqJ2EF","type":"message","role":"assistant",
            "model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi! My name is Claude."}],
            "stop_reason":"end_turn","stop_sequence":null,
            "usage":{"input_tokens":21,"cache_creation_input_tokens":188086,"cache_read_input_tokens":1024,
                "cache_creation":{"ephemeral_5m_input_tokens":188086,"ephemeral_1h_input_tokens":0},
                "output_tokens":393,"service_tier":"standard","server_tool_use":null}}"#;
        assert_eq!(
            usage_of_answer(answer).ok().flatten(),
            Some(usage(21 + 188_086 + 1024, 393, 1024, 188_086))
        );
        let plain =
            br#"{"type":"message","content":[],"usage":{"input_tokens":3,"output_tokens":2}}"#;
        assert_eq!(
            usage_of_answer(plain).ok().flatten(),
            Some(usage(3, 2, 0, 0))
        );
        let nulls = br#"{"usage":{"input_tokens":3,"output_tokens":2,"cache_read_input_tokens":null,"cache_creation_input_tokens":null}}"#;
        assert_eq!(
            usage_of_answer(nulls).ok().flatten(),
            Some(usage(3, 2, 0, 0))
        );
        assert_eq!(usage_of_answer(b"{\"content\":[]}").ok().flatten(), None);
        assert_eq!(usage_of_answer(b"[1]").ok().flatten(), None);
        assert!(usage_of_answer(b"<html>").is_err());
    }

    #[test]
    fn a_stream_reports_input_at_the_start_and_output_at_the_end() {
        let start = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-opus-4-1-20250805\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n";
        assert_eq!(usage_of_event(start), Some(usage(2035, 1, 2000, 10)));
        let delta = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n";
        assert_eq!(usage_of_event(delta), Some(usage(0, 15, 0, 0)));
        // Newer API versions repeat the cumulative input counts in message_delta.
        let full_delta = b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":2000,\"output_tokens\":89,\"server_tool_use\":{\"web_search_requests\":1}}}\n\n";
        assert_eq!(usage_of_event(full_delta), Some(usage(2035, 89, 2000, 10)));
        let mut merged = usage_of_event(start).unwrap();
        merged.merge(&usage_of_event(delta).unwrap());
        assert_eq!(merged, usage(2035, 15, 2000, 10));
    }

    #[test]
    fn other_events_report_nothing() {
        for event in [
            &b"event: ping\ndata: {\"type\": \"ping\"}\n\n"[..],
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"say \\\"usage\\\": 5\"}}\n\n",
            b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\",\"usage\":{\"input_tokens\":9}}}\n\n",
            b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
            b"event: message_delta\ndata: {not json \"usage\"\n\n",
        ] {
            assert_eq!(usage_of_event(event), None, "{}", String::from_utf8_lossy(event));
        }
        // The type may come from the event name alone.
        let named = b"event: message_delta\ndata: {\"usage\":{\"output_tokens\":4}}\n\n";
        assert_eq!(usage_of_event(named), Some(usage(0, 4, 0, 0)));
    }
}
