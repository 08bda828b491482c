//! Session histories in Redis: `session:{id}:history`, a list of JSON strings, LPUSH then LTRIM with
//! the TTL in the same MULTI.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::pipe;

use super::backend::RedisBackend;
use super::keys;
use crate::domain::ports::{ContextStore, StoreResult};

pub struct RedisContextStore {
    backend: RedisBackend,
}

impl RedisContextStore {
    pub fn new(backend: RedisBackend) -> Self {
        RedisContextStore { backend }
    }
}

#[async_trait]
impl ContextStore for RedisContextStore {
    async fn append(
        &self,
        session_id: &str,
        entry: String,
        max_entries: usize,
        ttl: Duration,
    ) -> StoreResult<()> {
        let key = keys::history(session_id);
        let last = max_entries.max(1) as isize - 1;
        let seconds = ttl.as_secs().max(1) as i64;
        self.backend
            .run::<()>(
                pipe()
                    .atomic()
                    .lpush(&key, entry)
                    .ignore()
                    .ltrim(&key, 0, last)
                    .ignore()
                    .expire(&key, seconds)
                    .ignore(),
            )
            .await
    }

    async fn history(&self, session_id: &str) -> StoreResult<Vec<String>> {
        let (entries,): (Vec<String>,) = self
            .backend
            .run(pipe().lrange(keys::history(session_id), 0, -1))
            .await?;
        Ok(entries)
    }

    async fn delete(&self, session_id: &str) -> StoreResult<bool> {
        let (deleted,): (u64,) = self
            .backend
            .run(pipe().del(keys::history(session_id)))
            .await?;
        Ok(deleted > 0)
    }
}
