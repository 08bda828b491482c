//! `POST /routing/decide` and `/routing/sessions/{conversation_id}` (SPEC 4.5).

use std::time::Instant;

use salvo::http::StatusCode;
use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::input::{json_body, state_or_500};
use crate::domain::model::PhysicalModel;
use crate::domain::routing::Strategy;
use crate::domain::service::routing::{Candidate, PlanError, RouteRequest};
use crate::domain::session::Session;
use crate::inbound::http::ApiError;
use crate::inbound::http::openapi::schemas;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideRequest {
    logical_model: String,
    conversation_id: Option<String>,
    user_id: Option<String>,
    preferred_region: Option<String>,
    strategy: Option<String>,
    #[serde(default)]
    exclude_providers: Vec<String>,
}

/// Explain a routing decision
///
/// Runs the router for a logical model without calling any upstream (no probe or QPS slot is
/// claimed) and explains the pick. With a `conversation_id` the session's sticky binding is
/// honoured, and the session is bound to the selected upstream.
#[endpoint(
    operation_id = "decideRoute",
    tags("routing"),
    request_body(content = schemas::RoutingDecisionRequest),
    responses(
        (status_code = 200, description = "The decision.", body = schemas::RoutingDecision),
        (status_code = 400, description = "Invalid JSON, an unknown or mistyped field, an empty or out-of-bounds `logical_model` (`param: logical_model`; at most 256 bytes, no traversal, `?`, `#`, `\\`, `%` or control characters), a `conversation_id` outside the id bounds (`param: conversation_id`; 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -`) or an unknown strategy (`param: strategy`); `code: invalid_request`.", body = schemas::Error),
        (status_code = 404, description = "The logical model does not exist (`code: model_not_found`).", body = schemas::Error),
        (status_code = 413, description = "The body is larger than `MAX_REQUEST_BODY_BYTES` (`code: request_too_large`).", body = schemas::Error),
        (status_code = 503, description = "The logical model is disabled (`code: model_disabled`) or has no candidate upstream (`code: no_available_upstream`).", body = schemas::Error),
    ),
)]
pub async fn decide(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let started = Instant::now();
    let body = match json_body(req, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.write(res),
    };
    let request: DecideRequest = match serde_json::from_value(body) {
        Ok(request) => request,
        Err(e) => {
            return ApiError::bad_request(format!("invalid routing request: {e}"), None).write(res);
        }
    };
    let _ = request.user_id;
    if request.logical_model.trim().is_empty() {
        return ApiError::bad_request("logical_model must not be empty", Some("logical_model"))
            .write(res);
    }
    let strategy = match request.strategy.as_deref() {
        None => Strategy::Balanced,
        Some(name) => match Strategy::parse(name) {
            Some(strategy) => strategy,
            None => {
                return ApiError::bad_request(
                    format!("unknown strategy '{name}'; use balanced, latency_first, cost_first or reliability_first"),
                    Some("strategy"),
                )
                .write(res);
            }
        },
    };
    if let Some(id) = &request.conversation_id
        && let Err(error) = super::input::checked_id("conversation_id", id)
    {
        return error.write(res);
    }
    let route = RouteRequest {
        strategy,
        preferred_region: request.preferred_region,
        exclude_providers: request.exclude_providers,
        session_id: request.conversation_id.clone(),
    };
    let plan = match state.planner.plan(&request.logical_model, &route).await {
        Ok(plan) => plan,
        Err(PlanError::InvalidName(error)) => {
            return ApiError::bad_request(
                format!("logical_model: {}", error.problem),
                Some("logical_model"),
            )
            .write(res);
        }
        Err(PlanError::NotFound(model)) => {
            return ApiError::not_found(
                "model_not_found",
                format!("logical model '{model}' does not exist"),
            )
            .write(res);
        }
        Err(PlanError::Disabled(model)) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "model_disabled",
                format!("logical model '{model}' is disabled"),
            )
            .write(res);
        }
        Err(PlanError::NoCandidates(model)) => {
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "api_error",
                "no_available_upstream",
                format!("no candidate upstream for logical model '{model}'"),
            )
            .write(res);
        }
    };
    let Some(selected) = plan.order.first() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "no_available_upstream",
            "no candidate upstream",
        )
        .write(res);
    };
    if let Some(conversation_id) = &request.conversation_id {
        let session = Session::bind(
            plan.session.clone(),
            conversation_id,
            &plan.logical.logical_id,
            &selected.upstream.provider_id,
            &selected.upstream.model_id,
            state.clock.now(),
        );
        if let Err(e) = state.sessions.put(session, state.session_ttl).await {
            tracing::warn!(error = %e, "session binding not stored");
        }
    }
    let why = if plan.sticky {
        "the session is bound to it"
    } else {
        "weighted pick by score"
    };
    let reasoning = format!(
        "Selected provider '{}' model '{}' for logical model '{}' ({why}; strategy {}).",
        selected.upstream.provider_id,
        selected.upstream.model_id,
        plan.logical.logical_id,
        strategy_name(strategy)
    );
    let mut by_score: Vec<_> = plan.order.iter().collect();
    by_score.sort_by(|a, b| b.score.total_cmp(&a.score));
    let all_candidates: Vec<_> = by_score
        .iter()
        .map(|c| json!({"upstream": shown(c), "score": c.score, "metrics": c.metrics, "circuit": c.circuit}))
        .collect();
    let alternatives: Vec<_> = plan.order.iter().skip(1).map(shown).collect();
    res.render(Json(json!({
        "logical_model": plan.logical.logical_id,
        "selected_upstream": shown(selected),
        "decision_time": started.elapsed().as_secs_f64() * 1000.0,
        "reasoning": reasoning,
        "alternative_upstreams": alternatives,
        "strategy_used": strategy_name(strategy),
        "all_candidates": all_candidates,
    })));
}

