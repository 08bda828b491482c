//! `GET /health` (open).

use salvo::prelude::*;
use serde_json::json;

#[handler]
pub async fn health(res: &mut Response) {
    res.render(Json(json!({"status": "ok"})));
}
