//! The hoops that let a request through by its credential (SPEC 3, 3.1): `require_token` finds who
//! is calling (admin, client or virtual key) and puts the [`Caller`] in the depot;
//! `require_admin` keeps everyone but admin out of management. Refusals are written in the
//! client's error shape.

use std::sync::Arc;

use salvo::http::header::AUTHORIZATION;
use salvo::http::{HeaderName, StatusCode};
use salvo::prelude::*;

use super::credentials::Presented;
use super::error::ApiError;
use super::header_names as names;
use crate::domain::keys::VirtualKey;
use crate::domain::service::keys::Denied;

/// Who sent the request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// The admin token (or the gateway token when no admin token is set).
    Admin,
    /// The gateway token beside an admin token: inference and model lists only.
    Client,
    /// A virtual key: inference and model lists, under its limits.
    Key(Arc<VirtualKey>),
}

impl Caller {
    /// The virtual key, if the caller is one.
    pub fn key(depot: &Depot) -> Option<Arc<VirtualKey>> {
        match depot.get_typed::<Caller>() {
            Ok(Caller::Key(key)) => Some(key.clone()),
            _ => None,
        }
    }
}

/// Writes `error` in the shape the endpoint's clients parse.
pub(super) fn write_in_clients_shape(req: &Request, res: &mut Response, error: &ApiError) {
    let path = req.uri().path();
    if path.starts_with("/v1/messages") {
        // Anthropic clients parse Anthropic's error shape.
        super::handlers::output::write_anthropic_api_error(res, error);
    } else if path.starts_with("/v1beta/")
        || (path.starts_with("/v1/models/") && path.contains(':'))
    {
        super::handlers::output::write_google_api_error(res, error);
    } else {
        error.write(res);
    }
}

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
    let header = |name: HeaderName| {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap_or("\u{0}"))
    };
    // Google's clients send the key as `x-goog-api-key` or the `key` query parameter; the query
    // is parsed only when no header carries a credential (not on the common path).
    let authorization = header(AUTHORIZATION);
    let mut api_key = header(names::X_API_KEY).or_else(|| header(names::X_GOOG_API_KEY));
    let query_key;
    if authorization.is_none() && api_key.is_none() {
        query_key = req.query::<String>("key");
        api_key = query_key.as_deref();
    }
    let caller = match state.tokens.check(authorization, api_key) {
        Ok(Presented::Admin | Presented::Gateway { admin: true }) => Caller::Admin,
        Ok(Presented::Gateway { admin: false }) => Caller::Client,
        Ok(Presented::Key(secret)) => match state.keys.authenticate(&secret).await {
            Ok(key) => Caller::Key(key),
            Err(denied) => {
                write_in_clients_shape(req, res, &denied_error(denied));
                ctrl.skip_rest();
                return;
            }
        },
        Err(error) => {
            write_in_clients_shape(req, res, &error);
            ctrl.skip_rest();
            return;
        }
    };
    depot.insert_typed(caller);
}

fn denied_error(denied: Denied) -> ApiError {
    let message = match denied {
        Denied::Unknown => "invalid API key (unknown, revoked or rotated)",
        Denied::Disabled => "this API key is disabled",
        Denied::Expired => "this API key has expired",
        Denied::StoreUnavailable => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "store_unavailable",
                "API keys cannot be checked right now (the key store is unreachable); retry shortly",
            );
        }
    };
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "invalid_api_key",
        message,
    )
}

/// Management is for admin only: a client credential gets 403 (SPEC 3.1).
#[handler]
pub async fn require_admin(
    req: &mut Request,
    depot: &mut Depot,
    res: &mut Response,
    ctrl: &mut FlowCtrl,
) {
    if matches!(depot.get_typed::<Caller>(), Ok(Caller::Admin)) {
        return;
    }
    let error = ApiError::new(
        StatusCode::FORBIDDEN,
        "permission_error",
        "admin_required",
        "this endpoint needs the admin token (APIPROXY_ADMIN_TOKEN); client tokens and virtual keys reach inference and model lists only",
    );
    write_in_clients_shape(req, res, &error);
    ctrl.skip_rest();
}
