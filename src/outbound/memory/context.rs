//! Session histories in memory: newest first, capped per session and in the number of sessions,
//! expiring after their last write.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::expiring::ExpiringMap;
use crate::domain::ports::{Clock, ContextStore, StoreResult};

pub struct MemoryContextStore {
    histories: ExpiringMap<Arc<VecDeque<String>>>,
}

impl MemoryContextStore {
    /// Keeps the histories of at most `max_sessions` sessions (`CONTEXT_MAX_SESSIONS`); past
    /// it, the least recently written go first.
    pub fn new(clock: Arc<dyn Clock>, max_sessions: usize) -> Self {
        MemoryContextStore {
            histories: ExpiringMap::new(clock, max_sessions),
        }
    }
}

#[async_trait]
impl ContextStore for MemoryContextStore {
    async fn append(
        &self,
        session_id: &str,
        entry: String,
        max_entries: usize,
        ttl: Duration,
    ) -> StoreResult<()> {
        self.histories.update(session_id, ttl, |history| {
            let mut history: VecDeque<String> = history.map(|h| (*h).clone()).unwrap_or_default();
            history.push_front(entry);
            history.truncate(max_entries.max(1));
            Arc::new(history)
        });
        Ok(())
    }

    async fn history(&self, session_id: &str) -> StoreResult<Vec<String>> {
        Ok(self
            .histories
            .get(session_id)
            .map(|h| h.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn delete(&self, session_id: &str) -> StoreResult<bool> {
        Ok(self.histories.remove(session_id))
    }
}
