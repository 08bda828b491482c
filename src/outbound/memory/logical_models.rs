//! Logical models in memory.

// foldhash (hashbrown's default) rather than SipHash: these maps are read and written on every
// request, and their keys are configured names or bounded sets (SPEC's providers, models, keys).
use hashbrown::HashMap;

use async_trait::async_trait;
use parking_lot::RwLock;

use crate::domain::model::LogicalModel;
use crate::domain::ports::{LogicalModelStore, StoreResult};

#[derive(Default)]
pub struct MemoryLogicalModelStore {
    models: RwLock<HashMap<String, LogicalModel>>,
}

#[async_trait]
impl LogicalModelStore for MemoryLogicalModelStore {
    async fn get(&self, logical_id: &str) -> StoreResult<Option<LogicalModel>> {
        Ok(self.models.read().get(logical_id).cloned())
    }

    async fn list(&self) -> StoreResult<Vec<LogicalModel>> {
        Ok(self.models.read().values().cloned().collect())
    }

    async fn put(&self, model: LogicalModel) -> StoreResult<()> {
        self.models.write().insert(model.logical_id.clone(), model);
        Ok(())
    }

    async fn delete(&self, logical_id: &str) -> StoreResult<bool> {
        Ok(self.models.write().remove(logical_id).is_some())
    }
}
