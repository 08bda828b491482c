//! The shared Redis connection pool and how the gateway behaves when Redis is unreachable: every
//! call is bounded in time; after a failure calls fail fast for a moment instead of each waiting
//! (requests are served without the store meanwhile), then Redis is tried again, so the gateway
//! recovers by itself. Failures are counted, and logged at most once per interval.
//!
//! The same calls run against one server, a Redis Cluster or a Sentinel-monitored master
//! ([`RedisTarget`]). On a cluster a pipeline or transaction must stay on one hash slot (the key
//! names see to that, `keys.rs`); reads of unrelated keys go through [`RedisBackend::run_each`],
//! which sends them as separate requests there, all in flight at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{Cmd, FromRedisValue, Pipeline, RedisError, RedisFuture, Value, cmd};
use deadpool_redis::{
    ConnectionAddr, ConnectionInfo, PoolConfig, ProtocolVersion, RedisConnectionInfo, Runtime,
    Timeouts, cluster, sentinel,
};
use futures_util::future::join_all;
use secrecy::ExposeSecret;

use super::keys::slot;
use super::target::RedisTarget;
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

/// The pool of the deployment in use.
enum Pools {
    Single(deadpool_redis::Pool),
    Cluster(cluster::Pool),
    Sentinel(sentinel::Pool),
}

/// A connection shared by plain commands (cheap to clone; concurrent calls are pipelined on it).
#[derive(Clone)]
enum Shared {
    Node(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Shared {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Shared::Node(c) => c.req_packed_command(cmd),
            Shared::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Shared::Node(c) => c.req_packed_commands(cmd, offset, count),
            Shared::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Shared::Node(c) => c.get_db(),
            Shared::Cluster(c) => c.get_db(),
        }
    }
}

/// A connection checked out for one multi-step exchange (WATCH, then MULTI/EXEC): nobody else
/// sends on it meanwhile, so the WATCH is this exchange's own.
pub enum RedisConnection {
    Single(deadpool_redis::Connection),
    Cluster(cluster::Connection),
    Sentinel(sentinel::Connection),
}

impl RedisConnection {
    /// Ends a WATCH without a transaction. On a cluster UNWATCH has no key, and the client would
    /// send it to every master (failing while one is down); it is sent to the node serving
    /// `key`'s slot, where the WATCH went.
    pub async fn unwatch(&mut self, key: &str) -> Result<(), RedisError> {
        let unwatch = cmd("UNWATCH");
        match self {
            RedisConnection::Cluster(c) => {
                let route = Route::new(slot(key), SlotAddr::Master);
                c.route_command(
                    unwatch,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
                .map(drop)
            }
            other => unwatch.query_async::<()>(other).await,
        }
    }

    /// Closes the connection instead of handing it back to the pool (it may point at a server
    /// that is no longer the master, or be half-broken).
    fn discard(self) {
        match self {
            RedisConnection::Single(c) => drop(deadpool_redis::Connection::take(c)),
            RedisConnection::Cluster(c) => drop(cluster::Connection::take(c)),
            RedisConnection::Sentinel(c) => drop(sentinel::Connection::take(c)),
        }
    }

    fn into_shared(self) -> Shared {
        match self {
            RedisConnection::Single(c) => Shared::Node(deadpool_redis::Connection::take(c)),
            RedisConnection::Cluster(c) => Shared::Cluster(cluster::Connection::take(c)),
            RedisConnection::Sentinel(c) => Shared::Node(sentinel::Connection::take(c)),
        }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(c) => c.req_packed_command(cmd),
            RedisConnection::Cluster(c) => c.req_packed_command(cmd),
            RedisConnection::Sentinel(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
            RedisConnection::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(c) => c.get_db(),
            RedisConnection::Cluster(c) => c.get_db(),
            RedisConnection::Sentinel(c) => c.get_db(),
        }
    }
}

impl Pools {
    fn new(target: &RedisTarget, pool: PoolConfig) -> Result<Pools, String> {
        let fail = |e: &dyn std::fmt::Display| format!("cannot create the Redis pool: {e}");
        let runtime = Some(Runtime::Tokio1);
        Ok(match target {
            RedisTarget::Single { url } => {
                let mut config = deadpool_redis::Config::from_url(url.expose_secret());
                config.pool = Some(pool);
                Pools::Single(config.create_pool(runtime).map_err(|e| fail(&e))?)
            }
            RedisTarget::Cluster {
                nodes, username, ..
            } => {
                // The client takes the credentials of the first seed for every node it finds.
                let connections = nodes
                    .iter()
                    .map(|(host, port)| node_info(host, *port, 0, username, target.password()))
                    .collect();
                let config = cluster::Config {
                    urls: None,
                    connections: Some(connections),
                    pool: Some(pool),
                    read_from_replicas: false,
                };
                Pools::Cluster(config.create_pool(runtime).map_err(|e| fail(&e))?)
            }
            RedisTarget::Sentinel {
                sentinels,
                master,
                db,
                username,
                ..
            } => {
                let config = sentinel::Config {
                    urls: None,
                    // Sentinels are asked without credentials; the password is the servers'.
                    connections: Some(
                        sentinels
                            .iter()
                            .map(|(host, port)| node_info(host, *port, 0, &None, None))
                            .collect(),
                    ),
                    master_name: master.clone(),
                    server_type: sentinel::SentinelServerType::Master,
                    node_connection_info: Some(sentinel::SentinelNodeConnectionInfo {
                        tls_mode: None,
                        redis_connection_info: Some(RedisConnectionInfo {
                            db: *db,
                            username: username.clone(),
                            password: target.password(),
                            protocol: ProtocolVersion::RESP2,
                        }),
                    }),
                    pool: Some(pool),
                };
                Pools::Sentinel(config.create_pool(runtime).map_err(|e| fail(&e))?)
            }
        })
    }

