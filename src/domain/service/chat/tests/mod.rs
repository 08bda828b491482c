//! The chat use case against mockall fakes of every port: no sockets, no adapters. The stores the
//! chat path writes to are fakes whose state follows the domain's own rules (the circuit state
//! machine, one QPS count per second), so the tests see what routing would see.

mod failover;
mod metering;
mod resume;
mod streams;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde_json::{Value, json};

use super::*;
use crate::domain::exchange::{
    Answer, ChatPayload, ResumableStream, Transcript, TransportError, UpstreamBody, UpstreamEvent,
    UpstreamReply,
};
use crate::domain::failover::StreamEventKind;
use crate::domain::health::{BreakerPolicy, Circuit};
use crate::domain::model::{LogicalModel, PhysicalModel};
use crate::domain::ports::{
    MockCircuitStore, MockClock, MockContextStore, MockKeyLedger, MockLogicalModelStore,
    MockMetricsStore, MockModelCacheStore, MockQpsLimiter, MockRandomSource, MockSessionStore,
    MockUpstreamClient, MockUsageStore,
};
use crate::domain::provider::{ProviderConfig, ProviderRegistry};
use crate::domain::service::catalog::Catalog;

const POLICY: BreakerPolicy = BreakerPolicy {
    failure_threshold: 3,
    cooldown_seconds: 30.0,
    probe_lease_seconds: 600.0,
};

fn provider(id: &str) -> ProviderConfig {
    crate::domain::provider::provider_for_tests(id)
}

fn physical(provider_id: &str) -> PhysicalModel {
    PhysicalModel {
        provider_id: provider_id.into(),
        model_id: format!("{provider_id}-model"),
        endpoint: String::new(),
        base_weight: 1.0,
        region: None,
        max_qps: None,
        meta_hash: None,
        updated_at: 0.0,
        pricing: None,
    }
}

/// A hub request body: JSON whose `model` the domain rewrites.
#[derive(Debug)]
struct TestBody(Value);

impl ChatPayload for TestBody {
    fn model(&self) -> &str {
        self.0["model"].as_str().unwrap_or_default()
    }
    fn with_model(&self, model_id: &str) -> Bytes {
        let mut body = self.0.clone();
        body["model"] = json!(model_id);
        Bytes::from(body.to_string())
    }
    fn to_json(&self) -> Value {
        self.0.clone()
    }
    /// Every dialect resumes with the fake follower (tests/resume.rs).
    fn resumable(&self, dialect: Dialect) -> Option<Box<dyn ResumableStream>> {
        Some(Box::new(resume::Follower::new(self.0.clone(), dialect)))
    }
}

fn request_for(model: &str, stream: bool, session_id: Option<&str>) -> ChatRequest {
    ChatRequest {
        body: Arc::new(TestBody(
            json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
        )),
        stream,
        session_id: session_id.map(str::to_string),
        history: true,
        native: None,
        caller: None,
        stream_resume: false,
        watch: None,
    }
}

fn request(stream: bool, session_id: Option<&str>) -> ChatRequest {
    request_for("m", stream, session_id)
}

/// Usage records are accepted and forgotten.
fn usage_store() -> MockUsageStore {
    let mut usage = MockUsageStore::new();
    usage.expect_record().returning(|_| Ok(()));
    usage
}

/// A whole answer with `status`; an error status carries the message an adapter reads.
fn answer(status: u16, body: &'static str) -> UpstreamReply {
    let error_message = (status >= 400).then(|| body.to_string());
    UpstreamReply::answered(
        status,
        Answer {
            bytes: Bytes::from_static(body.as_bytes()),
            usage: None,
            error_message,
        },
    )
}

/// An answer the adapter could not read (for example a 200 that is not JSON).
fn unreadable(why: &'static str) -> UpstreamReply {
    let mut reply = answer(200, "");
    reply.body = UpstreamBody::Whole(stream::iter([Err(TransportError(why.into()))]).boxed());
    reply
}

const ROLE: (StreamEventKind, &str) = (StreamEventKind::Preamble, "role\n\n");
const TEXT_A: (StreamEventKind, &str) = (StreamEventKind::Content, "from a\n\n");
const TEXT_B: (StreamEventKind, &str) = (StreamEventKind::Content, "from b\n\n");
const DONE: (StreamEventKind, &str) = (StreamEventKind::End, "done\n\n");

