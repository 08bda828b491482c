//! Write-behind for the bookkeeping every proxied request causes: routing-metrics counters, the
//! usage aggregates and the "a success on a closed circuit" check. Instead of a pipeline per
//! request, each instance folds them into one in-memory batch (counters summed per hash field, set
//! members and checks de-duplicated) and writes the batch in one pipeline about
//! [`DEFAULT_INTERVAL`] after its first write, and at shutdown ([`WriteBehind::flush`]).
//!
//! - **What is batched, and why that is safe.** Only writes whose effect commutes and that no other
//!   instance needs at once: HINCRBY counters and SADD index members (order-free sums and sets;
//!   routing reads them as once-a-second snapshots anyway), and the reset of a closed circuit's
//!   failure count after a success. Anything whose correctness across instances needs it written
//!   before the answer (QPS limits, key limits and budgets, session bindings, circuits that open,
//!   probes) is not batched.
//! - **Same round trip, same TTL rule.** Each key's increments go out with its `EXPIRE` in one
//!   MULTI/EXEC (SPEC 7); one day's usage hashes share a slot and so change together. On one
//!   server the whole batch is one MULTI; on a Redis Cluster one MULTI per hash slot, all in flight
//!   at once.
//! - **Reading your own writes.** The stores' reads of batched data (metrics snapshots, usage
//!   totals) flush first, so an instance always sees what it recorded.
//! - **Failures.** A batch Redis never received (the fail-fast window after an outage, no
//!   connection) is kept and merged into the next one, at most [`MAX_ATTEMPTS`] times, then
//!   dropped. A batch that reached Redis and failed is dropped at once: part of it may have been
//!   applied, and sending it again would count twice. Either way the drop is counted as a store
//!   error (`apiproxy_store_errors_total`) and logged (at most once per 10 s, with the number of
//!   records lost so far); while Redis is down the SPEC serves without recorded metrics anyway.
//! - **What a crash loses.** What was recorded in the last interval before an unclean exit
//!   (SIGKILL, a crash): at most [`DEFAULT_INTERVAL`] of routing counters and usage aggregates. A
//!   graceful stop (SIGTERM, Ctrl-C) flushes after the last request has been answered.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use deadpool_redis::redis::{FromRedisValue, Pipeline, Value as RedisValue, pipe};
use futures_util::future::join_all;

use super::backend::RedisBackend;
use super::keys;
use crate::domain::health::WINDOW_SECONDS;

