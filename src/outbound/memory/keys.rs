//! Virtual keys, their limit windows and budgets, and the usage aggregates, in memory: the same
//! semantics as the Redis adapters (`outbound::redis::access`), for one gateway process.
//!
//! Every operation runs under one lock, so `admit` checks and takes atomically like the Redis
//! script does. Nothing grows without bound: window buckets are pruned when their key is
//! touched, spending expires with its period, usage days are kept for [`USAGE_RETENTION`].

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
// foldhash (hashbrown's default) rather than SipHash: these maps are read and written on every
// request, and their keys are configured names or bounded sets (SPEC's providers, models, keys).
use hashbrown::HashMap;
use parking_lot::{Mutex, RwLock};

use crate::domain::keys::VirtualKey;
use crate::domain::metering::{
    Allowance, Charge, Limit, Settlement, UsageGroup, UsageRecord, UsageTotals, Verdict,
};
use crate::domain::ports::{KeyLedger, KeyStore, StoreResult, UsageStore};

/// How long usage aggregates are kept after their day (SPEC 3.1: a year and some slack).
pub const USAGE_RETENTION: Duration = Duration::from_secs(400 * 86_400);

/// Seconds in a limit window; a window is the one-second buckets `s - 59 ..= s`.
pub const WINDOW_SECONDS: u64 = 60;
/// After this long without an admit or settle of a key, its parallel slots are forgotten, so slots
/// held by requests that never settled (a crashed instance, in Redis) come back.
pub const PARALLEL_IDLE_SECONDS: u64 = 900;
/// How long the request and token windows outlive their last write (in Redis; here they are
/// pruned when touched).
pub const WINDOW_TTL_SECONDS: u64 = 2 * WINDOW_SECONDS;

#[derive(Default)]
struct KeyRecords {
    by_id: HashMap<String, VirtualKey>,
    /// Secret hash -> key id.
    by_hash: HashMap<String, String>,
    /// Key id -> when it was last used.
    used: HashMap<String, f64>,
}

#[derive(Default)]
pub struct MemoryKeyStore {
    records: RwLock<KeyRecords>,
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn create(&self, key: VirtualKey) -> StoreResult<()> {
        let mut records = self.records.write();
        records
            .by_hash
            .insert(key.secret_hash.clone(), key.id.clone());
        records.by_id.insert(key.id.clone(), key);
        Ok(())
    }

    async fn get(&self, id: &str) -> StoreResult<Option<VirtualKey>> {
        Ok(self.records.read().by_id.get(id).cloned())
    }

    async fn find_by_hash(&self, secret_hash: &str) -> StoreResult<Option<VirtualKey>> {
        let records = self.records.read();
        // The key must still carry this hash: a mapping left behind (a key re-created under its
        // id with another secret) resolves to nothing, as in Redis.
        Ok(records
            .by_hash
            .get(secret_hash)
            .and_then(|id| records.by_id.get(id))
            .filter(|key| key.secret_hash == secret_hash)
            .cloned())
    }

    async fn list(&self) -> StoreResult<Vec<VirtualKey>> {
        let mut keys: Vec<VirtualKey> = self.records.read().by_id.values().cloned().collect();
        sort_keys(&mut keys);
        Ok(keys)
    }

    async fn update(&self, key: VirtualKey, previous_hash: &str) -> StoreResult<bool> {
        let mut records = self.records.write();
        if !records.by_id.contains_key(&key.id) {
            return Ok(false);
        }
        if key.secret_hash != previous_hash && records.by_hash.get(previous_hash) == Some(&key.id) {
            records.by_hash.remove(previous_hash);
        }
        records
            .by_hash
            .insert(key.secret_hash.clone(), key.id.clone());
        records.by_id.insert(key.id.clone(), key);
        Ok(true)
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let mut records = self.records.write();
        let Some(key) = records.by_id.remove(id) else {
            return Ok(false);
        };
        if records.by_hash.get(&key.secret_hash) == Some(&key.id) {
            records.by_hash.remove(&key.secret_hash);
        }
        records.used.remove(id);
        Ok(true)
    }

