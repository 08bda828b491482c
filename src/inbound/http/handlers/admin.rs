//! `POST /admin/reload` (SPEC 8), admin only: reads the environment file and
//! `LOGICAL_MODELS_FILE` again and puts them in force, or refuses them with the reasons.

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;

use super::input::state_or_500;
use crate::domain::service::catalog::RefusalCause;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::{reload_schemas, schemas};

/// Reload the configuration
///
/// Reads the environment file (`--env-file`, `APIPROXY_ENV_FILE` or `.env`) and
/// `LOGICAL_MODELS_FILE` again and checks all of it as start-up would. Valid: the providers, the
/// upstream headers and the file's logical models are swapped in, and the answer lists what
/// changed. Invalid: nothing changes and the answer is 422 naming the variable (`param`) and the
/// problem. Requests and streams already running finish on the configuration they started with.
/// Listen address, store, tokens, timeouts and limits wait for a restart (they are named in
/// `warnings` when they changed). `SIGHUP` does the same.
#[endpoint(
    operation_id = "reloadConfiguration",
    tags("management"),
    responses(
        (status_code = 200, description = "The new configuration is in force; what changed.", body = reload_schemas::ReloadReport),
        (status_code = 422, description = "The new configuration is invalid (`code: invalid_configuration`, `param`: the variable); the running one stays.", body = schemas::Error),
        (status_code = 503, description = "This process cannot reload (`code: reload_unavailable`), or the logical-model store cannot be read (`code: store_unavailable`); the running configuration stays.", body = schemas::Error),
    ),
)]
pub async fn reload(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let Some(reloader) = state.reload.get() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "reload_unavailable",
            "this process was started without a reloadable configuration",
        )
        .write(res);
    };
    match reloader.reload("POST /admin/reload").await {
        Ok(report) => res.render(Json(report)),
        Err(refused) => {
            let message =
                format!("the new configuration was refused and the running one stays: {refused}");
            let mut error = match refused.cause {
                RefusalCause::Invalid => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_request_error",
                    "invalid_configuration",
                    message,
                ),
                RefusalCause::StoreUnavailable => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "api_error",
                    "store_unavailable",
                    message,
                ),
            };
            error.param = refused.variable;
            error.write(res);
        }
    }
}