/// A 200 stream of classified events, `Err` items being transport failures.
fn events(items: Vec<Result<(StreamEventKind, &'static str), &'static str>>) -> UpstreamReply {
    UpstreamReply::streamed(
        200,
        items
            .into_iter()
            .map(|item| {
                item.map(|(kind, text)| {
                    UpstreamEvent::new(kind, Bytes::from_static(text.as_bytes()))
                })
                .map_err(|e| TransportError(e.into()))
            })
            .collect(),
    )
}

/// Circuits kept by the domain's own state machine, like every real store.
fn circuit_store() -> MockCircuitStore {
    let state: Arc<Mutex<HashMap<String, Circuit>>> = Arc::default();
    let mut store = MockCircuitStore::new();
    let read = state.clone();
    store.expect_circuits().returning(move |ids| {
        let map = read.lock().unwrap();
        Ok(ids
            .iter()
            .map(|id| map.get(id).cloned().unwrap_or_default())
            .collect())
    });
    let write = state.clone();
    store
        .expect_record()
        .returning(move |id, success, now, policy| {
            let mut map = write.lock().unwrap();
            let circuit = map.entry(id.to_string()).or_default();
            *circuit = if success {
                (*circuit).on_success()
            } else {
                (*circuit).on_failure(now, &policy)
            };
            Ok(*circuit)
        });
    store
        .expect_claim_probe()
        .returning(move |id, now, policy| {
            let mut map = state.lock().unwrap();
            let circuit = map.entry(id.to_string()).or_default();
            match (*circuit).claim_probe(now, &policy) {
                Some(claimed) => {
                    *circuit = claimed;
                    Ok(true)
                }
                None => Ok(false),
            }
        });
    store
}

/// One count per provider and calendar second.
fn qps_limiter() -> MockQpsLimiter {
    let counts: Arc<Mutex<HashMap<(String, i64), u32>>> = Arc::default();
    let mut limiter = MockQpsLimiter::new();
    limiter.expect_try_acquire().returning(move |id, max, now| {
        let mut counts = counts.lock().unwrap();
        let count = counts.entry((id.to_string(), now as i64)).or_default();
        *count += 1;
        Ok(*count <= max)
    });
    limiter
}

fn metrics_store() -> MockMetricsStore {
    let mut metrics = MockMetricsStore::new();
    metrics.expect_record().returning(|_, _, _| Ok(()));
    metrics
        .expect_snapshot()
        .returning(|_, ids, _| Ok(vec![None; ids.len()]));
    metrics
        .expect_for_provider()
        .returning(|_, _| Ok(Vec::new()));
    metrics
}

/// Context entries as they are appended, newest first.
fn context_store(entries: Arc<Mutex<Vec<String>>>) -> MockContextStore {
    let mut context = MockContextStore::new();
    context.expect_append().returning(move |_, entry, _, _| {
        entries.lock().unwrap().insert(0, entry);
        Ok(())
    });
    context
}

/// Everything a test may swap; the rest are the fakes above.
struct Fakes {
    upstream: MockUpstreamClient,
    sessions: MockSessionStore,
    logical: MockLogicalModelStore,
    providers: Vec<ProviderConfig>,
    cache: MockModelCacheStore,
    qps: MockQpsLimiter,
    context: Arc<Mutex<Vec<String>>>,
    /// Untouched unless a test sends a virtual key.
    ledger: MockKeyLedger,
    usage: MockUsageStore,
}

impl Fakes {
    /// Providers `a` and `b` and a logical model `m` whose pick is always `a` first.
    fn new(upstream: MockUpstreamClient) -> Self {
        let mut logical = MockLogicalModelStore::new();
        logical.expect_get().returning(|id| {
            Ok((id == "m")
                .then(|| LogicalModel::dynamic("m", vec![physical("a"), physical("b")], 0.0)))
        });
        Fakes {
            upstream,
            sessions: MockSessionStore::new(),
            logical,
            providers: vec![provider("a"), provider("b")],
            cache: MockModelCacheStore::new(),
            qps: qps_limiter(),
            context: Arc::default(),
            ledger: MockKeyLedger::new(),
            usage: usage_store(),
        }
    }

    /// The chat service over the fakes, with a fixed clock and a pick that is always the first
    /// candidate.
    fn service(self) -> ChatService {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(1000.0);
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let mut random = MockRandomSource::new();
        random.expect_unit().return_const(0.0);
        let upstream: Arc<dyn UpstreamClient> = Arc::new(self.upstream);
        let sessions: Arc<dyn SessionStore> = Arc::new(self.sessions);
        let metrics: Arc<dyn MetricsStore> = Arc::new(metrics_store());
        let circuits: Arc<dyn CircuitStore> = Arc::new(circuit_store());
        let catalog = Catalog::new(
            Arc::new(ProviderRegistry::new(self.providers)),
            Arc::new(self.logical),
            Arc::new(self.cache),
            upstream.clone(),
            clock.clone(),
            Duration::from_secs(300),
        );
        let planner = Planner::new(
            Arc::new(catalog),
            sessions.clone(),
            metrics.clone(),
            circuits.clone(),
            clock.clone(),
            Arc::new(random),
            POLICY,
        );
        let stores = ChatStores {
            sessions,
            metrics,
            circuits,
            qps: Arc::new(self.qps),
            context: Arc::new(context_store(self.context)),
            ledger: Arc::new(self.ledger),
            usage: Arc::new(self.usage),
        };
        ChatService::new(
            Arc::new(planner),
            upstream,
            stores,
            clock,
            ChatSettings::default(),
        )
    }
}

fn service(upstream: MockUpstreamClient) -> ChatService {
    Fakes::new(upstream).service()
}

fn expect_chat(
    upstream: &mut MockUpstreamClient,
    provider_id: &'static str,
    times: usize,
    make: fn() -> UpstreamReply,
) {
    upstream
        .expect_chat()
        .withf(move |p, _| p.id == provider_id)
        .times(times)
        .returning(move |_, _| Ok(make()));
}

/// Lets the background bookkeeping tasks run (the test runtime has one thread).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

/// A stream's pieces: events as text, a failure as `FAILED(reason)`.
async fn collect(pieces: BoxStream<'static, Relayed>) -> Vec<String> {
    pieces
        .map(|piece| match piece {
            Relayed::Event(bytes) => String::from_utf8_lossy(&bytes).to_string(),
            Relayed::Failed(reason) => format!("FAILED({reason})"),
            Relayed::Resumed {
                provider_id,
                attempts,
            } => format!("RESUMED({provider_id}, {attempts})"),
        })
        .collect()
        .await
}

/// A transcript that keeps every event's text: what the context gets is what it finished with.
struct Joined(String);

impl Transcript for Joined {
    fn observe(&mut self, event: &UpstreamEvent) {
        self.0.push_str(&String::from_utf8_lossy(&event.bytes));
    }
    fn finish(self: Box<Self>) -> Value {
        json!({"message": {"content": self.0}})
    }
}
