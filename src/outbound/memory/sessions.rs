//! Session bindings in memory, each living for its TTL after its last write.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use super::expiring::ExpiringMap;
use crate::domain::ports::{Clock, SessionStore, StoreResult};
use crate::domain::session::Session;

/// Most session bindings kept (a few hundred bytes each): past it the least recently used go,
/// which costs those conversations their stickiness, never the process its memory.
pub const MAX_SESSIONS: usize = 200_000;

pub struct MemorySessionStore {
    sessions: ExpiringMap<Session>,
}

impl MemorySessionStore {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        MemorySessionStore {
            sessions: ExpiringMap::new(clock, MAX_SESSIONS),
        }
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn get(&self, conversation_id: &str) -> StoreResult<Option<Session>> {
        Ok(self.sessions.get(conversation_id))
    }

    async fn put(&self, session: Session, ttl: Duration) -> StoreResult<()> {
        let key = session.conversation_id.clone();
        self.sessions.put(&key, session, ttl);
        Ok(())
    }

    async fn delete(&self, conversation_id: &str) -> StoreResult<bool> {
        Ok(self.sessions.remove(conversation_id))
    }
}
