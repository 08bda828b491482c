//! Routing metrics, circuits and QPS counters in Redis, shared by every instance.
//!
//! - Metrics: `llm:metrics:{logical}:{provider}` is a hash of per-second counters (`{sec}:s`,
//!   `{sec}:f`, `{sec}:h{bucket}`) incremented with HINCRBY in one MULTI with its TTL, so instances
//!   never lose each other's updates. Routing reads a snapshot at most once a second per logical
//!   model and refreshes it in the background, keeping the read off the hot path. The index of a
//!   provider's logical models, `llm:metrics:#index:{provider}`, is on another hash slot in a Redis
//!   Cluster, so it is written in a MULTI of its own, sent together with the counters' one; it is
//!   only a list of where to look, and expires with them.
//! - Circuits: `llm:circuit:{provider}` (JSON) changed by optimistic transactions (WATCH, then
//!   MULTI/EXEC, retried on conflict), running the domain's own state machine: one probe wins.
//! - QPS: `llm:qps:{provider}:{second}`, INCR and EXPIRE in one MULTI; the first `max` win.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis::{Cmd, pipe};
use parking_lot::Mutex;

use super::backend::RedisBackend;
use super::batch::WriteBehind;
use super::circuit_write::{reset_failures, transact};
use super::keys;
use crate::domain::health::{
    AttemptSample, BreakerPolicy, Circuit, LATENCY_BOUNDS_MS, MetricsWindow, RoutingMetrics,
    SecondBucket, WINDOW_SECONDS, latency_bucket,
};
use crate::domain::ports::{CircuitStore, Clock, MetricsStore, QpsLimiter, StoreResult};
use crate::outbound::memory::MemoryQpsLimiter;

/// How long a snapshot read from Redis is used before it is refreshed.
const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(1);
/// Most snapshots kept per instance: one per (logical model, candidate set) in use.
const MAX_SNAPSHOTS: usize = 1024;
/// A snapshot not refreshed for this long is no longer in use.
const SNAPSHOT_IDLE: Duration = Duration::from_secs(60);
/// Metrics keys outlive the window a little, then vanish with their provider's silence.
const METRICS_TTL_SECONDS: i64 = 2 * WINDOW_SECONDS as i64;

/// A value cached per instance, refreshed in the background once it is older than
/// `SNAPSHOT_MAX_AGE`.
struct Snapshots<V> {
    entries: Mutex<HashMap<String, (Instant, V, bool)>>,
}

