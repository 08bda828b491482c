//! Provider model lists and the aggregated `/models` answer, cached in memory with their TTL.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::expiring::ExpiringMap;
use crate::domain::ports::{CachedModelList, Clock, ModelCacheStore, ModelListEntry, StoreResult};

pub struct MemoryModelCache {
    providers: ExpiringMap<CachedModelList>,
    aggregate: ExpiringMap<Vec<ModelListEntry>>,
}

impl MemoryModelCache {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemoryModelCache {
            providers: ExpiringMap::new(clock.clone(), 4096),
            aggregate: ExpiringMap::new(clock, 16),
        }
    }
}

const AGGREGATE_KEY: &str = "gateway:models:all";

#[async_trait]
impl ModelCacheStore for MemoryModelCache {
    async fn provider_models(&self, provider_id: &str) -> StoreResult<Option<CachedModelList>> {
        Ok(self.providers.get(provider_id))
    }

    async fn put_provider_models(
        &self,
        provider_id: &str,
        list: CachedModelList,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.providers.put(provider_id, list, ttl);
        Ok(())
    }

    async fn aggregate(&self) -> StoreResult<Option<Vec<ModelListEntry>>> {
        Ok(self.aggregate.get(AGGREGATE_KEY))
    }

    async fn put_aggregate(&self, entries: Vec<ModelListEntry>, ttl: Duration) -> StoreResult<()> {
        self.aggregate.put(AGGREGATE_KEY, entries, ttl);
        Ok(())
    }

    async fn clear_aggregate(&self) -> StoreResult<()> {
        self.aggregate.remove(AGGREGATE_KEY);
        Ok(())
    }
}
