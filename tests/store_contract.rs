//! One contract for every store port, run against the in-memory and the Redis adapters, so the two
//! backends cannot drift apart. The Redis runs use a throwaway `redis-server` per test, and again a
//! throwaway three-master Redis Cluster per test (where every pipeline, transaction and script
//! must keep to one hash slot).

// Shared with tests/blackbox, which uses parts this suite does not.
#[allow(dead_code)]
#[path = "common/redis_cluster.rs"]
mod redis_cluster;
#[allow(dead_code)]
#[path = "common/redis_server.rs"]
mod redis_server;

use std::sync::Arc;
use std::time::Duration;

use apiproxy::domain::health::{AttemptSample, BreakerPolicy, Circuit, ProviderStatus};
use apiproxy::domain::keys::{BudgetPeriod, PeriodWindow, VirtualKey, secret_hash};
use apiproxy::domain::metering::{
    BudgetCharge, Charge, Limit, Settlement, UsageGroup, UsageRecord, UsageTotals, Verdict,
};
use apiproxy::domain::model::{LogicalModel, Model, PhysicalModel};
use apiproxy::domain::ports::{
    CachedModelList, CircuitStore, Clock, ContextStore, KeyLedger, KeyStore, LogicalModelStore,
    MetricsStore, ModelCacheStore, ModelListEntry, QpsLimiter, SessionStore, StoreStatus,
    UsageStore,
};
use apiproxy::domain::session::Session;
use apiproxy::domain::usage::Usage;
use apiproxy::outbound::memory::MemoryStores;
use apiproxy::outbound::redis::{RedisStatus, RedisStores, RedisTarget};
use apiproxy::outbound::system::SystemClock;
use redis_cluster::RedisCluster;
use redis_server::RedisServer;

struct Stores {
    logical: Arc<dyn LogicalModelStore>,
    cache: Arc<dyn ModelCacheStore>,
    sessions: Arc<dyn SessionStore>,
    context: Arc<dyn ContextStore>,
    metrics: Arc<dyn MetricsStore>,
    circuits: Arc<dyn CircuitStore>,
    qps: Arc<dyn QpsLimiter>,
    keys: Arc<dyn KeyStore>,
    ledger: Arc<dyn KeyLedger>,
    usage: Arc<dyn UsageStore>,
    // Keep the Redis server or cluster alive for the test.
    _server: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
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
        keys: m.keys,
        ledger: m.ledger,
        usage: m.usage,
        _server: None,
        _cluster: None,
    }
}

fn redis() -> Stores {
    let server = RedisServer::start();
    let r = RedisStores::new(
        &RedisTarget::from_url(&server.url()).expect("a Redis URL"),
        8,
        clock(),
    )
    .expect("redis pool");
    Stores {
        logical: r.logical_models,
        cache: r.model_cache,
        sessions: r.sessions,
        context: r.context,
        metrics: r.metrics,
        circuits: r.circuits,
        qps: r.qps,
        keys: r.keys,
        ledger: r.ledger,
        usage: r.usage,
        _server: Some(server),
        _cluster: None,
    }
}

fn redis_cluster() -> Stores {
    let cluster = tokio::task::block_in_place(|| RedisCluster::start(3, 0, None));
    let target = RedisTarget::from_cluster_nodes(&cluster.seeds()).expect("cluster seeds");
    let r = RedisStores::new(&target, 8, clock()).expect("redis cluster pool");
    Stores {
        logical: r.logical_models,
        cache: r.model_cache,
        sessions: r.sessions,
        context: r.context,
        metrics: r.metrics,
        circuits: r.circuits,
        qps: r.qps,
        keys: r.keys,
        ledger: r.ledger,
        usage: r.usage,
        _server: None,
        _cluster: Some(cluster),
    }
}

/// Runs one contract function against every backend.
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
        mod redis_cluster_backend {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() { super::$name(&super::redis_cluster()).await })*
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
    keys_are_found_by_id_and_hash_listed_rotated_and_deleted,
    a_keys_last_use_is_kept_apart_and_goes_with_it,
    the_rpm_window_refuses_past_the_limit_until_it_slides,
    the_tpm_window_counts_settled_tokens,
    parallel_slots_are_taken_and_given_back,
    budgets_reserve_then_settle_the_real_cost,
    concurrent_admits_never_overspend_a_budget,
    ledger_refusals_come_in_order_and_take_nothing,
    usage_is_summed_per_group_over_days,
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
        pricing: None,
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

async fn a_keys_last_use_is_kept_apart_and_goes_with_it(s: &Stores) {
    let ids = ["key_u".to_string(), "key_none".to_string()];
    s.keys.touch("key_u", 5.0).await.unwrap();
    assert_eq!(
        s.keys.last_used(&ids).await.unwrap(),
        [None, None],
        "no mark without a key"
    );
    s.keys
        .create(virtual_key("key_u", "sk-apx-u", 1.0))
        .await
        .unwrap();
    s.keys.touch("key_u", 10.5).await.unwrap();
    assert_eq!(s.keys.last_used(&ids).await.unwrap(), [Some(10.5), None]);
    assert_eq!(
        s.keys.last_used(&[]).await.unwrap(),
        Vec::<Option<f64>>::new()
    );
    assert!(s.keys.delete("key_u").await.unwrap());
    assert_eq!(s.keys.last_used(&ids).await.unwrap(), [None, None]);
}

