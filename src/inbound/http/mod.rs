//! The salvo HTTP adapter: routes, the auth hoop, handlers and the error shape.

mod admission;
mod auth;
mod credentials;
mod error;
mod handlers;
mod header_names;
mod limits;
mod listener;
pub(crate) mod openapi;
mod request_id;
mod state;
#[cfg(test)]
mod tests;

pub use auth::Caller;
pub use credentials::TokenCheck;
pub use error::ApiError;
pub use limits::Admission;
pub use listener::{acceptor, bind, bind_sockets};
pub use state::AppState;

use std::sync::Arc;

use salvo::catcher::Catcher;
use salvo::oapi::RouterExt;
use salvo::prelude::*;

/// Puts the shared state into every request's depot.
struct InjectState(Arc<AppState>);

#[async_trait]
impl Handler for InjectState {
    async fn handle(
        &self,
        _req: &mut Request,
        depot: &mut Depot,
        _res: &mut Response,
        _ctrl: &mut FlowCtrl,
    ) {
        depot.insert_typed(self.0.clone());
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    let published = handlers::docs::Published::default();
    let open = Router::new()
        .push(Router::with_path("health").get(handlers::health::health))
        .push(
            Router::with_path("openapi.json")
                .hoop(published.clone())
                .get(handlers::docs::openapi),
        )
        .push(Router::with_path("docs").get(handlers::docs::page))
        // The console's static files (no data in them; the page calls the admin endpoints).
        .push(
            Router::with_path("ui")
                .get(handlers::console::page)
                .push(Router::with_path("console.js").get(handlers::console::script))
                .push(Router::with_path("console.css").get(handlers::console::style)),
        );
    // Inference and model lists: every credential (SPEC 3.1). Inference first: routes are tried
    // in order, and these take nearly all traffic.
    let v1 = Router::with_path("v1")
        .push(Router::with_path("chat/completions").post(handlers::chat::completions))
        .push(Router::with_path("responses").post(handlers::responses::create))
        .push(Router::with_path("messages").post(handlers::messages::create))
        .push(Router::with_path("messages/count_tokens").post(handlers::messages::count_tokens))
        .push(Router::with_path("models").get(handlers::models::list))
        .push(
            Router::with_path("models/{**id}")
                .get(handlers::models::get_one)
                .post(handlers::gemini::model_action_v1),
        )
        .push(Router::with_path("usage").get(handlers::usage::own));
    let clients = Router::new()
        .push(v1)
        .push(Router::with_path("models").get(handlers::models::list_unversioned))
        .push(
            // The Gemini API (SPEC 4.7); its `/v1` actions share the `/v1/models/{id}` route above.
            Router::with_path("v1beta/models")
                .get(handlers::gemini::list)
                .push(
                    Router::with_path("{**id}")
                        .get(handlers::gemini::get_one)
                        .post(handlers::gemini::model_action),
                ),
        );
    // Management: the admin token only.
    let mut admin = Router::new()
        .hoop(auth::require_admin)
        .push(
            Router::with_path("providers")
                .get(handlers::providers::list)
                .push(Router::with_path("{id}").get(handlers::providers::get_one))
                .push(Router::with_path("{id}/models").get(handlers::providers::models))
                .push(Router::with_path("{id}/health").get(handlers::providers::health))
                .push(Router::with_path("{id}/metrics").get(handlers::providers::metrics)),
        )
        .push(
            Router::with_path("logical-models")
                .get(handlers::logical_models::list)
                .push(Router::with_path("{id}/upstreams").get(handlers::logical_models::upstreams))
                .push(
                    Router::with_path("{id}")
                        .get(handlers::logical_models::get_one)
                        .put(handlers::logical_models::put)
                        .delete(handlers::logical_models::delete),
                ),
        )
        .push(
            Router::with_path("routing")
                .push(Router::with_path("decide").post(handlers::routing::decide))
                .push(
                    Router::with_path("sessions/{id}")
                        .get(handlers::routing::get_session)
                        .delete(handlers::routing::delete_session),
                ),
        )
        .push(
            Router::with_path("context/{id}")
                .get(handlers::context::get_one)
                .delete(handlers::context::delete),
        )
        .push(
            Router::with_path("keys")
                .get(handlers::keys::list)
                .post(handlers::keys::create)
                .push(
                    Router::with_path("{id}")
                        .get(handlers::keys::get_one)
                        .patch(handlers::keys::change)
                        .delete(handlers::keys::delete),
                )
                .push(Router::with_path("{id}/rotate").post(handlers::keys::rotate)),
        )
        .push(Router::with_path("usage").get(handlers::usage::report))
        .push(Router::with_path("admin/reload").post(handlers::admin::reload))
        // The console's data (issue 20).
        .push(Router::with_path("admin/stats").get(handlers::console_data::stats))
        .push(Router::with_path("admin/requests/live").get(handlers::console_data::live));
    let mut open = open;
    let metrics = Router::with_path("metrics").get(handlers::metrics::render);
    if state.metrics_public {
        open = open.push(metrics);
    } else {
        admin = admin.push(metrics);
    }
    let authed = Router::new()
        .hoop(auth::require_token)
        .hoop(admission::read_body_in_time)
        .oapi_securities(openapi::token_requirements())
        .push(clients)
        .push(admin);
    // The authenticated routes first (no path is in both): they take nearly all traffic.
    let api = Router::new().push(authed).push(open);
    published.set(&openapi::document(&api));
    let in_flight = admission::InFlight(state.admission.clone());
    Router::new()
        .hoop(InjectState(state))
        .hoop(request_id::request_id)
        .hoop(in_flight)
        .hoop(salvo::catch_panic::CatchPanic::new())
        .push(api)
}

/// The service: routes plus a catcher that gives every error without a body (unknown route, wrong
/// method, a panic) the gateway's JSON error shape.
pub fn service(state: Arc<AppState>) -> Service {
    Service::new(router(state)).catcher(Catcher::new(error::CatchAll))
}