    /// Drops every idle connection: after a fail-over they may hold an old slot map or point at
    /// a demoted master, and would each fail once more before being replaced.
    fn clear_idle(&self) {
        match self {
            Pools::Single(p) => drop(p.retain(|_, _| false)),
            Pools::Cluster(p) => drop(p.retain(|_, _| false)),
            Pools::Sentinel(p) => drop(p.retain(|_, _| false)),
        }
    }

    async fn get(&self) -> Result<RedisConnection, String> {
        match self {
            Pools::Single(p) => p
                .get()
                .await
                .map(RedisConnection::Single)
                .map_err(|e| e.to_string()),
            Pools::Cluster(p) => p
                .get()
                .await
                .map(RedisConnection::Cluster)
                .map_err(|e| e.to_string()),
            Pools::Sentinel(p) => p
                .get()
                .await
                .map(RedisConnection::Sentinel)
                .map_err(|e| e.to_string()),
        }
    }
}

fn node_info(
    host: &str,
    port: u16,
    db: i64,
    username: &Option<String>,
    password: Option<String>,
) -> ConnectionInfo {
    ConnectionInfo {
        addr: ConnectionAddr::Tcp(host.to_string(), port),
        redis: RedisConnectionInfo {
            db,
            username: username.clone(),
            password,
            protocol: ProtocolVersion::RESP2,
        },
    }
}

/// Plain commands share a multiplexed connection taken from the pool: concurrent calls are
/// pipelined on it, and no pool check-out (an UNWATCH+PING round trip in deadpool-redis) sits on the
/// hot path. There is one such connection per serving worker ([`crate::worker::index`]), opened by
/// that worker, so its driver task runs on the worker's own thread: a store call and its answer
/// never wake another thread. WATCH/MULTI exchanges check out a connection of their own.
#[derive(Clone)]
pub struct RedisBackend {
    pools: Arc<Pools>,
    shared: Arc<parking_lot::Mutex<Vec<Option<Shared>>>>,
    health: Arc<Health>,
}

/// How a call that failed went: whether anything reached Redis (a pipeline that was not sent can
/// be sent again without doing anything twice).
#[derive(Debug)]
pub struct CallFailure {
    pub error: StoreError,
    pub sent: bool,
}

impl RedisBackend {
    /// Builds the pool; nothing connects until the first call, so start-up never waits for Redis.
    pub fn new(target: &RedisTarget, pool_size: usize) -> Result<Self, String> {
        let pool = PoolConfig {
            max_size: pool_size,
            timeouts: Timeouts {
                wait: Some(CALL_TIMEOUT),
                create: Some(CALL_TIMEOUT),
                recycle: Some(CALL_TIMEOUT),
            },
            ..PoolConfig::default()
        };
        Ok(RedisBackend {
            pools: Arc::new(Pools::new(target, pool)?),
            shared: Arc::new(parking_lot::Mutex::new(Vec::new())),
            health: Arc::new(Health::default()),
        })
    }

    /// Whether the stores talk to a Redis Cluster (where a pipeline must stay on one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(*self.pools, Pools::Cluster(_))
    }

    /// How many store calls have failed since start.
    pub fn error_count(&self) -> u64 {
        self.health.errors.load(Ordering::Relaxed)
    }

