//! Redis stores (deadpool-redis): the state several gateway instances share. Key names follow the
//! original where it had them (SPEC 7); every key with a lifetime gets its TTL in the same round trip
//! that writes it; no `KEYS` (index sets instead). One server, a Redis Cluster or a Sentinel set
//! ([`RedisTarget`]); the key layout and its hash-slot groups are in specs/001-model-routing/data-model.md.

mod access;
mod backend;
mod batch;
mod circuit_write;
mod context;
mod health;
mod keys;
mod models;
mod sessions;
mod target;

use std::sync::Arc;

pub use access::{RedisKeyLedger, RedisKeyStore, RedisUsageStore};
pub use backend::{CallFailure, RedisBackend};
pub use batch::{BatchStats, DEFAULT_INTERVAL as DEFAULT_WRITE_INTERVAL, WriteBehind};
pub use context::RedisContextStore;
pub use health::{RedisCircuitStore, RedisMetricsStore, RedisQpsLimiter};
pub use models::{RedisLogicalModelStore, RedisModelCache};
pub use sessions::RedisSessionStore;
pub use target::{NODES_FORM, RedisTarget, TargetError, URL_FORMS};

use async_trait::async_trait;

use crate::domain::ports::{Clock, StoreHealth, StoreStatus};

/// The store's health, and the write-behind batch to flush at shutdown.
pub struct RedisStatus {
    pub backend: RedisBackend,
    pub batch: WriteBehind,
}

#[async_trait]
impl StoreStatus for RedisStatus {
    async fn check(&self) -> StoreHealth {
        if self.backend.recently_alive().await {
            StoreHealth::Reachable
        } else {
            StoreHealth::Unreachable
        }
    }

    fn errors(&self) -> u64 {
        self.backend.error_count()
    }

    async fn flush(&self) {
        self.batch.flush().await;
    }
}

/// Every Redis store over one pool, and the write-behind batch of the per-request bookkeeping
/// (`batch.rs`).
pub struct RedisStores {
    pub backend: RedisBackend,
    pub batch: WriteBehind,
    pub logical_models: Arc<RedisLogicalModelStore>,
    pub model_cache: Arc<RedisModelCache>,
    pub sessions: Arc<RedisSessionStore>,
    pub context: Arc<RedisContextStore>,
    pub metrics: Arc<RedisMetricsStore>,
    pub circuits: Arc<RedisCircuitStore>,
    pub qps: Arc<RedisQpsLimiter>,
    pub keys: Arc<RedisKeyStore>,
    pub ledger: Arc<RedisKeyLedger>,
    pub usage: Arc<RedisUsageStore>,
}

impl RedisStores {
    pub fn new(
        target: &RedisTarget,
        pool_size: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        Self::with_context_bound(
            target,
            pool_size,
            clock,
            crate::outbound::memory::DEFAULT_CONTEXT_MAX_SESSIONS,
        )
    }

    /// Stores that keep the context of at most `context_max_sessions` sessions.
    pub fn with_context_bound(
        target: &RedisTarget,
        pool_size: usize,
        clock: Arc<dyn Clock>,
        context_max_sessions: usize,
    ) -> Result<Self, String> {
        Self::with_options(
            target,
            pool_size,
            clock,
            context_max_sessions,
            batch::DEFAULT_INTERVAL,
        )
    }

    /// Stores whose per-request bookkeeping is written about `write_interval` after it happens
    /// (zero: at once, a pipeline per record).
    pub fn with_options(
        target: &RedisTarget,
        pool_size: usize,
        clock: Arc<dyn Clock>,
        context_max_sessions: usize,
        write_interval: std::time::Duration,
    ) -> Result<Self, String> {
        let backend = RedisBackend::new(target, pool_size)?;
        let batch = WriteBehind::new(backend.clone(), write_interval);
        Ok(RedisStores {
            logical_models: Arc::new(match target {
                RedisTarget::Single { url } => RedisLogicalModelStore::watching(
                    backend.clone(),
                    secrecy::ExposeSecret::expose_secret(url).to_string(),
                ),
                _ => RedisLogicalModelStore::new(backend.clone()),
            }),
            model_cache: Arc::new(RedisModelCache::new(backend.clone(), clock.clone())),
            sessions: Arc::new(RedisSessionStore::new(backend.clone())),
            context: Arc::new(RedisContextStore::new(
                backend.clone(),
                context_max_sessions,
            )),
            metrics: Arc::new(RedisMetricsStore::new(
                backend.clone(),
                batch.clone(),
                clock,
            )),
            circuits: Arc::new(RedisCircuitStore::new(backend.clone(), batch.clone())),
            qps: Arc::new(RedisQpsLimiter::new(backend.clone())),
            keys: Arc::new(RedisKeyStore::new(backend.clone())),
            ledger: Arc::new(RedisKeyLedger::new(backend.clone())),
            usage: Arc::new(RedisUsageStore::new(backend.clone(), batch.clone())),
            backend,
            batch,
        })
    }
}
