//! Virtual keys, their limit windows and budgets, and the usage aggregates in Redis, shared by
//! every instance; the same semantics as the in-memory adapters (`outbound::memory`).
//!
//! - Keys: `{apx:keys}:id:<id>` (JSON), `{apx:keys}:hash:<secret hash>` (the id) and the index
//!   set `{apx:keys}:index`, all under one hash tag so a rotation is one MULTI/EXEC on one slot.
//! - Ledger: `apx:key:{<id>}:req` and `:tok` (hashes second -> count, 120 s), `:par` (requests in
//!   flight, 900 s after the last admit or settle), `:spend:<period>` (nano-USD, the period's TTL).
//!   `admit` is one Lua script, so checking and taking is atomic across instances; `settle` is
//!   another.
//! - Usage: `apx:usage:{<day>}:<grouping>`, a hash `<group>\n<field>` -> integer, kept
//!   [`USAGE_RETENTION`] after its last write.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use deadpool_redis::redis::{
    self, Cmd, FromRedisValue, RedisError, Script, ScriptInvocation, Value as RedisValue, pipe,
};

use super::backend::{RedisBackend, RedisConnection};
use super::batch::WriteBehind;
use super::keys;
use crate::domain::keys::VirtualKey;
use crate::domain::metering::{
    Charge, Limit, Settlement, UsageGroup, UsageRecord, UsageTotals, Verdict,
};
use crate::domain::ports::{KeyLedger, KeyStore, StoreError, StoreResult, UsageStore};
use crate::outbound::memory::{
    LedgerReading, PARALLEL_IDLE_SECONDS, USAGE_RETENTION, WINDOW_SECONDS, WINDOW_TTL_SECONDS,
    WindowCount, second_of, signed, sort_keys, spend_delta,
};

/// Attempts of an optimistic transaction before giving up (another writer kept winning).
const TRANSACTION_ATTEMPTS: usize = 8;

fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError(format!("corrupt {what} in Redis: {detail}"))
}

fn parse_key(id: &str, json: &str) -> StoreResult<VirtualKey> {
    serde_json::from_str(json).map_err(|e| corrupt(&format!("virtual key '{id}'"), e))
}

pub struct RedisKeyStore {
    backend: RedisBackend,
}

impl RedisKeyStore {
    pub fn new(backend: RedisBackend) -> Self {
        RedisKeyStore { backend }
    }
}

fn kept_changing() -> StoreError {
    StoreError("a virtual key kept changing under concurrent writes; not done".into())
}

/// Runs a MULTI/EXEC pipeline on a watched connection: `false` when a watched key changed.
async fn exec(conn: &mut RedisConnection, p: &redis::Pipeline) -> Result<bool, RedisError> {
    let result: RedisValue = p.query_async(conn).await?;
    Ok(!matches!(result, RedisValue::Nil))
}

fn key_json(key: &VirtualKey) -> StoreResult<String> {
    serde_json::to_string(key).map_err(|e| StoreError(format!("cannot encode a virtual key: {e}")))
}

