//! `/keys`: virtual keys for teams and apps (SPEC 3.1), admin only. The secret is in the answer
//! to a create or a rotation and nowhere else.

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::{json_body, path_id, state_or_500};
use crate::domain::keys::VirtualKey;
use crate::domain::service::keys::{KeyError, KeyFigures, KeySpec, Minted, rfc3339};
use crate::domain::usage::usd;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::{key_schemas, schemas};

/// A key as clients see it: never the secret or its hash.
pub fn key_view(key: &VirtualKey, figures: KeyFigures) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "team": key.team,
        "prefix": key.prefix,
        "models": key.models,
        "rpm": key.rpm,
        "tpm": key.tpm,
        "max_parallel": key.max_parallel,
        "budget_usd": key.budget_usd,
        "budget_period": key.budget_period,
        "spent_usd": usd(figures.spent),
        "expires_at": key.expires_at.map(rfc3339),
        "enabled": key.enabled,
        "created_at": rfc3339(key.created_at),
        "last_used_at": figures.last_used.map(rfc3339),
        "metadata": key.metadata,
    })
}

/// A key use case's error as an answer (shared with `/usage`).
pub fn key_error(error: KeyError) -> ApiError {
    match error {
        KeyError::Invalid((field, problem)) => {
            ApiError::bad_request(format!("{field}: {problem}"), Some(&field))
        }
        KeyError::NotFound(id) => {
            ApiError::not_found("key_not_found", format!("no key with id '{id}'"))
        }
        KeyError::Store(e) => ApiError::unavailable(e),
    }
}

fn minted(minted: Minted, status: StatusCode, res: &mut Response) {
    let mut view = key_view(&minted.key, KeyFigures::default());
    view["key"] = Value::String(minted.secret);
    res.status_code(status);
    res.render(Json(view));
}

/// Create a virtual key
///
/// Returns the key object and, this once, the secret `key` (`sk-apx-...`): only its hash is
/// stored. Clients send it like the gateway token (`Authorization: Bearer`, `X-API-Key` or
/// `x-goog-api-key`).
#[endpoint(
    operation_id = "createKey",
    tags("keys"),
    request_body(content = key_schemas::NewKey),
    responses(
        (status_code = 201, description = "The key, with its secret `key` shown this once.", body = key_schemas::CreatedKey),
        (status_code = 400, description = "A field is missing or invalid (`param` names it).", body = schemas::Error),
        (status_code = 503, description = "The store could not be written (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn create(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let body = match json_body(req, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.write(res),
    };
    let spec = match KeySpec::parse(body) {
        Ok(spec) => spec,
        Err(error) => return key_error(error).write(res),
    };
    match state.keys.create(spec).await {
        Ok(key) => minted(key, StatusCode::CREATED, res),
        Err(error) => key_error(error).write(res),
    }
}

/// List virtual keys
///
/// Every key with its spending in the current budget period; never a secret.
#[endpoint(
    operation_id = "listKeys",
    tags("keys"),
    responses(
        (status_code = 200, description = "The keys.", body = key_schemas::KeyList),
        (status_code = 503, description = "The store could not be read (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let keys = match state.keys.list().await {
        Ok(keys) => keys,
        Err(error) => return key_error(error).write(res),
    };
    let figures = match state.keys.figures(&keys).await {
        Ok(figures) => figures,
        Err(error) => return key_error(error).write(res),
    };
    let views: Vec<Value> = keys
        .iter()
        .zip(figures)
        .map(|(key, figures)| key_view(key, figures))
        .collect();
    res.render(Json(json!({"total": views.len(), "keys": views})));
}

async fn one(state: &crate::inbound::http::AppState, id: &str) -> Result<Value, ApiError> {
    let key = state.keys.get(id).await.map_err(key_error)?;
    let figures = state
        .keys
        .figures(std::slice::from_ref(&key))
        .await
        .map_err(key_error)?;
    Ok(key_view(&key, figures.first().copied().unwrap_or_default()))
}

/// Get a virtual key
#[endpoint(
    operation_id = "getKey",
    tags("keys"),
    parameters(("id" = String, Path, description = "The key id (`key_...`).")),
    responses(
        (status_code = 200, description = "The key.", body = key_schemas::KeyObject),
        (status_code = 400, description = "The id is out of bounds (`param: id`).", body = schemas::Error),
        (status_code = 404, description = "No key has this id (`code: key_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match one(&state, &id).await {
        Ok(view) => res.render(Json(view)),
        Err(error) => error.write(res),
    }
}

/// Change a virtual key
///
/// Any field of a new key; the rest stay. `null` clears an optional field (a limit, the budget,
/// the expiry). The secret cannot be changed: rotate the key instead. Takes effect on every
/// instance within about a second.
#[endpoint(
    operation_id = "changeKey",
    tags("keys"),
    parameters(("id" = String, Path, description = "The key id (`key_...`).")),
    request_body(content = key_schemas::KeyChange),
    responses(
        (status_code = 200, description = "The changed key.", body = key_schemas::KeyObject),
        (status_code = 400, description = "A field is invalid or unknown (`param` names it).", body = schemas::Error),
        (status_code = 404, description = "No key has this id (`code: key_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be written (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn change(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    let body = match json_body(req, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.write(res),
    };
    if let Err(error) = state.keys.change(&id, &body).await {
        return key_error(error).write(res);
    }
    match one(&state, &id).await {
        Ok(view) => res.render(Json(view)),
        Err(error) => error.write(res),
    }
}

/// Rotate a virtual key's secret
///
/// A new secret, shown this once; the old one stops working (on every instance within about a
/// second). Limits, budget and spending stay with the key.
#[endpoint(
    operation_id = "rotateKey",
    tags("keys"),
    parameters(("id" = String, Path, description = "The key id (`key_...`).")),
    responses(
        (status_code = 200, description = "The key with its new secret `key`.", body = key_schemas::CreatedKey),
        (status_code = 400, description = "The id is out of bounds (`param: id`).", body = schemas::Error),
        (status_code = 404, description = "No key has this id (`code: key_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be written (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn rotate(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.keys.rotate(&id).await {
        Ok(key) => minted(key, StatusCode::OK, res),
        Err(error) => key_error(error).write(res),
    }
}

/// Revoke a virtual key
///
/// The key stops working (on every instance within about a second); its usage stays in
/// `/usage`.
#[endpoint(
    operation_id = "deleteKey",
    tags("keys"),
    parameters(("id" = String, Path, description = "The key id (`key_...`).")),
    responses(
        (status_code = 204, description = "Revoked."),
        (status_code = 400, description = "The id is out of bounds (`param: id`).", body = schemas::Error),
        (status_code = 404, description = "No key has this id (`code: key_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be written (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn delete(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.keys.delete(&id).await {
        Ok(()) => {
            res.status_code(StatusCode::NO_CONTENT);
        }
        Err(error) => key_error(error).write(res),
    }
}
