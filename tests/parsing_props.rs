//! Property versions of the fuzz targets (fuzz/): request parsing and stream handling never panic
//! on arbitrary input, in the normal test run.

use apiproxy::domain::exchange::Dialect;
use apiproxy::protocol::openai::ChatBody;
use apiproxy::protocol::responses::{
    self, ResponsesStreamWriter, chat_request_from_responses, response_from_chat,
};
use apiproxy::protocol::sse::SseFramer;
use apiproxy::protocol::{
    Dropped, anthropic, classify, counted_tokens, estimate_tokens, gemini, openai, usage_of_answer,
    usage_of_event,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        prop_oneof![
            Just("model".to_string()),
            Just("messages".to_string()),
            Just("user".to_string()),
            Just("data: [DONE]".to_string()),
            ".{0,12}"
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        Just("model".to_string()),
                        Just("messages".to_string()),
                        Just("role".to_string()),
                        Just("content".to_string()),
                        Just("stream".to_string()),
                        Just("input".to_string()),
                        Just("tools".to_string()),
                        Just("type".to_string()),
                        "[a-z_]{1,8}"
                    ],
                    inner
                ),
                0..6
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn chat_bodies_never_panic_and_rewrite_to_valid_json(bytes in prop::collection::vec(any::<u8>(), 0..512), value in json_value()) {
        for input in [bytes, value.to_string().into_bytes()] {
            if let Ok(body) = ChatBody::parse(&input) {
                let rewritten = body.to_upstream("m");
                prop_assert!(serde_json::from_slice::<Value>(&rewritten).is_ok());
            }
        }
    }

    /// A streaming chat body goes upstream asking for the usage chunk, every other field as the
    /// client sent it; a body that does not stream goes as it is.
    #[test]
    fn streaming_chat_bodies_ask_for_usage_and_keep_everything_else(value in json_value(), stream in any::<bool>(),
            options in prop::option::of(json_value())) {
        let mut body = match value {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        body.insert("model".into(), json!("m"));
        body.insert("messages".into(), json!([]));
        body.insert("stream".into(), json!(stream));
        body.remove("system");
        if let Some(options) = options {
            body.insert("stream_options".into(), options);
        }
        let text = Value::Object(body.clone()).to_string();
        let Ok(parsed) = ChatBody::parse(text.as_bytes()) else {
            return Ok(());
        };
        let sent: Value = serde_json::from_slice(&parsed.to_upstream("up")).unwrap();
        let asked = body.get("stream_options").and_then(|o| o.get("include_usage")) == Some(&json!(true));
        prop_assert_eq!(parsed.wants_usage_chunk(), asked);
        let mut expected = body.clone();
        expected.insert("model".into(), json!("up"));
        if stream && !asked {
            let mut options = match body.get("stream_options") {
                Some(Value::Object(options)) => options.clone(),
                _ => serde_json::Map::new(),
            };
            options.insert("include_usage".into(), json!(true));
            expected.insert("stream_options".into(), Value::Object(options));
        }
        prop_assert_eq!(sent, Value::Object(expected));
    }

    #[test]
    fn usage_readers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), value in json_value()) {
        let event = format!("data: {value}\n\n");
        for input in [&bytes[..], value.to_string().as_bytes(), event.as_bytes()] {
            for dialect in [Dialect::Hub, Dialect::Anthropic, Dialect::Responses, Dialect::Gemini] {
                let _ = (usage_of_answer(dialect, input), usage_of_event(dialect, input));
            }
            let _ = openai::is_usage_only_chunk(input);
        }
    }

    #[test]
    fn responses_translation_never_panics(value in json_value()) {
        let _ = chat_request_from_responses(&value, &mut apiproxy::protocol::Dropped::new());
        let _ = response_from_chat(&value, &value);
    }

    #[test]
    fn stream_readers_never_panic_on_arbitrary_bytes_cut_anywhere(bytes in prop::collection::vec(any::<u8>(), 0..1024), cut in 1usize..64) {
        let mut framer = SseFramer::new();
        let mut claude = anthropic::StreamTranslator::new("m", 0, "chatcmpl-p".into());
        let mut google = gemini::StreamTranslator::new("m", 0, "chatcmpl-p".into());
        let mut writer = anthropic::MessagesStreamWriter::new("m", "msg_p".into());
        let mut responses = ResponsesStreamWriter::new(&json!({"model": "m", "input": "x"}));
        for chunk in bytes.chunks(cut) {
            if let Ok(events) = framer.push(chunk) {
                for event in events {
                    let _ = (classify(Dialect::Hub, &event), classify(Dialect::Anthropic, &event), classify(Dialect::Responses, &event));
                    let _ = responses::events::usage_of_event(&event);
                    let _ = (claude.push(&event), google.push(&event));
                    let _ = (writer.push(&event), responses.push(&event));
                }
            }
        }
        let _ = (framer.finish(), claude.finish(), google.finish(), writer.finish(), responses.finish());
    }

    #[test]
    fn data_events_built_from_json_go_through_every_stream_reader(values in prop::collection::vec(json_value(), 0..12)) {
        // All four readers: the two upstream translators (Anthropic, Gemini) and the two client
        // writers (Messages, Responses), plus both classifiers.
        let mut claude = anthropic::StreamTranslator::new("m", 0, "chatcmpl-p".into());
        let mut google = gemini::StreamTranslator::new("m", 0, "chatcmpl-p".into());
        let mut writer = anthropic::MessagesStreamWriter::new("m", "msg_p".into());
        let mut responses = ResponsesStreamWriter::new(&json!({"model": "m", "input": "x"}));
        for value in values {
            let event = format!("data: {value}\n\n");
            let _ = (classify(Dialect::Hub, event.as_bytes()), classify(Dialect::Anthropic, event.as_bytes()), classify(Dialect::Responses, event.as_bytes()));
            let _ = (claude.push(event.as_bytes()), google.push(event.as_bytes()));
            let _ = writer.push(event.as_bytes());
            let _ = responses.push(event.as_bytes());
        }
        let _ = (claude.finish(), google.finish(), writer.finish(), responses.finish());
    }

    /// The agent paths (SPEC 4.8): requests whose tools and items are arbitrary go through the
    /// ingress translators, and chat answers and chunks naming those tools come back through the
    /// Responses writers, without a panic; what is dropped is always named.
    #[test]
    fn agent_shaped_requests_and_answers_never_panic(tools in prop::collection::vec(json_value(), 0..5),
            items in prop::collection::vec(json_value(), 0..5), chunks in prop::collection::vec(json_value(), 0..8)) {
        let namespaced = json!({"type": "namespace", "name": "ns", "tools": tools.clone()});
        let custom = json!({"type": "custom", "name": "apply_patch"});
        let mut all_tools = tools.clone();
        all_tools.extend([namespaced, custom]);
        let request = json!({"model": "m", "input": items.clone(), "tools": all_tools, "tool_choice": items.first().cloned().unwrap_or(Value::Null)});
        let mut dropped = Dropped::new();
        let _ = chat_request_from_responses(&request, &mut dropped);
        prop_assert!(dropped.items().iter().all(|item| !item.label.is_empty()));
        let messages = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": items.clone()},
            {"role": "user", "content": items.clone()}, {"role": "assistant", "content": items}], "tools": tools, "thinking": chunks.first().cloned().unwrap_or(Value::Null)});
        let _ = anthropic::chat_request_from_messages(&messages, &mut Dropped::new());
        let _ = anthropic::strip_translated_thinking(messages.to_string().as_bytes());
        let _ = estimate_tokens(&messages);
        let mut writer = ResponsesStreamWriter::new(&request);
        let mut claude = anthropic::MessagesStreamWriter::new("m", "msg_p".into());
        for chunk in &chunks {
            let _ = response_from_chat(chunk, &request);
            let event = format!("data: {chunk}\n\n");
            let _ = (writer.push(event.as_bytes()), claude.push(event.as_bytes()));
            let _ = counted_tokens(chunk.to_string().as_bytes());
        }
        let _ = (writer.finish(), claude.finish());
    }

    #[test]
    fn thinking_made_by_the_gateway_never_reaches_anthropic(texts in prop::collection::vec(".{0,12}", 1..4)) {
        let blocks: Vec<Value> = texts.iter().map(|t| json!({"type": "thinking", "thinking": t, "signature": anthropic::TRANSLATED_SIGNATURE})).collect();
        let body = json!({"model": "m", "messages": [{"role": "assistant", "content": blocks},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "kept", "signature": "real"}]}]});
        let stripped = anthropic::strip_translated_thinking(body.to_string().as_bytes()).expect("stripped");
        let stripped: Value = serde_json::from_slice(&stripped).expect("JSON");
        prop_assert_eq!(&stripped["messages"][0]["content"], &json!([]));
        prop_assert_eq!(&stripped["messages"][1]["content"][0]["signature"], "real");
    }
}
