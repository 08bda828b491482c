//! `/logical-models`: list, get, create-or-replace (validated), delete, upstreams (SPEC 4.5).

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::{json_body, state_or_500};
use crate::domain::model::LogicalModel;
use crate::inbound::http::ApiError;

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(
        "logical_model_not_found",
        format!("logical model '{id}' does not exist"),
    )
}

#[handler]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    match state.catalog.logical_models().await {
        Ok(models) => res.render(Json(json!({"total": models.len(), "models": models}))),
        Err(e) => ApiError::unavailable(e.to_string()).write(res),
    }
}

#[handler]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.catalog.logical_model(&id).await {
        Ok(Some(model)) => res.render(Json(model)),
        Ok(None) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e.to_string()).write(res),
    }
}

#[handler]
pub async fn upstreams(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.catalog.logical_model(&id).await {
        Ok(Some(model)) => res.render(Json(json!({"upstreams": model.upstreams}))),
        Ok(None) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e.to_string()).write(res),
    }
}

#[handler]
pub async fn put(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
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
        Err(e) => ApiError::unavailable(e.to_string()).write(res),
    }
}

#[handler]
pub async fn delete(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.catalog.delete_logical_model(&id).await {
        Ok(true) => {
            res.status_code(StatusCode::NO_CONTENT);
        }
        Ok(false) => not_found(&id).write(res),
        Err(e) => ApiError::unavailable(e.to_string()).write(res),
    }
}