/// How long after the first write of a batch it is written.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// A batch holding this many distinct hash fields is written at once, whatever the interval.
const MAX_PENDING_FIELDS: usize = 10_000;
/// How often a batch Redis did not receive is tried before it is dropped.
pub const MAX_ATTEMPTS: u32 = 3;
/// At most one warning about dropped writes per interval.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What is waiting to be written.
#[derive(Default)]
struct Pending {
    /// Hash counters: key -> (field -> increment, the key's TTL in seconds).
    /// (hashbrown, for `entry_ref`: the key is copied only when it is new to the batch.)
    counters: hashbrown::HashMap<String, (HashMap<String, i64>, i64)>,
    /// Set members: key -> (members, the key's TTL in seconds).
    members: HashMap<String, (HashSet<String>, i64)>,
    /// Providers that answered while their circuit was last seen closed without failures.
    successes: HashSet<String>,
    /// Metrics hashes whose fields older than the window are to be dropped, with the second.
    prune: HashMap<String, u64>,
    /// Records folded in (what dropping this batch loses).
    records: u64,
    /// Distinct hash fields and set members (the size bound).
    size: usize,
    /// Earlier attempts to write this batch that never reached Redis.
    attempts: u32,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.members.is_empty()
            && self.successes.is_empty()
            && self.prune.is_empty()
    }

    fn add_counters(&mut self, key: &str, ttl: i64, fields: Vec<(String, i64)>) {
        self.key(key, ttl);
        for (field, n) in fields {
            self.incr(key, ttl, &field, n);
        }
    }

    /// One increment, allocating only for a key or field new to the batch.
    fn incr(&mut self, key: &str, ttl: i64, field: &str, n: i64) {
        let counts = self.key(key, ttl);
        match counts.get_mut(field) {
            Some(count) => *count += n,
            None => {
                counts.insert(field.to_string(), n);
                self.size += 1;
            }
        }
    }

    /// The counters of `key` (created empty: the key still gets its TTL), with its TTL raised to
    /// `ttl`.
    fn key(&mut self, key: &str, ttl: i64) -> &mut HashMap<String, i64> {
        let (counts, key_ttl) = self
            .counters
            .entry_ref(key)
            .or_insert_with(|| (HashMap::new(), ttl));
        *key_ttl = (*key_ttl).max(ttl);
        counts
    }

    fn add_member(&mut self, key: &str, member: &str, ttl: i64) {
        let (members, key_ttl) = match self.members.get_mut(key) {
            Some(entry) => entry,
            None => self
                .members
                .entry(key.to_string())
                .or_insert_with(|| (HashSet::new(), ttl)),
        };
        *key_ttl = (*key_ttl).max(ttl);
        if !members.contains(member) {
            members.insert(member.to_string());
            self.size += 1;
        }
    }

    /// Folds `other` (an older batch sent back) into this one.
    fn merge(&mut self, other: Pending) {
        for (key, (fields, ttl)) in other.counters {
            self.add_counters(&key, ttl, fields.into_iter().collect());
        }
        for (key, (members, ttl)) in other.members {
            for member in members {
                self.add_member(&key, &member, ttl);
            }
        }
        self.successes.extend(other.successes);
        for (key, second) in other.prune {
            let at = self.prune.entry(key).or_insert(second);
            *at = (*at).max(second);
        }
        self.records += other.records;
        self.attempts = self.attempts.max(other.attempts);
    }

    /// Splits the batch by the hash slot of its keys (a Redis Cluster runs a MULTI on one slot).
    fn by_slot(self) -> Vec<Pending> {
        let mut parts: HashMap<u16, Pending> = HashMap::new();
        let (records, attempts) = (self.records, self.attempts);
        for (key, entry) in self.counters {
            let part = parts.entry(keys::slot(&key)).or_default();
            part.size += entry.0.len();
            part.counters.insert(key, entry);
        }
        for (key, entry) in self.members {
            let part = parts.entry(keys::slot(&key)).or_default();
            part.size += entry.0.len();
            part.members.insert(key, entry);
        }
        for provider in self.successes {
            let part = parts
                .entry(keys::slot(&keys::circuit(&provider)))
                .or_default();
            part.successes.insert(provider);
        }
        let mut parts: Vec<Pending> = parts.into_values().collect();
        // The prunes run after the writes, from wherever; the records and attempts go with the
        // first part (what a drop reports).
        if let Some(first) = parts.first_mut() {
            first.records = records;
            first.attempts = attempts;
            first.prune = self.prune;
        } else if !self.prune.is_empty() {
            parts.push(Pending {
                prune: self.prune,
                records,
                attempts,
                ..Pending::default()
            });
        }
        parts
    }

    /// One MULTI/EXEC with every write, then a GET of each circuit to check (answered in the
    /// order of the returned provider ids).
    fn pipeline(&self) -> (Pipeline, Vec<String>) {
        let mut p = Pipeline::new();
        p.atomic();
        for (key, (fields, ttl)) in &self.counters {
            for (field, n) in fields {
                if *n != 0 {
                    p.hincr(key, field, *n).ignore();
                }
            }
            p.expire(key, *ttl).ignore();
        }
        for (key, (members, ttl)) in &self.members {
            p.sadd(key, members.iter().collect::<Vec<_>>()).ignore();
            p.expire(key, *ttl).ignore();
        }
        let checks: Vec<String> = self.successes.iter().cloned().collect();
        for provider in &checks {
            p.get(keys::circuit(provider));
        }
        (p, checks)
    }
}

/// What one record writes, added to the batch under its lock.
pub struct Entries<'a> {
    pending: &'a mut Pending,
}

impl Entries<'_> {
    /// `HINCRBY key field n`, the key written with `EXPIRE key ttl` (seconds).
    pub fn incr(&mut self, key: &str, ttl: i64, field: &str, n: i64) {
        self.pending.incr(key, ttl, field, n);
    }

    /// `EXPIRE key ttl` with the batch, whether or not anything is added to it.
    pub fn expire(&mut self, key: &str, ttl: i64) {
        self.pending.key(key, ttl);
    }

    /// `SADD key member`, the key written with `EXPIRE key ttl` (seconds).
    pub fn member(&mut self, key: &str, member: &str, ttl: i64) {
        self.pending.add_member(key, member, ttl);
    }
}