impl<V: Clone> Snapshots<V> {
    fn new() -> Self {
        Snapshots {
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The cached value, and whether the caller should start a refresh (only one caller does).
    fn get(&self, key: &str) -> Option<(V, bool)> {
        let mut entries = self.entries.lock();
        let (fetched, value, refreshing) = entries.get_mut(key)?;
        let stale = fetched.elapsed() >= SNAPSHOT_MAX_AGE && !*refreshing;
        if stale {
            *refreshing = true;
        }
        Some((value.clone(), stale))
    }

    fn put(&self, key: String, value: V) {
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_SNAPSHOTS && !entries.contains_key(&key) {
            // Names asked for once (pinned `provider/anything`) must not pile up: drop what has
            // not been refreshed for a while, and everything if that is not enough.
            entries.retain(|_, (fetched, _, _)| fetched.elapsed() < SNAPSHOT_IDLE);
            if entries.len() >= MAX_SNAPSHOTS {
                entries.clear();
            }
        }
        entries.insert(key, (Instant::now(), value, false));
    }

    fn refresh_failed(&self, key: &str) {
        if let Some(entry) = self.entries.lock().get_mut(key) {
            entry.2 = false;
        }
    }
}

pub struct RedisMetricsStore {
    backend: RedisBackend,
    batch: WriteBehind,
    clock: Arc<dyn Clock>,
    snapshots: Arc<Snapshots<Vec<Option<RoutingMetrics>>>>,
}

impl RedisMetricsStore {
    /// Counters are written through `batch` (`batch.rs`); reads flush it first.
    pub fn new(backend: RedisBackend, batch: WriteBehind, clock: Arc<dyn Clock>) -> Self {
        RedisMetricsStore {
            backend,
            batch,
            clock,
            snapshots: Arc::new(Snapshots::new()),
        }
    }

    /// This instance's counters not yet written go out first, so it reads its own writes.
    async fn read(
        backend: &RedisBackend,
        batch: &WriteBehind,
        logical: &str,
        providers: &[String],
        now: f64,
    ) -> StoreResult<Vec<Option<RoutingMetrics>>> {
        batch.flush().await;
        // One HGETALL per provider: each key is on its own slot in a cluster.
        let reads = providers
            .iter()
            .map(|provider| Cmd::hgetall(keys::metrics(logical, provider)))
            .collect();
        let hashes: Vec<HashMap<String, u64>> = backend.run_each(reads).await?;
        Ok(providers
            .iter()
            .zip(hashes)
            .map(|(provider, hash)| window_from_hash(&hash).aggregate(logical, provider, now))
            .collect())
    }
}

/// Rebuilds a window from the hash's `{sec}:{counter}` fields.
fn window_from_hash(hash: &HashMap<String, u64>) -> MetricsWindow {
    let mut seconds: HashMap<u64, SecondBucket> = HashMap::new();
    for (field, count) in hash {
        let Some((second, counter)) = field.split_once(':') else {
            continue;
        };
        let Ok(second) = second.parse::<u64>() else {
            continue;
        };
        let bucket = seconds.entry(second).or_insert_with(|| SecondBucket {
            second,
            successes: 0,
            failures: 0,
            latency_counts: vec![0; LATENCY_BOUNDS_MS.len() + 1],
        });
        match counter {
            "s" => bucket.successes += count,
            "f" => bucket.failures += count,
            other => {
                if let Some(index) = other
                    .strip_prefix('h')
                    .and_then(|i| i.parse::<usize>().ok())
                    && let Some(slot) = bucket.latency_counts.get_mut(index)
                {
                    *slot += count;
                }
            }
        }
    }
    MetricsWindow::from_buckets(seconds.into_values().collect())
}

#[async_trait]
impl MetricsStore for RedisMetricsStore {
    async fn record(
        &self,
        logical_model: &str,
        provider_id: &str,
        sample: AttemptSample,
    ) -> StoreResult<()> {
        let key = keys::metrics(logical_model, provider_id);
        let index = keys::metrics_index(provider_id);
        let second = sample.at.max(0.0) as u64;
        // Fields older than the window are dropped now and then, so busy keys stay small.
        if second.is_multiple_of(30) {
            self.batch.prune_later(&key, second);
        }
        let mut field = String::with_capacity(24);
        self.batch
            .record(|batch| {
                use std::fmt::Write;
                if sample.success {
                    let _ = write!(field, "{second}:s");
                    batch.incr(&key, METRICS_TTL_SECONDS, &field, 1);
                    field.clear();
                    let _ = write!(field, "{second}:h{}", latency_bucket(sample.latency_ms));
                    batch.incr(&key, METRICS_TTL_SECONDS, &field, 1);
                } else {
                    let _ = write!(field, "{second}:f");
                    batch.incr(&key, METRICS_TTL_SECONDS, &field, 1);
                }
                batch.member(&index, logical_model, METRICS_TTL_SECONDS);
            })
            .await;
        Ok(())
    }

    async fn snapshot(
        &self,
        logical_model: &str,
        provider_ids: &[String],
        now: f64,
    ) -> StoreResult<Vec<Option<RoutingMetrics>>> {
        let cache_key = format!("{logical_model}\u{0}{}", provider_ids.join("\u{0}"));
        if let Some((value, refresh)) = self.snapshots.get(&cache_key) {
            if refresh {
                let (backend, batch, snapshots, clock) = (
                    self.backend.clone(),
                    self.batch.clone(),
                    self.snapshots.clone(),
                    self.clock.clone(),
                );
                let (logical, providers) = (logical_model.to_string(), provider_ids.to_vec());
                tokio::spawn(async move {
                    match Self::read(&backend, &batch, &logical, &providers, clock.now()).await {
                        Ok(fresh) => snapshots.put(cache_key, fresh),
                        Err(_) => snapshots.refresh_failed(&cache_key),
                    }
                });
            }
            return Ok(value);
        }
        let fresh =
            Self::read(&self.backend, &self.batch, logical_model, provider_ids, now).await?;
        self.snapshots.put(cache_key, fresh.clone());
        Ok(fresh)
    }

    async fn for_provider(&self, provider_id: &str, now: f64) -> StoreResult<Vec<RoutingMetrics>> {
        self.batch.flush().await;
        let (logicals,): (Vec<String>,) = self
            .backend
            .run(pipe().smembers(keys::metrics_index(provider_id)))
            .await?;
        let mut figures = Vec::new();
        for logical in logicals {
            let found = Self::read(
                &self.backend,
                &self.batch,
                &logical,
                std::slice::from_ref(&provider_id.to_string()),
                now,
            )
            .await?;
            figures.extend(found.into_iter().flatten());
        }
        figures.sort_by(|a, b| a.logical_model.cmp(&b.logical_model));
        Ok(figures)
    }
}

/// Most circuits remembered per instance (one per provider routed to).
const MAX_KNOWN_CIRCUITS: usize = 4096;

pub struct RedisCircuitStore {
    backend: RedisBackend,
    batch: WriteBehind,
    snapshots: Arc<Snapshots<Vec<Circuit>>>,
    /// Each provider's circuit as this instance last read or wrote it.
    known: Arc<Mutex<HashMap<String, Circuit>>>,
}

impl RedisCircuitStore {
    /// Successes against a circuit this instance last saw closed without failures are checked
    /// through `batch` (`batch.rs`); every other change is written at once.
    pub fn new(backend: RedisBackend, batch: WriteBehind) -> Self {
        RedisCircuitStore {
            backend,
            batch,
            snapshots: Arc::new(Snapshots::new()),
            known: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    async fn read(backend: &RedisBackend, provider_ids: &[String]) -> StoreResult<Vec<Circuit>> {
        // One GET per provider: MGET with one key returns a bare value, and the keys are on
        // different slots in a cluster.
        let reads = provider_ids
            .iter()
            .map(|p| Cmd::get(keys::circuit(p)))
            .collect();
        let raws: Vec<Option<String>> = backend.run_each(reads).await?;
        Ok(raws
            .into_iter()
            .map(|raw| {
                raw.and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default()
            })
            .collect())
    }

    fn remember(
        known: &Mutex<HashMap<String, Circuit>>,
        provider_ids: &[String],
        circuits: &[Circuit],
    ) {
        let mut known = known.lock();
        if known.len() + provider_ids.len() > MAX_KNOWN_CIRCUITS {
            known.clear();
        }
        for (id, circuit) in provider_ids.iter().zip(circuits) {
            known.insert(id.clone(), *circuit);
        }
    }

    /// The circuit after an attempt's outcome, written at once.
    async fn record_now(
        &self,
        provider_id: &str,
        success: bool,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<Circuit> {
        // Most attempts succeed against a closed circuit: one plain GET, no transaction.
        if success {
            let (raw,): (Option<String>,) = self
                .backend
                .run(pipe().get(keys::circuit(provider_id)))
                .await?;
            if raw.is_none() {
                return Ok(Circuit::default());
            }
        }
        let next = transact(&self.backend, provider_id, |current| {
            let next = if success {
                current.on_success()
            } else {
                current.on_failure(now, &policy)
            };
            (next != current).then_some(next)
        })
        .await?;
        Ok(next.unwrap_or_default())
    }
}

#[async_trait]
impl CircuitStore for RedisCircuitStore {
    async fn circuits(&self, provider_ids: &[String]) -> StoreResult<Vec<Circuit>> {
        let cache_key = provider_ids.join("\u{0}");
        if let Some((value, refresh)) = self.snapshots.get(&cache_key) {
            if refresh {
                let (backend, snapshots, known, providers) = (
                    self.backend.clone(),
                    self.snapshots.clone(),
                    self.known.clone(),
                    provider_ids.to_vec(),
                );
                tokio::spawn(async move {
                    match Self::read(&backend, &providers).await {
                        Ok(fresh) => {
                            Self::remember(&known, &providers, &fresh);
                            snapshots.put(cache_key, fresh)
                        }
                        Err(_) => snapshots.refresh_failed(&cache_key),
                    }
                });
            }
            return Ok(value);
        }
        let fresh = Self::read(&self.backend, provider_ids).await?;
        Self::remember(&self.known, provider_ids, &fresh);
        self.snapshots.put(cache_key, fresh.clone());
        Ok(fresh)
    }

    async fn record(
        &self,
        provider_id: &str,
        success: bool,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<Circuit> {
        let known = self.known.lock().get(provider_id).copied();
        if success && known == Some(Circuit::default()) {
            // The common case: nothing to change unless another instance counted failures since
            // this one looked. The check goes out with the next batch instead of a GET now.
            self.batch.success(provider_id).await;
            return Ok(Circuit::default());
        }
        if !success && self.batch.take_success(provider_id) {
            // A success noted earlier comes first.
            reset_failures(&self.backend, provider_id).await;
        }
        let next = self.record_now(provider_id, success, now, policy).await?;
        Self::remember(&self.known, &[provider_id.to_string()], &[next]);
        Ok(next)
    }

    async fn claim_probe(
        &self,
        provider_id: &str,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<bool> {
        let claimed = transact(&self.backend, provider_id, |current| {
            current.claim_probe(now, &policy)
        })
        .await?;
        if let Some(circuit) = claimed {
            Self::remember(&self.known, &[provider_id.to_string()], &[circuit]);
        }
        Ok(claimed.is_some())
    }
}

/// Shared per-second counters; while Redis cannot be reached, each instance counts for itself
/// with the same limit, so a limit never fails open.
pub struct RedisQpsLimiter {
    backend: RedisBackend,
    local: MemoryQpsLimiter,
}

impl RedisQpsLimiter {
    pub fn new(backend: RedisBackend) -> Self {
        RedisQpsLimiter {
            backend,
            local: MemoryQpsLimiter::default(),
        }
    }
}

#[async_trait]
impl QpsLimiter for RedisQpsLimiter {
    async fn try_acquire(&self, provider_id: &str, max_qps: u32, now: f64) -> StoreResult<bool> {
        let key = keys::qps(provider_id, now.max(0.0) as u64);
        match self
            .backend
            .run::<(u64,)>(pipe().atomic().incr(&key, 1).expire(&key, 2).ignore())
            .await
        {
            Ok((count,)) => Ok(count <= u64::from(max_qps)),
            Err(_) => self.local.try_acquire(provider_id, max_qps, now).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_of_names_asked_for_once_do_not_pile_up() {
        let snapshots: Snapshots<u32> = Snapshots::new();
        for i in 0..10 * MAX_SNAPSHOTS {
            snapshots.put(format!("pinned/model-{i}"), 1);
            assert!(snapshots.entries.lock().len() <= MAX_SNAPSHOTS);
        }
        let last = format!("pinned/model-{}", 10 * MAX_SNAPSHOTS - 1);
        assert_eq!(snapshots.get(&last).map(|(v, _)| v), Some(1));
    }
}
