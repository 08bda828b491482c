//! `/providers`, `/providers/{id}`, its models, live health and recorded metrics (SPEC 4.5).
//! Keys are never returned: only masks.

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::state_or_500;
use crate::domain::provider::{ProviderConfig, RetryPolicy, mask_secret};
use crate::domain::service::catalog::CatalogError;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::schemas;

fn view(p: &ProviderConfig) -> Value {
    let retryable = match &p.retry {
        RetryPolicy::Generic => Value::Null,
        RetryPolicy::Codes(codes) => json!(codes),
    };
    // Custom headers may carry credentials (Azure's api-key): names only, values masked.
    let headers: serde_json::Map<String, Value> = p
        .custom_headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(mask_secret(v))))
        .collect();
    json!({
        "id": p.id,
        "name": p.name,
        "base_url": p.masked_base_url(),
        "api_key": p.masked_key(),
        "vendor": p.vendor,
        "models_path": p.models_path,
        "chat_path": p.chat_path,
        "responses_path": p.responses_path,
        "weight": p.weight,
        "region": p.region,
        "max_qps": p.max_qps,
        "cost_input": p.cost_input,
        "cost_output": p.cost_output,
        "retryable_status_codes": retryable,
        "custom_headers": headers,
        "static_models": p.static_models.as_ref().map(|m| m.iter().map(|m| m.model_id.clone()).collect::<Vec<_>>()),
    })
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "provider_not_found",
        format!("provider '{id}' is not configured"),
    )
}

/// List providers
///
/// Every configured provider, in `LLM_PROVIDERS` order. API keys and custom header values are
/// only ever shown masked (`****abcd`).
#[endpoint(
    operation_id = "listProviders",
    tags("management"),
    responses(
        (status_code = 200, description = "The providers.", body = schemas::ProviderList),
    ),
)]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let providers: Vec<Value> = state.catalog.providers().iter().map(|p| view(p)).collect();
    res.render(Json(
        json!({"total": providers.len(), "providers": providers}),
    ));
}

/// Get a provider
#[endpoint(
    operation_id = "getProvider",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "A provider id from `LLM_PROVIDERS`.", example = json!("openai")),
    ),
    responses(
        (status_code = 200, description = "The provider (keys masked).", body = schemas::Provider),
        (status_code = 404, description = "The provider is not configured (`code: provider_not_found`).", body = schemas::Error),
    ),
)]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.catalog.providers().get(&id) {
        Some(provider) => res.render(Json(view(provider))),
        None => not_found(&id).write(res),
    }
}

/// List a provider's models
///
/// The provider's static models, or its model list from the cache or a fresh call to its models
/// path. A failed list is remembered for `MODELS_CACHE_TTL`.
#[endpoint(
    operation_id = "listProviderModels",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "A provider id from `LLM_PROVIDERS`.", example = json!("openai")),
    ),
    responses(
        (status_code = 200, description = "The provider's models.", body = schemas::ProviderModelList),
        (status_code = 404, description = "The provider is not configured (`code: provider_not_found`).", body = schemas::Error),
        (status_code = 502, description = "The provider's model list could not be read (`type: upstream_error`, `code: upstream_unavailable`, the reason in the message).", body = schemas::Error),
    ),
)]
pub async fn models(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.catalog.provider_models(&id).await {
        Ok(found) => res.render(Json(json!({"total": found.len(), "models": *found}))),
        Err(CatalogError::UnknownProvider(_)) => not_found(&id).write(res),
        Err(e) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "upstream_unavailable",
            e.to_string(),
        )
        .write(res),
    }
}

/// Check a provider's health
///
/// One live, timed GET of the provider's models path (even for providers with static models):
/// `healthy` when the list is read, `degraded` for a 4xx or an unreadable list, `down` for a
/// 5xx or a transport error.
#[endpoint(
    operation_id = "checkProviderHealth",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "A provider id from `LLM_PROVIDERS`.", example = json!("openai")),
    ),
    responses(
        (status_code = 200, description = "The health check's result.", body = schemas::HealthStatus),
        (status_code = 404, description = "The provider is not configured (`code: provider_not_found`).", body = schemas::Error),
    ),
)]
pub async fn health(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.catalog.check_health(&id).await {
        Ok(status) => res.render(Json(status)),
        Err(CatalogError::UnknownProvider(_)) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// Get a provider's routing metrics
///
/// The figures the gateway recorded itself over the last minute, one entry per logical model
/// the provider served, sorted by logical model. Pairs with no attempt in the window are
/// absent.
#[endpoint(
    operation_id = "getProviderMetrics",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "A provider id from `LLM_PROVIDERS`.", example = json!("openai")),
        ("logical_model" = Option<String>, Query, description = "Only this logical model's figures (an empty list when it had no attempt in the window)."),
    ),
    responses(
        (status_code = 200, description = "The metrics.", body = schemas::ProviderMetrics),
        (status_code = 404, description = "The provider is not configured (`code: provider_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (metrics; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn metrics(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    if state.catalog.providers().get(&id).is_none() {
        return not_found(&id).write(res);
    }
    let now = state.clock.now();
    let figures = match req.query::<String>("logical_model") {
        Some(logical) => state
            .metrics
            .snapshot(&logical, std::slice::from_ref(&id), now)
            .await
            .map(|all| all.into_iter().flatten().collect::<Vec<_>>()),
        None => state.metrics.for_provider(&id, now).await,
    };
    match figures {
        Ok(figures) => res.render(Json(json!({"metrics": figures}))),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}
