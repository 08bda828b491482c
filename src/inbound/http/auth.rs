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
    // Google's clients send the key as `x-goog-api-key` or the `key` query parameter; the query
    // is parsed only when no header carries a credential (not on the common path).
    let authorization = header("authorization");
    let mut api_key = header("x-api-key").or_else(|| header("x-goog-api-key"));
    let query_key;
    if authorization.is_none() && api_key.is_none() {
        query_key = req.query::<String>("key");
        api_key = query_key.as_deref();
    }
    if let Err(error) = state.tokens.check(authorization, api_key) {
        let path = req.uri().path();
        if path.starts_with("/v1/messages") {
            // Anthropic clients parse Anthropic's error shape.
            super::handlers::output::write_anthropic_api_error(res, &error);
        } else if path.starts_with("/v1beta/")
            || (path.starts_with("/v1/models/") && path.contains(':'))
        {
            super::handlers::output::write_google_api_error(res, &error);
        } else {
            error.write(res);
        }
        ctrl.skip_rest();
    }
}
