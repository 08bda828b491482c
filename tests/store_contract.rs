//! One contract for every store port, run against the in-memory and the Redis adapters, so the two
//! backends cannot drift apart. The Redis runs use a throwaway `redis-server` per test.

// Shared with tests/blackbox, which uses parts this suite does not.
#[allow(dead_code)]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use apiproxy::domain::health::{AttemptSample, BreakerPolicy, Circuit, ProviderStatus};
use apiproxy::domain::model::{LogicalModel, Model, PhysicalModel};
use apiproxy::domain::ports::{
    CachedModelList, CircuitStore, Clock, ContextStore, LogicalModelStore, MetricsStore,
    ModelCacheStore, ModelListEntry, QpsLimiter, SessionStore,
};
use apiproxy::domain::session::Session;
use apiproxy::outbound::memory::MemoryStores;
use apiproxy::outbound::redis::RedisStores;
use apiproxy::outbound::system::SystemClock;
use redis_server::RedisServer;

struct Stores {
    logical: Arc<dyn LogicalModelStore>,
    cache: Arc<dyn ModelCacheStore>,
    sessions: Arc<dyn SessionStore>,
    context: Arc<dyn ContextStore>,
    metrics: Arc<dyn MetricsStore>,
    circuits: Arc<dyn CircuitStore>,
    qps: Arc<dyn QpsLimiter>,
    // Keeps the Redis server alive for the test.
    _server: Option<RedisServer>,
}

fn clock() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

fn memory() -> Stores {
    let m = MemoryStores::new(clock());
    Stores {
        logical: m.logical_models,
        cache: m.model_cache,
        sessions: m.sessions,
        context: m.context,
        metrics: m.metrics,
        circuits: m.circuits,
        qps: m.qps,
        _server: None,
    }
}

fn redis() -> Stores {
    let server = RedisServer::start();
    let r = RedisStores::new(&server.url(), 8, clock()).expect("redis pool");
    Stores {
        logical: r.logical_models,
        cache: r.model_cache,
        sessions: r.sessions,
        context: r.context,
        metrics: r.metrics,
        circuits: r.circuits,
        qps: r.qps,
        _server: Some(server),
    }
}

/// Runs one contract function against both backends.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod memory_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&super::memory()).await })*
        }
        mod redis_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&super::redis()).await })*
        }
    };
}

contract!(
    logical_models_are_stored_listed_replaced_and_deleted,
    model_lists_and_remembered_failures_expire_with_their_ttl,
    the_aggregated_list_is_stored_and_cleared,
    sessions_live_for_their_ttl_and_can_be_deleted,
    context_keeps_the_newest_entries_first_up_to_the_cap,
    metrics_aggregate_what_was_recorded_per_logical_model_and_provider,
    circuits_open_after_the_threshold_and_only_one_probe_wins,
    the_qps_limiter_admits_exactly_max_under_a_concurrent_burst,
);

fn now() -> f64 {
    SystemClock.now()
}

fn logical(id: &str, weight: f64) -> LogicalModel {
    let upstream = PhysicalModel {
        provider_id: "p".into(),
        model_id: "m".into(),
        endpoint: String::new(),
        base_weight: weight,
        region: Some("eu".into()),
        max_qps: None,
        meta_hash: None,
        updated_at: 1.0,
    };
    LogicalModel::dynamic(id, vec![upstream], 1.0)
}

async fn logical_models_are_stored_listed_replaced_and_deleted(s: &Stores) {
    assert_eq!(s.logical.get("gpt").await.unwrap(), None);
    s.logical.put(logical("gpt", 1.0)).await.unwrap();
    s.logical.put(logical("claude", 2.0)).await.unwrap();
    assert_eq!(
        s.logical.get("gpt").await.unwrap(),
        Some(logical("gpt", 1.0))
    );
    s.logical.put(logical("gpt", 5.0)).await.unwrap();
    assert_eq!(
        s.logical.get("gpt").await.unwrap().unwrap().upstreams[0].base_weight,
        5.0
    );
    let mut ids: Vec<String> = s
        .logical
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.logical_id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["claude", "gpt"]);
    assert!(s.logical.delete("gpt").await.unwrap());
    assert!(!s.logical.delete("gpt").await.unwrap());
    assert_eq!(s.logical.get("gpt").await.unwrap(), None);
    assert_eq!(s.logical.list().await.unwrap().len(), 1);
}

