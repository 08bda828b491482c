//! The error shape of SPEC 4.6: `{"error":{"message","type","param","code"}}` with a fitting status.

use salvo::http::StatusCode;
use salvo::prelude::*;
use serde_json::json;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            param: param.map(str::to_string),
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                "invalid_request",
                message,
            )
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// The store failed: the detail (a Redis error naming hosts and keys) goes to the log, the
    /// client gets a plain sentence.
    pub fn unavailable(detail: impl std::fmt::Display) -> Self {
        tracing::warn!(error = %detail, "store call failed; answering 503");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "store_unavailable",
            "the gateway's state store is unavailable; try again shortly",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal_error",
            "the gateway hit an internal error; it has been logged",
        )
    }

    pub fn body(&self) -> serde_json::Value {
        json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}})
    }

    pub fn write(&self, res: &mut Response) {
        res.status_code(self.status);
        if let Some(seconds) = self.retry_after {
            res.headers_mut().insert("retry-after", seconds.into());
        }
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                "www-authenticate",
                salvo::http::HeaderValue::from_static("Bearer"),
            );
        }
        res.render(Json(self.body()));
    }
}

/// Gives bodiless error responses (no route, wrong method, a caught panic) the JSON error shape.
pub struct CatchAll;

#[async_trait]
impl Handler for CatchAll {
    async fn handle(
        &self,
        req: &mut Request,
        _depot: &mut Depot,
        res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        let status = res.status_code.unwrap_or(StatusCode::NOT_FOUND);
        let error = match status {
            StatusCode::NOT_FOUND => ApiError::new(
                status,
                "invalid_request_error",
                "not_found",
                format!("no such endpoint: {} {}", req.method(), req.uri().path()),
            ),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
                status,
                "invalid_request_error",
                "method_not_allowed",
                format!("{} is not allowed on {}", req.method(), req.uri().path()),
            ),
            s if s.is_server_error() => {
                tracing::error!(
                    status = s.as_u16(),
                    path = req.uri().path(),
                    "request failed inside the gateway"
                );
                ApiError {
                    status: s,
                    ..ApiError::internal()
                }
            }
            s => ApiError::new(
                s,
                "invalid_request_error",
                "bad_request",
                s.canonical_reason().unwrap_or("bad request"),
            ),
        };
        error.write(res);
    }
}
