//! The stream resume followers on real wire events: what they read, the continuation they write,
//! and how they splice a continuation into the first stream.

use super::*;
use crate::domain::exchange::ChatPayload;
use crate::domain::failover::StreamEventKind;
use crate::protocol::openai::ChatBody;

/// The follower the chat body gives for `dialect`.
fn follower(body: &ChatBody, dialect: Dialect) -> Option<Box<dyn ResumableStream>> {
    body.resumable(dialect)
}

fn event(kind: StreamEventKind, text: String) -> UpstreamEvent {
    UpstreamEvent::new(kind, Bytes::from(text))
}

fn chunk(id: &str, delta: Value, finish: Option<&str>) -> UpstreamEvent {
    let chunk = json!({"id": id, "object": "chat.completion.chunk", "created": 7, "model": format!("model-{id}"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    event(StreamEventKind::Content, format!("data: {chunk}\n\n"))
}

fn hub_body(extra: Value) -> ChatBody {
    let mut body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "Say hello"}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    ChatBody::parse(body.to_string().as_bytes()).expect("a valid chat body")
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// The data of a spliced event, as JSON.
fn data(event: &UpstreamEvent) -> Value {
    let data = sse::event_data(&event.bytes).expect("a data line");
    serde_json::from_str(&data).expect("JSON data")
}

/// A hub follower that has seen a role chunk and the text `Hello wor` from stream `a`.
fn broken_hub(body: ChatBody) -> Box<dyn ResumableStream> {
    let mut follower = follower(&body, Dialect::Hub).expect("hub streams resume");
    follower.observe(&chunk(
        "a",
        json!({"role": "assistant", "content": ""}),
        None,
    ));
    follower.observe(&chunk("a", json!({"content": "Hello"}), None));
    follower.observe(&chunk("a", json!({"content": " wor"}), None));
    follower
}

#[test]
fn a_hub_continuation_asks_to_continue_after_the_partial_answer() {
    let mut follower = broken_hub(hub_body(json!({})));
    let body = json_of(
        &follower
            .continuation("model-b", false)
            .expect("text resumes"),
    );
    assert_eq!(body["model"], "model-b");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Say hello"},
            {"role": "assistant", "content": "Hello wor"},
            {"role": "user", "content": CONTINUE_INSTRUCTION},
        ])
    );
    // Still a streaming hub body asking for the usage chunk, like the first request.
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"]["include_usage"], true);
}

#[test]
fn a_prefill_is_the_partial_answer_without_trailing_whitespace_and_not_repeated() {
    let mut follower = follower(&hub_body(json!({})), Dialect::Hub).unwrap();
    follower.observe(&chunk("a", json!({"content": "Hello, "}), None));
    let body = json_of(&follower.continuation("model-b", true).unwrap());
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": "Hello,"})
    );
    // The model writes the trimmed space again: the client has it already.
    let spliced = follower
        .splice(chunk("b", json!({"content": " world"}), None))
        .expect("text goes through");
    assert_eq!(data(&spliced)["choices"][0]["delta"]["content"], "world");
    // Only the continuation's start is trimmed.
    let spliced = follower
        .splice(chunk("b", json!({"content": " again"}), None))
        .unwrap();
    assert_eq!(data(&spliced)["choices"][0]["delta"]["content"], " again");
}

