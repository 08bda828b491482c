//! The application joined from its ports: the domain services and the HTTP state, given the
//! stores, the upstream client and the settings. `main.rs` picks the adapters and calls
//! [`assemble`]; the handler tests join their fakes the same way, so both wire one application.

pub mod reload;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use secrecy::SecretString;

use crate::domain::health::BreakerPolicy;
use crate::domain::ports::{
    CircuitStore, Clock, ContextStore, KeyLedger, KeyStore, LogicalModelStore, MetricsStore,
    ModelCacheStore, QpsLimiter, SessionStore, StoreStatus, TrafficStats, UpstreamClient,
    UsageStore,
};
use crate::domain::provider::ProviderRegistry;
use crate::domain::service::catalog::Catalog;
use crate::domain::service::chat::{ChatService, ChatSettings, ChatStores};
use crate::domain::service::keys::KeyService;
use crate::domain::service::routing::Planner;
use crate::inbound::http::{AppState, TokenCheck};
use crate::outbound::console_feed::BroadcastFeed;
use crate::outbound::console_stats::TrafficRing;
use crate::outbound::memory::{InProcess, MemoryStores};
use crate::outbound::system::ThreadRandom;

/// The state backend's ports: in memory by default, Redis when `REDIS_URL` is set.
pub struct Stores {
    pub logical_models: Arc<dyn LogicalModelStore>,
    pub model_cache: Arc<dyn ModelCacheStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub context: Arc<dyn ContextStore>,
    pub metrics: Arc<dyn MetricsStore>,
    pub circuits: Arc<dyn CircuitStore>,
    pub qps: Arc<dyn QpsLimiter>,
    pub keys: Arc<dyn KeyStore>,
    pub ledger: Arc<dyn KeyLedger>,
    pub usage: Arc<dyn UsageStore>,
    pub status: Arc<dyn StoreStatus>,
}

impl From<MemoryStores> for Stores {
    fn from(memory: MemoryStores) -> Self {
        Stores {
            logical_models: memory.logical_models,
            model_cache: memory.model_cache,
            sessions: memory.sessions,
            context: memory.context,
            metrics: memory.metrics,
            circuits: memory.circuits,
            qps: memory.qps,
            keys: memory.keys,
            ledger: memory.ledger,
            usage: memory.usage,
            status: Arc::new(InProcess),
        }
    }
}

/// What the services and handlers are told, beyond their ports.
pub struct Options {
    pub models_cache_ttl: Duration,
    pub breaker: BreakerPolicy,
    pub chat: ChatSettings,
    pub auth_token: SecretString,
    /// `APIPROXY_ADMIN_TOKEN`; unset, the gateway token is admin.
    pub admin_token: Option<SecretString>,
    pub metrics_public: bool,
    pub max_body_bytes: usize,
    /// `MAX_IN_FLIGHT` and `CLIENT_BODY_TIMEOUT`.
    pub admission: crate::inbound::http::Admission,
    pub log_bodies: bool,
    /// Renders `/metrics`; `None` when no recorder is installed (tests).
    pub metrics_handle: Option<PrometheusHandle>,
    /// The console overview's samples, taken by the sampler `main.rs` starts next to the
    /// recorder; `None` (no recorder): `GET /admin/stats` answers no samples.
    pub traffic: Option<Arc<dyn TrafficStats>>,
}

/// Builds the catalog, the planner and the chat service over `stores`, and the state every
/// handler shares.
pub fn assemble(
    providers: Arc<ProviderRegistry>,
    stores: Stores,
    upstream: Arc<dyn UpstreamClient>,
    clock: Arc<dyn Clock>,
    options: Options,
) -> Arc<AppState> {
    let random: Arc<dyn crate::domain::ports::RandomSource> = Arc::new(ThreadRandom);
    let keys = Arc::new(KeyService::new(
        stores.keys,
        stores.ledger.clone(),
        stores.usage.clone(),
        clock.clone(),
        random.clone(),
    ));
    let catalog = Arc::new(Catalog::new(
        providers,
        stores.logical_models,
        stores.model_cache,
        upstream.clone(),
        clock.clone(),
        options.models_cache_ttl,
    ));
    let planner = Arc::new(Planner::new(
        catalog.clone(),
        stores.sessions.clone(),
        stores.metrics.clone(),
        stores.circuits.clone(),
        clock.clone(),
        random.clone(),
        options.breaker,
    ));
    let session_ttl = options.chat.session_ttl;
    let chat = Arc::new(ChatService::new(
        planner.clone(),
        upstream,
        ChatStores {
            sessions: stores.sessions.clone(),
            metrics: stores.metrics.clone(),
            circuits: stores.circuits,
            qps: stores.qps,
            context: stores.context.clone(),
            ledger: stores.ledger,
            usage: stores.usage,
        },
        clock.clone(),
        options.chat,
    ));
    Arc::new(AppState {
        catalog,
        planner,
        chat,
        sessions: stores.sessions,
        context: stores.context,
        metrics: stores.metrics,
        clock,
        store: stores.status,
        session_ttl,
        tokens: TokenCheck::new(options.auth_token, options.admin_token),
        keys,
        metrics_public: options.metrics_public,
        max_body_bytes: options.max_body_bytes,
        admission: options.admission,
        log_bodies: options.log_bodies,
        metrics_handle: options.metrics_handle,
        reload: std::sync::OnceLock::new(),
        traffic: options
            .traffic
            .unwrap_or_else(|| Arc::new(TrafficRing::default())),
        feed: Arc::new(BroadcastFeed::default()),
    })
}
