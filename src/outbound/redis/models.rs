//! Logical models and model-list caches in Redis.
//!
//! Logical models live at `llm:logical:{id}` (JSON) with the index set `llm:logical:#index` and
//! the set of ids deleted through the API, `llm:logical:#deleted`: three keys on three hash
//! slots, so on a Redis Cluster no transaction can span them, and none does (see `put` and
//! `delete` for the order of the single-key writes and why it is safe). Each
//! instance remembers the last copy it read, and answers from it while Redis is unreachable, so
//! configured models keep routing through an outage. Provider model lists live at
//! `llm:vendor:{id}:models` with their TTL, fronted by an in-process copy that expires with the Redis
//! key: one fetch serves every instance, and the hot path rarely reaches Redis for them.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use deadpool_redis::redis::{Cmd, pipe};
use parking_lot::RwLock;
use serde_json::{Value, json};

use super::backend::RedisBackend;
use super::keys;
use crate::domain::model::{LogicalModel, Model};
use crate::domain::ports::{
    CachedModelList, Clock, LogicalModelStore, ModelCacheStore, ModelListEntry, StoreResult,
};
use crate::outbound::memory::MemoryModelCache;

/// The channel every instance announces its logical-model changes on (any message clears the
/// others' caches). Pub/Sub channels are server-wide: instances on other databases of the same
/// server clear their caches too, which costs them one read per model.
pub const LOGICAL_CHANGES: &str = "llm:logical:#changes";
/// How long a logical model read from Redis answers `get` while this instance listens to
/// [`LOGICAL_CHANGES`] (bounds what a missed message or a change made with redis-cli can cost).
const CACHE_MAX_AGE: Duration = Duration::from_secs(1);
/// Most names cached (client-chosen names that are no logical model are cached too).
const CACHE_MAX_ENTRIES: usize = 1024;
/// Pause before subscribing again after the subscription broke or could not be made.
const RESUBSCRIBE_AFTER: Duration = Duration::from_secs(1);

/// The logical models (and names that are none) read recently, used while this instance is
/// subscribed to [`LOGICAL_CHANGES`]: a change through any instance clears every cache at once,
/// so the hot path needs no Redis round trip for the model.
#[derive(Default)]
struct LogicalCache {
    /// Subscribed and listening: the cache may answer.
    live: AtomicBool,
    /// Bumped by every clear: a read that started before a clear does not fill the cache.
    generation: AtomicU64,
    entries: RwLock<HashMap<String, (Instant, Option<LogicalModel>)>>,
}

impl LogicalCache {
    fn get(&self, id: &str) -> Option<Option<LogicalModel>> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.read();
        let (at, model) = entries.get(id)?;
        (at.elapsed() < CACHE_MAX_AGE).then(|| model.clone())
    }

    fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps what a read that started at `generation` found, unless a clear came since.
    fn put(&self, generation: u64, id: &str, model: Option<LogicalModel>) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.write();
        if self.generation() != generation {
            return;
        }
        if entries.len() >= CACHE_MAX_ENTRIES && !entries.contains_key(id) {
            entries.clear();
        }
        entries.insert(id.to_string(), (Instant::now(), model));
    }

    fn clear(&self) {
        let mut entries = self.entries.write();
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Listens to [`LOGICAL_CHANGES`] on its own connection to `url` for as long as the store
    /// lives; the cache answers only while the subscription stands.
    fn watch(cache: &Arc<LogicalCache>, url: String) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let weak = Arc::downgrade(cache);
        runtime.spawn(async move {
            use futures_util::StreamExt;
            let Ok(client) = deadpool_redis::redis::Client::open(url) else {
                return;
            };
            loop {
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await.ok()?;
                    pubsub.subscribe(LOGICAL_CHANGES).await.ok()?;
                    Some(pubsub)
                };
                let subscribed = tokio::time::timeout(RESUBSCRIBE_AFTER * 5, subscribed).await;
                if let Ok(Some(pubsub)) = subscribed {
                    let Some(cache) = weak.upgrade() else {
                        return;
                    };
                    // What was read before the subscription may have changed unannounced.
                    cache.clear();
                    cache.live.store(true, Ordering::Release);
                    drop(cache);
                    let mut messages = pubsub.into_on_message();
                    while messages.next().await.is_some() {
                        let Some(cache) = weak.upgrade() else {
                            return;
                        };
                        cache.clear();
                    }
                }
                // The subscription broke (or never stood): no cache until it stands again.
                let Some(cache) = weak.upgrade() else {
                    return;
                };
                cache.live.store(false, Ordering::Release);
                cache.clear();
                drop(cache);
                tokio::time::sleep(RESUBSCRIBE_AFTER).await;
            }
        });
    }
}