#[test]
fn a_hub_continuation_is_spliced_under_the_first_streams_ids() {
    let mut follower = broken_hub(hub_body(json!({})));
    follower.continuation("model-b", false).unwrap();
    // Its role-only preamble is dropped: the client has its role.
    let role = chunk("b", json!({"role": "assistant", "content": ""}), None);
    assert!(follower.splice(role).is_none());
    let text = follower
        .splice(chunk(
            "b",
            json!({"role": "assistant", "content": "ld!"}),
            None,
        ))
        .unwrap();
    let text = data(&text);
    assert_eq!(
        (&text["id"], &text["model"], &text["created"]),
        (&json!("a"), &json!("model-a"), &json!(7))
    );
    assert_eq!(text["choices"][0]["delta"], json!({"content": "ld!"}));
    let finish = follower
        .splice(chunk("b", json!({}), Some("stop")))
        .unwrap();
    assert_eq!(data(&finish)["choices"][0]["finish_reason"], "stop");
    let usage =
        json!({"id": "b", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 2}});
    let usage = follower
        .splice(event(
            StreamEventKind::Preamble,
            format!("data: {usage}\n\n"),
        ))
        .expect("the usage chunk goes through");
    assert_eq!(data(&usage)["usage"]["completion_tokens"], 2);
    assert_eq!(data(&usage)["id"], "a");
    let done = event(StreamEventKind::End, "data: [DONE]\n\n".into());
    let spliced = follower.splice(done).unwrap();
    assert_eq!(&spliced.bytes[..], b"data: [DONE]\n\n");
    assert_eq!(spliced.kind, StreamEventKind::End);
}

#[test]
fn a_second_break_continues_everything_written_so_far() {
    let mut follower = broken_hub(hub_body(json!({})));
    follower.continuation("model-b", false).unwrap();
    follower.splice(chunk("b", json!({"content": "ld"}), None));
    let body = json_of(&follower.continuation("model-c", false).unwrap());
    assert_eq!(body["messages"][1]["content"], "Hello world");
}

#[test]
fn only_text_answers_resume() {
    let mut tool = broken_hub(hub_body(json!({})));
    let call = json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]});
    tool.observe(&chunk("a", call, None));
    assert!(tool.continuation("model-b", false).is_none());

    let mut finished = broken_hub(hub_body(json!({})));
    finished.observe(&chunk("a", json!({}), Some("stop")));
    assert!(finished.continuation("model-b", false).is_none());

    let mut refused = broken_hub(hub_body(json!({})));
    refused.observe(&chunk("a", json!({"refusal": "no"}), None));
    assert!(refused.continuation("model-b", false).is_none());

    // Several choices cannot be continued as one; nor can the formats passed through.
    assert!(follower(&hub_body(json!({"n": 2})), Dialect::Hub).is_none());
    assert!(follower(&hub_body(json!({"n": 1})), Dialect::Hub).is_some());
    assert!(follower(&hub_body(json!({})), Dialect::Responses).is_none());
    assert!(follower(&hub_body(json!({})), Dialect::Gemini).is_none());
}

#[test]
fn a_clients_own_prefill_is_joined_by_the_partial_answer() {
    let body = hub_body(json!({"messages": [
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": "Sure: "},
    ]}));
    let mut follower = broken_hub(body);
    let body = json_of(&follower.continuation("model-b", true).unwrap());
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "Say hello"},
            {"role": "assistant", "content": "Sure: Hello wor"},
        ])
    );
}

fn anthropic(kind: &str, payload: Value) -> UpstreamEvent {
    let mut payload = payload;
    payload["type"] = json!(kind);
    let kind_of = match kind {
        "message_stop" => StreamEventKind::End,
        "message_start" | "ping" => StreamEventKind::Preamble,
        _ => StreamEventKind::Content,
    };
    event(kind_of, format!("event: {kind}\ndata: {payload}\n\n"))
}

