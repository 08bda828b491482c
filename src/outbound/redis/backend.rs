//! The shared Redis connection pool and how the gateway behaves when Redis is unreachable: every
//! call is bounded in time; after a failure calls fail fast for a moment instead of each waiting
//! (requests are served without the store meanwhile), then Redis is tried again, so the gateway
//! recovers by itself. Failures are counted, and logged at most once per interval.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis::aio::MultiplexedConnection;
use deadpool_redis::redis::{FromRedisValue, Pipeline, RedisError};
use deadpool_redis::{Config, Connection, Pool, PoolConfig, Runtime, Timeouts};

use crate::domain::ports::{StoreError, StoreResult};

/// Longest any one store call may take before it counts as a failure.
const CALL_TIMEOUT: Duration = Duration::from_millis(1000);
/// After a failure, calls fail at once for this long (the request is served without the store).
const BACKOFF: Duration = Duration::from_millis(1000);
/// At most one warning per interval, however many calls fail.
const LOG_INTERVAL_MS: u64 = 10_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[derive(Default)]
struct Health {
    down_until_ms: AtomicU64,
    errors: AtomicU64,
    last_log_ms: AtomicU64,
    /// The last PING's answer and when it came (`/health` asks at most once a second, and
    /// concurrent callers share one PING).
    last_ping: tokio::sync::Mutex<Option<(std::time::Instant, bool)>>,
}

/// How long a PING's answer is reused by `/health`.
const PING_MAX_AGE: Duration = Duration::from_secs(1);

/// Plain commands share one multiplexed connection taken from the pool: concurrent calls are
/// pipelined on it, and no pool check-out (an UNWATCH+PING round trip in deadpool-redis) sits on the
/// hot path. WATCH/MULTI exchanges check out a connection of their own.
#[derive(Clone)]
pub struct RedisBackend {
    pool: Pool,
    shared: Arc<parking_lot::Mutex<Option<MultiplexedConnection>>>,
    health: Arc<Health>,
}

