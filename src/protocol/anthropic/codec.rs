//! Anthropic as a `VendorCodec`: the hub's four verbs delegated to this module's translators.

use super::{StreamTranslator, chat_from_response, error_to_chat, request_from_chat};

/// Anthropic's Messages API seen from the hub.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnthropicCodec;

crate::protocol::codec::translated_vendor!(AnthropicCodec);

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::codec::VendorCodec;
    use crate::protocol::sse;

    fn codec() -> &'static dyn VendorCodec {
        &AnthropicCodec
    }

    fn data_of(event: &Bytes) -> Value {
        serde_json::from_str(&sse::event_data(event).unwrap()).unwrap()
    }

    fn event(kind: &str, data: Value) -> Vec<u8> {
        format!("event: {kind}\ndata: {data}\n\n").into_bytes()
    }

    #[test]
    fn request_and_answer_go_through_the_codec() {
        let hub = json!({"model": "gpt-4o", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ]});
        let body = codec().request(&hub, "claude-sonnet-4", true).unwrap();
        assert_eq!(body["model"], "claude-sonnet-4");
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(body["max_tokens"], 100);
        assert_eq!(body["stream"], true);
        let error = codec()
            .request(
                &json!({"messages": [{"role": "critic", "content": "x"}]}),
                "m",
                false,
            )
            .unwrap_err();
        assert_eq!(error.param.as_deref(), Some("messages[0].role"));

        let answer = json!({"id": "msg_1", "type": "message", "role": "assistant",
            "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn",
            "usage": {"input_tokens": 3, "output_tokens": 2}});
        let chat = codec().answer(&answer, "claude-sonnet-4", 7).unwrap();
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(chat["id"], "chatcmpl-msg_1");
        assert_eq!(chat["created"], 7);
        assert_eq!(chat["choices"][0]["message"]["content"], "Hello!");
        assert_eq!(chat["choices"][0]["finish_reason"], "stop");
        assert_eq!(chat["usage"]["total_tokens"], 5);
        assert!(codec().answer(&json!("nope"), "m", 0).is_err());
    }

    #[test]
    fn errors_go_through_the_codec() {
        let body = codec().error(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            body,
            json!({"error": {"message": "Overloaded", "type": "overloaded_error", "param": null, "code": "overloaded_error"}})
        );
    }

    #[test]
    fn a_stream_goes_through_the_codec() {
        let mut stream = codec().stream("claude-sonnet-4", 7, "chatcmpl-1".into());
        let start = stream
            .push(&event(
                "message_start",
                json!({"type": "message_start", "message": {"usage": {"input_tokens": 3}}}),
            ))
            .unwrap();
        assert_eq!(start.len(), 1);
        assert_eq!(
            data_of(&start[0])["choices"][0]["delta"]["role"],
            "assistant"
        );
        let text = stream
            .push(&event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "text_delta", "text": "Hello"}}),
            ))
            .unwrap();
        assert_eq!(text.len(), 1);
        let chunk = data_of(&text[0]);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-1");
        assert_eq!(chunk["model"], "claude-sonnet-4");
        assert_eq!(chunk["choices"][0]["delta"]["content"], "Hello");
        let stop = stream
            .push(&event(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 2}}),
            ))
            .unwrap();
        assert_eq!(stop.len(), 2, "the finish chunk, then the usage chunk");
        let finish = data_of(&stop[0]);
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish.get("usage"), None);
        let usage = data_of(&stop[1]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(usage["id"], "chatcmpl-1");
        assert_eq!(usage["usage"]["total_tokens"], 5);
        assert_eq!(
            stream.finish(),
            vec![Bytes::from_static(b"data: [DONE]\n\n")]
        );
        assert!(stream.finish().is_empty());
    }
}