/// Counts of what the batcher did, for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchStats {
    /// Pipelines sent (one per hash slot on a cluster).
    pub flushes: u64,
    /// Records written.
    pub written: u64,
    /// Records dropped after a failure.
    pub dropped: u64,
    /// Attempts that did not reach Redis and were kept for the next flush.
    pub deferred: u64,
}

/// What wakes the flushing task (apart from [`Inner`], which it holds only while flushing, so
/// dropping the stores ends it).
#[derive(Default)]
struct Signals {
    /// A first write into an empty batch (starts the interval).
    started: tokio::sync::Notify,
    /// The batch grew past its bound (write it now), or the batcher is gone.
    full: tokio::sync::Notify,
}

struct Inner {
    backend: RedisBackend,
    interval: Duration,
    pending: parking_lot::Mutex<Pending>,
    /// One flush at a time, so batches reach Redis in the order they were taken.
    flushing: tokio::sync::Mutex<()>,
    signals: Arc<Signals>,
    flusher: AtomicBool,
    flushes: AtomicU64,
    written: AtomicU64,
    dropped: AtomicU64,
    deferred: AtomicU64,
    last_log: parking_lot::Mutex<Option<Instant>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Wakes the flushing task, which then finds the batcher gone and ends.
        self.signals.full.notify_one();
    }
}

/// The per-instance write-behind batch; cheap to clone (all clones share it).
#[derive(Clone)]
pub struct WriteBehind {
    inner: Arc<Inner>,
}

impl WriteBehind {
    /// A batcher writing about `interval` after the first write of each batch; a zero interval
    /// writes every record before `record` returns (no batching). Its flushing task starts on the
    /// current tokio runtime when there is one, else with the first write.
    pub fn new(backend: RedisBackend, interval: Duration) -> Self {
        let batch = WriteBehind {
            inner: Arc::new(Inner {
                backend,
                interval,
                pending: parking_lot::Mutex::new(Pending::default()),
                flushing: tokio::sync::Mutex::new(()),
                signals: Arc::new(Signals::default()),
                flusher: AtomicBool::new(false),
                flushes: AtomicU64::new(0),
                written: AtomicU64::new(0),
                dropped: AtomicU64::new(0),
                deferred: AtomicU64::new(0),
                last_log: parking_lot::Mutex::new(None),
            }),
        };
        batch.start_flusher();
        batch
    }

    /// Whether every record is written at once (a zero interval).
    pub fn write_through(&self) -> bool {
        self.inner.interval.is_zero()
    }

    pub fn stats(&self) -> BatchStats {
        let i = &self.inner;
        BatchStats {
            flushes: i.flushes.load(Ordering::Relaxed),
            written: i.written.load(Ordering::Relaxed),
            dropped: i.dropped.load(Ordering::Relaxed),
            deferred: i.deferred.load(Ordering::Relaxed),
        }
    }

