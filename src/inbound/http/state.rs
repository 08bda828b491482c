//! What every handler shares.

use std::sync::Arc;
use std::time::Duration;

use salvo::Depot;

use super::credentials::TokenCheck;
use crate::domain::ports::{
    Clock, ContextStore, MetricsStore, RequestFeed, SessionStore, StoreStatus, TrafficStats,
};
use crate::domain::service::catalog::Catalog;
use crate::domain::service::chat::ChatService;
use crate::domain::service::keys::KeyService;
use crate::domain::service::routing::Planner;

pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub planner: Arc<Planner>,
    pub chat: Arc<ChatService>,
    pub sessions: Arc<dyn SessionStore>,
    pub context: Arc<dyn ContextStore>,
    pub metrics: Arc<dyn MetricsStore>,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn StoreStatus>,
    pub session_ttl: Duration,
    pub tokens: TokenCheck,
    pub keys: Arc<KeyService>,
    /// `METRICS_PUBLIC`: `/metrics` needs no credential.
    pub metrics_public: bool,
    pub max_body_bytes: usize,
    /// `MAX_IN_FLIGHT` and `CLIENT_BODY_TIMEOUT`.
    pub admission: super::limits::Admission,
    /// `LOG_BODIES`: log request bodies and whole answers (never by default).
    pub log_bodies: bool,
    /// Renders `/metrics`; `None` when no recorder is installed (tests).
    pub metrics_handle: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// `POST /admin/reload`: set by the composition root once the application is joined (the
    /// reloader needs the catalog); unset, the endpoint answers 503.
    pub reload: std::sync::OnceLock<Arc<dyn crate::domain::service::catalog::Reload>>,
    /// The console overview's samples (`GET /admin/stats`).
    pub traffic: Arc<dyn TrafficStats>,
    /// The console's live feed of finished proxied requests (`GET /admin/requests/live`).
    pub feed: Arc<dyn RequestFeed>,
}

impl AppState {
    pub fn from_depot(depot: &Depot) -> Option<Arc<AppState>> {
        depot.get_typed::<Arc<AppState>>().ok().cloned()
    }
}
