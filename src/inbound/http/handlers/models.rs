//! `GET /models`, `GET /v1/models` and `GET /v1/models/{id}` (SPEC 4.1).

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::json;

use crate::inbound::http::openapi::schemas;
use crate::inbound::http::{ApiError, AppState};

/// List models
///
/// The union of enabled logical model ids (`owned_by: "apiproxy"`) and every provider's models
/// (`owned_by: <provider id>`), de-duplicated by id (first wins) and cached for
/// `MODELS_CACHE_TTL`. A provider whose list fails is left out.
#[endpoint(
    operation_id = "listModels",
    tags("models"),
    responses(
        (status_code = 200, description = "The model list.", body = schemas::ModelList),
    ),
)]
pub async fn list(depot: &mut Depot, res: &mut Response) {
    write_list(depot, res).await
}

async fn write_list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = AppState::from_depot(depot) else {
        return ApiError::internal().write(res);
    };
    let data = state.catalog.all_models().await;
    res.render(Json(json!({"object": "list", "data": data})));
}

/// List models (unversioned alias of /v1/models)
///
/// The union of enabled logical model ids (`owned_by: "apiproxy"`) and every provider's models
/// (`owned_by: <provider id>`), de-duplicated by id (first wins) and cached for
/// `MODELS_CACHE_TTL`. A provider whose list fails is left out.
#[endpoint(
    operation_id = "listModelsUnversioned",
    tags("models"),
    responses(
        (status_code = 200, description = "The model list.", body = schemas::ModelList),
    ),
)]
pub async fn list_unversioned(depot: &mut Depot, res: &mut Response) {
    write_list(depot, res).await
}

/// Retrieve a model
///
/// One entry of the `/v1/models` list, matched by exact id. The id is the rest of the path and
/// may contain `/` (`/v1/models/group/gpt-4o`).
#[endpoint(
    operation_id = "retrieveModel",
    tags("models"),
    parameters(
        ("**id" = String, Path, description = "The model id, as listed by `/v1/models`.", example = json!("gpt-4o")),
    ),
    responses(
        (status_code = 200, description = "The model.", body = schemas::ModelEntry),
        (status_code = 404, description = "No listed model has this id (`code: model_not_found`, `param: model`).", body = schemas::Error),
    ),
)]
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