fn virtual_key(id: &str, secret: &str, created_at: f64) -> VirtualKey {
    VirtualKey {
        id: id.into(),
        name: format!("name of {id}"),
        team: Some("team-a".into()),
        prefix: secret.chars().take(10).collect(),
        secret_hash: secret_hash(secret),
        models: Some(vec!["gpt-*".into()]),
        rpm: Some(60),
        tpm: None,
        max_parallel: Some(2),
        budget_usd: Some(12.5),
        budget_period: BudgetPeriod::Daily,
        expires_at: None,
        enabled: true,
        created_at,
        metadata: Some(serde_json::json!({"owner": "ops"})),
    }
}

async fn keys_are_found_by_id_and_hash_listed_rotated_and_deleted(s: &Stores) {
    assert_eq!(s.keys.get("key_a").await.unwrap(), None);
    assert_eq!(
        s.keys.find_by_hash(&secret_hash("sk-apx-a")).await.unwrap(),
        None
    );
    assert!(s.keys.list().await.unwrap().is_empty());

    let a = virtual_key("key_a", "sk-apx-a", 20.0);
    // Same creation time as `c`: ties are broken by id.
    let b = virtual_key("key_b", "sk-apx-b", 10.0);
    let c = virtual_key("key_c", "sk-apx-c", 10.0);
    for key in [a.clone(), c.clone(), b.clone()] {
        s.keys.create(key).await.unwrap();
    }
    assert_eq!(s.keys.get("key_a").await.unwrap(), Some(a.clone()));
    assert_eq!(
        s.keys.find_by_hash(&secret_hash("sk-apx-b")).await.unwrap(),
        Some(b.clone())
    );
    let ids: Vec<String> = s
        .keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["key_b", "key_c", "key_a"], "by created_at, then id");

    // An update that keeps the secret.
    let mut renamed = a.clone();
    renamed.name = "renamed".into();
    renamed.enabled = false;
    assert!(
        s.keys
            .update(renamed.clone(), &a.secret_hash)
            .await
            .unwrap()
    );
    assert_eq!(s.keys.get("key_a").await.unwrap(), Some(renamed.clone()));
    assert_eq!(
        s.keys.find_by_hash(&a.secret_hash).await.unwrap(),
        Some(renamed.clone())
    );

    // A rotation: the old secret stops resolving in the same step the new one starts.
    let mut rotated = renamed.clone();
    rotated.secret_hash = secret_hash("sk-apx-a2");
    rotated.prefix = "sk-apx-a2".into();
    assert!(
        s.keys
            .update(rotated.clone(), &renamed.secret_hash)
            .await
            .unwrap()
    );
    assert_eq!(s.keys.find_by_hash(&a.secret_hash).await.unwrap(), None);
    assert_eq!(
        s.keys.find_by_hash(&rotated.secret_hash).await.unwrap(),
        Some(rotated.clone())
    );
    assert_eq!(s.keys.get("key_a").await.unwrap(), Some(rotated.clone()));

    // Updating a key that does not exist stores nothing.
    let ghost = virtual_key("key_ghost", "sk-apx-ghost", 1.0);
    assert!(
        !s.keys
            .update(ghost.clone(), &ghost.secret_hash)
            .await
            .unwrap()
    );
    assert_eq!(s.keys.get("key_ghost").await.unwrap(), None);
    assert_eq!(s.keys.find_by_hash(&ghost.secret_hash).await.unwrap(), None);
    assert_eq!(s.keys.list().await.unwrap().len(), 3);

    assert!(s.keys.delete("key_a").await.unwrap());
    assert!(!s.keys.delete("key_a").await.unwrap());
    assert_eq!(s.keys.get("key_a").await.unwrap(), None);
    assert_eq!(
        s.keys.find_by_hash(&rotated.secret_hash).await.unwrap(),
        None
    );
    let ids: Vec<String> = s
        .keys
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    assert_eq!(ids, ["key_b", "key_c"]);
    assert_eq!(
        s.keys.find_by_hash(&secret_hash("sk-apx-c")).await.unwrap(),
        Some(c),
        "the other keys are untouched"
    );
}

/// A fixed time in the middle of a second, far from any real clock's second boundaries.
const T: f64 = 2_000_000_000.25;

fn charge(key_id: &str, now: f64) -> Charge {
    Charge {
        key_id: key_id.into(),
        now,
        rpm: None,
        tpm: None,
        max_parallel: None,
        budget: None,
    }
}

fn period() -> PeriodWindow {
    PeriodWindow {
        id: "d:2033-05-18".into(),
        ttl_secs: Some(2 * 86_400),
    }
}

fn budget(limit: u64, reserve: u64) -> Option<BudgetCharge> {
    Some(BudgetCharge {
        period: period(),
        limit,
        reserve,
    })
}

fn settlement(key_id: &str, now: f64) -> Settlement {
    Settlement {
        key_id: key_id.into(),
        now,
        tokens: None,
        release_parallel: false,
        period: period(),
        reserved: 0,
        cost: 0,
    }
}

