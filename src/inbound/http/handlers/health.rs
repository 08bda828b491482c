//! `GET /health` (open): ok, or degraded when the shared store is unreachable (the gateway still
//! serves).

use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::json;

use super::input::state_or_500;
use crate::domain::ports::StoreHealth;
use crate::inbound::http::openapi::schemas;

/// Gateway health
///
/// Open (no token). `ok`, or `degraded` with `store: unreachable` when the Redis store cannot
/// be reached; the gateway still serves, so both are 200.
#[endpoint(
    operation_id = "getHealth",
    tags("observability"),
    responses(
        (status_code = 200, description = "The gateway's health.", body = schemas::Health),
    ),
)]
pub async fn health(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    match state.store.check().await {
        StoreHealth::Unreachable => {
            res.render(Json(json!({"status": "degraded", "store": "unreachable"})))
        }
        StoreHealth::InProcess | StoreHealth::Reachable => {
            res.render(Json(json!({"status": "ok"})))
        }
    }
}