/// An upstream as shown to operators: with the endpoint its provider's configuration gives it.
fn shown(candidate: &Candidate) -> PhysicalModel {
    PhysicalModel {
        endpoint: candidate
            .provider
            .shown_chat_url(&candidate.upstream.model_id),
        ..candidate.upstream.clone()
    }
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Balanced => "balanced",
        Strategy::LatencyFirst => "latency_first",
        Strategy::CostFirst => "cost_first",
        Strategy::ReliabilityFirst => "reliability_first",
    }
}

/// Get a session binding
#[endpoint(
    operation_id = "getSession",
    tags("sessions"),
    parameters(
        ("id" = String, Path, description = "The conversation id (the `X-Session-Id` a chat request sent, or `/routing/decide`'s `conversation_id`).", example = json!("conv-42")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 200, description = "The session.", body = schemas::Session),
        (status_code = 404, description = "No such session, or it expired (`code: session_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (sessions; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn get_session(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match super::input::path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.sessions.get(&id).await {
        Ok(Some(session)) => res.render(Json(session)),
        Ok(None) => ApiError::not_found(
            "session_not_found",
            format!("session '{id}' does not exist"),
        )
        .write(res),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}

/// Delete a session binding
///
/// Ends the stickiness: the conversation's next request is routed afresh.
#[endpoint(
    operation_id = "deleteSession",
    tags("sessions"),
    parameters(
        ("id" = String, Path, description = "The conversation id (the `X-Session-Id` a chat request sent, or `/routing/decide`'s `conversation_id`).", example = json!("conv-42")),
    ),
    responses(
        (status_code = 400, description = "The id is out of bounds: 1 to 256 bytes of `A-Z a-z 0-9 . _ : @ / + = -` (`code: invalid_request`, `param: id`).", body = schemas::Error),
        (status_code = 204, description = "Deleted."),
        (status_code = 404, description = "No such session, or it expired (`code: session_not_found`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read or written (sessions; `type: api_error`, `code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn delete_session(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let id = match super::input::path_id(req) {
        Ok(id) => id,
        Err(error) => return error.write(res),
    };
    match state.sessions.delete(&id).await {
        Ok(true) => {
            res.status_code(StatusCode::NO_CONTENT);
        }
        Ok(false) => ApiError::not_found(
            "session_not_found",
            format!("session '{id}' does not exist"),
        )
        .write(res),
        Err(e) => ApiError::unavailable(e).write(res),
    }
}
