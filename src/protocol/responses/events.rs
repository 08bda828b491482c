//! The Responses API's own stream, relayed as it is to a client of `/v1/responses` when the
//! provider takes the Responses API natively (SPEC 4.8): what each event means for the commit
//! rule, the usage its last event reports, and the gateway's error event after the commit point.

use bytes::Bytes;
use serde_json::json;

use crate::domain::exchange::Usage;
use crate::domain::failover::StreamEventKind;
use crate::protocol::sse;

/// `response.created`, `.in_progress` and `.queued` are preambles; `.completed` and `.incomplete`
/// end the stream; `.failed` and `error` fail it; every other event carries content.
pub fn classify_event(event: &[u8]) -> StreamEventKind {
    let data = sse::data_of(event);
    let kind = data
        .as_deref()
        .and_then(|d| serde_json::from_str::<Kind<'_>>(d).ok())
        .and_then(|k| k.kind.map(|k| k.to_string()))
        .or_else(|| sse::event_name(event).map(str::to_string))
        .unwrap_or_default();
    match kind.as_str() {
        "response.created" | "response.in_progress" | "response.queued" | "" => {
            StreamEventKind::Preamble
        }
        "response.completed" | "response.incomplete" => StreamEventKind::End,
        "response.failed" | "error" => StreamEventKind::Error,
        _ => StreamEventKind::Content,
    }
}

#[derive(serde::Deserialize)]
struct Kind<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
}

/// Tokens from the event that ends the stream (`response.completed` carries the whole Response
/// with its usage); other events cost one substring scan.
pub fn usage_of_event(event: &[u8]) -> Option<Usage> {
    if !crate::protocol::needle::mentions(event, &crate::protocol::needle::USAGE_FIELD) {
        return None;
    }
    #[derive(serde::Deserialize)]
    struct Ended {
        response: Option<crate::protocol::openai::WithUsage>,
    }
    let data = sse::data_of(event)?;
    let ended: Ended = crate::protocol::tokens::read_event_object(&data)?;
    ended.response?.usage()
}

/// The gateway's `error` event for a failure after the stream started: the Responses API's own
/// error event, which the SDKs raise on.
pub fn error_event(message: &str) -> Bytes {
    let payload =
        json!({"type": "error", "code": "upstream_error", "message": message, "param": null});
    Bytes::from(format!("event: error\ndata: {payload}\n\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_classified_by_their_type() {
        for (event, kind) in [
            (&b"event: response.created\ndata: {\"type\":\"response.created\"}\n\n"[..], StreamEventKind::Preamble),
            (b"data: {\"type\":\"response.in_progress\"}\n\n", StreamEventKind::Preamble),
            (b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"delta\":\"x\"}\n\n", StreamEventKind::Content),
            (b"data: {\"type\":\"response.completed\",\"response\":{}}\n\n", StreamEventKind::End),
            (b"data: {\"type\":\"response.failed\"}\n\n", StreamEventKind::Error),
            (b"event: error\ndata: {\"type\":\"error\",\"message\":\"m\"}\n\n", StreamEventKind::Error),
            (b": keep-alive\n\n", StreamEventKind::Preamble),
        ] {
            assert_eq!(classify_event(event), kind, "{}", String::from_utf8_lossy(event));
        }
    }

    #[test]
    fn usage_comes_from_the_completed_response() {
        let completed = br#"data: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":12,"output_tokens":5,"total_tokens":17}}}"#;
        assert_eq!(
            usage_of_event(completed),
            Some(Usage {
                prompt_tokens: 12,
                completion_tokens: 5,
                ..Usage::default()
            })
        );
        // The shape of the API reference's Response usage: cached input and reasoning apart.
        let detailed = br#"event: response.completed
data: {"type":"response.completed","sequence_number":42,"response":{"id":"resp_67ccd2bed1ec8190","object":"response","status":"completed","usage":{"input_tokens":328,"input_tokens_details":{"cached_tokens":256},"output_tokens":1052,"output_tokens_details":{"reasoning_tokens":896},"total_tokens":1380}}}"#;
        assert_eq!(
            usage_of_event(detailed),
            Some(Usage {
                prompt_tokens: 328,
                completion_tokens: 1052,
                cache_read_tokens: 256,
                cache_write_tokens: 0,
                reasoning_tokens: 896,
            })
        );

        assert_eq!(
            usage_of_event(b"data: {\"type\":\"response.output_text.delta\"}\n\n"),
            None
        );
    }
}
