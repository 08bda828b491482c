//! Session histories in Redis: `session:{id}:history`, a list of JSON strings, LPUSH then LTRIM with
//! the TTL in the same MULTI. The sessions that have one are indexed by last write in the sorted
//! set `session:#index`; past `CONTEXT_MAX_SESSIONS` the least recently written are dropped, so
//! new session ids cannot fill Redis.
//!
//! A history and the index are on different hash slots in a Redis Cluster (histories spread over
//! the masters; the index is one key), so each is written in its own MULTI, both sent at once.
//! They need not change together: the index only bounds how many histories are kept, and a
//! history it misses still expires with its own TTL.

use std::time::Duration;

use async_trait::async_trait;
use deadpool_redis::redis::{Cmd, pipe};

use super::backend::RedisBackend;
use super::keys;
use crate::domain::ports::{ContextStore, StoreResult};

pub struct RedisContextStore {
    backend: RedisBackend,
    max_sessions: usize,
}

impl RedisContextStore {
    pub fn new(backend: RedisBackend, max_sessions: usize) -> Self {
        RedisContextStore {
            backend,
            max_sessions: max_sessions.max(1),
        }
    }

    /// Drops the histories of the least recently written sessions beyond the bound (an eighth
    /// below it, so this runs once per many new sessions).
    async fn trim(&self, count: usize) -> StoreResult<()> {
        let excess = count.saturating_sub(self.max_sessions * 7 / 8);
        let (oldest,): (Vec<(String, f64)>,) = self
            .backend
            .run(pipe().zpopmin(keys::CONTEXT_INDEX, excess as isize))
            .await?;
        if oldest.is_empty() {
            return Ok(());
        }
        // One DEL per history: they are on different slots in a cluster.
        let deletes = oldest
            .iter()
            .map(|(id, _)| Cmd::del(keys::history(id)))
            .collect();
        self.backend.run_each::<u64>(deletes).await.map(drop)
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
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut write = pipe();
        write
            .atomic()
            .lpush(&key, entry)
            .ignore()
            .ltrim(&key, 0, last)
            .ignore()
            .expire(&key, seconds)
            .ignore();
        let mut index = pipe();
        index
            .atomic()
            .zadd(keys::CONTEXT_INDEX, session_id, now)
            .ignore()
            .expire(keys::CONTEXT_INDEX, seconds)
            .ignore()
            .zcard(keys::CONTEXT_INDEX);
        let (written, indexed) = tokio::join!(
            self.backend.run::<()>(&write),
            self.backend.run::<(usize,)>(&index),
        );
        written?;
        let (count,) = indexed?;
        if count > self.max_sessions {
            self.trim(count).await?;
        }
        Ok(())
    }

    async fn history(&self, session_id: &str) -> StoreResult<Vec<String>> {
        let (entries,): (Vec<String>,) = self
            .backend
            .run(pipe().lrange(keys::history(session_id), 0, -1))
            .await?;
        Ok(entries)
    }

    async fn delete(&self, session_id: &str) -> StoreResult<bool> {
        let mut delete = pipe();
        delete.del(keys::history(session_id));
        let mut unindex = pipe();
        unindex.zrem(keys::CONTEXT_INDEX, session_id).ignore();
        let (deleted, unindexed) = tokio::join!(
            self.backend.run::<(u64,)>(&delete),
            self.backend.run::<()>(&unindex),
        );
        unindexed?;
        Ok(deleted?.0 > 0)
    }
}
