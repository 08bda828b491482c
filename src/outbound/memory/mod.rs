//! In-memory stores: the default, for one gateway process with nothing to install.

mod context;
mod expiring;
mod health;
mod keys;
mod logical_models;
mod model_cache;
mod sessions;

pub use context::MemoryContextStore;
pub use health::{MemoryCircuitStore, MemoryMetricsStore, MemoryQpsLimiter};
pub use keys::{
    MemoryKeyLedger, MemoryKeyStore, MemoryUsageStore, PARALLEL_IDLE_SECONDS, USAGE_RETENTION,
    WINDOW_SECONDS, WINDOW_TTL_SECONDS,
};
// The ledger's arithmetic, shared with the Redis ledger so both backends answer alike.
pub(crate) use keys::{LedgerReading, WindowCount, second_of, signed, sort_keys, spend_delta};
pub use logical_models::MemoryLogicalModelStore;
pub use model_cache::MemoryModelCache;
pub use sessions::MemorySessionStore;

use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::ports::{Clock, StoreHealth, StoreStatus};

/// The in-memory backend is always there.
pub struct InProcess;

#[async_trait]
impl StoreStatus for InProcess {
    async fn check(&self) -> StoreHealth {
        StoreHealth::InProcess
    }

    fn errors(&self) -> u64 {
        0
    }
}

/// Every in-memory store, made together: the default state backend of one gateway process.
pub struct MemoryStores {
    pub logical_models: Arc<MemoryLogicalModelStore>,
    pub model_cache: Arc<MemoryModelCache>,
    pub sessions: Arc<MemorySessionStore>,
    pub context: Arc<MemoryContextStore>,
    pub metrics: Arc<MemoryMetricsStore>,
    pub circuits: Arc<MemoryCircuitStore>,
    pub qps: Arc<MemoryQpsLimiter>,
    pub keys: Arc<MemoryKeyStore>,
    pub ledger: Arc<MemoryKeyLedger>,
    pub usage: Arc<MemoryUsageStore>,
}

/// The default of `CONTEXT_MAX_SESSIONS`: sessions whose context history is kept.
pub const DEFAULT_CONTEXT_MAX_SESSIONS: usize = 10_000;

impl MemoryStores {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_context_bound(clock, DEFAULT_CONTEXT_MAX_SESSIONS)
    }

    /// Stores that keep the context of at most `context_max_sessions` sessions.
    pub fn with_context_bound(clock: Arc<dyn Clock>, context_max_sessions: usize) -> Self {
        MemoryStores {
            logical_models: Arc::new(MemoryLogicalModelStore::default()),
            model_cache: Arc::new(MemoryModelCache::new(clock.clone())),
            sessions: Arc::new(MemorySessionStore::new(clock.clone())),
            context: Arc::new(MemoryContextStore::new(clock, context_max_sessions)),
            metrics: Arc::new(MemoryMetricsStore::default()),
            circuits: Arc::new(MemoryCircuitStore::default()),
            qps: Arc::new(MemoryQpsLimiter::default()),
            keys: Arc::new(MemoryKeyStore::default()),
            ledger: Arc::new(MemoryKeyLedger::default()),
            usage: Arc::new(MemoryUsageStore::default()),
        }
    }
}
