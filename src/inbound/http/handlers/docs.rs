//! `GET /openapi.json` and the browsable page at `/docs` (both open, like `/health`).

use salvo::http::HeaderValue;
use salvo::prelude::*;

/// The OpenAPI 3.1 description of every endpoint, kept beside the routes it describes.
const OPENAPI: &str = include_str!("../openapi.json");
/// A self-contained page that renders it (no CDN: it works on a closed network).
const PAGE: &str = include_str!("../docs.html");

#[handler]
pub async fn openapi(res: &mut Response) {
    res.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    res.body(OPENAPI);
}

#[handler]
pub async fn page(res: &mut Response) {
    res.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    res.body(PAGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_valid_json_describing_the_chat_endpoint() {
        let spec: serde_json::Value = serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        assert!(
            spec["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
        assert_eq!(
            spec["paths"]["/v1/chat/completions"]["post"]["summary"],
            "Create a chat completion"
        );
    }
}
