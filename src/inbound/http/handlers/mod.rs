//! One module per endpoint family.

pub mod chat;
pub mod context;
pub mod docs;
pub mod health;
pub mod logical_models;
pub mod messages;
pub mod metrics;
pub mod models;
pub mod providers;
pub mod responses;
pub mod routing;

use salvo::prelude::*;

use super::{ApiError, AppState};

/// The shared state, or a 500 written to the response (only a mis-wired router lacks it).
pub fn state_or_500(depot: &Depot, res: &mut Response) -> Option<std::sync::Arc<AppState>> {
    let state = AppState::from_depot(depot);
    if state.is_none() {
        ApiError::internal().write(res);
    }
    state
}

/// Reads a JSON body within the size limit, as a 400 or 413 naming the problem otherwise.
pub async fn json_body(req: &mut Request, max_bytes: usize) -> Result<serde_json::Value, ApiError> {
    use salvo::http::errors::ParseError;
    let bytes = req
        .payload_with_max_size(max_bytes)
        .await
        .map_err(|e| match e {
            ParseError::PayloadTooLarge => ApiError::new(
                salvo::http::StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                "request_too_large",
                format!("request body is larger than {max_bytes} bytes (MAX_REQUEST_BODY_BYTES)"),
            ),
            other => {
                ApiError::bad_request(format!("request body could not be read: {other}"), None)
            }
        })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected a JSON object",
            None,
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}"), None))?;
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "request body must be a JSON object",
            None,
        ));
    }
    Ok(value)
}
