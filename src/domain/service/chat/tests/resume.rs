//! Stream resume (SPEC 5.5, opt-in): a committed stream that breaks is carried on by the next
//! candidate with the answer so far, its events spliced in and a marker before the end; without
//! the opt-in the stream ends with `Failed` as before.

use super::*;
use crate::domain::exchange::{Dialect, NativeRequest, UpstreamChatRequest};
use crate::domain::provider::Vendor;

/// A follower with the protocol's verbs over the fakes' plain-text events: the partial answer is
/// every content event's text; a continuation is JSON naming it (`None` once a `tool` event was
/// seen); spliced events are prefixed `spliced:`, and a continuation's preamble is dropped.
pub(super) struct Follower {
    body: Value,
    dialect: Dialect,
    text: String,
    blocked: bool,
}

impl Follower {
    pub(super) fn new(body: Value, dialect: Dialect) -> Self {
        Follower {
            body,
            dialect,
            text: String::new(),
            blocked: false,
        }
    }
}

impl ResumableStream for Follower {
    fn observe(&mut self, event: &UpstreamEvent) {
        let text = String::from_utf8_lossy(&event.bytes);
        if text.contains("tool") {
            self.blocked = true;
        }
        if event.kind == StreamEventKind::Content {
            self.text.push_str(text.trim_end());
        }
    }

    fn continuation(&mut self, model_id: &str, prefill: bool) -> Option<Bytes> {
        if self.blocked {
            return None;
        }
        let mut body = self.body.clone();
        body["model"] = json!(model_id);
        body["partial"] = json!(self.text);
        body["prefill"] = json!(prefill);
        body["dialect"] = json!(format!("{:?}", self.dialect));
        Some(Bytes::from(body.to_string()))
    }

    fn splice(&mut self, event: UpstreamEvent) -> Option<UpstreamEvent> {
        if event.kind == StreamEventKind::Preamble {
            return None;
        }
        let text = format!("spliced:{}", String::from_utf8_lossy(&event.bytes));
        let event = UpstreamEvent {
            bytes: Bytes::from(text),
            ..event
        };
        self.observe(&event);
        Some(event)
    }
}

/// A request that asks for resume with the header.
fn resumed_request() -> ChatRequest {
    ChatRequest {
        stream_resume: true,
        ..request(true, None)
    }
}

/// Remembers the body of every continuation a provider got.
fn expect_continuation(
    upstream: &mut MockUpstreamClient,
    provider_id: &'static str,
    seen: Arc<Mutex<Vec<Value>>>,
    make: fn() -> UpstreamReply,
) {
    upstream
        .expect_chat()
        .withf(move |p, _| p.id == provider_id)
        .times(1)
        .returning(move |_, request: UpstreamChatRequest| {
            let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            seen.lock().unwrap().push(body);
            Ok(make())
        });
}

async fn stream_of(service: &ChatService, request: ChatRequest) -> (ServedBy, Vec<String>) {
    match service.chat(request).await {
        Ok(ChatReply::Stream { served, events, .. }) => (served, collect(events).await),
        Ok(ChatReply::Complete { .. }) => panic!("expected a stream, got a whole answer"),
        Err(error) => panic!("expected a stream, got {error:?}"),
    }
}

#[tokio::test]
async fn with_the_header_a_broken_stream_goes_on_on_the_next_candidate() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(ROLE), Ok(TEXT_A), Err("reset by peer")])
    });
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    expect_continuation(&mut upstream, "b", seen.clone(), || {
        events(vec![Ok(ROLE), Ok(TEXT_B), Ok(DONE)])
    });
    let (served, pieces) = stream_of(&service(upstream), resumed_request()).await;
    assert_eq!((served.provider_id.as_str(), served.attempts), ("a", 1));
    assert_eq!(
        pieces,
        [
            "role\n\n",
            "from a\n\n",
            "spliced:from b\n\n",
            "RESUMED(b, 2)",
            "spliced:done\n\n"
        ]
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    // The continuation is the conversation plus the answer so far, for b's model, in the
    // stream's dialect; b is no Anthropic provider, so no prefill.
    assert_eq!(seen[0]["model"], "b-model");
    assert_eq!(seen[0]["messages"][0]["content"], "hi");
    assert_eq!(seen[0]["partial"], "from a");
    assert_eq!(seen[0]["prefill"], false);
    assert_eq!(seen[0]["dialect"], "Hub");
}

