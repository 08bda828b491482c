//! Streams: held back until the commit point and failed over before it, relayed after it, ended
//! with `Failed` when the upstream dies, and a vendor's own dialect kept for its providers.

use super::*;
use crate::domain::exchange::{Dialect, NativeRequest};

#[tokio::test]
async fn a_stream_that_fails_before_its_first_content_fails_over() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(ROLE), Err("reset")])
    });
    expect_chat(&mut upstream, "b", 1, || {
        events(vec![Ok(ROLE), Ok(TEXT_B), Ok(DONE)])
    });
    match service(upstream).chat(request(true, None)).await {
        Ok(ChatReply::Stream { served, events, .. }) => {
            assert_eq!((served.provider_id.as_str(), served.attempts), ("b", 2));
            assert_eq!(
                collect(events).await,
                ["role\n\n", "from b\n\n", "done\n\n"]
            );
        }
        _ => panic!("expected b's stream"),
    }
}

#[tokio::test]
async fn an_error_event_before_content_fails_over_too() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok((StreamEventKind::Error, "overloaded\n\n"))])
    });
    expect_chat(&mut upstream, "b", 1, || events(vec![Ok(TEXT_B), Ok(DONE)]));
    let outcome = service(upstream).chat(request(true, None)).await;
    assert!(matches!(outcome, Ok(ChatReply::Stream { served, .. }) if served.provider_id == "b"));
}

#[tokio::test]
async fn a_stream_that_ends_before_any_content_fails_over() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || events(vec![Ok(ROLE)]));
    expect_chat(&mut upstream, "b", 1, || events(vec![Ok(TEXT_B), Ok(DONE)]));
    let outcome = service(upstream).chat(request(true, None)).await;
    assert!(matches!(outcome, Ok(ChatReply::Stream { served, .. }) if served.provider_id == "b"));
}

#[tokio::test]
async fn a_failure_after_content_ends_with_failed_and_no_second_attempt() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(ROLE), Ok(TEXT_A), Err("reset by peer")])
    });
    expect_chat(&mut upstream, "b", 0, || events(vec![]));
    match service(upstream).chat(request(true, None)).await {
        Ok(ChatReply::Stream { served, events, .. }) => {
            assert_eq!(served.provider_id, "a");
            assert_eq!(
                collect(events).await,
                ["role\n\n", "from a\n\n", "FAILED(reset by peer)"]
            );
        }
        _ => panic!("expected a's stream"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stream_silent_past_the_first_byte_timeout_fails_over() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        let mut reply = events(vec![]);
        reply.body = UpstreamBody::Events(stream::pending().boxed());
        reply
    });
    expect_chat(&mut upstream, "b", 1, || events(vec![Ok(TEXT_B), Ok(DONE)]));
    let outcome = service(upstream).chat(request(true, None)).await;
    assert!(
        matches!(outcome, Ok(ChatReply::Stream { served, .. }) if served.provider_id == "b" && served.attempts == 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stream_silent_after_commit_ends_with_failed_at_the_idle_timeout() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        let first = stream::iter([Ok(UpstreamEvent::new(
            StreamEventKind::Content,
            Bytes::from_static(b"from a\n\n"),
        ))]);
        let mut reply = events(vec![]);
        reply.body = UpstreamBody::Events(first.chain(stream::pending()).boxed());
        reply
    });
    let Ok(ChatReply::Stream { events, .. }) = service(upstream).chat(request(true, None)).await
    else {
        panic!("expected a's stream")
    };
    assert_eq!(
        collect(events).await,
        [
            "from a\n\n",
            "FAILED(upstream stream went silent past the idle timeout)"
        ]
    );
}