fn messages_body() -> ChatBody {
    let body = json!({"model": "m", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Say hello"}]});
    ChatBody::parse_native(body.to_string().as_bytes()).unwrap()
}

fn message_start(id: &str) -> UpstreamEvent {
    anthropic(
        "message_start",
        json!({"message": {"id": id, "type": "message", "role": "assistant", "content": []}}),
    )
}

fn text_start(index: u64) -> UpstreamEvent {
    anthropic(
        "content_block_start",
        json!({"index": index, "content_block": {"type": "text", "text": ""}}),
    )
}

fn text_delta(index: u64, text: &str) -> UpstreamEvent {
    anthropic(
        "content_block_delta",
        json!({"index": index, "delta": {"type": "text_delta", "text": text}}),
    )
}

#[test]
fn an_anthropic_stream_resumes_with_a_prefill_into_its_open_text_block() {
    let mut follower = follower(&messages_body(), Dialect::Anthropic).unwrap();
    for event in [
        message_start("msg_a"),
        text_start(0),
        text_delta(0, "Hello, "),
    ] {
        follower.observe(&event);
    }
    // Anthropic always gets the prefill, its trailing whitespace trimmed.
    let body = json_of(&follower.continuation("claude-b", false).unwrap());
    assert_eq!(body["model"], "claude-b");
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": "Hello,"})
    );
    assert!(body.get("stream_options").is_none());
    assert!(follower.splice(message_start("msg_b")).is_none());
    assert!(follower.splice(text_start(0)).is_none());
    let delta = follower.splice(text_delta(0, " world")).unwrap();
    assert_eq!(sse::event_name(&delta.bytes), Some("content_block_delta"));
    assert_eq!(data(&delta)["delta"]["text"], "world");
    assert_eq!(data(&delta)["index"], 0);
    let stop = follower
        .splice(anthropic("content_block_stop", json!({"index": 0})))
        .unwrap();
    assert_eq!(data(&stop)["index"], 0);
    let end = follower
        .splice(anthropic(
            "message_delta",
            json!({"delta": {"stop_reason": "end_turn"}}),
        ))
        .unwrap();
    assert_eq!(data(&end)["delta"]["stop_reason"], "end_turn");
    let stop = follower
        .splice(anthropic("message_stop", json!({})))
        .unwrap();
    assert_eq!(stop.kind, StreamEventKind::End);
}

#[test]
fn an_anthropic_continuation_after_a_closed_block_opens_the_next_one() {
    let mut follower = follower(&messages_body(), Dialect::Anthropic).unwrap();
    for event in [
        message_start("msg_a"),
        text_start(0),
        text_delta(0, "Hello."),
        anthropic("content_block_stop", json!({"index": 0})),
    ] {
        follower.observe(&event);
    }
    follower.continuation("claude-b", true).unwrap();
    let start = follower.splice(text_start(0)).expect("a block of its own");
    assert_eq!(data(&start)["index"], 1);
    let delta = follower.splice(text_delta(0, " Bye.")).unwrap();
    assert_eq!(data(&delta)["index"], 1);
}

#[test]
fn an_anthropic_answer_with_a_tool_call_does_not_resume() {
    let mut follower = follower(&messages_body(), Dialect::Anthropic).unwrap();
    for event in [
        message_start("msg_a"),
        anthropic(
            "content_block_start",
            json!({"index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}}),
        ),
    ] {
        follower.observe(&event);
    }
    assert!(follower.continuation("claude-b", true).is_none());
}

#[test]
fn noise_and_garbage_never_panic() {
    let mut follower = broken_hub(hub_body(json!({})));
    for bytes in [
        &b": keep-alive\n\n"[..],
        b"data: {not json\n\n",
        b"data: [1,2]\n\n",
        b"\xff\xfe",
    ] {
        let event = UpstreamEvent::new(StreamEventKind::Preamble, Bytes::copy_from_slice(bytes));
        follower.observe(&event);
        assert_eq!(follower.splice(event.clone()), Some(event));
    }
    // A chunk of the wrong shape carries nothing for the client.
    let odd = UpstreamEvent::new(
        StreamEventKind::Preamble,
        Bytes::from_static(b"data: {\"choices\": 3}\n\n"),
    );
    follower.observe(&odd);
    assert_eq!(follower.splice(odd), None);
    // What was read before is still there.
    let body = json_of(&follower.continuation("model-b", false).unwrap());
    assert_eq!(body["messages"][1]["content"], "Hello wor");
}
