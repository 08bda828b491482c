//! `GET /health` (open): ok, or degraded when the shared store is unreachable (the gateway still
//! serves).

use salvo::prelude::*;
use serde_json::json;

use super::state_or_500;
use crate::domain::ports::StoreHealth;

#[handler]
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
