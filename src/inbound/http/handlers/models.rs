//! `GET /models`, `GET /v1/models` and `GET /v1/models/{id}` (SPEC 4.1).

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

use crate::inbound::http::{ApiError, AppState};

#[handler]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = AppState::from_depot(depot) else {
        return ApiError::internal().write(res);
    };
    let data = state.catalog.all_models().await;
    res.render(Json(json!({"object": "list", "data": data})));
}

#[handler]
pub async fn get_one(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = AppState::from_depot(depot) else {
        return ApiError::internal().write(res);
    };
    let id: String = req.param("id").unwrap_or_default();
    let models = state.catalog.all_models().await;
    match models.into_iter().find(|m| m.id == id) {
        Some(model) => res.render(Json(model)),
        None => {
            let mut error = ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model '{id}' does not exist"),
            );
            error.param = Some("model".into());
            error.write(res);
        }
    }
}