    /// Whether Redis answers a PING now (ignores the fail-fast window).
    pub async fn ping(&self) -> bool {
        let attempt = async {
            let mut conn = self.pools.get().await.ok()?;
            cmd("PING").query_async::<String>(&mut conn).await.ok()
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

    /// Counts a store error a caller found itself (writes it had to drop); the caller logs it.
    pub fn count_error(&self) -> u64 {
        self.health.errors.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn fail_fast(&self) -> StoreResult<()> {
        if now_ms() < self.health.down_until_ms.load(Ordering::Relaxed) {
            return Err(StoreError("redis is unreachable (retrying shortly)".into()));
        }
        Ok(())
    }

    /// Whether calls fail at once now (a recent failure; the store is being served without).
    pub fn failing_fast(&self) -> bool {
        self.fail_fast().is_err()
    }

    /// The calling worker's multiplexed connection, opened (on this worker) when it has none.
    async fn multiplexed(&self) -> StoreResult<Shared> {
        self.fail_fast()?;
        let worker = crate::worker::index();
        if let Some(Some(conn)) = self.shared.lock().get(worker) {
            return Ok(conn.clone());
        }
        let conn = self.connection().await?.into_shared();
        let mut shared = self.shared.lock();
        if shared.len() <= worker {
            shared.resize(worker + 1, None);
        }
        shared[worker] = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets every worker's multiplexed connection (broken, or pointing at a demoted master):
    /// the next call on each worker opens a fresh one.
    fn drop_shared(&self) {
        self.shared.lock().iter_mut().for_each(|c| *c = None);
    }

    async fn connection(&self) -> StoreResult<RedisConnection> {
        self.fail_fast()?;
        match tokio::time::timeout(CALL_TIMEOUT, self.pools.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.failed("connection", &e)),
            Err(_) => Err(self.failed("connection", "timed out")),
        }
    }

    /// Takes a finished call's outcome. A broken connection is dropped (the next call opens a
    /// fresh one, which on a cluster or Sentinel set finds the new master); so is one that
    /// reached a server no longer serving the key (a fail-over moved it), with the pool's idle
    /// connections.
    fn settle<T>(
        &self,
        outcome: Result<Result<T, RedisError>, tokio::time::error::Elapsed>,
    ) -> StoreResult<T> {
        let failure = match &outcome {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(classify(e)),
            Err(_) => Some(Failure::Outage),
        };
        if matches!(failure, Some(Failure::Outage | Failure::Moved)) {
            self.drop_shared();
        }
        if matches!(failure, Some(Failure::Moved)) {
            self.pools.clear_idle();
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_error(e)),
            Err(_) => Err(self.failed("call", "timed out")),
        }
    }

    /// Runs one pipeline (one round trip); `atomic()` pipelines run as MULTI/EXEC. On a cluster
    /// every command of it must hash to one slot.
    ///
    /// A pipeline refused because the server no longer serves its slot (MOVED inside a
    /// transaction, READONLY) ran nothing, so it is sent once more on a fresh connection: a
    /// fail-over that has completed costs the caller no error.
    pub async fn run<T: FromRedisValue>(&self, pipeline: &Pipeline) -> StoreResult<T> {
        self.run_tracked(pipeline).await.map_err(|f| f.error)
    }

    /// [`RedisBackend::run`], saying on failure whether the pipeline reached Redis: one that did
    /// not (the fail-fast window, no connection) may be sent again later without doing anything
    /// twice; one that did may have been applied in part or in full.
    pub async fn run_tracked<T: FromRedisValue>(
        &self,
        pipeline: &Pipeline,
    ) -> Result<T, CallFailure> {
        let unsent = |error| CallFailure { error, sent: false };
        let sent = |error| CallFailure { error, sent: true };
        let mut conn = self.multiplexed().await.map_err(unsent)?;
        let outcome =
            tokio::time::timeout(CALL_TIMEOUT, pipeline.query_async::<T>(&mut conn)).await;
        if !matches!(&outcome, Ok(Err(e)) if classify(e) == Failure::Moved) {
            return self.settle(outcome).map_err(sent);
        }
        // Refused by a server that no longer serves the slot: nothing ran.
        self.drop_shared();
        self.pools.clear_idle();
        let mut conn = self.multiplexed().await.map_err(unsent)?;
        let outcome =
            tokio::time::timeout(CALL_TIMEOUT, pipeline.query_async::<T>(&mut conn)).await;
        self.settle(outcome).map_err(sent)
    }

    /// Runs commands that need not be atomic and may touch keys of different slots, answering
    /// in their order: one pipeline on a single server; on a cluster one request each, all in
    /// flight at once (the client sends each to its slot's master).
    pub async fn run_each<T: FromRedisValue>(&self, commands: Vec<Cmd>) -> StoreResult<Vec<T>> {
        if commands.is_empty() {
            return Ok(Vec::new());
        }
        if !self.is_cluster() {
            let mut p = Pipeline::with_capacity(commands.len());
            for command in commands {
                p.add_command(command);
            }
            return self.run(&p).await;
        }
        let conn = self.multiplexed().await?;
        let calls = commands.iter().map(|command| {
            let mut conn = conn.clone();
            async move { command.query_async::<T>(&mut conn).await }
        });
        let outcome = tokio::time::timeout(CALL_TIMEOUT, join_all(calls))
            .await
            .map(|answers| answers.into_iter().collect::<Result<Vec<T>, RedisError>>());
        self.settle(outcome)
    }

    /// A connection for a multi-step exchange (WATCH/MULTI), with the same bounds.
    pub async fn with_connection<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: AsyncFnOnce(&mut RedisConnection) -> Result<T, RedisError>,
    {
        let mut conn = self.connection().await?;
        let outcome = tokio::time::timeout(CALL_TIMEOUT, work(&mut conn)).await;
        let failure = match &outcome {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(classify(e)),
            Err(_) => Some(Failure::Outage),
        };
        if matches!(failure, Some(Failure::Outage | Failure::Moved)) {
            // Not back into the pool: it may be broken, or point at a demoted master.
            conn.discard();
        }
        if matches!(failure, Some(Failure::Moved)) {
            self.drop_shared();
            self.pools.clear_idle();
        }
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.redis_error(e)),
            Err(_) => Err(self.failed("call", "timed out")),
        }
    }

