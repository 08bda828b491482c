//! Whole answers: the model rewritten, failover on retryable outcomes, relaying, verdicts, the
//! breaker, MAX_QPS and name bounds.

use super::*;

#[tokio::test]
async fn a_healthy_first_candidate_answers_and_the_model_is_rewritten() {
    let mut upstream = MockUpstreamClient::new();
    upstream
        .expect_chat()
        .withf(|p, r| {
            p.id == "a"
                && r.model_id == "a-model"
                && r.dialect == Dialect::Hub
                && std::str::from_utf8(&r.body)
                    .unwrap()
                    .contains("\"model\":\"a-model\"")
        })
        .times(1)
        .returning(|_, _| Ok(answer(200, "{\"ok\":true}")));
    match service(upstream).chat(request(false, None)).await {
        Ok(ChatReply::Complete {
            served,
            status,
            body,
            ..
        }) => {
            assert_eq!(
                (served.provider_id.as_str(), served.attempts, status),
                ("a", 1, 200)
            );
            assert_eq!(&body[..], b"{\"ok\":true}");
        }
        _ => panic!("expected a complete answer"),
    }
}

#[tokio::test]
async fn a_retryable_status_fails_over_and_rebinds_the_session() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || answer(503, "busy"));
    expect_chat(&mut upstream, "b", 1, || answer(200, "{\"ok\":1}"));
    let mut fakes = Fakes::new(upstream);
    fakes.sessions.expect_get().times(1).returning(|_| Ok(None));
    fakes
        .sessions
        .expect_put()
        .withf(|s, ttl| {
            s.provider_id == "b"
                && s.model_id == "b-model"
                && s.conversation_id == "c1"
                && *ttl == Duration::from_secs(7200)
        })
        .times(1)
        .returning(|_, _| Ok(()));
    let svc = fakes.service();
    match svc.chat(request(false, Some("c1"))).await {
        Ok(ChatReply::Complete { served, .. }) => {
            assert_eq!((served.provider_id.as_str(), served.attempts), ("b", 2))
        }
        _ => panic!("expected b to answer"),
    }
    // The binding is written in the background; the mock checks its one call when dropped.
    settle().await;
    drop(svc);
}

#[tokio::test]
async fn a_transport_error_and_an_unreadable_answer_both_fail_over() {
    // Each failure on the first candidate; the second answers, so the failover itself is seen.
    let failures: [fn(&mut MockUpstreamClient); 2] = [
        |upstream| {
            upstream
                .expect_chat()
                .withf(|p, _| p.id == "a")
                .times(1)
                .returning(|_, _| Err(TransportError("connection refused".into())));
        },
        |upstream| {
            expect_chat(upstream, "a", 1, || {
                unreadable("upstream answered 200 with a body that is not JSON")
            })
        },
    ];
    for (case, fail_a) in failures.into_iter().enumerate() {
        let mut upstream = MockUpstreamClient::new();
        fail_a(&mut upstream);
        expect_chat(&mut upstream, "b", 1, || answer(200, "{}"));
        match service(upstream).chat(request(false, None)).await {
            Ok(ChatReply::Complete { served, .. }) => assert_eq!(
                (served.provider_id.as_str(), served.attempts),
                ("b", 2),
                "case {case}"
            ),
            _ => panic!("case {case}: expected b to answer after a failed"),
        }
    }
    // Unreadable from the last candidate too: every candidate failed, and the message says why.
    let mut upstream = MockUpstreamClient::new();
    for id in ["a", "b"] {
        upstream
            .expect_chat()
            .withf(move |p, _| p.id == id)
            .times(1)
            .returning(|_, _| {
                Ok(unreadable(
                    "upstream answered 200 with a body that is not JSON",
                ))
            });
    }
    match service(upstream).chat(request(false, None)).await {
        Err(ChatError::AllFailed {
            attempts,
            verdict: AllFailed::Upstream { message, .. },
        }) => {
            assert_eq!(attempts, 2);
            assert!(message.contains("not JSON"), "{message}");
        }
        _ => panic!("expected every candidate to fail"),
    }
}

#[tokio::test]
async fn a_non_retryable_4xx_is_relayed_without_trying_anyone_else() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || {
        answer(400, "{\"error\":{\"message\":\"bad temperature\"}}")
    });
    expect_chat(&mut upstream, "b", 0, || answer(200, "{}"));
    match service(upstream).chat(request(true, None)).await {
        Err(ChatError::UpstreamRejected {
            status,
            body,
            served,
            ..
        }) => {
            assert_eq!((status, served.provider_id.as_str()), (400, "a"));
            assert!(String::from_utf8_lossy(&body).contains("bad temperature"));
        }
        _ => panic!("expected the 400 to be relayed"),
    }
}

#[tokio::test]
async fn anthropic_overloaded_529_fails_over_like_a_503() {
    let mut fakes = Fakes::new(MockUpstreamClient::new());
    fakes.providers[0].vendor = crate::domain::provider::Vendor::Anthropic;
    fakes.providers[0].retry = crate::domain::provider::RetryPolicy::default_for("anthropic");
    expect_chat(&mut fakes.upstream, "a", 1, || answer(529, "overloaded"));
    expect_chat(&mut fakes.upstream, "b", 1, || answer(200, "{}"));
    match fakes.service().chat(request(false, None)).await {
        Ok(ChatReply::Complete { served, .. }) => assert_eq!(served.attempts, 2),
        _ => panic!("expected b to answer after a's 529"),
    }
}