#[tokio::test]
async fn the_session_context_keeps_what_the_transcript_assembled() {
    let mut upstream = MockUpstreamClient::new();
    upstream
        .expect_chat()
        .withf(|p, r| p.id == "a" && r.transcript)
        .times(1)
        .returning(|_, _| {
            let mut reply = events(vec![Ok(ROLE), Ok(TEXT_A), Ok(DONE)]);
            reply.transcript = Some(Box::new(Joined(String::new())));
            Ok(reply)
        });
    let mut fakes = Fakes::new(upstream);
    fakes.sessions.expect_get().returning(|_| Ok(None));
    fakes
        .sessions
        .expect_put()
        .times(1)
        .returning(|_, _| Ok(()));
    let context = fakes.context.clone();
    let svc = fakes.service();
    let Ok(ChatReply::Stream { events, .. }) = svc.chat(request(true, Some("s"))).await else {
        panic!("expected a stream")
    };
    let _ = collect(events).await;
    settle().await;
    let history = context.lock().unwrap().clone();
    assert_eq!(history.len(), 1);
    let entry: Value = serde_json::from_str(&history[0]).unwrap();
    assert_eq!(
        entry["response"]["message"]["content"],
        "role\n\nfrom a\n\ndone\n\n"
    );
    assert_eq!(entry["request"]["messages"][0]["content"], "hi");
}

/// An agent's own session id binds the session to the upstream but keeps no context history
/// (SPEC 4.8): no transcript is assembled and nothing is written to the context store.
#[tokio::test]
async fn an_agent_session_is_bound_without_a_context_history() {
    let mut upstream = MockUpstreamClient::new();
    upstream
        .expect_chat()
        .withf(|p, r| p.id == "a" && !r.transcript)
        .times(1)
        .returning(|_, _| Ok(events(vec![Ok(ROLE), Ok(TEXT_A), Ok(DONE)])));
    let mut fakes = Fakes::new(upstream);
    fakes.sessions.expect_get().returning(|_| Ok(None));
    fakes
        .sessions
        .expect_put()
        .withf(|session, _| {
            session.conversation_id == "claude-code:abc" && session.provider_id == "a"
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let context = fakes.context.clone();
    let svc = fakes.service();
    let mut agent = request(true, Some("claude-code:abc"));
    agent.history = false;
    let Ok(ChatReply::Stream { events, .. }) = svc.chat(agent).await else {
        panic!("expected a stream")
    };
    let _ = collect(events).await;
    settle().await;
    assert!(context.lock().unwrap().is_empty());
}

/// A request in Anthropic's own dialect: `untranslatable` when it has no hub form.
fn native_request(untranslatable: Option<&str>) -> ChatRequest {
    let mut request = request(false, None);
    request.native = Some(Arc::new(NativeRequest {
        dialect: Dialect::Anthropic,
        body: Arc::new(TestBody(json!({"model": "m", "max_tokens": 5}))),
        headers: vec![("anthropic-beta".into(), "x".into())],
        untranslatable: untranslatable.map(str::to_string),
    }));
    request
}

#[tokio::test]
async fn a_native_request_goes_as_it_is_to_providers_speaking_its_dialect_only() {
    let mut fakes = Fakes::new(MockUpstreamClient::new());
    fakes.providers[1].vendor = crate::domain::provider::Vendor::Anthropic;
    // `a` (OpenAI) gets the hub body; `b` (Anthropic) the client's own, headers included.
    fakes
        .upstream
        .expect_chat()
        .withf(|p, r| p.id == "a" && r.dialect == Dialect::Hub && r.headers.is_empty())
        .times(1)
        .returning(|_, _| Ok(answer(503, "busy")));
    fakes
        .upstream
        .expect_chat()
        .withf(|p, r| {
            p.id == "b"
                && r.dialect == Dialect::Anthropic
                && r.headers.len() == 1
                && std::str::from_utf8(&r.body).unwrap().contains("max_tokens")
        })
        .times(1)
        .returning(|_, _| Ok(answer(200, "{}")));
    match fakes.service().chat(native_request(None)).await {
        Ok(ChatReply::Complete { dialect, .. }) => assert_eq!(dialect, Dialect::Anthropic),
        _ => panic!("expected b's own answer"),
    }
}

#[tokio::test]
async fn untranslatable_content_skips_other_vendors_and_says_why_when_none_is_left() {
    let mut upstream = MockUpstreamClient::new();
    upstream.expect_chat().times(0);
    let outcome = service(upstream)
        .chat(native_request(Some(
            "messages[0].content[0].type: document",
        )))
        .await;
    assert_eq!(
        outcome.err(),
        Some(ChatError::Untranslatable(
            "messages[0].content[0].type: document".into()
        ))
    );
}