#[tokio::test]
async fn without_the_opt_in_the_stream_still_ends_with_failed() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(ROLE), Ok(TEXT_A), Err("reset by peer")])
    });
    expect_chat(&mut upstream, "b", 0, || events(vec![]));
    let (_, pieces) = stream_of(&service(upstream), request(true, None)).await;
    assert_eq!(pieces, ["role\n\n", "from a\n\n", "FAILED(reset by peer)"]);
}

#[tokio::test]
async fn a_logical_model_with_stream_resume_resumes_without_the_header() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(TEXT_A), Err("reset by peer")])
    });
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    expect_continuation(&mut upstream, "b", seen.clone(), || {
        events(vec![Ok(TEXT_B), Ok(DONE)])
    });
    let mut fakes = Fakes::new(upstream);
    let mut logical = MockLogicalModelStore::new();
    logical.expect_get().returning(|_| {
        let mut model = LogicalModel::dynamic("m", vec![physical("a"), physical("b")], 0.0);
        model.stream_resume = true;
        Ok(Some(model))
    });
    fakes.logical = logical;
    let (_, pieces) = stream_of(&fakes.service(), request(true, None)).await;
    assert_eq!(
        pieces,
        [
            "from a\n\n",
            "spliced:from b\n\n",
            "RESUMED(b, 2)",
            "spliced:done\n\n"
        ]
    );
    assert_eq!(seen.lock().unwrap()[0]["partial"], "from a");
}

#[tokio::test]
async fn an_anthropic_candidate_gets_the_partial_answer_as_a_prefill() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(TEXT_A), Err("reset by peer")])
    });
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    expect_continuation(&mut upstream, "b", seen.clone(), || {
        events(vec![Ok(TEXT_B), Ok(DONE)])
    });
    let mut fakes = Fakes::new(upstream);
    fakes.providers[1].vendor = Vendor::Anthropic;
    let _ = stream_of(&fakes.service(), resumed_request()).await;
    assert_eq!(seen.lock().unwrap()[0]["prefill"], true);
}

#[tokio::test]
async fn an_error_event_after_the_commit_is_a_break_too() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![
            Ok(TEXT_A),
            Ok((StreamEventKind::Error, "overloaded\n\n")),
        ])
    });
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    expect_continuation(&mut upstream, "b", seen.clone(), || {
        events(vec![Ok(TEXT_B), Ok(DONE)])
    });
    let (_, pieces) = stream_of(&service(upstream), resumed_request()).await;
    assert_eq!(
        pieces,
        [
            "from a\n\n",
            "spliced:from b\n\n",
            "RESUMED(b, 2)",
            "spliced:done\n\n"
        ]
    );
}

#[tokio::test]
async fn an_answer_that_is_not_text_only_ends_with_failed_as_before() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![
            Ok((StreamEventKind::Content, "tool call\n\n")),
            Err("reset by peer"),
        ])
    });
    expect_chat(&mut upstream, "b", 0, || events(vec![]));
    let (_, pieces) = stream_of(&service(upstream), resumed_request()).await;
    assert_eq!(pieces, ["tool call\n\n", "FAILED(reset by peer)"]);
}

#[tokio::test]
async fn when_no_candidate_can_carry_it_on_the_stream_ends_with_the_first_failure() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(TEXT_A), Err("reset by peer")])
    });
    expect_chat(&mut upstream, "b", 1, || answer(503, "busy"));
    let (_, pieces) = stream_of(&service(upstream), resumed_request()).await;
    assert_eq!(pieces, ["from a\n\n", "FAILED(reset by peer)"]);
}

#[tokio::test]
async fn a_candidate_tried_before_the_commit_is_not_asked_again() {
    let mut upstream = MockUpstreamClient::new();
    // `a` fails before any content: `b` serves the stream, then breaks with nobody left.
    expect_chat(&mut upstream, "a", 1, || answer(503, "busy"));
    expect_chat(&mut upstream, "b", 1, || {
        events(vec![Ok(TEXT_B), Err("reset by peer")])
    });
    let (served, pieces) = stream_of(&service(upstream), resumed_request()).await;
    assert_eq!((served.provider_id.as_str(), served.attempts), ("b", 2));
    assert_eq!(pieces, ["from b\n\n", "FAILED(reset by peer)"]);
}

