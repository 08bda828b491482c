//! The model catalog: every provider's model list (cached, failures remembered for the TTL), the
//! aggregated `/models` answer, and resolving a requested model name to a logical model (SPEC 4.1, 4.2).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::future::join_all;

use crate::domain::model::{LogicalModel, Model, PhysicalModel, model_matches};
use crate::domain::ports::{
    CachedModelList, Clock, LogicalModelStore, ModelCacheStore, ModelListEntry, UpstreamClient,
};
use crate::domain::provider::{ProviderConfig, ProviderRegistry, ProviderSet};

mod reload;
pub use reload::{
    LogicalModelChanges, Reconfiguration, RefusalCause, Reload, ReloadRefused, ReloadReport,
};

/// Why a logical model cannot be stored, naming the field at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidLogicalModel {
    pub field: String,
    pub message: String,
}

/// A provider's health from one live call to its models path (SPEC 4.5).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HealthStatus {
    pub provider_id: String,
    pub status: crate::domain::health::ProviderStatus,
    pub timestamp: f64,
    pub response_time_ms: Option<f64>,
    pub error_message: Option<String>,
    pub last_successful_check: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("provider '{0}' is not configured")]
    UnknownProvider(String),
    #[error("model list of provider '{provider}' is unavailable: {reason}")]
    Unavailable { provider: String, reason: String },
    #[error("{0}")]
    Store(String),
}

/// How a requested name resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum Resolution {
    Found(LogicalModel),
    Disabled(String),
    NotFound,
}

pub struct Catalog {
    providers: Arc<ProviderRegistry>,
    logical: Arc<dyn LogicalModelStore>,
    cache: Arc<dyn ModelCacheStore>,
    upstream: Arc<dyn UpstreamClient>,
    clock: Arc<dyn Clock>,
    ttl: Duration,
    /// Providers a reload added or changed whose cached model list (from the old configuration)
    /// must not be served: their next model-list read goes to the upstream and rewrites the
    /// cache. The flag spares the common path the lock while the set is empty.
    stale: parking_lot::Mutex<HashSet<String>>,
    any_stale: AtomicBool,
    /// The logical models as `LOGICAL_MODELS_FILE` last gave them, by id: a reload deletes a
    /// model the file no longer lists only while the store still holds this definition.
    file_models: parking_lot::Mutex<HashMap<String, LogicalModel>>,
}

impl Catalog {
    pub fn new(
        providers: Arc<ProviderRegistry>,
        logical: Arc<dyn LogicalModelStore>,
        cache: Arc<dyn ModelCacheStore>,
        upstream: Arc<dyn UpstreamClient>,
        clock: Arc<dyn Clock>,
        ttl: Duration,
    ) -> Self {
        Catalog {
            providers,
            logical,
            cache,
            upstream,
            clock,
            ttl,
            stale: parking_lot::Mutex::new(HashSet::new()),
            any_stale: AtomicBool::new(false),
            file_models: parking_lot::Mutex::new(HashMap::new()),
        }
    }

    /// The providers in force now. A caller keeps this one set for its whole request, so a reload
    /// in the middle of it changes nothing it sees.
    pub fn providers(&self) -> Arc<ProviderSet> {
        self.providers.snapshot()
    }

    /// One provider's models: static ones, else the cached list, else a fetch whose result (models
    /// or failure) is cached for the TTL. A store failure only costs the cache, never the answer.
    pub async fn provider_models(
        &self,
        provider_id: &str,
    ) -> Result<Arc<Vec<Model>>, CatalogError> {
        let providers = self.providers();
        let provider = providers
            .get(provider_id)
            .ok_or_else(|| CatalogError::UnknownProvider(provider_id.to_string()))?;
        self.models_of(provider).await
    }

