//! A virtual key's models, limits and budget around the chat use case: refused before any
//! upstream is asked, reserved before, settled after with the real cost, and given back when
//! nobody answered or the client went away mid-stream.

use std::sync::Mutex as StdMutex;

use super::*;
use crate::domain::keys::{BudgetPeriod, VirtualKey};
use crate::domain::metering::{Allowance, Limit, Settlement, UsageRecord, Verdict};
use crate::domain::usage::Usage;

fn key(models: Option<Vec<&str>>) -> Arc<VirtualKey> {
    Arc::new(VirtualKey {
        id: "key_1".into(),
        name: "k".into(),
        team: Some("red".into()),
        prefix: "sk-apx-abc".into(),
        secret_hash: "h".into(),
        models: models.map(|m| m.into_iter().map(str::to_string).collect()),
        rpm: None,
        tpm: Some(1000),
        max_parallel: Some(2),
        budget_usd: Some(10.0),
        budget_period: BudgetPeriod::Monthly,
        expires_at: None,
        enabled: true,
        created_at: 0.0,
        metadata: None,
    })
}

type Seen<T> = Arc<StdMutex<Vec<T>>>;

/// Fakes where provider `a` costs 1 USD per 1M tokens in and 2 out, and the ledger admits and
/// records every settlement.
fn priced(upstream: MockUpstreamClient) -> (Fakes, Seen<Settlement>, Seen<UsageRecord>) {
    let mut fakes = Fakes::new(upstream);
    fakes.providers[0].cost_input = Some(1.0);
    fakes.providers[0].cost_output = Some(2.0);
    let settled: Seen<Settlement> = Arc::default();
    let recorded: Seen<UsageRecord> = Arc::default();
    fakes
        .ledger
        .expect_admit()
        .returning(|_| Ok(Verdict::Admitted(Allowance::default())));
    let into = settled.clone();
    fakes.ledger.expect_settle().returning(move |s| {
        into.lock().unwrap().push(s.clone());
        Ok(())
    });
    let mut usage = MockUsageStore::new();
    let into = recorded.clone();
    usage.expect_record().returning(move |r| {
        into.lock().unwrap().push(r.clone());
        Ok(())
    });
    fakes.usage = usage;
    (fakes, settled, recorded)
}

fn keyed(stream: bool, key: Arc<VirtualKey>) -> ChatRequest {
    ChatRequest {
        caller: Some(key),
        ..request(stream, None)
    }
}

#[tokio::test]
async fn a_model_outside_the_keys_list_is_refused_before_any_upstream() {
    let service = service(MockUpstreamClient::new());
    let error = service
        .chat(keyed(false, key(Some(vec!["gpt-*"]))))
        .await
        .err()
        .unwrap();
    assert_eq!(
        error,
        ChatError::KeyRefused(KeyRefusal::ModelNotAllowed("m".into()))
    );
}

#[tokio::test]
async fn an_exhausted_budget_refuses_until_the_period_ends_and_asks_no_upstream() {
    let mut fakes = Fakes::new(MockUpstreamClient::new());
    fakes.providers[0].cost_output = Some(2.0);
    fakes.ledger.expect_admit().returning(|charge| {
        // The reservation is the estimate at the dearest candidate's price.
        let budget = charge.budget.clone().unwrap();
        assert!(budget.reserve > 0 && budget.period.id.starts_with("m:"));
        Ok(Verdict::Refused {
            limit: Limit::Budget,
            retry_after: 0,
            allowance: Allowance::default(),
        })
    });
    let error = fakes
        .service()
        .chat(keyed(false, key(None)))
        .await
        .err()
        .unwrap();
    match error {
        ChatError::KeyRefused(KeyRefusal::Limited {
            limit: Limit::Budget,
            retry_after: Some(seconds),
            ..
        }) => assert!(seconds > 0 && seconds <= 31 * 86_400),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_answer_settles_its_real_cost_and_frees_its_slot() {
    let mut upstream = MockUpstreamClient::new();
    upstream.expect_chat().times(1).returning(|_, _| {
        let usage = Usage {
            prompt_tokens: 1_000,
            completion_tokens: 500,
            ..Usage::default()
        };
        Ok(UpstreamReply::answered(
            200,
            Answer {
                bytes: Bytes::from_static(b"{}"),
                usage: Some(usage),
                error_message: None,
            },
        ))
    });
    let (fakes, settled, recorded) = priced(upstream);
    let reply = fakes.service().chat(keyed(false, key(None))).await;
    assert!(matches!(reply, Ok(ChatReply::Complete { .. })));
    settle().await;
    let settled = settled.lock().unwrap();
    assert_eq!(settled.len(), 1);
    // 1000 × 1 + 500 × 2 USD per 1M tokens = 0.002 USD.
    assert_eq!(settled[0].cost, 2_000_000);
    assert!(settled[0].reserved > 0 && settled[0].release_parallel);
    assert_eq!(settled[0].tokens, Some(1_500));
    let recorded = recorded.lock().unwrap();
    assert_eq!(
        (
            recorded[0].key.as_str(),
            recorded[0].team.as_deref(),
            recorded[0].provider.as_str()
        ),
        ("key_1", Some("red"), "a")
    );
}

#[tokio::test]
async fn when_nobody_answers_the_reservation_comes_back_and_nothing_is_charged() {
    let mut upstream = MockUpstreamClient::new();
    expect_chat(&mut upstream, "a", 1, || answer(503, "down"));
    expect_chat(&mut upstream, "b", 1, || answer(503, "down"));
    let (fakes, settled, recorded) = priced(upstream);
    assert!(fakes.service().chat(keyed(false, key(None))).await.is_err());
    settle().await;
    let settled = settled.lock().unwrap();
    assert_eq!(settled.len(), 1);
    assert_eq!(settled[0].cost, 0);
    assert!(settled[0].release_parallel);
    assert!(recorded.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_stream_the_client_abandons_is_settled_with_what_it_used() {
    let mut upstream = MockUpstreamClient::new();
    upstream.expect_chat().times(1).returning(|_, _| {
        let mut first = UpstreamEvent::new(StreamEventKind::Content, Bytes::from_static(b"a\n\n"));
        first.usage = Some(Usage {
            prompt_tokens: 100,
            ..Usage::default()
        });
        let second = UpstreamEvent::new(StreamEventKind::Content, Bytes::from_static(b"b\n\n"));
        Ok(UpstreamReply::streamed(200, vec![Ok(first), Ok(second)]))
    });
    let (fakes, settled, _) = priced(upstream);
    let Ok(ChatReply::Stream { mut events, .. }) =
        fakes.service().chat(keyed(true, key(None))).await
    else {
        panic!("a stream");
    };
    assert!(events.next().await.is_some());
    drop(events);
    settle().await;
    let settled = settled.lock().unwrap();
    assert_eq!(
        settled.len(),
        1,
        "settled once, when the stream was dropped"
    );
    assert_eq!(settled[0].cost, 100_000, "100 input tokens at 1 USD per 1M");
    assert!(settled[0].release_parallel);
}