impl RedisBackend {
    /// Builds the pool; nothing connects until the first call, so start-up never waits for Redis.
    pub fn new(url: &str, pool_size: usize) -> Result<Self, String> {
        let mut config = Config::from_url(url);
        config.pool = Some(PoolConfig {
            max_size: pool_size,
            timeouts: Timeouts {
                wait: Some(CALL_TIMEOUT),
                create: Some(CALL_TIMEOUT),
                recycle: Some(CALL_TIMEOUT),
            },
            ..PoolConfig::default()
        });
        let pool = config
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| format!("REDIS_URL: cannot create the Redis pool: {e}"))?;
        Ok(RedisBackend {
            pool,
            shared: Arc::new(parking_lot::Mutex::new(None)),
            health: Arc::new(Health::default()),
        })
    }

    /// How many store calls have failed since start.
    pub fn error_count(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    /// Whether Redis answers a PING now (ignores the fail-fast window).
    pub async fn ping(&self) -> bool {
        let attempt = async {
            let mut conn = self.pool.get().await.ok()?;
            deadpool_redis::redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .ok()
        };
        let alive = matches!(
            tokio::time::timeout(CALL_TIMEOUT, attempt).await,
            Ok(Some(_))
        );
        if alive {
            self.health.down_until_ms.store(0, Ordering::Relaxed);
        }
        alive
    }

    /// Whether Redis answered a PING within the last second (one PING per second at most,
    /// whoever asks and however often).
    pub async fn recently_alive(&self) -> bool {
        let mut last = self.health.last_ping.lock().await;
        if let Some((at, alive)) = *last
            && at.elapsed() < PING_MAX_AGE
        {
            return alive;
        }
        let alive = self.ping().await;
        *last = Some((std::time::Instant::now(), alive));
        alive
    }

    fn failed(&self, what: &str, error: &str) -> StoreError {
        let now = now_ms();
        self.health
            .down_until_ms
            .store(now + BACKOFF.as_millis() as u64, Ordering::Relaxed);
        if let Some(count) = self.count_and_may_log(now) {
            tracing::warn!(
                store_errors_total = count,
                "Redis {what} failed: {error}; serving without the shared store until it answers again"
            );
        }
        StoreError(format!("redis {what} failed: {error}"))
    }

    /// Counts a store error; returns the count when this one may be logged (at most one log line
    /// per interval, however many calls fail).
    fn count_and_may_log(&self, now: u64) -> Option<u64> {
        let count = self.health.errors.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.health.last_log_ms.load(Ordering::Relaxed);
        (now.saturating_sub(last) >= LOG_INTERVAL_MS
            && self
                .health
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok())
        .then_some(count)
    }

    fn fail_fast(&self) -> StoreResult<()> {
        if now_ms() < self.health.down_until_ms.load(Ordering::Relaxed) {
            return Err(StoreError("redis is unreachable (retrying shortly)".into()));
        }
        Ok(())
    }

    async fn multiplexed(&self) -> StoreResult<MultiplexedConnection> {
        self.fail_fast()?;
        if let Some(conn) = self.shared.lock().clone() {
            return Ok(conn);
        }
        let conn = Connection::take(self.connection().await?);
        *self.shared.lock() = Some(conn.clone());
        Ok(conn)
    }

    async fn connection(&self) -> StoreResult<Connection> {
        self.fail_fast()?;
        match tokio::time::timeout(CALL_TIMEOUT, self.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.failed("connection", &e.to_string())),
            Err(_) => Err(self.failed("connection", "timed out")),
        }
    }

    /// Runs one pipeline (one round trip); `atomic()` pipelines run as MULTI/EXEC.
    pub async fn run<T: FromRedisValue>(&self, pipeline: &Pipeline) -> StoreResult<T> {
        let mut conn = self.multiplexed().await?;
        let outcome =
            tokio::time::timeout(CALL_TIMEOUT, pipeline.query_async::<T>(&mut conn)).await;
        if matches!(&outcome, Ok(Err(e)) if is_outage(e)) || outcome.is_err() {
            // The connection may be broken (Redis restarted): the next call opens a fresh one.
            self.shared.lock().take();
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_error(e)),
            Err(_) => Err(self.failed("call", "timed out")),
        }
    }

    /// A connection for a multi-step exchange (WATCH/MULTI), with the same bounds.
    pub async fn with_connection<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: AsyncFnOnce(&mut Connection) -> Result<T, RedisError>,
    {
        let mut conn = self.connection().await?;
        match tokio::time::timeout(CALL_TIMEOUT, work(&mut conn)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_error(e)),
            Err(_) => Err(self.failed("call", "timed out")),
        }
    }

    fn redis_error(&self, e: RedisError) -> StoreError {
        // A value of the wrong type or shape is a data problem, not an outage: it says nothing
        // about the next call, so no back-off (which would also switch off QPS limits and
        // stickiness for everyone).
        if !is_outage(&e) {
            if let Some(count) = self.count_and_may_log(now_ms()) {
                tracing::warn!(store_errors_total = count, error = %e, "Redis refused a command on the data it found");
            }
            return StoreError(format!("unexpected value in Redis: {e}"));
        }
        self.failed("call", &e.to_string())
    }
}

/// Whether an error means Redis is unreachable or unwell (back off and reconnect), as opposed to
/// a problem with one command's data (`WRONGTYPE`, a reply the gateway cannot read).
fn is_outage(e: &RedisError) -> bool {
    use deadpool_redis::redis::{ErrorKind, ServerErrorKind};
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return true;
    }
    match e.kind() {
        ErrorKind::UnexpectedReturnType | ErrorKind::Client => false,
        ErrorKind::Extension => {
            matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "OOM" | "MISCONF"))
        }
        ErrorKind::Server(
            ServerErrorKind::ResponseError
            | ServerErrorKind::ExecAbort
            | ServerErrorKind::NoScript
            | ServerErrorKind::NotBusy
            | ServerErrorKind::NoSub,
        ) => false,
        _ => true,
    }
}