#[async_trait]
impl KeyStore for RedisKeyStore {
    async fn create(&self, key: VirtualKey) -> StoreResult<()> {
        let json = key_json(&key)?;
        self.backend
            .run::<()>(
                pipe()
                    .atomic()
                    .set(keys::virtual_key(&key.id), json)
                    .ignore()
                    .set(keys::virtual_key_hash(&key.secret_hash), &key.id)
                    .ignore()
                    .sadd(keys::VIRTUAL_KEY_INDEX, &key.id)
                    .ignore(),
            )
            .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<VirtualKey>> {
        let (raw,): (Option<String>,) = self.backend.run(pipe().get(keys::virtual_key(id))).await?;
        raw.map(|json| parse_key(id, &json)).transpose()
    }

    async fn find_by_hash(&self, secret_hash: &str) -> StoreResult<Option<VirtualKey>> {
        let (id,): (Option<String>,) = self
            .backend
            .run(pipe().get(keys::virtual_key_hash(secret_hash)))
            .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        // The record must still carry this hash: a mapping left behind (a key re-created under
        // its id with another secret, a delete of a corrupt record) resolves to nothing.
        Ok(self
            .get(&id)
            .await?
            .filter(|key| key.secret_hash == secret_hash))
    }

    async fn list(&self) -> StoreResult<Vec<VirtualKey>> {
        let (ids,): (Vec<String>,) = self
            .backend
            .run(pipe().smembers(keys::VIRTUAL_KEY_INDEX))
            .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for id in &ids {
            p.get(keys::virtual_key(id));
        }
        let raws: Vec<Option<String>> = self.backend.run(&p).await?;
        let mut found = Vec::with_capacity(ids.len());
        for (id, raw) in ids.iter().zip(raws) {
            if let Some(json) = raw {
                found.push(parse_key(id, &json)?);
            }
        }
        sort_keys(&mut found);
        Ok(found)
    }

    async fn update(&self, key: VirtualKey, previous_hash: &str) -> StoreResult<bool> {
        let json = key_json(&key)?;
        let record = keys::virtual_key(&key.id);
        let old_hash = keys::virtual_key_hash(previous_hash);
        let new_hash = keys::virtual_key_hash(&key.secret_hash);
        let rotated = key.secret_hash != previous_hash;
        for _ in 0..TRANSACTION_ATTEMPTS {
            let outcome = self
                .backend
                .with_connection(async |conn| {
                    redis::cmd("WATCH")
                        .arg(&record)
                        .arg(&old_hash)
                        .query_async::<()>(conn)
                        .await?;
                    let (exists, owner): (bool, Option<String>) = pipe()
                        .exists(&record)
                        .get(&old_hash)
                        .query_async(conn)
                        .await?;
                    if !exists {
                        conn.unwatch(&record).await?;
                        return Ok(Some(false));
                    }
                    let mut p = pipe();
                    p.atomic().set(&record, &json).ignore();
                    if rotated {
                        // Only the key's own mapping goes; a hash some other key holds is not this one's.
                        if owner.as_deref() == Some(key.id.as_str()) {
                            p.del(&old_hash).ignore();
                        }
                        p.set(&new_hash, &key.id).ignore();
                    }
                    Ok(exec(conn, &p).await?.then_some(true))
                })
                .await?;
            if let Some(done) = outcome {
                return Ok(done);
            }
        }
        Err(kept_changing())
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let record = keys::virtual_key(id);
        for _ in 0..TRANSACTION_ATTEMPTS {
            let outcome = self
                .backend
                .with_connection(async |conn| {
                    redis::cmd("WATCH")
                        .arg(&record)
                        .query_async::<()>(conn)
                        .await?;
                    let raw: Option<String> =
                        redis::cmd("GET").arg(&record).query_async(conn).await?;
                    let Some(json) = raw else {
                        conn.unwatch(&record).await?;
                        return Ok(Some(false));
                    };
                    let mut p = pipe();
                    p.atomic()
                        .del(&record)
                        .ignore()
                        .del(keys::virtual_key_used(id))
                        .ignore()
                        .srem(keys::VIRTUAL_KEY_INDEX, id)
                        .ignore();
                    // A corrupt record is still deleted (deleting is how it is got rid of); its hash
                    // mapping, unknown then, is left behind and resolves to nothing.
                    if let Ok(key) = serde_json::from_str::<VirtualKey>(&json) {
                        let hash = keys::virtual_key_hash(&key.secret_hash);
                        redis::cmd("WATCH")
                            .arg(&hash)
                            .query_async::<()>(conn)
                            .await?;
                        let owner: Option<String> =
                            redis::cmd("GET").arg(&hash).query_async(conn).await?;
                        if owner.as_deref() == Some(id) {
                            p.del(&hash).ignore();
                        }
                    }
                    Ok(exec(conn, &p).await?.then_some(true))
                })
                .await?;
            if let Some(done) = outcome {
                return Ok(done);
            }
        }
        Err(kept_changing())
    }

    async fn touch(&self, id: &str, at: f64) -> StoreResult<()> {
        // A key deleted meanwhile leaves no trace: the marker is written only beside a record.
        let record = keys::virtual_key(id);
        let (exists,): (bool,) = self.backend.run(pipe().exists(&record)).await?;
        if exists {
            self.backend
                .run::<()>(pipe().set(keys::virtual_key_used(id), at).ignore())
                .await?;
        }
        Ok(())
    }

    async fn last_used(&self, ids: &[String]) -> StoreResult<Vec<Option<f64>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut p = pipe();
        for id in ids {
            p.get(keys::virtual_key_used(id));
        }
        let raw: Vec<Option<String>> = self.backend.run(&p).await?;
        Ok(raw
            .into_iter()
            .map(|v| v.and_then(|v| v.parse::<f64>().ok()))
            .collect())
    }
}