fn admitted(verdict: &Verdict) -> bool {
    matches!(verdict, Verdict::Admitted(_))
}

fn allowance(verdict: &Verdict) -> apiproxy::domain::metering::Allowance {
    match verdict {
        Verdict::Admitted(a) | Verdict::Refused { allowance: a, .. } => *a,
    }
}

async fn the_rpm_window_refuses_past_the_limit_until_it_slides(s: &Stores) {
    let rpm = |now: f64| Charge {
        rpm: Some(3),
        ..charge("key_r", now)
    };
    let first = s.ledger.admit(&rpm(T)).await.unwrap();
    assert!(admitted(&first));
    let a = allowance(&first);
    assert_eq!((a.rpm, a.requests_remaining), (Some(3), 2));
    assert_eq!(
        a.requests_reset, 59.75,
        "the oldest request leaves at T's second + 60"
    );
    assert_eq!((a.tpm, a.tokens_remaining, a.tokens_reset), (None, 0, 0.0));

    assert!(admitted(&s.ledger.admit(&rpm(T + 30.0)).await.unwrap()));
    let third = s.ledger.admit(&rpm(T + 30.0)).await.unwrap();
    assert!(admitted(&third));
    assert_eq!(allowance(&third).requests_remaining, 0);

    // The fourth within the minute: refused until the first request's second leaves the window.
    match s.ledger.admit(&rpm(T + 40.0)).await.unwrap() {
        Verdict::Refused {
            limit,
            retry_after,
            allowance,
        } => {
            assert_eq!(limit, Limit::Requests);
            assert_eq!(retry_after, 20);
            assert_eq!(allowance.requests_remaining, 0);
            assert_eq!(allowance.requests_reset, 19.75);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Other keys have windows of their own.
    assert!(admitted(
        &s.ledger
            .admit(&Charge {
                rpm: Some(3),
                ..charge("key_other", T + 40.0)
            })
            .await
            .unwrap()
    ));

    // 61 s later the first request has left; the two at T+30 still count.
    let later = s.ledger.admit(&rpm(T + 61.0)).await.unwrap();
    assert!(admitted(&later), "{later:?}");
    assert_eq!(allowance(&later).requests_remaining, 0);
    assert_eq!(
        allowance(&later).requests_reset,
        28.75,
        "the two at T+30 leave at T's second + 90"
    );
    match s.ledger.admit(&rpm(T + 62.0)).await.unwrap() {
        Verdict::Refused {
            limit: Limit::Requests,
            retry_after,
            ..
        } => assert_eq!(retry_after, 28),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Two minutes on, the window is empty again.
    let fresh = s.ledger.admit(&rpm(T + 200.0)).await.unwrap();
    assert_eq!(allowance(&fresh).requests_remaining, 2);
}

async fn the_tpm_window_counts_settled_tokens(s: &Stores) {
    let tpm = |now: f64| Charge {
        tpm: Some(1000),
        ..charge("key_t", now)
    };
    let first = s.ledger.admit(&tpm(T)).await.unwrap();
    assert!(admitted(&first));
    let a = allowance(&first);
    assert_eq!(
        (a.tpm, a.tokens_remaining, a.tokens_reset),
        (Some(1000), 1000, 0.0)
    );
    assert_eq!((a.rpm, a.requests_remaining), (None, 0));

    s.ledger
        .settle(&Settlement {
            tokens: Some(600),
            ..settlement("key_t", T)
        })
        .await
        .unwrap();
    let second = s.ledger.admit(&tpm(T + 10.0)).await.unwrap();
    assert!(admitted(&second), "600 of 1000 used: still room");
    assert_eq!(allowance(&second).tokens_remaining, 400);
    assert_eq!(allowance(&second).tokens_reset, 49.75);
    s.ledger
        .settle(&Settlement {
            tokens: Some(500),
            ..settlement("key_t", T + 10.0)
        })
        .await
        .unwrap();
    // Zero tokens, or none, count nothing.
    for tokens in [Some(0), None] {
        s.ledger
            .settle(&Settlement {
                tokens,
                ..settlement("key_t", T + 10.0)
            })
            .await
            .unwrap();
    }
    match s.ledger.admit(&tpm(T + 20.0)).await.unwrap() {
        Verdict::Refused {
            limit,
            retry_after,
            allowance,
        } => {
            assert_eq!(limit, Limit::Tokens);
            assert_eq!(retry_after, 40);
            assert_eq!(allowance.tokens_remaining, 0);
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // Once the 600 leave the window, the 500 left are under the limit.
    let later = s.ledger.admit(&tpm(T + 60.0)).await.unwrap();
    assert!(admitted(&later), "{later:?}");
    assert_eq!(allowance(&later).tokens_remaining, 500);
}

async fn parallel_slots_are_taken_and_given_back(s: &Stores) {
    let parallel = |now: f64| Charge {
        max_parallel: Some(2),
        ..charge("key_p", now)
    };
    assert!(admitted(&s.ledger.admit(&parallel(T)).await.unwrap()));
    assert!(admitted(&s.ledger.admit(&parallel(T)).await.unwrap()));
    match s.ledger.admit(&parallel(T + 1.0)).await.unwrap() {
        Verdict::Refused {
            limit, retry_after, ..
        } => assert_eq!((limit, retry_after), (Limit::Parallel, 1)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    // A settle that held no slot frees none.
    s.ledger
        .settle(&settlement("key_p", T + 2.0))
        .await
        .unwrap();
    assert!(!admitted(
        &s.ledger.admit(&parallel(T + 2.0)).await.unwrap()
    ));
    let release = Settlement {
        release_parallel: true,
        ..settlement("key_p", T + 3.0)
    };
    s.ledger.settle(&release).await.unwrap();
    assert!(admitted(&s.ledger.admit(&parallel(T + 3.0)).await.unwrap()));
    assert!(!admitted(
        &s.ledger.admit(&parallel(T + 3.0)).await.unwrap()
    ));
    // Releasing more than was taken never goes below zero: two slots, not more.
    for _ in 0..4 {
        s.ledger.settle(&release).await.unwrap();
    }
    assert!(admitted(&s.ledger.admit(&parallel(T + 4.0)).await.unwrap()));
    assert!(admitted(&s.ledger.admit(&parallel(T + 4.0)).await.unwrap()));
    assert!(!admitted(
        &s.ledger.admit(&parallel(T + 4.0)).await.unwrap()
    ));
}

fn spent_key(key_id: &str) -> Vec<(String, String)> {
    vec![(key_id.to_string(), period().id)]
}

async fn budgets_reserve_then_settle_the_real_cost(s: &Stores) {
    let with_budget = |reserve: u64| Charge {
        budget: budget(1_000, reserve),
        ..charge("key_b", T)
    };
    assert_eq!(s.ledger.spent(&spent_key("key_b")).await.unwrap(), [0]);
    assert!(admitted(&s.ledger.admit(&with_budget(400)).await.unwrap()));
    assert_eq!(
        s.ledger.spent(&spent_key("key_b")).await.unwrap(),
        [400],
        "reserved"
    );
    assert!(admitted(&s.ledger.admit(&with_budget(400)).await.unwrap()));
    assert_eq!(s.ledger.spent(&spent_key("key_b")).await.unwrap(), [800]);
    match s.ledger.admit(&with_budget(201)).await.unwrap() {
        Verdict::Refused {
            limit, retry_after, ..
        } => assert_eq!((limit, retry_after), (Limit::Budget, 0)),
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(
        s.ledger.spent(&spent_key("key_b")).await.unwrap(),
        [800],
        "a refusal takes nothing"
    );
    // Exactly at the limit is allowed.
    assert!(admitted(&s.ledger.admit(&with_budget(200)).await.unwrap()));
    // The real costs replace the reservations: 150 + 420 + 0.
    for (reserved, cost) in [(400, 150), (400, 420), (200, 0)] {
        s.ledger
            .settle(&Settlement {
                reserved,
                cost,
                ..settlement("key_b", T + 1.0)
            })
            .await
            .unwrap();
    }
    assert_eq!(s.ledger.spent(&spent_key("key_b")).await.unwrap(), [570]);
    assert!(admitted(&s.ledger.admit(&with_budget(430)).await.unwrap()));
    assert!(!admitted(&s.ledger.admit(&with_budget(1)).await.unwrap()));
    // A settle that costs less than nothing reserved reads back as zero, never negative.
    s.ledger
        .settle(&Settlement {
            reserved: 5_000,
            cost: 0,
            ..settlement("key_neg", T)
        })
        .await
        .unwrap();
    let both = vec![
        ("key_b".to_string(), period().id),
        ("key_neg".to_string(), period().id),
        ("key_b".to_string(), "m:2033-05".to_string()),
    ];
    assert_eq!(s.ledger.spent(&both).await.unwrap(), [1_000, 0, 0]);
    assert!(s.ledger.spent(&[]).await.unwrap().is_empty());
}

async fn concurrent_admits_never_overspend_a_budget(s: &Stores) {
    const RESERVE: u64 = 7_000;
    const LIMIT: u64 = 50 * RESERVE + RESERVE / 2;
    let mut racers = Vec::new();
    for _ in 0..200 {
        let ledger = s.ledger.clone();
        racers.push(tokio::spawn(async move {
            let charge = Charge {
                rpm: Some(10_000),
                budget: budget(LIMIT, RESERVE),
                ..charge("key_c", T)
            };
            ledger.admit(&charge).await.unwrap()
        }));
    }
    let verdicts = futures_util::future::join_all(racers).await;
    let admitted_count = verdicts
        .into_iter()
        .filter(|v| admitted(v.as_ref().unwrap()))
        .count() as u64;
    assert_eq!(admitted_count, LIMIT / RESERVE);
    assert_eq!(
        s.ledger.spent(&spent_key("key_c")).await.unwrap(),
        [admitted_count * RESERVE]
    );
    // Only the admitted requests were counted in the window.
    let after = s
        .ledger
        .admit(&Charge {
            rpm: Some(10_000),
            ..charge("key_c", T)
        })
        .await
        .unwrap();
    assert_eq!(
        allowance(&after).requests_remaining,
        10_000 - admitted_count - 1
    );
}

async fn ledger_refusals_come_in_order_and_take_nothing(s: &Stores) {
    let all = |now: f64| Charge {
        rpm: Some(1),
        tpm: Some(10),
        max_parallel: Some(1),
        budget: budget(100, 60),
        ..charge("key_o", now)
    };
    assert!(admitted(&s.ledger.admit(&all(T)).await.unwrap()));
    s.ledger
        .settle(&Settlement {
            tokens: Some(10),
            ..settlement("key_o", T)
        })
        .await
        .unwrap();
    // Every limit is reached: the parallel slot is named first.
    let refusal = |v: Verdict| match v {
        Verdict::Refused { limit, .. } => limit,
        other => panic!("expected a refusal, got {other:?}"),
    };
    assert_eq!(
        refusal(s.ledger.admit(&all(T + 1.0)).await.unwrap()),
        Limit::Parallel
    );
    s.ledger
        .settle(&Settlement {
            release_parallel: true,
            ..settlement("key_o", T + 1.0)
        })
        .await
        .unwrap();
    assert_eq!(
        refusal(s.ledger.admit(&all(T + 1.0)).await.unwrap()),
        Limit::Requests
    );
    let without_rpm = Charge {
        rpm: None,
        ..all(T + 1.0)
    };
    assert_eq!(
        refusal(s.ledger.admit(&without_rpm).await.unwrap()),
        Limit::Tokens
    );
    let only_budget = Charge {
        tpm: None,
        ..without_rpm.clone()
    };
    assert_eq!(
        refusal(s.ledger.admit(&only_budget).await.unwrap()),
        Limit::Budget
    );
    // None of the refusals took a slot, a request or money.
    assert_eq!(s.ledger.spent(&spent_key("key_o")).await.unwrap(), [60]);
    let probe = s
        .ledger
        .admit(&Charge {
            max_parallel: Some(1),
            rpm: Some(2),
            ..charge("key_o", T + 1.0)
        })
        .await
        .unwrap();
    assert!(admitted(&probe), "the slot is free: {probe:?}");
    assert_eq!(
        allowance(&probe).requests_remaining,
        0,
        "one counted before, one now"
    );
}

fn usage_record(day: &str, key: &str, team: Option<&str>, model: &str, cost: u64) -> UsageRecord {
    UsageRecord {
        day: day.into(),
        key: key.into(),
        team: team.map(Into::into),
        model: model.into(),
        provider: "openai".into(),
        usage: Usage {
            prompt_tokens: 100,
            completion_tokens: 20,
            cache_read_tokens: 40,
            cache_write_tokens: 0,
            reasoning_tokens: 5,
        },
        cost,
    }
}

fn totals(requests: u64, cost: u64) -> UsageTotals {
    UsageTotals {
        requests,
        input_tokens: 100 * requests,
        output_tokens: 20 * requests,
        cache_read_tokens: 40 * requests,
        cache_write_tokens: 0,
        reasoning_tokens: 5 * requests,
        cost_nano_usd: cost,
    }
}

async fn usage_is_summed_per_group_over_days(s: &Stores) {
    let (d1, d2) = ("2033-05-17", "2033-05-18");
    for record in [
        usage_record(d1, "key_1", Some("red"), "gpt", 10),
        usage_record(d1, "key_2", None, "claude", 20),
        usage_record(d2, "key_1", Some("red"), "claude", 30),
        usage_record(d2, "gateway", None, "gpt", 40),
        usage_record(d2, "key_1", Some("red"), "gpt", 50),
    ] {
        s.usage.record(&record).await.unwrap();
    }
    let both = vec![d1.to_string(), d2.to_string()];
    assert_eq!(
        s.usage.totals(&both, UsageGroup::Key, None).await.unwrap(),
        vec![
            ("gateway".to_string(), totals(1, 40)),
            ("key_1".to_string(), totals(3, 90)),
            ("key_2".to_string(), totals(1, 20)),
        ]
    );
    assert_eq!(
        s.usage.totals(&both, UsageGroup::Team, None).await.unwrap(),
        vec![("red".to_string(), totals(3, 90))],
        "records without a team fall in no team"
    );
    assert_eq!(
        s.usage
            .totals(&both, UsageGroup::Model, None)
            .await
            .unwrap(),
        vec![
            ("claude".to_string(), totals(2, 50)),
            ("gpt".to_string(), totals(3, 100)),
        ]
    );
    assert_eq!(
        s.usage
            .totals(&both, UsageGroup::Provider, None)
            .await
            .unwrap(),
        vec![("openai".to_string(), totals(5, 150))]
    );
    assert_eq!(
        s.usage.totals(&both, UsageGroup::Day, None).await.unwrap(),
        vec![
            (d1.to_string(), totals(2, 30)),
            (d2.to_string(), totals(3, 120)),
        ]
    );
    // One group only, and one day only.
    assert_eq!(
        s.usage
            .totals(&both, UsageGroup::Key, Some("key_1".into()))
            .await
            .unwrap(),
        vec![("key_1".to_string(), totals(3, 90))]
    );
    assert_eq!(
        s.usage
            .totals(&[d2.to_string()], UsageGroup::Key, Some("key_1".into()))
            .await
            .unwrap(),
        vec![("key_1".to_string(), totals(2, 80))]
    );
    assert!(
        s.usage
            .totals(&both, UsageGroup::Key, Some("nobody".into()))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.usage
            .totals(&["2033-05-19".to_string()], UsageGroup::Model, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.usage
            .totals(&[], UsageGroup::Model, None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// What only Redis has: key names, TTLs, corrupt values, a restart that forgot the scripts.
mod redis_only {
    use super::*;

    fn stores() -> (RedisStores, RedisServer) {
        let server = RedisServer::start();
        let stores = RedisStores::new(
            &RedisTarget::from_url(&server.url()).expect("a Redis URL"),
            8,
            clock(),
        )
        .expect("redis pool");
        (stores, server)
    }

    fn ttl(server: &RedisServer, key: &str) -> i64 {
        server.cli(&["TTL", key]).parse().expect("a TTL")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_key_with_a_lifetime_gets_it_in_the_write() {
        let (r, server) = stores();
        let full = Charge {
            rpm: Some(10),
            tpm: Some(10),
            max_parallel: Some(1),
            budget: budget(1_000, 10),
            ..charge("key_l", T)
        };
        assert!(admitted(&r.ledger.admit(&full).await.unwrap()));
        r.ledger
            .settle(&Settlement {
                tokens: Some(5),
                reserved: 10,
                cost: 4,
                ..settlement("key_l", T)
            })
            .await
            .unwrap();
        assert_eq!(ttl(&server, "apx:key:{key_l}:req"), 120);
        assert_eq!(ttl(&server, "apx:key:{key_l}:tok"), 120);
        assert_eq!(ttl(&server, "apx:key:{key_l}:par"), 900);
        assert_eq!(
            ttl(&server, "apx:key:{key_l}:spend:d:2033-05-18"),
            2 * 86_400
        );
        assert_eq!(
            server.cli(&["GET", "apx:key:{key_l}:spend:d:2033-05-18"]),
            "4"
        );
        // A period kept for ever has no TTL.
        let total = Charge {
            budget: Some(BudgetCharge {
                period: BudgetPeriod::Total.window(T),
                limit: 100,
                reserve: 1,
            }),
            ..charge("key_l", T)
        };
        assert!(admitted(&r.ledger.admit(&total).await.unwrap()));
        assert_eq!(ttl(&server, "apx:key:{key_l}:spend:total"), -1);

        r.usage
            .record(&usage_record("2033-05-18", "key_l", Some("red"), "gpt", 1))
            .await
            .unwrap();
        // Usage is written with the instance's next batch (each key with its TTL in it).
        r.batch.flush().await;
        for group in ["key", "team", "model", "provider", "day"] {
            assert_eq!(
                ttl(&server, &format!("apx:usage:{{2033-05-18}}:{group}")),
                400 * 86_400,
                "{group}"
            );
        }
        assert_eq!(
            server.cli(&["HGET", "apx:usage:{2033-05-18}:team", "red\ncost_nano_usd"]),
            "1"
        );

        r.keys
            .create(virtual_key("key_l", "sk-apx-l", 1.0))
            .await
            .unwrap();
        assert_eq!(
            server.cli(&[
                "GET",
                &format!("{{apx:keys}}:hash:{}", secret_hash("sk-apx-l"))
            ]),
            "key_l"
        );
        assert_eq!(server.cli(&["SMEMBERS", "{apx:keys}:index"]), "key_l");
        assert_eq!(
            ttl(&server, "{apx:keys}:id:key_l"),
            -1,
            "keys live until deleted"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_values_are_store_errors_not_panics() {
        let (r, server) = stores();
        server.cli(&["SET", "{apx:keys}:id:key_x", "not json"]);
        server.cli(&["SET", "{apx:keys}:hash:h", "key_x"]);
        server.cli(&["SADD", "{apx:keys}:index", "key_x"]);
        assert!(r.keys.get("key_x").await.is_err());
        assert!(r.keys.find_by_hash("h").await.is_err());
        assert!(r.keys.list().await.is_err());
        assert!(
            r.keys.delete("key_x").await.unwrap(),
            "a corrupt key can be deleted"
        );
        assert_eq!(r.keys.list().await.unwrap(), []);

        server.cli(&["SET", "apx:key:{key_x}:par", "many"]);
        let parallel = Charge {
            max_parallel: Some(1),
            ..charge("key_x", T)
        };
        assert!(r.ledger.admit(&parallel).await.is_err());
        server.cli(&["HSET", "apx:key:{key_x}:req", "yesterday", "1"]);
        let rpm = Charge {
            rpm: Some(1),
            ..charge("key_x", T)
        };
        assert!(r.ledger.admit(&rpm).await.is_err());
        server.cli(&["SET", "apx:key:{key_x}:spend:d:2033-05-18", "lots"]);
        assert!(r.ledger.spent(&spent_key("key_x")).await.is_err());

        server.cli(&["HSET", "apx:usage:{2033-05-18}:key", "no-newline", "1"]);
        let day = ["2033-05-18".to_string()];
        assert!(r.usage.totals(&day, UsageGroup::Key, None).await.is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_scripts_are_loaded_again_after_redis_forgot_them() {
        let (r, server) = stores();
        let rpm = Charge {
            rpm: Some(10),
            ..charge("key_s", T)
        };
        assert!(admitted(&r.ledger.admit(&rpm).await.unwrap()));
        assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
        let again = r.ledger.admit(&rpm).await.unwrap();
        assert_eq!(allowance(&again).requests_remaining, 8);
        assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
        r.ledger
            .settle(&Settlement {
                cost: 3,
                ..settlement("key_s", T)
            })
            .await
            .unwrap();
        assert_eq!(r.ledger.spent(&spent_key("key_s")).await.unwrap(), [3]);
    }

    /// Stores on their own server whose batch is written `interval` after its first record.
    fn batching_every(interval: Duration) -> (RedisStores, RedisServer) {
        let server = RedisServer::start();
        let stores = batching_on(&server, interval);
        (stores, server)
    }

    fn batching_on(server: &RedisServer, interval: Duration) -> RedisStores {
        RedisStores::with_options(
            &RedisTarget::from_url(&server.url()).expect("a Redis URL"),
            8,
            clock(),
            1_000,
            interval,
        )
        .expect("redis pool")
    }

    fn attempt(success: bool) -> AttemptSample {
        AttemptSample {
            at: now(),
            latency_ms: 10.0,
            ttfb_ms: 10.0,
            success,
        }
    }

    /// A metrics hash's counters of one kind (`s`, `f`), summed over its seconds.
    fn counted(server: &RedisServer, key: &str, kind: &str) -> u64 {
        let flat = server.cli(&["HGETALL", key]);
        let lines: Vec<&str> = flat.lines().collect();
        lines
            .chunks(2)
            .filter(|pair| pair.len() == 2 && pair[0].ends_with(&format!(":{kind}")))
            .map(|pair| pair[1].parse::<u64>().expect("a count"))
            .sum()
    }

    /// Calls of one command since the server started (`INFO commandstats`).
    fn calls(server: &RedisServer, command: &str) -> u64 {
        let stats = server.cli(&["INFO", "commandstats"]);
        let prefix = format!("cmdstat_{command}:calls=");
        stats
            .lines()
            .find_map(|line| line.trim().strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |n| n.parse().expect("a call count"))
    }

    const METRICS: &str = "llm:metrics:gpt:p";
    const RED: &str = "apx:usage:{2033-05-18}:team";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bookkeeping_goes_out_one_interval_after_it_starts_summed_with_its_ttls() {
        let (r, server) = batching_every(Duration::from_millis(500));
        for i in 0..50 {
            r.metrics
                .record("gpt", "p", attempt(i % 10 != 0))
                .await
                .unwrap();
            r.usage
                .record(&usage_record("2033-05-18", "key_b", Some("red"), "gpt", 2))
                .await
                .unwrap();
        }
        assert_eq!(server.cli(&["EXISTS", METRICS]), "0", "not written yet");
        assert_eq!(server.cli(&["EXISTS", RED]), "0", "not written yet");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while counted(&server, METRICS, "s") < 45 {
            assert!(std::time::Instant::now() < deadline, "never written");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(counted(&server, METRICS, "s"), 45);
        assert_eq!(counted(&server, METRICS, "f"), 5);
        assert_eq!(server.cli(&["HGET", RED, "red\ncost_nano_usd"]), "100");
        assert_eq!(server.cli(&["HGET", RED, "red\nrequests"]), "50");
        assert!((1..=120).contains(&ttl(&server, METRICS)));
        assert!((1..=120).contains(&ttl(&server, "llm:metrics:#index:p")));
        assert_eq!(server.cli(&["SMEMBERS", "llm:metrics:#index:p"]), "gpt");
        assert_eq!(ttl(&server, RED), 400 * 86_400);
        // 100 records, summed: a few HINCRBY per field and second, not two or more per record.
        assert!(
            calls(&server, "hincrby") < 40,
            "{} HINCRBY",
            calls(&server, "hincrby")
        );
        let stats = r.batch.stats();
        assert_eq!((stats.written, stats.dropped, stats.deferred), (100, 0, 0));
        assert!(stats.flushes <= 2, "{stats:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_graceful_stop_writes_what_is_held_back() {
        let (r, server) = batching_every(Duration::from_secs(3600));
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.usage
            .record(&usage_record("2033-05-18", "key_b", Some("red"), "gpt", 7))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(server.cli(&["EXISTS", METRICS]), "0", "held back");
        // What main does once serving has stopped.
        let status: Arc<dyn StoreStatus> = Arc::new(RedisStatus {
            backend: r.backend.clone(),
            batch: r.batch.clone(),
        });
        status.flush().await;
        assert_eq!(counted(&server, METRICS, "s"), 1);
        assert_eq!(server.cli(&["HGET", RED, "red\ncost_nano_usd"]), "7");
        assert_eq!(ttl(&server, RED), 400 * 86_400);
        assert_eq!(r.batch.stats().written, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_instance_reads_its_own_batched_writes() {
        let (r, _server) = batching_every(Duration::from_secs(3600));
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.metrics.record("gpt", "p", attempt(false)).await.unwrap();
        r.usage
            .record(&usage_record("2033-05-18", "key_b", Some("red"), "gpt", 3))
            .await
            .unwrap();
        let figures = r
            .metrics
            .snapshot("gpt", &["p".to_string()], now())
            .await
            .unwrap();
        assert_eq!(figures[0].as_ref().expect("figures").total_requests_1m, 2);
        let by_provider = r.metrics.for_provider("p", now()).await.unwrap();
        assert_eq!(by_provider.len(), 1);
        let days = ["2033-05-18".to_string()];
        let usage = r.usage.totals(&days, UsageGroup::Team, None).await.unwrap();
        assert_eq!(usage, vec![("red".to_string(), totals(1, 3))]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batched_success_comes_before_a_later_failure_and_never_closes_an_open_circuit() {
        let server = RedisServer::start();
        let here = batching_on(&server, Duration::from_secs(3600));
        let elsewhere = batching_on(&server, Duration::from_secs(3600));
        let ids = |id: &str| vec![id.to_string()];
        for id in ["p", "q", "o"] {
            assert_eq!(
                here.circuits.circuits(&ids(id)).await.unwrap(),
                vec![Circuit::default()]
            );
            // Another instance counts failures since.
            for _ in 0..2 {
                elsewhere
                    .circuits
                    .record(id, false, T, POLICY)
                    .await
                    .unwrap();
            }
        }
        elsewhere
            .circuits
            .record("o", false, T, POLICY)
            .await
            .unwrap();
        let failures = |n| Circuit::Closed {
            consecutive_failures: n,
        };
        // Here, a success (held back: the circuit was closed when last seen), then a failure: the
        // success is written first, so the failure is the first in a row, not the third.
        assert_eq!(
            here.circuits.record("p", true, T, POLICY).await.unwrap(),
            Circuit::default()
        );
        assert_eq!(
            here.circuits.record("p", false, T, POLICY).await.unwrap(),
            failures(1)
        );
        // Successes held back clear failures counted elsewhere once written, but leave an open
        // circuit open (opened after those requests were routed).
        for id in ["q", "o"] {
            here.circuits.record(id, true, T, POLICY).await.unwrap();
        }
        assert_eq!(server.cli(&["EXISTS", "llm:circuit:q"]), "1", "held back");
        here.batch.flush().await;
        assert_eq!(server.cli(&["EXISTS", "llm:circuit:q"]), "0", "cleared");
        let fresh = batching_on(&server, Duration::from_secs(3600));
        assert_eq!(
            fresh.circuits.circuits(&ids("o")).await.unwrap(),
            vec![Circuit::Open { until: T + 30.0 }]
        );
        assert_eq!(
            fresh.circuits.circuits(&ids("p")).await.unwrap(),
            vec![failures(1)]
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_redis_never_got_is_kept_a_few_times_then_dropped_and_counted() {
        let (r, mut server) = batching_every(Duration::from_secs(3600));
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.batch.flush().await;
        server.stop();
        let errors_before = r.backend.error_count();
        // Sent on the connection that just broke: whether Redis got it is unknown, so it is
        // dropped rather than risk counting it twice.
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.batch.flush().await;
        let broken = r.batch.stats();
        assert_eq!((broken.deferred, broken.dropped), (0, 1), "{broken:?}");
        // Redis is known to be down now: nothing is sent, the batch is kept for the next flush.
        for _ in 0..3 {
            r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        }
        r.batch.flush().await;
        r.batch.flush().await;
        let kept = r.batch.stats();
        assert_eq!((kept.deferred, kept.dropped), (2, 1), "kept: {kept:?}");
        r.batch.flush().await;
        let dropped = r.batch.stats();
        assert_eq!((dropped.deferred, dropped.dropped), (2, 4), "{dropped:?}");
        assert!(r.backend.error_count() > errors_before, "counted");
        // Not tried again: nothing is left.
        r.batch.flush().await;
        assert_eq!(r.batch.stats(), dropped);

        server.restart();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.batch.flush().await;
        // The server restarted empty: only the record after it is there.
        assert_eq!(counted(&server, METRICS, "s"), 1);
        assert_eq!(r.batch.stats().written, 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_redis_refused_is_dropped_at_once_not_counted_twice() {
        let (r, server) = batching_every(Duration::from_secs(3600));
        server.cli(&["SET", "llm:metrics:#index:p", "not a set"]);
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        let errors_before = r.backend.error_count();
        r.batch.flush().await;
        let stats = r.batch.stats();
        assert_eq!((stats.written, stats.deferred, stats.dropped), (0, 0, 2));
        assert!(r.backend.error_count() > errors_before, "counted");
        // The rest of the MULTI was applied, which is why it is not sent again.
        assert_eq!(counted(&server, METRICS, "s"), 2);
        server.cli(&["DEL", "llm:metrics:#index:p"]);
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        r.batch.flush().await;
        assert_eq!(counted(&server, METRICS, "s"), 3);
        assert_eq!(r.batch.stats().written, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_zero_interval_writes_every_record_before_it_returns() {
        let (r, server) = batching_every(Duration::ZERO);
        r.metrics.record("gpt", "p", attempt(true)).await.unwrap();
        assert_eq!(counted(&server, METRICS, "s"), 1);
        r.usage
            .record(&usage_record("2033-05-18", "key_b", Some("red"), "gpt", 5))
            .await
            .unwrap();
        assert_eq!(server.cli(&["HGET", RED, "red\ncost_nano_usd"]), "5");
    }
}
