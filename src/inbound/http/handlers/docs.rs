//! `GET /openapi.json` and the browsable page at `/docs` (both open, like `/health`).

use bytes::Bytes;
use salvo::http::HeaderValue;
use salvo::oapi::endpoint;
use salvo::prelude::*;

use crate::inbound::http::ApiError;

/// A self-contained page that renders the document (no CDN: it works on a closed network).
const PAGE: &str = include_str!("../docs.html");

/// The OpenAPI document, serialized once when the router is built (not per request).
#[derive(Clone)]
pub struct Published(Bytes);

impl Published {
    pub fn new(document: &serde_json::Value) -> Self {
        Self(Bytes::from(document.to_string()))
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
    let Ok(Published(document)) = depot.get_typed::<Published>() else {
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