/// A Lua script run with EVALSHA; loaded in the same round trip the first time, and again after
/// the server answering lost it or never had it (a restart, a replica promoted to master, another
/// master of a cluster): that NOSCRIPT is not counted as a store error, and the call loads the
/// script and runs it at once.
struct Lua {
    script: Script,
    loaded: AtomicBool,
}

impl Lua {
    fn new(code: &str) -> Self {
        Lua {
            script: Script::new(code),
            loaded: AtomicBool::new(false),
        }
    }

    async fn eval<T: FromRedisValue>(
        &self,
        backend: &RedisBackend,
        call: &ScriptInvocation<'_>,
    ) -> StoreResult<T> {
        if self.loaded.load(Ordering::Relaxed) {
            match backend.run::<(T,)>(pipe().invoke_script(call)).await {
                Ok((value,)) => return Ok(value),
                Err(e) if is_no_script(&e) => self.loaded.store(false, Ordering::Relaxed),
                Err(e) => return Err(e),
            }
        }
        let (value,): (T,) = backend
            .run(
                pipe()
                    .load_script(&self.script)
                    .ignore()
                    .invoke_script(call),
            )
            .await?;
        self.loaded.store(true, Ordering::Relaxed);
        Ok(value)
    }
}

/// Whether Redis answered that it does not know the script (the error's text is all a
/// `StoreError` keeps: `NoScript: No matching script...`, or the server's `NOSCRIPT` code).
fn is_no_script(e: &StoreError) -> bool {
    e.0.to_ascii_lowercase().contains("noscript")
}

