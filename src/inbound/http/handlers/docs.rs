//! `GET /openapi.json` and the browsable page at `/docs` (both open, like `/health`).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use salvo::http::HeaderValue;
use salvo::oapi::endpoint;
use salvo::prelude::*;

use crate::inbound::http::ApiError;

/// A self-contained page that renders the document (no CDN: it works on a closed network).
const PAGE: &str = include_str!("../docs.html");

/// The OpenAPI document, serialized once when the router is built (not per request). It is a hoop
/// of the `/openapi.json` route only, so no other request carries it; it is set after the router
/// it describes is built, which is why it is a cell.
#[derive(Clone, Default)]
pub struct Published(Arc<OnceLock<Bytes>>);

impl Published {
    pub fn set(&self, document: &serde_json::Value) {
        let _ = self.0.set(Bytes::from(document.to_string()));
    }
}

#[async_trait]
impl Handler for Published {
    async fn handle(
        &self,
        _req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(self.clone());
    }
}

/// This OpenAPI document
///
/// Open (no token). The OpenAPI 3.1 description of every endpoint, served verbatim.
#[endpoint(
    operation_id = "getOpenApi",
    tags("observability"),
    responses(
        (status_code = 200, description = "The OpenAPI document.", body = serde_json::Map<String, serde_json::Value>),
    ),
)]
pub async fn openapi(depot: &mut Depot, res: &mut Response) {
    let Some(document) = depot
        .get_typed::<Published>()
        .ok()
        .and_then(|published| published.0.get())
    else {
        return ApiError::internal().write(res);
    };
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    res.body(document.clone());
}

/// Browsable API documentation
///
/// Open (no token). A self-contained HTML page (no CDN) that renders `/openapi.json`.
#[endpoint(
    operation_id = "getDocs",
    tags("observability"),
    responses(
        (status_code = 200, description = "The HTML page.", content(("text/html" = String))),
    ),
)]
pub async fn page(res: &mut Response) {
    res.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.body(PAGE);
}
