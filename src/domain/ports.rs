//! Ports: what the domain needs from the outside world, as traits. Adapters implement them; tests
//! use the mockall fakes (`MockUpstreamClient`, ...), also exported to `tests/` by the `mock` feature.

use std::sync::Arc;
use std::time::Duration;

use super::console::{FinishedRequest, TrafficSample};
use super::exchange::{TransportError, UpstreamChatRequest, UpstreamReply};
use super::health::{AttemptSample, BreakerPolicy, Circuit, RoutingMetrics};
use super::keys::VirtualKey;
use super::metering::{Charge, Settlement, UsageGroup, UsageRecord, UsageTotals, Verdict};
use super::model::{LogicalModel, Model};
use super::provider::ProviderConfig;
use super::session::Session;
use async_trait::async_trait;

/// A storage backend failed (unreachable, timed out, corrupt value).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("store error: {0}")]
pub struct StoreError(pub String);

pub type StoreResult<T> = Result<T, StoreError>;

#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait LogicalModelStore: Send + Sync {
    async fn get(&self, logical_id: &str) -> StoreResult<Option<LogicalModel>>;
    async fn list(&self) -> StoreResult<Vec<LogicalModel>>;
    async fn put(&self, model: LogicalModel) -> StoreResult<()>;
    async fn delete(&self, logical_id: &str) -> StoreResult<bool>;
}

/// A provider's model list as cached: the models, or the reason the last fetch failed (so a broken
/// provider is not asked again on every call).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CachedModelList {
    Models { models: Vec<Model> },
    Failed { reason: String },
}

/// One entry of the aggregated `/models` answer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ModelListEntry {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ModelCacheStore: Send + Sync {
    async fn provider_models(&self, provider_id: &str) -> StoreResult<Option<CachedModelList>>;
    async fn put_provider_models(
        &self,
        provider_id: &str,
        list: CachedModelList,
        ttl: Duration,
    ) -> StoreResult<()>;
    async fn aggregate(&self) -> StoreResult<Option<Vec<ModelListEntry>>>;
    async fn put_aggregate(&self, entries: Vec<ModelListEntry>, ttl: Duration) -> StoreResult<()>;
    /// Drops the aggregated list (a logical model changed).
    async fn clear_aggregate(&self) -> StoreResult<()>;
}

#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn get(&self, conversation_id: &str) -> StoreResult<Option<Session>>;
    /// Stores the binding; it lives for `ttl` after this write.
    async fn put(&self, session: Session, ttl: Duration) -> StoreResult<()>;
    async fn delete(&self, conversation_id: &str) -> StoreResult<bool>;
}

/// Every upstream attempt's outcome, per (logical model, provider), over a sliding minute.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait MetricsStore: Send + Sync {
    async fn record(
        &self,
        logical_model: &str,
        provider_id: &str,
        sample: AttemptSample,
    ) -> StoreResult<()>;
    /// The figures of each listed provider for one logical model, in order; `None` where the
    /// window is empty.
    async fn snapshot(
        &self,
        logical_model: &str,
        provider_ids: &[String],
        now: f64,
    ) -> StoreResult<Vec<Option<RoutingMetrics>>>;
    /// The figures of one provider for every logical model it served in the window.
    async fn for_provider(&self, provider_id: &str, now: f64) -> StoreResult<Vec<RoutingMetrics>>;
}

/// Each provider's circuit (SPEC 5.4). Updates are atomic per provider.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait CircuitStore: Send + Sync {
    /// The circuits of the listed providers, in order (closed when never recorded).
    async fn circuits(&self, provider_ids: &[String]) -> StoreResult<Vec<Circuit>>;
    /// Applies one attempt's outcome and returns the new circuit.
    async fn record(
        &self,
        provider_id: &str,
        success: bool,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<Circuit>;
    /// Claims the one half-open probe; `false` when another request holds it or none is due.
    async fn claim_probe(
        &self,
        provider_id: &str,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<bool>;
}

/// `MAX_QPS`: requests started towards a provider per calendar second, shared by every instance
/// that shares the store.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait QpsLimiter: Send + Sync {
    /// Takes a slot in the second of `now`; `false` when the provider already has `max_qps`.
    async fn try_acquire(&self, provider_id: &str, max_qps: u32, now: f64) -> StoreResult<bool>;
}

/// Conversation history per session (SPEC 4.5, 5.3): JSON entries, newest first.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait ContextStore: Send + Sync {
    /// Prepends one entry, keeps the newest `max_entries`, and lets the history live `ttl`.
    async fn append(
        &self,
        session_id: &str,
        entry: String,
        max_entries: usize,
        ttl: Duration,
    ) -> StoreResult<()>;
    async fn history(&self, session_id: &str) -> StoreResult<Vec<String>>;
    async fn delete(&self, session_id: &str) -> StoreResult<bool>;
}

