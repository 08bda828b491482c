//! Writing one provider's circuit in Redis atomically (WATCH/MULTI), shared by the circuit store
//! (`health.rs`) and the write-behind batch's success checks (`batch.rs`).

use deadpool_redis::redis::{self, Value as RedisValue, pipe};

use super::backend::RedisBackend;
use super::keys;
use crate::domain::health::Circuit;
use crate::domain::ports::StoreResult;

/// Applies `change` to the stored circuit of `provider_id` atomically (WATCH/MULTI, retried on
/// conflict); returns the new circuit, or `None` when `change` declined.
pub(super) async fn transact(
    backend: &RedisBackend,
    provider_id: &str,
    change: impl Fn(Circuit) -> Option<Circuit> + Send + Sync,
) -> StoreResult<Option<Circuit>> {
    let key = keys::circuit(provider_id);
    for _ in 0..8 {
        let outcome = backend
            .with_connection(async |conn| {
                redis::cmd("WATCH")
                    .arg(&key)
                    .query_async::<()>(conn)
                    .await?;
                let raw: Option<String> = redis::cmd("GET").arg(&key).query_async(conn).await?;
                let current: Circuit = raw
                    .and_then(|t| serde_json::from_str(&t).ok())
                    .unwrap_or_default();
                let Some(next) = change(current) else {
                    conn.unwatch(&key).await?;
                    return Ok(Some(None));
                };
                let mut p = pipe();
                p.atomic();
                if next == Circuit::default() {
                    p.del(&key).ignore();
                } else {
                    // A circuit forgotten after a day is closed, which is where it would be.
                    p.set_ex(
                        &key,
                        serde_json::to_string(&next).unwrap_or_default(),
                        86_400,
                    )
                    .ignore();
                }
                let result: RedisValue = p.query_async(conn).await?;
                Ok(if matches!(result, RedisValue::Nil) {
                    None
                } else {
                    Some(Some(next))
                })
            })
            .await?;
        if let Some(done) = outcome {
            return Ok(done);
        }
    }
    Err(crate::domain::ports::StoreError(format!(
        "circuit of '{provider_id}' kept changing; update skipped"
    )))
}

/// What a success noted in a batch does to a stored circuit (`batch.rs`): it clears the failures
/// counted on a closed circuit; an open or half-open one is a newer decision and stays.
pub(super) async fn reset_failures(backend: &RedisBackend, provider_id: &str) {
    let outcome = transact(backend, provider_id, |current| match current {
        Circuit::Closed {
            consecutive_failures,
        } if consecutive_failures > 0 => Some(current.on_success()),
        _ => None,
    })
    .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, provider = provider_id, "circuit not updated");
    }
}
