//! `/context/{session_id}`: a session's history, newest first, as JSON objects (SPEC 4.5).

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::state_or_500;
use crate::inbound::http::ApiError;

#[handler]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id: String = req.param("id").unwrap_or_default();
    match state.context.history(&id).await {
        Ok(entries) => {
            let history: Vec<Value> = entries
                .into_iter()
                .map(|e| serde_json::from_str(&e).unwrap_or(Value::String(e)))
                .collect();
            res.render(Json(json!({"session_id": id, "history": history})));
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
    match state.context.delete(&id).await {
        Ok(_) => {
            res.status_code(StatusCode::NO_CONTENT);
        }
        Err(e) => ApiError::unavailable(e.to_string()).write(res),
    }
}