    /// Adds one record's writes, which `fill` makes through [`Entries`] (hash increments, each key
    /// with its TTL, and set members); only what is new to the batch is allocated.
    pub async fn record(&self, fill: impl FnOnce(&mut Entries<'_>)) {
        self.change(|p| {
            fill(&mut Entries { pending: p });
            p.records += 1;
        })
        .await;
    }

    /// Notes a success of `provider` whose circuit was last seen closed without failures: the
    /// flush resets the failure count if another instance has counted some meanwhile.
    pub async fn success(&self, provider: &str) {
        self.change(|p| {
            if !p.successes.contains(provider) {
                p.successes.insert(provider.to_string());
            }
        })
        .await;
    }

    /// Takes back a noted success of `provider` not yet written (a failure is about to be
    /// recorded, which must come after it).
    pub fn take_success(&self, provider: &str) -> bool {
        self.inner.pending.lock().successes.remove(provider)
    }

    /// Asks for the fields of `key` older than the window ending at `second` to be dropped after
    /// the next flush.
    pub fn prune_later(&self, key: &str, second: u64) {
        let mut pending = self.inner.pending.lock();
        let at = pending.prune.entry(key.to_string()).or_insert(second);
        *at = (*at).max(second);
    }

    async fn change(&self, apply: impl FnOnce(&mut Pending)) {
        let (first, full) = {
            let mut pending = self.inner.pending.lock();
            let first = pending.is_empty();
            apply(&mut pending);
            (first, pending.size >= MAX_PENDING_FIELDS)
        };
        if self.write_through() {
            self.flush().await;
            return;
        }
        self.start_flusher();
        if full {
            self.inner.signals.full.notify_one();
        } else if first {
            self.inner.signals.started.notify_one();
        }
    }

    /// Starts the task that writes each batch `interval` after its first write (once; not in
    /// write-through mode, nor outside a tokio runtime).
    fn start_flusher(&self) {
        if self.write_through() || self.inner.flusher.load(Ordering::Relaxed) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.flusher.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let signals = self.inner.signals.clone();
        runtime.spawn(async move {
            loop {
                let Some(interval) = weak.upgrade().map(|inner| {
                    // An empty batch: wait for its first write (a permit is kept if it came
                    // before this task waits).
                    let idle = inner.pending.lock().is_empty();
                    (idle, inner.interval)
                }) else {
                    return;
                };
                if interval.0 {
                    tokio::select! {
                        () = signals.started.notified() => {}
                        () = signals.full.notified() => {}
                    }
                }
                tokio::select! {
                    () = tokio::time::sleep(interval.1) => {}
                    () = signals.full.notified() => {}
                }
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                WriteBehind { inner }.flush().await;
            }
        });
    }

    /// Writes everything recorded so far, after any flush already under way; returns when it is
    /// written (or dropped, or kept for later after a failure). Called by the flushing task, by
    /// the stores before they read batched data, and at shutdown.
    pub async fn flush(&self) {
        let _turn = self.inner.flushing.lock().await;
        let batch = std::mem::take(&mut *self.inner.pending.lock());
        if batch.is_empty() {
            return;
        }
        let parts = if self.inner.backend.is_cluster() {
            batch.by_slot()
        } else {
            vec![batch]
        };
        join_all(parts.into_iter().map(|part| self.send(part))).await;
    }

    async fn send(&self, mut part: Pending) {
        let inner = &self.inner;
        let prune = std::mem::take(&mut part.prune);
        let has_writes =
            !(part.counters.is_empty() && part.members.is_empty() && part.successes.is_empty());
        if has_writes {
            let (pipeline, checks) = part.pipeline();
            match inner
                .backend
                .run_tracked::<Vec<RedisValue>>(&pipeline)
                .await
            {
                Ok(answers) => {
                    inner.flushes.fetch_add(1, Ordering::Relaxed);
                    inner.written.fetch_add(part.records, Ordering::Relaxed);
                    self.reset_circuits(checks, answers).await;
                }
                Err(failure) if !failure.sent && part.attempts + 1 < MAX_ATTEMPTS => {
                    // Nothing reached Redis: try again with the next batch.
                    inner.deferred.fetch_add(1, Ordering::Relaxed);
                    part.attempts += 1;
                    part.prune = prune;
                    inner.pending.lock().merge(part);
                    return;
                }
                Err(failure) => {
                    self.dropped(part.records, &failure.error.0, failure.sent);
                    return;
                }
            }
        }
        for (key, second) in prune {
            let backend = inner.backend.clone();
            tokio::spawn(async move { prune_stale(&backend, &key, second).await });
        }
    }

    /// After a flush: a circuit another instance has counted failures on since this one last saw
    /// it is reset by the successes noted here. Open or half-open circuits are left alone (a newer
    /// decision than these successes, which were of requests routed while it was closed).
    async fn reset_circuits(&self, checks: Vec<String>, answers: Vec<RedisValue>) {
        if checks.is_empty() {
            return;
        }
        // The GETs are the only answers kept, at the end.
        let skip = answers.len().saturating_sub(checks.len());
        for (provider, answer) in checks.iter().zip(answers.into_iter().skip(skip)) {
            let raw: Option<String> = FromRedisValue::from_redis_value(answer).unwrap_or(None);
            if raw.is_some() {
                super::circuit_write::reset_failures(&self.inner.backend, provider).await;
            }
        }
    }

    fn dropped(&self, records: u64, error: &str, sent: bool) {
        let inner = &self.inner;
        let total = inner.dropped.fetch_add(records, Ordering::Relaxed) + records;
        let errors = inner.backend.count_error();
        let mut last = inner.last_log.lock();
        if last.is_none_or(|at| at.elapsed() >= LOG_INTERVAL) {
            *last = Some(Instant::now());
            let why = if sent {
                "Redis failed the write (not retried: part of it may have been applied)"
            } else {
                "Redis did not answer after several attempts"
            };
            tracing::warn!(
                store_errors_total = errors,
                dropped_records = records,
                dropped_records_total = total,
                error,
                "routing metrics and usage of the last moments not recorded: {why}"
            );
        }
    }
}

/// Drops the fields of the metrics hash `key` older than the window ending at `now_second`.
async fn prune_stale(backend: &RedisBackend, key: &str, now_second: u64) {
    let Ok((fields,)) = backend.run::<(Vec<String>,)>(pipe().hkeys(key)).await else {
        return;
    };
    let oldest = now_second.saturating_sub(WINDOW_SECONDS);
    let stale: Vec<&String> = fields
        .iter()
        .filter(|f| {
            f.split_once(':')
                .and_then(|(s, _)| s.parse::<u64>().ok())
                .is_some_and(|s| s < oldest)
        })
        .collect();
    if !stale.is_empty() {
        let _ = backend.run::<()>(pipe().hdel(key, stale).ignore()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, i64)]) -> Vec<(String, i64)> {
        list.iter().map(|(f, n)| (f.to_string(), *n)).collect()
    }

