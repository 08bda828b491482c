//! The middleware that lets only requests carrying the gateway token through (SPEC 3), answering
//! in the client's error shape otherwise.

use salvo::prelude::*;

use super::error::ApiError;

#[handler]
pub async fn require_token(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    let Some(state) = super::AppState::from_depot(depot) else {
        ApiError::internal().write(res);
        ctrl.skip_rest();
        return;
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    if let Err(error) = state
        .tokens
        .check(header("authorization"), header("x-api-key"))
    {
        if req.uri().path().starts_with("/v1/messages") {
            // Anthropic clients parse Anthropic's error shape.
            super::handlers::output::write_anthropic_api_error(res, &error);
        } else {
            error.write(res);
        }
        ctrl.skip_rest();
    }
}