    async fn touch(&self, id: &str, at: f64) -> StoreResult<()> {
        let mut records = self.records.write();
        if records.by_id.contains_key(id) {
            let used = records.used.entry(id.to_string()).or_insert(at);
            *used = used.max(at);
        }
        Ok(())
    }

    async fn last_used(&self, ids: &[String]) -> StoreResult<Vec<Option<f64>>> {
        let records = self.records.read();
        Ok(ids.iter().map(|id| records.used.get(id).copied()).collect())
    }
}

/// Oldest first, ties by id: the order `list` promises, whatever the store's own order.
pub(crate) fn sort_keys(keys: &mut [VirtualKey]) {
    keys.sort_by(|a, b| {
        a.created_at
            .total_cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
}

/// The second a Unix time falls in.
pub(crate) fn second_of(now: f64) -> u64 {
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

/// The first second of the window ending in `second`.
fn window_start(second: u64) -> u64 {
    second.saturating_sub(WINDOW_SECONDS - 1)
}

/// A window's count and its oldest non-empty second, as both backends read them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct WindowCount {
    pub total: u64,
    pub oldest: Option<u64>,
}

/// What a charge found in the ledger, and the verdict built from it: shared by both backends so
/// they answer alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct LedgerReading {
    pub requests: WindowCount,
    pub tokens: WindowCount,
    /// The refusal, when there is one: which limit and the seconds to wait.
    pub refused: Option<(Limit, u64)>,
}

impl LedgerReading {
    /// The verdict for `charge`; when admitted, `requests` already counts this request.
    pub fn verdict(&self, charge: &Charge) -> Verdict {
        let reset = |window: WindowCount| {
            window.oldest.map_or(0.0, |oldest| {
                (oldest as f64 + WINDOW_SECONDS as f64 - charge.now).max(0.0)
            })
        };
        let mut allowance = Allowance {
            rpm: charge.rpm,
            tpm: charge.tpm,
            ..Allowance::default()
        };
        if let Some(rpm) = charge.rpm {
            allowance.requests_remaining = u64::from(rpm).saturating_sub(self.requests.total);
            allowance.requests_reset = reset(self.requests);
        }
        if let Some(tpm) = charge.tpm {
            allowance.tokens_remaining = tpm.saturating_sub(self.tokens.total);
            allowance.tokens_reset = reset(self.tokens);
        }
        match self.refused {
            None => Verdict::Admitted(allowance),
            Some((limit, retry_after)) => Verdict::Refused {
                limit,
                retry_after,
                allowance,
            },
        }
    }
}

/// Seconds until a full window frees room: when its oldest second leaves it (at least 1; a whole
/// window when nothing is counted, which only a limit of 0 refuses).
fn window_retry_after(window: WindowCount, second: u64) -> u64 {
    window
        .oldest
        .map_or(WINDOW_SECONDS, |oldest| {
            (oldest + WINDOW_SECONDS).saturating_sub(second)
        })
        .max(1)
}

/// One-second buckets: second -> count.
#[derive(Default)]
struct Buckets(BTreeMap<u64, u64>);

impl Buckets {
    /// Drops the seconds before the window and counts the rest. Seconds ahead of `second` (an
    /// instance whose clock runs ahead) count too, as they do in Redis.
    fn count(&mut self, second: u64) -> WindowCount {
        let start = window_start(second);
        self.0 = self.0.split_off(&start);
        self.0.retain(|_, n| *n > 0);
        WindowCount {
            total: self.0.values().fold(0u64, |sum, n| sum.saturating_add(*n)),
            oldest: self.0.keys().next().copied(),
        }
    }

    fn add(&mut self, second: u64, n: u64) {
        let slot = self.0.entry(second).or_default();
        *slot = slot.saturating_add(n);
    }
}

#[derive(Default)]
struct KeyWindows {
    requests: Buckets,
    tokens: Buckets,
    in_flight: u64,
    /// The second of the last admit or settle that changed `in_flight`.
    in_flight_touched: u64,
}

impl KeyWindows {
    fn in_flight(&mut self, second: u64) -> u64 {
        if second.saturating_sub(self.in_flight_touched) >= PARALLEL_IDLE_SECONDS {
            self.in_flight = 0;
        }
        self.in_flight
    }

    fn is_idle(&self) -> bool {
        self.requests.0.is_empty() && self.tokens.0.is_empty() && self.in_flight == 0
    }
}

/// Spending of one (key id, period id): may go below zero between a settle and the next (a real
/// cost under its reservation), read back as zero.
struct Spend {
    nano: i64,
    /// Unix second after which it is gone (`None`: kept for ever).
    expires_at: Option<u64>,
}

#[derive(Default)]
struct Ledger {
    windows: HashMap<String, KeyWindows>,
    spend: HashMap<(String, String), Spend>,
    writes: u64,
}

/// Every this many writes, idle windows and expired spending are swept, so keys touched once do
/// not stay in memory.
const SWEEP_EVERY: u64 = 4096;

impl Ledger {
    fn spent(&mut self, key_id: &str, period_id: &str, second: u64) -> i64 {
        let id = (key_id.to_string(), period_id.to_string());
        match self.spend.get(&id) {
            Some(spend) if spend.expires_at.is_some_and(|at| second >= at) => {
                self.spend.remove(&id);
                0
            }
            Some(spend) => spend.nano,
            None => 0,
        }
    }

    fn add_spend(
        &mut self,
        key_id: &str,
        period_id: &str,
        delta: i64,
        ttl_secs: Option<u64>,
        second: u64,
    ) {
        let current = self.spent(key_id, period_id, second);
        self.spend.insert(
            (key_id.to_string(), period_id.to_string()),
            Spend {
                nano: current.saturating_add(delta),
                expires_at: ttl_secs.map(|ttl| second.saturating_add(ttl)),
            },
        );
    }

    fn sweep(&mut self, second: u64) {
        self.writes = self.writes.wrapping_add(1);
        if !self.writes.is_multiple_of(SWEEP_EVERY) {
            return;
        }
        self.windows.retain(|_, w| {
            w.requests.count(second);
            w.tokens.count(second);
            w.in_flight(second);
            !w.is_idle()
        });
        self.spend
            .retain(|_, s| s.expires_at.is_none_or(|at| second < at));
    }
}

/// Nano-dollars as the signed amount the ledger adds (saturating: no budget comes near it).
pub(crate) fn signed(nano: u64) -> i64 {
    i64::try_from(nano).unwrap_or(i64::MAX)
}

/// What a settlement changes the spending by: the real cost minus the reservation.
pub(crate) fn spend_delta(settlement: &Settlement) -> i64 {
    let delta = i128::from(settlement.cost) - i128::from(settlement.reserved);
    i64::try_from(delta).unwrap_or(if delta < 0 { i64::MIN } else { i64::MAX })
}

#[derive(Default)]
pub struct MemoryKeyLedger {
    ledger: Mutex<Ledger>,
}

#[async_trait]
impl KeyLedger for MemoryKeyLedger {
    async fn admit(&self, charge: &Charge) -> StoreResult<Verdict> {
        let second = second_of(charge.now);
        let mut ledger = self.ledger.lock();
        ledger.sweep(second);
        let spent = match &charge.budget {
            Some(budget) => ledger
                .spent(&charge.key_id, &budget.period.id, second)
                .max(0)
                .unsigned_abs(),
            None => 0,
        };
        let windows = ledger.windows.entry(charge.key_id.clone()).or_default();
        let mut reading = LedgerReading::default();
        if charge.rpm.is_some() {
            reading.requests = windows.requests.count(second);
        }
        if charge.tpm.is_some() {
            reading.tokens = windows.tokens.count(second);
        }
        reading.refused = if charge
            .max_parallel
            .is_some_and(|max| windows.in_flight(second) >= u64::from(max))
        {
            Some((Limit::Parallel, 1))
        } else if charge
            .rpm
            .is_some_and(|rpm| reading.requests.total >= u64::from(rpm))
        {
            Some((
                Limit::Requests,
                window_retry_after(reading.requests, second),
            ))
        } else if charge.tpm.is_some_and(|tpm| reading.tokens.total >= tpm) {
            Some((Limit::Tokens, window_retry_after(reading.tokens, second)))
        } else if charge
            .budget
            .as_ref()
            .is_some_and(|b| spent.saturating_add(b.reserve) > b.limit)
        {
            Some((Limit::Budget, 0))
        } else {
            None
        };
        if reading.refused.is_some() {
            return Ok(reading.verdict(charge));
        }
        if charge.rpm.is_some() {
            windows.requests.add(second, 1);
            reading.requests.total = reading.requests.total.saturating_add(1);
            reading.requests.oldest =
                Some(reading.requests.oldest.map_or(second, |o| o.min(second)));
        }
        if charge.max_parallel.is_some() {
            windows.in_flight += 1;
            windows.in_flight_touched = second;
        }
        if let Some(budget) = &charge.budget {
            ledger.add_spend(
                &charge.key_id,
                &budget.period.id,
                signed(budget.reserve),
                budget.period.ttl_secs,
                second,
            );
        }
        Ok(reading.verdict(charge))
    }

    async fn settle(&self, settlement: &Settlement) -> StoreResult<()> {
        let second = second_of(settlement.now);
        let mut ledger = self.ledger.lock();
        ledger.sweep(second);
        let tokens = settlement.tokens.filter(|t| *t > 0);
        if tokens.is_some() || settlement.release_parallel {
            let windows = ledger.windows.entry(settlement.key_id.clone()).or_default();
            if let Some(tokens) = tokens {
                windows.tokens.count(second);
                windows.tokens.add(second, tokens);
            }
            if settlement.release_parallel {
                windows.in_flight = windows.in_flight(second).saturating_sub(1);
                windows.in_flight_touched = second;
            }
        }
        let delta = spend_delta(settlement);
        if delta != 0 {
            ledger.add_spend(
                &settlement.key_id,
                &settlement.period.id,
                delta,
                settlement.period.ttl_secs,
                second,
            );
        }
        Ok(())
    }

    async fn spent(&self, periods: &[(String, String)]) -> StoreResult<Vec<u64>> {
        let ledger = self.ledger.lock();
        // Reading does not expire anything: without a `now`, spending still held counts.
        Ok(periods
            .iter()
            .map(|id| {
                ledger
                    .spend
                    .get(id)
                    .map_or(0, |s| s.nano.max(0).unsigned_abs())
            })
            .collect())
    }
}

/// The sums of one day: (grouping, group value) -> the fields of [`UsageTotals::FIELDS`].
type DaySums = HashMap<(&'static str, String), [u64; 7]>;

#[derive(Default)]
pub struct MemoryUsageStore {
    days: Mutex<BTreeMap<String, DaySums>>,
}

/// The first day kept when `newest` is the newest day recorded (`None` when it is not a date).
fn first_kept_day(newest: &str) -> Option<String> {
    let newest = chrono::NaiveDate::parse_from_str(newest, "%Y-%m-%d").ok()?;
    let retention = chrono::Days::new(USAGE_RETENTION.as_secs() / 86_400);
    Some(
        newest
            .checked_sub_days(retention)?
            .format("%Y-%m-%d")
            .to_string(),
    )
}

#[async_trait]
impl UsageStore for MemoryUsageStore {
    async fn record(&self, record: &UsageRecord) -> StoreResult<()> {
        let increments = UsageTotals::increments(record);
        let mut days = self.days.lock();
        // Old days are dropped when a new one starts, not on every request.
        let new_day = !days.contains_key(&record.day);
        let sums = days.entry(record.day.clone()).or_default();
        for group in UsageGroup::ALL {
            let Some(value) = record.group(group) else {
                continue;
            };
            let slot = sums.entry((group.as_str(), value.to_string())).or_default();
            for (sum, add) in slot.iter_mut().zip(increments) {
                *sum = sum.saturating_add(add);
            }
        }
        let newest = new_day.then(|| days.keys().next_back().cloned()).flatten();
        if let Some(first) = newest.as_deref().and_then(first_kept_day) {
            // Days sort as text; everything before the first kept day goes.
            *days = days.split_off(&first);
        }
        Ok(())
    }

    async fn totals(
        &self,
        days: &[String],
        group_by: UsageGroup,
        only: Option<String>,
    ) -> StoreResult<Vec<(String, UsageTotals)>> {
        let stored = self.days.lock();
        let mut totals: BTreeMap<String, UsageTotals> = BTreeMap::new();
        for day in days {
            let Some(sums) = stored.get(day) else {
                continue;
            };
            for ((group, value), fields) in sums {
                if *group != group_by.as_str() || only.as_ref().is_some_and(|o| o != value) {
                    continue;
                }
                let total = totals.entry(value.clone()).or_default();
                for (name, n) in UsageTotals::FIELDS.iter().zip(fields) {
                    total.add(name, *n);
                }
            }
        }
        Ok(totals.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::Usage;

    fn record(day: &str) -> UsageRecord {
        UsageRecord {
            day: day.into(),
            key: "key_1".into(),
            team: None,
            model: "gpt".into(),
            provider: "p".into(),
            usage: Usage::default(),
            cost: 1,
        }
    }

    #[tokio::test]
    async fn usage_days_beyond_the_retention_are_dropped() {
        let store = MemoryUsageStore::default();
        store.record(&record("2025-01-01")).await.unwrap();
        store.record(&record("2025-06-01")).await.unwrap();
        store.record(&record("2026-03-01")).await.unwrap();
        let kept: Vec<String> = store.days.lock().keys().cloned().collect();
        assert_eq!(
            kept,
            ["2025-06-01", "2026-03-01"],
            "400 days before 2026-03-01 is 2025-01-25"
        );
    }

    #[tokio::test]
    async fn old_buckets_are_pruned_when_touched() {
        let ledger = MemoryKeyLedger::default();
        let charge = |now: f64| Charge {
            key_id: "k".into(),
            now,
            rpm: Some(1000),
            tpm: None,
            max_parallel: None,
            budget: None,
        };
        for s in 0..600 {
            ledger.admit(&charge(1000.0 + f64::from(s))).await.unwrap();
        }
        let buckets = ledger.ledger.lock().windows["k"].requests.0.len();
        assert!(buckets <= WINDOW_SECONDS as usize, "{buckets} buckets");
    }

    #[tokio::test]
    async fn parallel_slots_come_back_after_a_long_silence() {
        let ledger = MemoryKeyLedger::default();
        let charge = |now: f64| Charge {
            key_id: "k".into(),
            now,
            rpm: None,
            tpm: None,
            max_parallel: Some(1),
            budget: None,
        };
        assert!(matches!(
            ledger.admit(&charge(100.0)).await.unwrap(),
            Verdict::Admitted(_)
        ));
        assert!(matches!(
            ledger.admit(&charge(101.0)).await.unwrap(),
            Verdict::Refused { .. }
        ));
        let later = 100.0 + PARALLEL_IDLE_SECONDS as f64;
        assert!(matches!(
            ledger.admit(&charge(later)).await.unwrap(),
            Verdict::Admitted(_)
        ));
    }
}