    #[test]
    fn counters_are_summed_per_field_and_members_kept_once() {
        let mut p = Pending::default();
        p.add_counters("k", 60, fields(&[("1:s", 1), ("1:h3", 1)]));
        p.add_counters("k", 60, fields(&[("1:s", 1), ("1:f", 1)]));
        p.add_member("idx", "gpt", 60);
        p.add_member("idx", "gpt", 60);
        assert_eq!(p.counters["k"].0["1:s"], 2);
        assert_eq!(p.counters["k"].0.len(), 3);
        assert_eq!(p.members["idx"].0.len(), 1);
        assert_eq!(p.size, 4);
    }

    #[test]
    fn a_batch_sent_back_merges_into_the_next() {
        let mut older = Pending::default();
        older.add_counters("k", 60, fields(&[("1:s", 2)]));
        older.records = 2;
        older.attempts = 1;
        older.prune.insert("k".into(), 30);
        let mut newer = Pending::default();
        newer.add_counters("k", 60, fields(&[("1:s", 1), ("2:s", 1)]));
        newer.records = 1;
        newer.prune.insert("k".into(), 60);
        newer.merge(older);
        assert_eq!(newer.counters["k"].0["1:s"], 3);
        assert_eq!(newer.counters["k"].0["2:s"], 1);
        assert_eq!(newer.records, 3);
        assert_eq!(newer.attempts, 1);
        assert_eq!(newer.prune["k"], 60);
    }

    #[test]
    fn a_cluster_batch_splits_by_slot_keeping_a_days_usage_together() {
        let mut p = Pending::default();
        p.add_counters(
            &keys::usage("2026-12-07", "key"),
            9,
            fields(&[("a\nrequests", 1)]),
        );
        p.add_counters(
            &keys::usage("2026-12-07", "team"),
            9,
            fields(&[("t\nrequests", 1)]),
        );
        p.add_counters(&keys::metrics("gpt", "p"), 9, fields(&[("1:s", 1)]));
        p.successes.insert("p".into());
        p.records = 2;
        let parts = p.by_slot();
        let usage = parts
            .iter()
            .find(|part| {
                part.counters
                    .contains_key(&keys::usage("2026-12-07", "key"))
            })
            .expect("the usage part");
        assert!(
            usage
                .counters
                .contains_key(&keys::usage("2026-12-07", "team"))
        );
        for part in &parts {
            let slots: HashSet<u16> = part
                .counters
                .keys()
                .chain(part.members.keys())
                .cloned()
                .chain(part.successes.iter().map(|p| keys::circuit(p)))
                .map(|k| keys::slot(&k))
                .collect();
            assert!(slots.len() <= 1, "one slot per part");
        }
        assert_eq!(parts.iter().map(|p| p.records).sum::<u64>(), 2);
    }
}
