//! `/context/{session_id}`: a session's history, newest first, as JSON objects (SPEC 4.5).

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::state_or_500;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::schemas;

/// Get a session's context history
///
/// The recorded exchanges, newest first, at most `CONTEXT_MAX_ENTRIES`. An unknown id gives an
/// empty history (200).
#[endpoint(
    operation_id = "getContext",
    tags("sessions"),
    parameters(
        ("id" = String, Path, description = "The session id (the `X-Session-Id` of chat requests).", example = json!("conv-42")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 200, description = "The history.", body = schemas::ContextHistory),
        (status_code = 503, description = "The store could not be read or written (context; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
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
    match state.context.history(&id).await {
        Ok(entries) => {
            let history: Vec<Value> = entries
                .into_iter()
                .map(|e| serde_json::from_str(&e).unwrap_or(Value::String(e)))
                .collect();
            res.render(Json(json!({"session_id": id, "history": history})));
        }
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// Delete a session's context history
///
/// 204 whether or not the history existed.
#[endpoint(
    operation_id = "deleteContext",
    tags("sessions"),
    parameters(
        ("id" = String, Path, description = "The session id (the `X-Session-Id` of chat requests).", example = json!("conv-42")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 204, description = "Deleted (or there was nothing to delete)."),
        (status_code = 503, description = "The store could not be read or written (context; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
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
    match state.context.delete(&id).await {
        Ok(_) => {
            res.status_code(StatusCode::NO_CONTENT);
        }
        Err(e) => ApiError::unavailable(e).write(res),
    }
}