pub struct RedisLogicalModelStore {
    backend: RedisBackend,
    cache: Arc<LogicalCache>,
    last_known: RwLock<HashMap<String, LogicalModel>>,
    /// Start-up models (`LOGICAL_MODELS_FILE`): written again if Redis loses them (a restart
    /// without persistence), unless they were deleted through the API since.
    seeded: RwLock<HashMap<String, LogicalModel>>,
}

impl RedisLogicalModelStore {
    /// A store that reads Redis on every `get`.
    pub fn new(backend: RedisBackend) -> Self {
        RedisLogicalModelStore {
            backend,
            cache: Arc::new(LogicalCache::default()),
            last_known: RwLock::new(HashMap::new()),
            seeded: RwLock::new(HashMap::new()),
        }
    }

    /// A store whose `get` answers from a short-lived cache while it is subscribed to the
    /// changes every instance announces on the server at `url` (one server; on a Cluster or a
    /// Sentinel set every `get` reads Redis).
    pub fn watching(backend: RedisBackend, url: String) -> Self {
        let store = Self::new(backend);
        LogicalCache::watch(&store.cache, url);
        store
    }

    /// Tells every instance (this one included) that logical models changed.
    async fn announce(&self) -> StoreResult<()> {
        self.cache.clear();
        self.backend
            .run::<()>(pipe().publish(LOGICAL_CHANGES, "changed").ignore())
            .await
    }

    /// Upserts start-up models (`LOGICAL_MODELS_FILE`): served from memory at once, written to
    /// Redis as soon as it answers (retried in the background while it does not).
    pub fn seed(self: &Arc<Self>, models: Vec<LogicalModel>) {
        if models.is_empty() {
            return;
        }
        {
            let mut known = self.last_known.write();
            let mut seeded = self.seeded.write();
            for model in &models {
                known.insert(model.logical_id.clone(), model.clone());
                seeded.insert(model.logical_id.clone(), model.clone());
            }
        }
        let this = self.clone();
        tokio::spawn(async move {
            let mut pending = models;
            loop {
                let mut failed = Vec::new();
                for model in pending {
                    if this.put(model.clone()).await.is_err() {
                        failed.push(model);
                    }
                }
                if failed.is_empty() {
                    break;
                }
                pending = failed;
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        });
    }

    /// Moves the index sets from where earlier versions kept them (inside the id space) to their
    /// own keys, once; a no-op when there is nothing to move. Only sets are moved: a string at the
    /// old name is a logical model someone named `index` or `deleted`, and is left alone. The old
    /// and new names hash to different slots, so this is a copy (SMEMBERS, SADD) then a DEL
    /// rather than one SUNIONSTORE: interrupted, it is simply done again at the next start.
    pub async fn migrate(&self) -> StoreResult<()> {
        for (old, new) in [
            (keys::LEGACY_LOGICAL_INDEX, keys::LOGICAL_INDEX),
            (keys::LEGACY_LOGICAL_DELETED, keys::LOGICAL_DELETED),
        ] {
            let (kind,): (String,) = self.backend.run(pipe().cmd("TYPE").arg(old)).await?;
            if kind == "set" {
                let (members,): (Vec<String>,) = self.backend.run(pipe().smembers(old)).await?;
                if !members.is_empty() {
                    self.backend
                        .run::<()>(pipe().sadd(new, &members).ignore())
                        .await?;
                }
                self.backend.run::<()>(pipe().del(old).ignore()).await?;
                tracing::info!(from = old, to = new, "moved a logical-model index set");
            }
        }
        Ok(())
    }

    /// Writes a start-up model back when Redis has lost it, unless the API deleted it.
    async fn restore(&self, logical_id: &str) -> StoreResult<Option<LogicalModel>> {
        let Some(model) = self.seeded.read().get(logical_id).cloned() else {
            return Ok(None);
        };
        let (deleted,): (bool,) = self
            .backend
            .run(pipe().sismember(keys::LOGICAL_DELETED, logical_id))
            .await?;
        if deleted {
            return Ok(None);
        }
        tracing::info!(
            logical_model = logical_id,
            "restoring a LOGICAL_MODELS_FILE model that Redis no longer has"
        );
        self.put(model.clone()).await?;
        Ok(Some(model))
    }
}

fn parse_logical(raw: Option<String>) -> Option<LogicalModel> {
    let text = raw?;
    match serde_json::from_str(&text) {
        Ok(model) => Some(model),
        Err(e) => {
            tracing::warn!(error = %e, "a logical model in Redis is not valid JSON; ignored");
            None
        }
    }
}

#[async_trait]
impl LogicalModelStore for RedisLogicalModelStore {
    async fn get(&self, logical_id: &str) -> StoreResult<Option<LogicalModel>> {
        if let Some(cached) = self.cache.get(logical_id) {
            return Ok(cached);
        }
        let generation = self.cache.generation();
        match self
            .backend
            .run::<(Option<String>,)>(pipe().get(keys::logical(logical_id)))
            .await
        {
            Ok((raw,)) => {
                let model = match parse_logical(raw) {
                    Some(model) => Some(model),
                    None => self.restore(logical_id).await?,
                };
                {
                    let mut known = self.last_known.write();
                    match &model {
                        Some(m) => known.insert(logical_id.to_string(), m.clone()),
                        None => known.remove(logical_id),
                    };
                }
                self.cache.put(generation, logical_id, model.clone());
                Ok(model)
            }
            // Serve the last copy seen: an outage must not unconfigure models.
            Err(e) => match self.last_known.read().get(logical_id) {
                Some(model) => Ok(Some(model.clone())),
                None => Err(e),
            },
        }
    }