#[tokio::test]
async fn when_everyone_fails_the_verdict_names_the_model_and_last_error() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || answer(500, "a down"));
    expect_chat(&mut upstream, "b", 1, || answer(502, "b down"));
    match service(upstream).chat(request(false, None)).await {
        Err(ChatError::AllFailed {
            attempts: 2,
            verdict:
                AllFailed::Upstream {
                    last_status,
                    message,
                },
        }) => {
            assert_eq!(last_status, Some(502));
            assert!(
                message.contains("'m'") && message.contains("b down"),
                "{message}"
            );
        }
        _ => panic!("expected all to fail"),
    }
}

#[tokio::test]
async fn when_everyone_answers_429_the_client_gets_rate_limited() {
    let mut upstream = MockUpstreamClient::new();
    upstream.expect_chat().times(2).returning(|_, _| {
        let mut r = answer(429, "{}");
        r.retry_after = Some(4);
        Ok(r)
    });
    let outcome = service(upstream).chat(request(false, None)).await;
    assert!(matches!(
        outcome,
        Err(ChatError::AllFailed {
            verdict: AllFailed::RateLimited { retry_after: 4, .. },
            ..
        })
    ));
}

#[tokio::test]
async fn an_unknown_model_is_not_found_without_calling_upstreams_for_chat() {
    let mut upstream = MockUpstreamClient::new();
    upstream.expect_chat().times(0);
    upstream.expect_list_models().returning(|_| Ok(Vec::new()));
    let mut fakes = Fakes::new(upstream);
    fakes.logical = MockLogicalModelStore::new();
    fakes.logical.expect_get().returning(|_| Ok(None));
    fakes.providers = vec![provider("a")];
    fakes.cache.expect_provider_models().returning(|_| Ok(None));
    fakes
        .cache
        .expect_put_provider_models()
        .returning(|_, _, _| Ok(()));
    let outcome = fakes.service().chat(request_for("nope", false, None)).await;
    assert_eq!(outcome.err(), Some(ChatError::ModelNotFound("nope".into())));
}

#[tokio::test]
async fn a_provider_failing_past_the_threshold_is_passed_over_during_its_cooldown() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 3, || answer(500, "{}"));
    expect_chat(&mut upstream, "b", 5, || answer(200, "{\"ok\":1}"));
    let svc = service(upstream);
    for expected_attempts in [2, 2, 2, 1, 1] {
        settle().await;
        match svc.chat(request(false, None)).await {
            Ok(ChatReply::Complete { served, .. }) => {
                assert_eq!(
                    (served.provider_id.as_str(), served.attempts),
                    ("b", expected_attempts)
                );
            }
            _ => panic!("b should answer"),
        }
    }
}

/// `a` alone, at `max_qps`, with the given limiter.
fn limited(max_qps: u32, upstream: MockUpstreamClient, qps: MockQpsLimiter) -> ChatService {
    let mut fakes = Fakes::new(upstream);
    fakes.providers = vec![provider("a")];
    fakes.providers[0].max_qps = Some(max_qps);
    fakes.logical = MockLogicalModelStore::new();
    fakes
        .logical
        .expect_get()
        .returning(|_| Ok(Some(LogicalModel::dynamic("m", vec![physical("a")], 0.0))));
    fakes.qps = qps;
    fakes.service()
}

#[tokio::test]
async fn a_provider_at_its_max_qps_is_passed_over_and_all_limited_is_429() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 2, || answer(200, "{}"));
    let svc = limited(2, upstream, qps_limiter());
    for _ in 0..2 {
        assert!(svc.chat(request(false, None)).await.is_ok());
    }
    // The clock stands still: the third request is in the same second.
    match svc.chat(request(false, None)).await {
        Err(ChatError::AllFailed {
            verdict:
                AllFailed::RateLimited {
                    retry_after,
                    message,
                },
            ..
        }) => {
            assert_eq!(retry_after, 1);
            assert!(message.contains("MAX_QPS"), "{message}");
        }
        _ => panic!("expected 429"),
    }
}

#[tokio::test]
async fn a_failing_qps_limiter_limits_rather_than_letting_everything_through() {
    let mut qps = MockQpsLimiter::new();
    qps.expect_try_acquire()
        .returning(|_, _, _| Err(crate::domain::ports::StoreError("down".into())));
    let svc = limited(1000, MockUpstreamClient::new(), qps);
    match svc.chat(request(false, None)).await {
        Err(ChatError::AllFailed {
            verdict: AllFailed::RateLimited { .. },
            ..
        }) => {}
        Err(other) => panic!("expected 429, got {other:?}"),
        Ok(_) => panic!("expected 429, got an answer"),
    }
}

#[tokio::test]
async fn a_model_name_out_of_bounds_is_refused_before_any_store_or_upstream() {
    let mut fakes = Fakes::new(MockUpstreamClient::new());
    fakes.logical = MockLogicalModelStore::new();
    let svc = fakes.service();
    match svc.chat(request_for("a/../../admin?x", false, None)).await {
        Err(ChatError::InvalidName(error)) => assert_eq!(error.field, "model"),
        Err(other) => panic!("expected InvalidName, got {other:?}"),
        Ok(_) => panic!("expected InvalidName, got an answer"),
    }
}