fn model(id: &str) -> Model {
    apiproxy::protocol::models::model_from_entry(
        "p",
        &serde_json::json!({"id": id, "context_length": 4096}),
    )
    .unwrap()
}

async fn model_lists_and_remembered_failures_expire_with_their_ttl(s: &Stores) {
    assert_eq!(s.cache.provider_models("p").await.unwrap(), None);
    let list = CachedModelList::Models {
        models: vec![model("a"), model("b")],
    };
    s.cache
        .put_provider_models("p", list.clone(), Duration::from_secs(1))
        .await
        .unwrap();
    let failed = CachedModelList::Failed {
        reason: "HTTP 500: down".into(),
    };
    s.cache
        .put_provider_models("q", failed.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(s.cache.provider_models("p").await.unwrap(), Some(list));
    assert_eq!(s.cache.provider_models("q").await.unwrap(), Some(failed));
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        s.cache.provider_models("p").await.unwrap(),
        None,
        "expired with its TTL"
    );
}

async fn the_aggregated_list_is_stored_and_cleared(s: &Stores) {
    assert_eq!(s.cache.aggregate().await.unwrap(), None);
    let entries = vec![ModelListEntry {
        id: "gpt".into(),
        object: "model".into(),
        created: 5,
        owned_by: "apiproxy".into(),
    }];
    s.cache
        .put_aggregate(entries.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(s.cache.aggregate().await.unwrap(), Some(entries));
    s.cache.clear_aggregate().await.unwrap();
    assert_eq!(s.cache.aggregate().await.unwrap(), None);
}

async fn sessions_live_for_their_ttl_and_can_be_deleted(s: &Stores) {
    let session = Session::bind(None, "conv", "gpt", "p", "m", 10.0);
    assert_eq!(s.sessions.get("conv").await.unwrap(), None);
    s.sessions
        .put(session.clone(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(s.sessions.get("conv").await.unwrap(), Some(session.clone()));
    assert!(s.sessions.delete("conv").await.unwrap());
    assert!(!s.sessions.delete("conv").await.unwrap());
    s.sessions
        .put(session, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        s.sessions.get("conv").await.unwrap(),
        None,
        "expired with its TTL"
    );
}

async fn context_keeps_the_newest_entries_first_up_to_the_cap(s: &Stores) {
    for n in 1..=3 {
        s.context
            .append("conv", format!("{{\"n\":{n}}}"), 2, Duration::from_secs(30))
            .await
            .unwrap();
    }
    assert_eq!(
        s.context.history("conv").await.unwrap(),
        ["{\"n\":3}", "{\"n\":2}"]
    );
    assert!(s.context.history("other").await.unwrap().is_empty());
    assert!(s.context.delete("conv").await.unwrap());
    assert!(s.context.history("conv").await.unwrap().is_empty());
    s.context
        .append("short", "{}".into(), 5, Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(
        s.context.history("short").await.unwrap().is_empty(),
        "expired with its TTL"
    );
}

async fn metrics_aggregate_what_was_recorded_per_logical_model_and_provider(s: &Stores) {
    let at = now();
    for (latency, success) in [(100.0, true), (120.0, true), (90.0, true), (0.0, false)] {
        let sample = AttemptSample {
            at,
            latency_ms: latency,
            ttfb_ms: latency,
            success,
        };
        s.metrics.record("gpt", "p", sample).await.unwrap();
    }
    s.metrics
        .record(
            "claude",
            "p",
            AttemptSample {
                at,
                latency_ms: 50.0,
                ttfb_ms: 50.0,
                success: true,
            },
        )
        .await
        .unwrap();
    let providers = vec!["p".to_string(), "silent".to_string()];
    let snapshot = s.metrics.snapshot("gpt", &providers, at).await.unwrap();
    let figures = snapshot[0].as_ref().expect("figures for p");
    assert_eq!(figures.total_requests_1m, 4);
    assert!((figures.error_rate - 0.25).abs() < 1e-9);
    assert!(
        figures.latency_p95_ms > 100.0 && figures.latency_p95_ms <= 150.0,
        "{}",
        figures.latency_p95_ms
    );
    assert_eq!(figures.status, ProviderStatus::Degraded);
    assert!(snapshot[1].is_none(), "no attempts, no figures");
    let mut per_model: Vec<String> = s
        .metrics
        .for_provider("p", at)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.logical_model)
        .collect();
    per_model.sort();
    assert_eq!(per_model, ["claude", "gpt"]);
    assert!(
        s.metrics
            .for_provider("p", at + 120.0)
            .await
            .unwrap()
            .is_empty(),
        "the window moved on"
    );
}

const POLICY: BreakerPolicy = BreakerPolicy {
    failure_threshold: 3,
    cooldown_seconds: 30.0,
    probe_lease_seconds: 600.0,
};

async fn circuits_open_after_the_threshold_and_only_one_probe_wins(s: &Stores) {
    let ids = vec!["fresh".to_string()];
    assert_eq!(
        s.circuits.circuits(&ids).await.unwrap(),
        vec![Circuit::default()]
    );
    let t = 1000.0;
    assert_eq!(
        s.circuits.record("p", false, t, POLICY).await.unwrap(),
        Circuit::Closed {
            consecutive_failures: 1
        }
    );
    s.circuits.record("p", false, t, POLICY).await.unwrap();
    assert_eq!(
        s.circuits.record("p", false, t, POLICY).await.unwrap(),
        Circuit::Open { until: t + 30.0 }
    );
    assert_eq!(
        s.circuits.circuits(&["p".to_string()]).await.unwrap(),
        vec![Circuit::Open { until: t + 30.0 }]
    );
    assert!(
        !s.circuits.claim_probe("p", t + 10.0, POLICY).await.unwrap(),
        "still cooling down"
    );
    // Ten requests race for the probe once the cool-down is over: exactly one wins.
    let mut racers = Vec::new();
    for _ in 0..10 {
        let circuits = s.circuits.clone();
        racers.push(tokio::spawn(async move {
            circuits.claim_probe("p", t + 31.0, POLICY).await.unwrap()
        }));
    }
    let mut winners = 0;
    for racer in racers {
        winners += usize::from(racer.await.unwrap());
    }
    assert_eq!(winners, 1);
    assert_eq!(
        s.circuits
            .record("p", true, t + 32.0, POLICY)
            .await
            .unwrap(),
        Circuit::default(),
        "the probe closed it"
    );
    assert_eq!(
        s.circuits.record("q", true, t, POLICY).await.unwrap(),
        Circuit::default()
    );
}

async fn the_qps_limiter_admits_exactly_max_under_a_concurrent_burst(s: &Stores) {
    // A fixed second well inside its own window, so the burst cannot straddle two seconds.
    let second = 2_000_000_000.5;
    let mut burst = Vec::new();
    for _ in 0..20 {
        let qps = s.qps.clone();
        burst.push(tokio::spawn(async move {
            qps.try_acquire("p", 5, second).await.unwrap()
        }));
    }
    let mut admitted = 0;
    for request in burst {
        admitted += usize::from(request.await.unwrap());
    }
    assert_eq!(admitted, 5);
    assert!(
        s.qps.try_acquire("p", 5, second + 1.0).await.unwrap(),
        "the next second starts afresh"
    );
    assert!(
        s.qps.try_acquire("other", 5, second).await.unwrap(),
        "limits are per provider"
    );
}