    async fn list(&self) -> StoreResult<Vec<LogicalModel>> {
        let (ids,): (Vec<String>,) = self
            .backend
            .run(pipe().smembers(keys::LOGICAL_INDEX))
            .await?;
        // One GET per id (each model is on its own slot in a cluster).
        let raws: Vec<Option<String>> = self
            .backend
            .run_each(ids.iter().map(|id| Cmd::get(keys::logical(id))).collect())
            .await?;
        let mut models: Vec<LogicalModel> = raws.into_iter().filter_map(parse_logical).collect();
        let missing: Vec<String> = self
            .seeded
            .read()
            .keys()
            .filter(|id| !models.iter().any(|m| &m.logical_id == *id))
            .cloned()
            .collect();
        for id in missing {
            models.extend(self.restore(&id).await?);
        }
        let mut known = self.last_known.write();
        known.clear();
        for model in &models {
            known.insert(model.logical_id.clone(), model.clone());
        }
        Ok(models)
    }

    async fn put(&self, model: LogicalModel) -> StoreResult<()> {
        let json = serde_json::to_string(&model).unwrap_or_default();
        let id = model.logical_id.clone();
        // Three keys on three slots, written at once but not as one transaction. Every partial
        // outcome is harmless and mended by the next put: an id indexed without its model is
        // skipped by `list`; a model not yet indexed is found by `get`; the deleted mark only
        // matters when the model itself is missing.
        let mut store = pipe();
        store.set(keys::logical(&id), json).ignore();
        let mut index = pipe();
        index.sadd(keys::LOGICAL_INDEX, &id).ignore();
        let mut unmark = pipe();
        unmark.srem(keys::LOGICAL_DELETED, &id).ignore();
        let (stored, indexed, unmarked) = tokio::join!(
            self.backend.run::<()>(&store),
            self.backend.run::<()>(&index),
            self.backend.run::<()>(&unmark),
        );
        stored.and(indexed).and(unmarked)?;
        self.last_known.write().insert(id, model);
        self.announce().await
    }