    /// [`Catalog::provider_models`] for a provider of a set the caller already holds.
    async fn models_of(&self, provider: &ProviderConfig) -> Result<Arc<Vec<Model>>, CatalogError> {
        let provider_id = provider.id.as_str();
        if let Some(models) = &provider.static_models {
            return Ok(Arc::new(models.clone()));
        }
        let stale = self.is_stale(provider_id);
        if !stale {
            match self.cache.provider_models(provider_id).await {
                Ok(Some(cached)) => return into_result(provider_id, cached),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(provider = provider_id, error = %e, "model cache unreadable")
                }
            }
        }
        let fetched = match self.upstream.list_models(provider).await {
            Ok(models) => CachedModelList::Models { models },
            Err(e) => {
                tracing::warn!(provider = provider_id, error = %e, "model list fetch failed");
                CachedModelList::Failed {
                    reason: e.to_string(),
                }
            }
        };
        match self
            .cache
            .put_provider_models(provider_id, fetched.clone(), self.ttl)
            .await
        {
            // The cache now holds the list of the configuration in force.
            Ok(()) if stale => self.forget_stale(provider_id),
            Ok(()) => {}
            Err(e) => tracing::warn!(provider = provider_id, error = %e, "model cache not written"),
        }
        into_result(provider_id, fetched)
    }

    fn is_stale(&self, provider_id: &str) -> bool {
        self.any_stale.load(Ordering::Acquire) && self.stale.lock().contains(provider_id)
    }

    fn forget_stale(&self, provider_id: &str) {
        let mut stale = self.stale.lock();
        stale.remove(provider_id);
        self.any_stale.store(!stale.is_empty(), Ordering::Release);
    }

    /// Marks `ids` as having a cached model list from an older configuration.
    fn mark_stale<'a>(&self, ids: impl Iterator<Item = &'a String>) {
        let mut stale = self.stale.lock();
        stale.extend(ids.cloned());
        self.any_stale.store(!stale.is_empty(), Ordering::Release);
    }

    /// The `/models` answer: enabled logical models, then every provider's models, de-duplicated.
    pub async fn all_models(&self) -> Vec<ModelListEntry> {
        if let Ok(Some(entries)) = self.cache.aggregate().await {
            return entries;
        }
        let created = self.clock.now() as i64;
        let mut entries: Vec<ModelListEntry> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut push = |id: &str, owner: &str, entries: &mut Vec<ModelListEntry>| {
            if seen.insert(id.to_string()) {
                entries.push(ModelListEntry {
                    id: id.to_string(),
                    object: "model".into(),
                    created,
                    owned_by: owner.to_string(),
                });
            }
        };
        match self.logical.list().await {
            Ok(mut models) => {
                models.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
                for model in models.iter().filter(|m| m.enabled) {
                    push(&model.logical_id, "apiproxy", &mut entries);
                }
            }
            Err(e) => tracing::warn!(error = %e, "logical models unreadable for /models"),
        }
        let providers = self.providers();
        let lists = join_all(providers.iter().map(|p| self.models_of(p))).await;
        for (provider, list) in providers.iter().zip(lists) {
            if let Ok(models) = list {
                for model in models.iter() {
                    push(&model.model_id, &provider.id, &mut entries);
                }
            }
        }
        if let Err(e) = self.cache.put_aggregate(entries.clone(), self.ttl).await {
            tracing::warn!(error = %e, "aggregated model list not cached");
        }
        entries
    }

    /// Resolves a requested name (SPEC 4.2): a logical model; else `provider/model` pinned to a
    /// configured provider; else a dynamic logical model over every provider listing the name.
    pub async fn resolve(&self, requested: &str) -> Resolution {
        match self.logical.get(requested).await {
            Ok(Some(model)) if model.enabled => {
                return Resolution::Found(model);
            }
            Ok(Some(_)) => return Resolution::Disabled(requested.to_string()),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "logical model store unreadable; trying providers")
            }
        }
        let now = self.clock.now();
        let providers = self.providers();
        if let Some((prefix, model_id)) = requested.split_once('/')
            && let Some(provider) = providers.get(prefix)
            && !model_id.is_empty()
        {
            let upstream = physical(provider, model_id, now);
            return Resolution::Found(LogicalModel::dynamic(requested, vec![upstream], now));
        }
        let lists = join_all(providers.iter().map(|p| self.models_of(p))).await;
        let upstreams: Vec<PhysicalModel> = providers
            .iter()
            .zip(lists)
            .filter_map(|(provider, list)| {
                let models = list.ok()?;
                let listed = models
                    .iter()
                    .find(|m| model_matches(requested, &m.model_id))?;
                Some(physical(provider, &listed.model_id, now))
            })
            .collect();
        if upstreams.is_empty() {
            Resolution::NotFound
        } else {
            Resolution::Found(LogicalModel::dynamic(requested, upstreams, now))
        }
    }

    pub async fn logical_models(&self) -> Result<Vec<LogicalModel>, CatalogError> {
        let mut models = self
            .logical
            .list()
            .await
            .map_err(|e| CatalogError::Store(e.0))?;
        models.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        Ok(models.into_iter().map(|m| self.with_endpoints(m)).collect())
    }

    pub async fn logical_model(
        &self,
        logical_id: &str,
    ) -> Result<Option<LogicalModel>, CatalogError> {
        let model = self
            .logical
            .get(logical_id)
            .await
            .map_err(|e| CatalogError::Store(e.0))?;
        Ok(model.map(|m| self.with_endpoints(m)))
    }

    /// Creates or replaces a logical model after checking it: fields valid, weights above zero,
    /// every upstream on a configured provider. Client-sent endpoints are ignored.
    pub async fn put_logical_model(
        &self,
        mut model: LogicalModel,
    ) -> Result<Result<LogicalModel, InvalidLogicalModel>, CatalogError> {
        if let Err(problem) = self.check_logical_model(&model) {
            return Ok(Err(problem));
        }
        let now = self.clock.now();
        model.updated_at = now;
        for upstream in &mut model.upstreams {
            upstream.endpoint.clear();
            if upstream.updated_at <= 0.0 {
                upstream.updated_at = now;
            }
        }
        if model.display_name.is_empty() {
            model.display_name = model.logical_id.clone();
        }
        self.logical
            .put(model.clone())
            .await
            .map_err(|e| CatalogError::Store(e.0))?;
        self.forget_aggregate().await;
        Ok(Ok(self.with_endpoints(model)))
    }

    pub async fn delete_logical_model(&self, logical_id: &str) -> Result<bool, CatalogError> {
        let deleted = self
            .logical
            .delete(logical_id)
            .await
            .map_err(|e| CatalogError::Store(e.0))?;
        if deleted {
            self.forget_aggregate().await;
        }
        Ok(deleted)
    }

    async fn forget_aggregate(&self) {
        if let Err(e) = self.cache.clear_aggregate().await {
            tracing::warn!(error = %e, "aggregated model list not invalidated; it refreshes within MODELS_CACHE_TTL");
        }
    }

    fn check_logical_model(&self, model: &LogicalModel) -> Result<(), InvalidLogicalModel> {
        use validator::Validate;
        if let Err(errors) = model.validate() {
            let (field, message) = first_validation_error(&errors);
            return Err(InvalidLogicalModel { field, message });
        }
        let providers = self.providers();
        for (index, upstream) in model.upstreams.iter().enumerate() {
            if providers.get(&upstream.provider_id).is_none() {
                return Err(InvalidLogicalModel {
                    field: format!("upstreams[{index}].provider_id"),
                    message: format!("'{}' is not a configured provider", upstream.provider_id),
                });
            }
        }
        Ok(())
    }

    /// Asks the provider's models path and times the answer: healthy for 2xx, degraded for 4xx,
    /// down for 5xx or no answer.
    pub async fn check_health(&self, provider_id: &str) -> Result<HealthStatus, CatalogError> {
        use crate::domain::health::ProviderStatus;
        use crate::domain::ports::ListModelsError;
        let providers = self.providers();
        let provider = providers
            .get(provider_id)
            .ok_or_else(|| CatalogError::UnknownProvider(provider_id.to_string()))?;
        let started = std::time::Instant::now();
        let result = self.upstream.list_models(provider).await;
        let response_time_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        let timestamp = self.clock.now();
        let (status, error_message, response_time_ms) = match result {
            Ok(_) => (ProviderStatus::Healthy, None, response_time_ms),
            Err(ListModelsError::Status { status, message }) if status < 500 => (
                ProviderStatus::Degraded,
                Some(format!("HTTP {status}: {message}")),
                response_time_ms,
            ),
            Err(ListModelsError::Malformed(message)) => {
                (ProviderStatus::Degraded, Some(message), response_time_ms)
            }
            Err(e @ ListModelsError::Status { .. }) => {
                (ProviderStatus::Down, Some(e.to_string()), response_time_ms)
            }
            Err(e @ ListModelsError::Transport(_)) => {
                (ProviderStatus::Down, Some(e.to_string()), None)
            }
        };
        let last_successful_check = (status == ProviderStatus::Healthy).then_some(timestamp);
        Ok(HealthStatus {
            provider_id: provider.id.clone(),
            status,
            timestamp,
            response_time_ms,
            error_message,
            last_successful_check,
        })
    }

    /// Fills in each upstream's informational endpoint from its provider.
    pub fn with_endpoints(&self, mut model: LogicalModel) -> LogicalModel {
        let providers = self.providers();
        for upstream in &mut model.upstreams {
            if let Some(provider) = providers.get(&upstream.provider_id) {
                upstream.endpoint = provider.shown_chat_url(&upstream.model_id);
            }
        }
        model
    }
}