    fn redis_error(&self, e: RedisError) -> StoreError {
        // A script the server does not have (a cluster node or a new master that has not seen it
        // yet, a restart) is loaded again by the caller at once: not an error worth counting.
        if matches!(
            e.kind(),
            deadpool_redis::redis::ErrorKind::Server(
                deadpool_redis::redis::ServerErrorKind::NoScript
            )
        ) {
            return StoreError(format!("redis call failed: {e}"));
        }
        // A value of the wrong type or shape is a data problem, not an outage: it says nothing
        // about the next call, so no back-off (which would also switch off QPS limits and
        // stickiness for everyone).
        match classify(&e) {
            Failure::Data => {
                if let Some(count) = self.count_and_may_log(now_ms()) {
                    tracing::warn!(store_errors_total = count, error = %e, "Redis refused a command on the data it found");
                }
                StoreError(format!("unexpected value in Redis: {e}"))
            }
            // The deployment is fine but this instance's view of it is not: no back-off, the
            // next call goes out on a fresh connection.
            Failure::Moved => {
                if let Some(count) = self.count_and_may_log(now_ms()) {
                    tracing::warn!(store_errors_total = count, error = %e, "Redis answered from a server that no longer serves the key (a fail-over); reconnecting");
                }
                StoreError(format!("redis call failed during a fail-over: {e}"))
            }
            Failure::Outage => self.failed("call", &e.to_string()),
        }
    }
}

/// What a failed call says about the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// A problem with one command's data (`WRONGTYPE`, a reply the gateway cannot read).
    Data,
    /// The server reached no longer serves the key (MOVED/ASK inside a transaction, which the
    /// cluster client does not follow; READONLY from a demoted master): reconnect at once.
    Moved,
    /// Redis is unreachable or unwell: back off, reconnect.
    Outage,
}

fn classify(e: &RedisError) -> Failure {
    use deadpool_redis::redis::{ErrorKind, ServerErrorKind};
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        return Failure::Outage;
    }
    let moved = |kind: Option<ServerErrorKind>| {
        matches!(
            kind,
            Some(ServerErrorKind::Moved | ServerErrorKind::Ask | ServerErrorKind::ReadOnly)
        )
    };
    match e.kind() {
        ErrorKind::Server(kind) if moved(Some(kind)) => Failure::Moved,
        ErrorKind::Server(ServerErrorKind::ExecAbort) => {
            // A transaction sent on an old slot map is refused command by command.
            let inner = e.clone().into_server_errors();
            if inner.is_some_and(|errors| errors.iter().any(|(_, err)| moved(err.kind()))) {
                Failure::Moved
            } else {
                Failure::Data
            }
        }
        ErrorKind::UnexpectedReturnType | ErrorKind::Client => Failure::Data,
        ErrorKind::Extension => {
            if matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "OOM" | "MISCONF")) {
                Failure::Outage
            } else {
                Failure::Data
            }
        }
        ErrorKind::Server(
            ServerErrorKind::ResponseError
            | ServerErrorKind::NoScript
            | ServerErrorKind::NotBusy
            | ServerErrorKind::NoSub,
        ) => Failure::Data,
        _ => Failure::Outage,
    }
}