#[tokio::test]
async fn a_continuation_that_breaks_too_is_carried_on_by_the_next_one() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(TEXT_A), Err("reset by peer")])
    });
    let seen: Arc<Mutex<Vec<Value>>> = Arc::default();
    expect_continuation(&mut upstream, "b", seen.clone(), || {
        events(vec![Ok(TEXT_B), Err("reset again")])
    });
    expect_continuation(&mut upstream, "c", seen.clone(), || {
        events(vec![Ok((StreamEventKind::Content, "from c\n\n")), Ok(DONE)])
    });
    let mut fakes = Fakes::new(upstream);
    fakes.providers.push(provider("c"));
    let mut logical = MockLogicalModelStore::new();
    logical.expect_get().returning(|_| {
        let upstreams = vec![physical("a"), physical("b"), physical("c")];
        Ok(Some(LogicalModel::dynamic("m", upstreams, 0.0)))
    });
    fakes.logical = logical;
    let (_, pieces) = stream_of(&fakes.service(), resumed_request()).await;
    assert_eq!(
        pieces,
        [
            "from a\n\n",
            "spliced:from b\n\n",
            "spliced:from c\n\n",
            "RESUMED(c, 3)",
            "spliced:done\n\n"
        ]
    );
    let seen = seen.lock().unwrap();
    // The second continuation carries what both earlier upstreams wrote.
    assert_eq!(seen[1]["partial"], "from aspliced:from b");
}

#[tokio::test]
async fn a_continuation_that_breaks_with_nobody_left_ends_with_the_marker_then_failed() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(TEXT_A), Err("reset by peer")])
    });
    expect_chat(&mut upstream, "b", 1, || {
        events(vec![Ok(TEXT_B), Err("reset again")])
    });
    let (_, pieces) = stream_of(&service(upstream), resumed_request()).await;
    assert_eq!(
        pieces,
        [
            "from a\n\n",
            "spliced:from b\n\n",
            "RESUMED(b, 2)",
            "FAILED(reset again)"
        ]
    );
}

/// A stream in a vendor's own dialect goes on only with providers speaking that dialect, and
/// with the client's vendor headers.
#[tokio::test]
async fn a_native_stream_is_carried_on_only_in_its_own_dialect() {
    let mut upstream = MockUpstreamClient::new();
    upstream
        .expect_chat()
        .withf(|p, r| p.id == "a" && r.dialect == Dialect::Anthropic)
        .times(1)
        .returning(|_, _| Ok(events(vec![Ok(TEXT_A), Err("reset by peer")])));
    // `b` speaks only the hub: it cannot continue an Anthropic stream.
    expect_chat(&mut upstream, "b", 0, || events(vec![]));
    upstream
        .expect_chat()
        .withf(|p, r| {
            p.id == "c" && r.dialect == Dialect::Anthropic && r.headers.len() == 1 && r.stream
        })
        .times(1)
        .returning(|_, _| {
            Ok(events(vec![
                Ok((StreamEventKind::Content, "from c\n\n")),
                Ok(DONE),
            ]))
        });
    let mut fakes = Fakes::new(upstream);
    fakes.providers[0].vendor = Vendor::Anthropic;
    fakes.providers.push(ProviderConfig {
        vendor: Vendor::Anthropic,
        ..provider("c")
    });
    let mut logical = MockLogicalModelStore::new();
    logical.expect_get().returning(|_| {
        let upstreams = vec![physical("a"), physical("b"), physical("c")];
        Ok(Some(LogicalModel::dynamic("m", upstreams, 0.0)))
    });
    fakes.logical = logical;
    let mut request = resumed_request();
    request.native = Some(Arc::new(NativeRequest {
        dialect: Dialect::Anthropic,
        body: Arc::new(TestBody(json!({"model": "m", "max_tokens": 5}))),
        headers: vec![("anthropic-beta".into(), "x".into())],
        untranslatable: None,
    }));
    let (_, pieces) = stream_of(&fakes.service(), request).await;
    assert_eq!(
        pieces,
        [
            "from a\n\n",
            "spliced:from c\n\n",
            "RESUMED(c, 2)",
            "spliced:done\n\n"
        ]
    );
}

/// The broken attempt is recorded as a failure, the continuation as a success, and the session
/// follows the stream to the upstream that finished it.
#[tokio::test]
async fn the_session_is_rebound_to_the_upstream_that_carried_the_stream_on() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        events(vec![Ok(TEXT_A), Err("reset by peer")])
    });
    expect_chat(&mut upstream, "b", 1, || events(vec![Ok(TEXT_B), Ok(DONE)]));
    let mut fakes = Fakes::new(upstream);
    fakes.sessions.expect_get().returning(|_| Ok(None));
    let bound: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = bound.clone();
    fakes.sessions.expect_put().returning(move |session, _| {
        record.lock().unwrap().push(session.provider_id);
        Ok(())
    });
    let svc = fakes.service();
    let request = ChatRequest {
        stream_resume: true,
        ..request(true, Some("s"))
    };
    let _ = stream_of(&svc, request).await;
    settle().await;
    assert_eq!(*bound.lock().unwrap(), ["a", "b"]);
}