/// Shared by both scripts: counts one window hash (second -> n) from `start`, deleting the
/// seconds before it; seconds ahead (an instance whose clock runs ahead) count too. Returns
/// nil on a field or count that is not a number.
const WINDOW_LUA: &str = r#"
local function window(key, start)
  local flat = redis.call('HGETALL', key)
  local total, oldest, stale = 0, -1, {}
  for i = 1, #flat, 2 do
    local at, n = tonumber(flat[i]), tonumber(flat[i + 1])
    if at == nil or n == nil then
      return nil
    end
    if at < start then
      stale[#stale + 1] = flat[i]
    elseif n > 0 then
      total = total + n
      if oldest < 0 or at < oldest then
        oldest = at
      end
    end
  end
  for i = 1, #stale, 256 do
    redis.call('HDEL', key, unpack(stale, i, math.min(i + 255, #stale)))
  end
  return total, oldest
end
"#;

/// KEYS: requests, tokens, parallel, spend. ARGV: second, rpm, tpm, max_parallel, budget limit
/// (-1: none), reserve, spend TTL (0: none), window seconds, window TTL, parallel TTL.
/// Returns {refused (0, or 1 requests, 2 tokens, 3 parallel, 4 budget), retry after, requests,
/// oldest request second, tokens, oldest token second} (-1: no second). Nothing is written when
/// refusing but the pruning of stale seconds.
const ADMIT_LUA: &str = r#"
local second = tonumber(ARGV[1])
local rpm, tpm, max_parallel = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local limit, reserve, spend_ttl = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local span, window_ttl, parallel_ttl = tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10])
local start = second - span + 1

local function integer(key)
  local raw = redis.call('GET', key)
  if not raw then
    return 0
  end
  return tonumber(raw)
end

local function retry_after(oldest)
  if oldest < 0 then
    return span
  end
  return math.max(oldest + span - second, 1)
end

local requests, requests_oldest, tokens, tokens_oldest = 0, -1, 0, -1
if rpm >= 0 then
  requests, requests_oldest = window(KEYS[1], start)
  if requests == nil then
    return redis.error_reply('corrupt requests window ' .. KEYS[1])
  end
end
if tpm >= 0 then
  tokens, tokens_oldest = window(KEYS[2], start)
  if tokens == nil then
    return redis.error_reply('corrupt tokens window ' .. KEYS[2])
  end
end

local refused, retry = 0, 0
if max_parallel >= 0 then
  local in_flight = integer(KEYS[3])
  if in_flight == nil then
    return redis.error_reply('corrupt parallel count ' .. KEYS[3])
  end
  if in_flight >= max_parallel then
    refused, retry = 3, 1
  end
end
if refused == 0 and rpm >= 0 and requests >= rpm then
  refused, retry = 1, retry_after(requests_oldest)
end
if refused == 0 and tpm >= 0 and tokens >= tpm then
  refused, retry = 2, retry_after(tokens_oldest)
end
if refused == 0 and limit >= 0 then
  local spent = integer(KEYS[4])
  if spent == nil then
    return redis.error_reply('corrupt spending ' .. KEYS[4])
  end
  if math.max(spent, 0) + reserve > limit then
    refused, retry = 4, 0
  end
end

if refused == 0 then
  if rpm >= 0 then
    redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
    redis.call('EXPIRE', KEYS[1], window_ttl)
    requests = requests + 1
    if requests_oldest < 0 or second < requests_oldest then
      requests_oldest = second
    end
  end
  if max_parallel >= 0 then
    redis.call('INCR', KEYS[3])
    redis.call('EXPIRE', KEYS[3], parallel_ttl)
  end
  if limit >= 0 then
    redis.call('INCRBY', KEYS[4], ARGV[6])
    if spend_ttl > 0 then
      redis.call('EXPIRE', KEYS[4], spend_ttl)
    end
  end
end
return {refused, retry, requests, requests_oldest, tokens, tokens_oldest}
"#;

/// KEYS: tokens, parallel, spend. ARGV: second, tokens (0: none), release a slot (1/0), spend
/// delta (0: none), spend TTL (0: none), window seconds, window TTL, parallel TTL. Checks before
/// it writes, so a corrupt value changes nothing.
const SETTLE_LUA: &str = r#"
local second, tokens = tonumber(ARGV[1]), tonumber(ARGV[2])
local spend_ttl, span = tonumber(ARGV[5]), tonumber(ARGV[6])
local window_ttl, parallel_ttl = tonumber(ARGV[7]), tonumber(ARGV[8])

local in_flight = 0
if ARGV[3] == '1' then
  local raw = redis.call('GET', KEYS[2])
  if raw then
    in_flight = tonumber(raw)
    if in_flight == nil then
      return redis.error_reply('corrupt parallel count ' .. KEYS[2])
    end
  end
end
if tokens > 0 then
  if window(KEYS[1], second - span + 1) == nil then
    return redis.error_reply('corrupt tokens window ' .. KEYS[1])
  end
  redis.call('HINCRBY', KEYS[1], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], window_ttl)
end
if ARGV[3] == '1' then
  if in_flight <= 1 then
    redis.call('DEL', KEYS[2])
  else
    redis.call('DECR', KEYS[2])
    redis.call('EXPIRE', KEYS[2], parallel_ttl)
  end
end
if ARGV[4] ~= '0' then
  redis.call('INCRBY', KEYS[3], ARGV[4])
  if spend_ttl > 0 then
    redis.call('EXPIRE', KEYS[3], spend_ttl)
  end
end
return 1
"#;

pub struct RedisKeyLedger {
    backend: RedisBackend,
    admit: Lua,
    settle: Lua,
}

impl RedisKeyLedger {
    pub fn new(backend: RedisBackend) -> Self {
        RedisKeyLedger {
            backend,
            admit: Lua::new(&format!("{WINDOW_LUA}{ADMIT_LUA}")),
            settle: Lua::new(&format!("{WINDOW_LUA}{SETTLE_LUA}")),
        }
    }
}

/// An optional limit as the scripts take it: -1 when there is none.
fn limit_arg(limit: Option<u64>) -> i64 {
    limit.map_or(-1, signed)
}

/// A second the script answered (-1: none).
fn oldest(second: i64) -> Option<u64> {
    u64::try_from(second).ok()
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl KeyLedger for RedisKeyLedger {
    async fn admit(&self, charge: &Charge) -> StoreResult<Verdict> {
        let second = second_of(charge.now);
        let id = &charge.key_id;
        let (limit, reserve, spend_key, spend_ttl) = match &charge.budget {
            Some(b) => (
                signed(b.limit),
                signed(b.reserve),
                keys::key_spend(id, &b.period.id),
                b.period.ttl_secs.map_or(0, signed),
            ),
            // The script does not touch the spend key then; a name in the slot keeps the KEYS
            // list fixed.
            None => (-1, 0, keys::key_spend(id, "-"), 0),
        };
        let mut call = self.admit.script.prepare_invoke();
        call.key(keys::key_requests(id))
            .key(keys::key_tokens(id))
            .key(keys::key_parallel(id))
            .key(spend_key)
            .arg(second)
            .arg(charge.rpm.map_or(-1, i64::from))
            .arg(limit_arg(charge.tpm))
            .arg(charge.max_parallel.map_or(-1, i64::from))
            .arg(limit)
            .arg(reserve)
            .arg(spend_ttl)
            .arg(WINDOW_SECONDS)
            .arg(WINDOW_TTL_SECONDS)
            .arg(PARALLEL_IDLE_SECONDS);
        let reply: Vec<i64> = self.admit.eval(&self.backend, &call).await?;
        let &[
            refused,
            retry_after,
            requests,
            requests_oldest,
            tokens,
            tokens_oldest,
        ] = reply.as_slice()
        else {
            return Err(corrupt("admit reply", format!("{reply:?}")));
        };
        let limit = match refused {
            0 => None,
            1 => Some(Limit::Requests),
            2 => Some(Limit::Tokens),
            3 => Some(Limit::Parallel),
            4 => Some(Limit::Budget),
            other => return Err(corrupt("admit reply", format!("refusal {other}"))),
        };
        let reading = LedgerReading {
            requests: WindowCount {
                total: count(requests),
                oldest: oldest(requests_oldest),
            },
            tokens: WindowCount {
                total: count(tokens),
                oldest: oldest(tokens_oldest),
            },
            refused: limit.map(|l| (l, count(retry_after))),
        };
        Ok(reading.verdict(charge))
    }

    async fn settle(&self, settlement: &Settlement) -> StoreResult<()> {
        let id = &settlement.key_id;
        let tokens = settlement.tokens.map_or(0, signed);
        let delta = spend_delta(settlement);
        if tokens <= 0 && !settlement.release_parallel && delta == 0 {
            return Ok(());
        }
        let mut call = self.settle.script.prepare_invoke();
        call.key(keys::key_tokens(id))
            .key(keys::key_parallel(id))
            .key(keys::key_spend(id, &settlement.period.id))
            .arg(second_of(settlement.now))
            .arg(tokens.max(0))
            .arg(u8::from(settlement.release_parallel))
            .arg(delta)
            .arg(settlement.period.ttl_secs.map_or(0, signed))
            .arg(WINDOW_SECONDS)
            .arg(WINDOW_TTL_SECONDS)
            .arg(PARALLEL_IDLE_SECONDS);
        self.settle.eval::<i64>(&self.backend, &call).await?;
        Ok(())
    }

    async fn spent(&self, periods: &[(String, String)]) -> StoreResult<Vec<u64>> {
        if periods.is_empty() {
            return Ok(Vec::new());
        }
        // Each key's ledger is on its own slot in a cluster: one GET each.
        let reads = periods
            .iter()
            .map(|(key_id, period_id)| Cmd::get(keys::key_spend(key_id, period_id)))
            .collect();
        let raws: Vec<Option<String>> = self.backend.run_each(reads).await?;
        periods
            .iter()
            .zip(raws)
            .map(|((key_id, period_id), raw)| {
                let Some(raw) = raw else {
                    return Ok(0);
                };
                // Below zero between a settle and the next (a cost under its reservation).
                raw.parse::<i64>()
                    .map(|n| n.max(0).unsigned_abs())
                    .map_err(|_| corrupt(&format!("spending of '{key_id}' in '{period_id}'"), raw))
            })
            .collect()
    }
}

pub struct RedisUsageStore {
    backend: RedisBackend,
    batch: WriteBehind,
}

impl RedisUsageStore {
    /// Records are written through `batch` (`batch.rs`); reads flush it first.
    pub fn new(backend: RedisBackend, batch: WriteBehind) -> Self {
        RedisUsageStore { backend, batch }
    }
}

#[async_trait]
impl UsageStore for RedisUsageStore {
    async fn record(&self, record: &UsageRecord) -> StoreResult<()> {
        let increments = UsageTotals::increments(record);
        let retention = signed(USAGE_RETENTION.as_secs());
        // One day's hashes share its hash tag, so the batch writes all its groupings in one
        // MULTI: they change together or not at all.
        let mut field = String::with_capacity(64);
        self.batch
            .record(|batch| {
                use std::fmt::Write;
                for group in UsageGroup::ALL {
                    let Some(value) = record.group(group) else {
                        continue;
                    };
                    let key = keys::usage(&record.day, group.as_str());
                    batch.expire(&key, retention);
                    for (name, n) in UsageTotals::FIELDS.iter().zip(increments) {
                        if n > 0 {
                            field.clear();
                            let _ = write!(field, "{value}\n{name}");
                            batch.incr(&key, retention, &field, signed(n));
                        }
                    }
                }
            })
            .await;
        Ok(())
    }

    async fn totals(
        &self,
        days: &[String],
        group_by: UsageGroup,
        only: Option<String>,
    ) -> StoreResult<Vec<(String, UsageTotals)>> {
        if days.is_empty() {
            return Ok(Vec::new());
        }
        // This instance's records not yet written go out first.
        self.batch.flush().await;
        // Each day is on its own slot in a cluster: one HGETALL each.
        let reads = days
            .iter()
            .map(|day| Cmd::hgetall(keys::usage(day, group_by.as_str())))
            .collect();
        let hashes: Vec<Vec<(String, String)>> = self.backend.run_each(reads).await?;
        let mut totals: BTreeMap<String, UsageTotals> = BTreeMap::new();
        for (day, hash) in days.iter().zip(hashes) {
            for (field, raw) in hash {
                let what = || format!("usage of {day} by {}", group_by.as_str());
                // Field names have no newline; a group value might, so split at the last one.
                let Some((value, name)) = field.rsplit_once('\n') else {
                    return Err(corrupt(&what(), format!("field {field:?}")));
                };
                let n: u64 = raw
                    .parse()
                    .map_err(|_| corrupt(&what(), format!("{field:?} = {raw:?}")))?;
                if only.as_deref().is_some_and(|o| o != value) {
                    continue;
                }
                totals.entry(value.to_string()).or_default().add(name, n);
            }
        }
        Ok(totals.into_iter().collect())
    }
}