/// Virtual keys (SPEC 3.1), found by id or by the hash of their secret.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; its hash resolves to it from now on.
    async fn create(&self, key: VirtualKey) -> StoreResult<()>;
    async fn get(&self, id: &str) -> StoreResult<Option<VirtualKey>>;
    async fn find_by_hash(&self, secret_hash: &str) -> StoreResult<Option<VirtualKey>>;
    async fn list(&self) -> StoreResult<Vec<VirtualKey>>;
    /// Replaces a stored key (same id); when its hash changed (a rotation), `previous_hash` stops
    /// resolving in the same step. `false` when no key has that id.
    async fn update(&self, key: VirtualKey, previous_hash: &str) -> StoreResult<bool>;
    async fn delete(&self, id: &str) -> StoreResult<bool>;
    /// Notes that the key was used at `at` (Unix seconds); kept apart from the record, so it
    /// never races a change of the key.
    async fn touch(&self, id: &str, at: f64) -> StoreResult<()>;
    /// When each key was last used, in order (`None`: never, or not since it was created).
    async fn last_used(&self, ids: &[String]) -> StoreResult<Vec<Option<f64>>>;
}

/// Each key's limit windows, parallel slots and budget spending, shared by every instance on the
/// store. `admit` checks and takes in one atomic step, so concurrent requests cannot all slip
/// under a limit.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait KeyLedger: Send + Sync {
    /// Counts the request against every limit the charge names and reserves its budget, or
    /// refuses it and takes nothing.
    async fn admit(&self, charge: &Charge) -> StoreResult<Verdict>;
    /// Replaces the reservation with the real cost, counts the real tokens and frees the slot.
    async fn settle(&self, settlement: &Settlement) -> StoreResult<()>;
    /// What each (key id, budget period id) has spent, in order, in nano-dollars.
    async fn spent(&self, periods: &[(String, String)]) -> StoreResult<Vec<u64>>;
}

/// Usage aggregates per day and group (SPEC 3.1), kept for a retention time.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// Adds one finished request to every group it falls in, for its day.
    async fn record(&self, record: &UsageRecord) -> StoreResult<()>;
    /// The sums over `days` per group of `group_by`, sorted by group; only `only` when given.
    async fn totals(
        &self,
        days: &[String],
        group_by: UsageGroup,
        only: Option<String>,
    ) -> StoreResult<Vec<(String, UsageTotals)>>;
}

/// Whether the state backend answers (for `/health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreHealth {
    /// In-process memory: always there.
    InProcess,
    Reachable,
    Unreachable,
}

#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait StoreStatus: Send + Sync {
    async fn check(&self) -> StoreHealth;
    /// Store calls that failed since start (served without the store).
    fn errors(&self) -> u64;
    /// Writes out what the store holds back (a write-behind batch); called once serving has
    /// stopped, before the process exits.
    async fn flush(&self) {}
}

/// Talks to upstream providers in their own protocol.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
#[async_trait]
pub trait UpstreamClient: Send + Sync {
    /// Sends a chat request; resolves when the response headers arrive.
    async fn chat(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
    ) -> Result<UpstreamReply, TransportError>;

    /// Counts the request's input tokens with the vendor's own counter (only called for vendors
    /// that have one, [`Vendor::counts_tokens`](crate::domain::provider::Vendor::counts_tokens)).
    async fn count_tokens(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
    ) -> Result<u64, TransportError>;

    /// Fetches the provider's model list from its models path.
    async fn list_models(&self, provider: &ProviderConfig) -> Result<Vec<Model>, ListModelsError>;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ListModelsError {
    #[error("{0}")]
    Transport(String),
    #[error("HTTP {status}: {message}")]
    Status { status: u16, message: String },
    #[error("unreadable model list: {0}")]
    Malformed(String),
}

/// Wall-clock time, injectable so TTLs and timestamps can be tested.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait Clock: Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> f64;
}

/// Randomness for the weighted pick, injectable so routing tests are deterministic.
#[cfg_attr(any(test, feature = "mock"), mockall::automock)]
pub trait RandomSource: Send + Sync {
    /// A uniform number in [0, 1).
    fn unit(&self) -> f64;
    /// 32 bytes from a cryptographically secure generator (for secrets and ids).
    fn secret_bytes(&self) -> [u8; 32];
}

/// The overview's traffic samples (`GET /admin/stats`), taken off the request path.
pub trait TrafficStats: Send + Sync {
    /// The samples taken after `since` (unix ms; every kept sample when `None`), oldest first.
    fn samples_since(&self, since: Option<u64>) -> Vec<TrafficSample>;
}

/// What a subscriber of the live feed receives.
#[derive(Debug, Clone, PartialEq)]
pub enum FeedItem {
    Request(Arc<FinishedRequest>),
    /// The subscriber fell behind and this many records were skipped.
    Skipped(u64),
}

/// The live feed of finished proxied requests (`GET /admin/requests/live`). Nothing is kept: a
/// subscriber sees the requests that finish after it subscribed.
pub trait RequestFeed: Send + Sync {
    /// Whether anyone subscribes now: the request path builds a record only then (one atomic
    /// load when nobody does).
    fn watching(&self) -> bool;
    fn publish(&self, record: FinishedRequest);
    /// A subscription, ended by dropping it.
    fn subscribe(&self) -> futures_util::stream::BoxStream<'static, FeedItem>;
    /// Subscriptions open now (for `/metrics`).
    fn subscribers(&self) -> usize;
}
