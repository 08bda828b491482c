//! `/logical-models`: list, get, create-or-replace (validated), delete, upstreams (SPEC 4.5).

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::{json_body, state_or_500};
use crate::domain::model::LogicalModel;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::schemas;

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "logical_model_not_found",
        format!("logical model '{id}' does not exist"),
    )
}

/// List logical models
///
/// Every stored logical model, sorted by `logical_id`, each upstream's `endpoint` derived from
/// its provider.
#[endpoint(
    operation_id = "listLogicalModels",
    tags("management"),
    responses(
        (status_code = 200, description = "The logical models.", body = schemas::LogicalModelList),
        (status_code = 503, description = "The store could not be read or written (logical models; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    match state.catalog.logical_models().await {
        Ok(models) => res.render(Json(json!({"total": models.len(), "models": models}))),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// Get a logical model
#[endpoint(
    operation_id = "getLogicalModel",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "The logical model id (the public model name).", example = json!("gpt-4o")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 200, description = "The logical model.", body = schemas::LogicalModel),
        (status_code = 404, description = "No logical model has this id (`code: logical_model_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (logical models; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match super::input::path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.catalog.logical_model(&id).await {
        Ok(Some(model)) => res.render(Json(model)),
        Ok(None) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// List a logical model's upstreams
#[endpoint(
    operation_id = "listLogicalModelUpstreams",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "The logical model id (the public model name).", example = json!("gpt-4o")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 200, description = "The upstreams, endpoints derived.", body = schemas::LogicalModelUpstreams),
        (status_code = 404, description = "No logical model has this id (`code: logical_model_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (logical models; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn upstreams(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match super::input::path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.catalog.logical_model(&id).await {
        Ok(Some(model)) => res.render(Json(json!({"upstreams": model.upstreams}))),
        Ok(None) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// Create or replace a logical model
///
/// Validated, then stored. `logical_id` may be omitted (it is taken from the path) but must
/// match the path when given. Every upstream's `provider_id` must be a configured provider.
/// Client-sent `endpoint` values are ignored (an upstream URL is never taken from a client).
/// `updated_at` is set to now, as is each upstream's `updated_at` when `<= 0`; an empty
/// `display_name` becomes `logical_id`. The `/models` aggregate is refreshed.
#[endpoint(
    operation_id = "putLogicalModel",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "The logical model id (the public model name).", example = json!("gpt-4o")),
    ),
    request_body(content = schemas::LogicalModelInput),
    responses(
        (status_code = 200, description = "Replaced: the stored model, endpoints derived.", body = schemas::LogicalModel),
        (status_code = 201, description = "Created: the stored model, endpoints derived.", body = schemas::LogicalModel),
        (status_code = 400, description = "Empty or invalid JSON, not an object, a `logical_id` that differs from the path (`param: logical_id`) or a field of the wrong type (`code: invalid_request`); a failed validation rule or an unknown provider (`code: invalid_logical_model`, `param` = the first failing field such as `upstreams[0].base_weight`).", body = schemas::Error),
        (status_code = 413, description = "The body is larger than `MAX_REQUEST_BODY_BYTES` (`code: request_too_large`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (logical models; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn put(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match super::input::path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    let mut body = match json_body(req, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.write(res),
    };
    match body.get("logical_id") {
        None | Some(Value::Null) => body["logical_id"] = Value::String(id.clone()),
        Some(Value::String(given)) if *given == id => {}
        Some(_) => {
            return ApiError::bad_request(
                format!("logical_id must match the path ('{id}')"),
                Some("logical_id"),
            )
            .write(res);
        }
    }
    let model: LogicalModel = match serde_json::from_value(body) {
        Ok(model) => model,
        Err(e) => {
            return ApiError::bad_request(format!("invalid logical model: {e}"), None).write(res);
        }
    };
    let existed = matches!(state.catalog.logical_model(&id).await, Ok(Some(_)));
    match state.catalog.put_logical_model(model).await {
        Ok(Ok(stored)) => {
            res.status_code(if existed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            });
            res.render(Json(stored));
        }
        Ok(Err(invalid)) => {
            let mut error = ApiError::bad_request(
                format!("{}: {}", invalid.field, invalid.message),
                Some(&invalid.field),
            );
            error.code = "invalid_logical_model";
            error.write(res);
        }
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// Delete a logical model
#[endpoint(
    operation_id = "deleteLogicalModel",
    tags("management"),
    parameters(
        ("id" = String, Path, description = "The logical model id (the public model name).", example = json!("gpt-4o")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 204, description = "Deleted."),
        (status_code = 404, description = "No logical model has this id (`code: logical_model_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (logical models; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn delete(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match super::input::path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.catalog.delete_logical_model(&id).await {
        Ok(true) => {
            res.status_code(StatusCode::NO_CONTENT);
        }
        Ok(false) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}
