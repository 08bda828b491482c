//! Gemini as a `VendorCodec`: the hub's four verbs delegated to this module's translators.

use super::{StreamTranslator, chat_from_response, error_to_chat, request_from_chat};

/// Google's Gemini `generateContent` API seen from the hub.
#[derive(Debug, Clone, Copy, Default)]
pub struct GeminiCodec;

crate::protocol::codec::translated_vendor!(GeminiCodec);

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde_json::{Value, json};

    use super::*;
    use crate::protocol::codec::VendorCodec;
    use crate::protocol::sse;

    fn codec() -> &'static dyn VendorCodec {
        &GeminiCodec
    }

    fn data_of(event: &Bytes) -> Value {
        serde_json::from_str(&sse::event_data(event).unwrap()).unwrap()
    }

    #[test]
    fn request_and_answer_go_through_the_codec() {
        let hub = json!({"model": "gpt-4o", "max_tokens": 100, "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
        ]});
        let body = codec().request(&hub, "gemini-2.0-flash", false).unwrap();
        assert_eq!(
            body,
            json!({
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "systemInstruction": {"parts": [{"text": "Be brief."}]},
                "generationConfig": {"maxOutputTokens": 100},
            })
        );
        assert_eq!(
            codec().request(&hub, "gemini-2.0-flash", true).unwrap(),
            body
        );
        assert!(
            codec()
                .request(&json!({"messages": []}), "m", false)
                .is_err()
        );

        let answer = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]},
            "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2, "totalTokenCount": 5},
            "responseId": "r1"});
        let chat = codec().answer(&answer, "gemini-2.0-flash", 7).unwrap();
        assert_eq!(chat["object"], "chat.completion");
        assert_eq!(chat["model"], "gemini-2.0-flash");
        assert_eq!(chat["created"], 7);
        assert_eq!(chat["choices"][0]["message"]["content"], "Hello!");
        assert_eq!(chat["choices"][0]["finish_reason"], "stop");
        assert_eq!(chat["usage"]["prompt_tokens"], 3);
        assert_eq!(chat["usage"]["completion_tokens"], 2);
    }

    #[test]
    fn errors_go_through_the_codec() {
        let body = codec().error(
            429,
            br#"{"error":{"code":429,"message":"Quota exceeded.","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!(
            body,
            json!({"error": {"message": "Quota exceeded.", "type": "resource_exhausted", "param": null, "code": "RESOURCE_EXHAUSTED"}})
        );
    }

    #[test]
    fn a_stream_goes_through_the_codec() {
        let mut stream = codec().stream("gemini-2.0-flash", 7, "chatcmpl-1".into());
        let first = stream
            .push(b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}]}\n\n")
            .unwrap();
        assert_eq!(first.len(), 2, "the role chunk, then the text");
        assert_eq!(
            data_of(&first[0])["choices"][0]["delta"]["role"],
            "assistant"
        );
        let chunk = data_of(&first[1]);
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(chunk["id"], "chatcmpl-1");
        assert_eq!(chunk["choices"][0]["delta"]["content"], "Hel");
        let last = stream
            .push(b"data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"lo\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":3,\"candidatesTokenCount\":2,\"totalTokenCount\":5}}\n\n")
            .unwrap();
        assert_eq!(last.len(), 3, "the text, the finish chunk, the usage chunk");
        assert_eq!(data_of(&last[0])["choices"][0]["delta"]["content"], "lo");
        let finish = data_of(&last[1]);
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish.get("usage"), None);
        let usage = data_of(&last[2]);
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
