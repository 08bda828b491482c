//! Session bindings in Redis: `llm:session:{id}`, JSON, with the TTL set by the write itself.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::pipe;

use super::backend::RedisBackend;
use super::keys;
use crate::domain::ports::{SessionStore, StoreResult};
use crate::domain::session::Session;

pub struct RedisSessionStore {
    backend: RedisBackend,
}

impl RedisSessionStore {
    pub fn new(backend: RedisBackend) -> Self {
        RedisSessionStore { backend }
    }
}

#[async_trait]
impl SessionStore for RedisSessionStore {
    async fn get(&self, conversation_id: &str) -> StoreResult<Option<Session>> {
        let (raw,): (Option<String>,) = self
            .backend
            .run(pipe().get(keys::session(conversation_id)))
            .await?;
        Ok(raw.and_then(|text| serde_json::from_str(&text).ok()))
    }

    async fn put(&self, session: Session, ttl: Duration) -> StoreResult<()> {
        let json = serde_json::to_string(&session).unwrap_or_default();
        let seconds = ttl.as_secs().max(1);
        self.backend
            .run::<()>(
                pipe()
                    .set_ex(keys::session(&session.conversation_id), json, seconds)
                    .ignore(),
            )
            .await
    }

    async fn delete(&self, conversation_id: &str) -> StoreResult<bool> {
        let (deleted,): (u64,) = self
            .backend
            .run(pipe().del(keys::session(conversation_id)))
            .await?;
        Ok(deleted > 0)
    }
}
