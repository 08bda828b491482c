//! `GET /models`, `GET /v1/models` and `GET /v1/models/{id}` (SPEC 4.1); Google's clients (a key
//! in `x-goog-api-key` or `?key=`, no `Authorization`) get the last two in Gemini's shape (SPEC 4.7).

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::json;

use super::input::google_client;
use super::output::{gemini_model, gemini_model_list};
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
pub async fn list(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    if google_client(req) {
        // Google's SDKs list models at `/v1/models` too, and parse only Gemini's shape.
        let Some(state) = AppState::from_depot(depot) else {
            return ApiError::internal().write(res);
        };
        let data = super::input::visible_models(&state, depot).await;
        return res.render(Json(gemini_model_list(data.iter().map(|m| m.id.as_str()))));
    }
    write_list(depot, res).await
}

async fn write_list(depot: &mut Depot, res: &mut Response) {
    let Some(state) = AppState::from_depot(depot) else {
        return ApiError::internal().write(res);
    };
    let data = super::input::visible_models(&state, depot).await;
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
    let models = super::input::visible_models(&state, depot).await;
    let google = google_client(req);
    let id = if google {
        crate::protocol::gemini::model_id(&id).to_string()
    } else {
        id
    };
    match models.into_iter().find(|m| m.id == id) {
        Some(model) if google => res.render(Json(gemini_model(&model.id))),
        Some(model) => res.render(Json(model)),
        None => {
            let mut error = ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model '{id}' does not exist"),
            );
            if google {
                return super::output::write_google_api_error(res, &error);
            }
            error.param = Some("model".into());
            error.write(res);
        }
    }
}