/// The first validation error as (`field.path`, message), for a 400 that names the field.
fn first_validation_error(errors: &validator::ValidationErrors) -> (String, String) {
    use validator::ValidationErrorsKind;
    for (field, kind) in errors.errors() {
        match kind {
            ValidationErrorsKind::Field(list) => {
                let message = list
                    .first()
                    .and_then(|e| e.message.as_ref().map(|m| m.to_string()))
                    .unwrap_or_else(|| "is invalid".into());
                return (field.to_string(), message);
            }
            ValidationErrorsKind::Struct(inner) => {
                let (sub, message) = first_validation_error(inner);
                return (format!("{field}.{sub}"), message);
            }
            ValidationErrorsKind::List(items) => {
                if let Some((index, inner)) = items.iter().next() {
                    let (sub, message) = first_validation_error(inner);
                    return (format!("{field}[{index}].{sub}"), message);
                }
            }
        }
    }
    ("body".into(), "is invalid".into())
}

fn into_result(
    provider_id: &str,
    cached: CachedModelList,
) -> Result<Arc<Vec<Model>>, CatalogError> {
    match cached {
        CachedModelList::Models { models } => Ok(Arc::new(models)),
        CachedModelList::Failed { reason } => Err(CatalogError::Unavailable {
            provider: provider_id.to_string(),
            reason,
        }),
    }
}

/// A provider's model as an upstream of a dynamic logical model.
pub fn physical(provider: &ProviderConfig, model_id: &str, now: f64) -> PhysicalModel {
    PhysicalModel {
        provider_id: provider.id.clone(),
        model_id: model_id.to_string(),
        // Shown by the management views only; not built on the chat path.
        endpoint: String::new(),
        base_weight: provider.weight,
        region: provider.region.clone(),
        max_qps: provider.max_qps,
        meta_hash: None,
        updated_at: now,
        pricing: None,
    }
}