    async fn delete(&self, logical_id: &str) -> StoreResult<bool> {
        // The deleted mark first, then the model: a reader that finds the model gone then also
        // finds the mark, so a start-up model is never restored after its deletion.
        let mut unindex = pipe();
        unindex.srem(keys::LOGICAL_INDEX, logical_id).ignore();
        let mut mark = pipe();
        mark.sadd(keys::LOGICAL_DELETED, logical_id).ignore();
        let (unindexed, marked) = tokio::join!(
            self.backend.run::<()>(&unindex),
            self.backend.run::<()>(&mark),
        );
        unindexed.and(marked)?;
        let (deleted,): (u64,) = self
            .backend
            .run(pipe().del(keys::logical(logical_id)))
            .await?;
        self.last_known.write().remove(logical_id);
        self.announce().await?;
        Ok(deleted > 0)
    }
}

pub struct RedisModelCache {
    backend: RedisBackend,
    near: MemoryModelCache,
}

impl RedisModelCache {
    pub fn new(backend: RedisBackend, clock: Arc<dyn Clock>) -> Self {
        RedisModelCache {
            backend,
            near: MemoryModelCache::new(clock),
        }
    }
}

/// The original's shape for a provider's list (an array of models); a remembered failure is
/// `{"error": reason}`.
fn encode_list(list: &CachedModelList) -> String {
    match list {
        CachedModelList::Models { models } => serde_json::to_string(models).unwrap_or_default(),
        CachedModelList::Failed { reason } => json!({"error": reason}).to_string(),
    }
}

fn decode_list(text: &str) -> Option<CachedModelList> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Array(items) => {
            let models: Vec<Model> = items
                .into_iter()
                .filter_map(|m| serde_json::from_value(m).ok())
                .collect();
            Some(CachedModelList::Models { models })
        }
        Value::Object(obj) => {
            let reason = obj.get("error")?.as_str()?.to_string();
            Some(CachedModelList::Failed { reason })
        }
        _ => None,
    }
}

fn ttl_from_pttl(pttl_ms: i64) -> Option<Duration> {
    (pttl_ms > 0).then(|| Duration::from_millis(pttl_ms as u64))
}

#[async_trait]
impl ModelCacheStore for RedisModelCache {
    async fn provider_models(&self, provider_id: &str) -> StoreResult<Option<CachedModelList>> {
        if let Some(list) = self.near.provider_models(provider_id).await? {
            return Ok(Some(list));
        }
        let key = keys::provider_models(provider_id);
        let (raw, pttl): (Option<String>, i64) =
            self.backend.run(pipe().get(&key).pttl(&key)).await?;
        let Some(list) = raw.as_deref().and_then(decode_list) else {
            return Ok(None);
        };
        if let Some(ttl) = ttl_from_pttl(pttl) {
            self.near
                .put_provider_models(provider_id, list.clone(), ttl)
                .await?;
        }
        Ok(Some(list))
    }

    async fn put_provider_models(
        &self,
        provider_id: &str,
        list: CachedModelList,
        ttl: Duration,
    ) -> StoreResult<()> {
        // Kept near even when Redis is down, so an outage does not mean a fetch per request.
        self.near
            .put_provider_models(provider_id, list.clone(), ttl)
            .await?;
        let seconds = ttl.as_secs().max(1);
        self.backend
            .run::<()>(
                pipe()
                    .set_ex(
                        keys::provider_models(provider_id),
                        encode_list(&list),
                        seconds,
                    )
                    .ignore(),
            )
            .await
    }

    async fn aggregate(&self) -> StoreResult<Option<Vec<ModelListEntry>>> {
        // Read from Redis every time so a logical model changed through another instance shows
        // at once; the near copy only stands in while Redis is unreachable.
        match self
            .backend
            .run::<(Option<String>,)>(pipe().get(keys::AGGREGATE_MODELS))
            .await
        {
            Ok((raw,)) => Ok(raw.and_then(|text| {
                let value: Value = serde_json::from_str(&text).ok()?;
                serde_json::from_value(value.get("data")?.clone()).ok()
            })),
            Err(e) => match self.near.aggregate().await? {
                Some(entries) => Ok(Some(entries)),
                None => Err(e),
            },
        }
    }

    async fn put_aggregate(&self, entries: Vec<ModelListEntry>, ttl: Duration) -> StoreResult<()> {
        let body = json!({"object": "list", "data": entries}).to_string();
        self.near.put_aggregate(entries, ttl).await?;
        let seconds = ttl.as_secs().max(1);
        self.backend
            .run::<()>(
                pipe()
                    .set_ex(keys::AGGREGATE_MODELS, body, seconds)
                    .ignore(),
            )
            .await
    }

    async fn clear_aggregate(&self) -> StoreResult<()> {
        self.near.clear_aggregate().await?;
        self.backend
            .run::<()>(pipe().del(keys::AGGREGATE_MODELS).ignore())
            .await
    }
}
