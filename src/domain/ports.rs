//! Ports: what the domain needs from the outside world, as traits. Adapters implement them; tests
//! use the mockall fakes (`MockUpstreamClient`, ...), also exported to `tests/` by the `mock` feature.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::health::{AttemptSample, BreakerPolicy, Circuit, RoutingMetrics};
use super::model::{LogicalModel, Model};
use super::provider::ProviderConfig;
use super::session::Session;

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
}

/// Failure to reach an upstream or read its answer: always retryable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

pub type ByteStream = BoxStream<'static, Result<Bytes, TransportError>>;

/// A chat request ready for one upstream: the body already in the upstream's format.
#[derive(Debug, Clone)]
pub struct UpstreamChatRequest {
    pub model_id: String,
    pub body: Bytes,
    pub stream: bool,
    /// The client's own Anthropic Messages request, for an anthropic-vendor provider to take as it
    /// is (only `model` rewritten) instead of the translated hub body (SPEC 4.4).
    pub native: Option<std::sync::Arc<NativeRequest>>,
}

impl UpstreamChatRequest {
    /// The format a provider of `vendor` answers this request in: its own when it takes the
    /// client's native request, the hub's otherwise (translated vendors answer in the hub format).
    pub fn answer_format(&self, vendor: super::provider::Vendor) -> crate::protocol::WireFormat {
        match (vendor, &self.native) {
            (super::provider::Vendor::Anthropic, Some(_)) => crate::protocol::WireFormat::Anthropic,
            _ => crate::protocol::WireFormat::OpenAi,
        }
    }
}

/// A request in a vendor's own format, passed through to providers of that vendor.
#[derive(Debug, Clone)]
pub struct NativeRequest {
    pub body: crate::protocol::openai::ChatBody,
    /// Client headers the vendor defines (`anthropic-version`, `anthropic-beta`).
    pub headers: Vec<(String, String)>,
    /// Why the request has no hub form (content only the vendor understands, e.g. documents or
    /// server tools): then only providers that take it natively may serve it.
    pub untranslatable: Option<String>,
}

/// The upstream's answer once its headers arrived; the body is read by the caller.
pub struct UpstreamReply {
    pub status: u16,
    /// Seconds from a `Retry-After` header, when the upstream sent one.
    pub retry_after: Option<u64>,
    pub body: ByteStream,
    /// The format of `body`: the hub's, unless a native request was passed through.
    pub format: crate::protocol::WireFormat,
}

impl std::fmt::Debug for UpstreamReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamReply")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
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
}
