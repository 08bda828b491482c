//! `/usage` (admin: everyone's usage and cost, grouped) and `/v1/usage` (a virtual key's own, in
//! its current budget period), SPEC 3.1.

use salvo::oapi::endpoint;
use salvo::prelude::*;
use serde_json::{Value, json};

use super::input::state_or_500;
use crate::domain::keys::day_of;
use crate::domain::metering::{UsageGroup, UsageTotals};
use crate::domain::usage::usd;
use crate::inbound::http::openapi::{key_schemas, schemas};
use crate::inbound::http::{ApiError, Caller};

fn totals_view(totals: &UsageTotals) -> Value {
    json!({
        "requests": totals.requests,
        "input_tokens": totals.input_tokens,
        "output_tokens": totals.output_tokens,
        "cache_read_tokens": totals.cache_read_tokens,
        "cache_write_tokens": totals.cache_write_tokens,
        "reasoning_tokens": totals.reasoning_tokens,
        "cost_usd": usd(totals.cost_nano_usd),
    })
}

/// Usage and cost, grouped
///
/// Requests, tokens (input counts cached input too) and cost per group over whole UTC days,
/// from `from` to `to` inclusive (default: today), at most 400 days. Requests sent with the
/// gateway or admin token are under the key `gateway`; a key without a team has no team row.
#[endpoint(
    operation_id = "getUsage",
    tags("keys"),
    parameters(
        ("from" = Option<String>, Query, description = "First day, `YYYY-MM-DD` (UTC); default today.", example = json!("2026-12-01")),
        ("to" = Option<String>, Query, description = "Last day, `YYYY-MM-DD` (UTC); default today.", example = json!("2026-12-07")),
        ("group_by" = Option<String>, Query, description = "`key` (default), `team`, `model` (the logical model asked for), `provider` or `day`."),
    ),
    responses(
        (status_code = 200, description = "The usage per group.", body = key_schemas::UsageReport),
        (status_code = 400, description = "A date or the grouping is invalid (`param` names it).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn report(req: &mut Request, depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let today = day_of(state.clock.now());
    let from = req.query::<String>("from").unwrap_or_else(|| today.clone());
    let to = req.query::<String>("to").unwrap_or(today);
    let group = req
        .query::<String>("group_by")
        .unwrap_or_else(|| "key".into());
    let Some(group_by) = UsageGroup::parse(&group) else {
        return ApiError::bad_request(
            format!("group_by: '{group}' is not one of key, team, model, provider, day"),
            Some("group_by"),
        )
        .write(res);
    };
    match state.keys.usage(&from, &to, group_by).await {
        Ok(rows) => {
            let usage: Vec<Value> = rows
                .iter()
                .map(|(group, totals)| {
                    let mut row = totals_view(totals);
                    row["group"] = Value::String(group.clone());
                    row
                })
                .collect();
            res.render(Json(json!({
                "from": from, "to": to, "group_by": group_by, "usage": usage,
            })));
        }
        Err(error) => super::keys::key_error(error).write(res),
    }
}

/// The calling key's own usage
///
/// For a virtual key: its spending against its budget and its requests and tokens in the
/// current budget period. The gateway and admin tokens have no budget: 400.
#[endpoint(
    operation_id = "getOwnUsage",
    tags("keys"),
    responses(
        (status_code = 200, description = "The key's usage.", body = key_schemas::OwnUsage),
        (status_code = 400, description = "The caller is not a virtual key (`code: invalid_request`).", body = schemas::Error),
        (status_code = 503, description = "The store could not be read (`code: store_unavailable`).", body = schemas::Error),
    ),
)]
pub async fn own(depot: &mut Depot, res: &mut Response) {
    let Some(state) = state_or_500(depot, res) else {
        return;
    };
    let Some(key) = Caller::key(depot) else {
        return ApiError::bad_request(
            "only a virtual key has its own usage; use GET /usage with the admin token",
            None,
        )
        .write(res);
    };
    match state.keys.own_usage(&key).await {
        Ok(mine) => res.render(Json(json!({
            "key_id": key.id,
            "period": mine.period,
            "budget_usd": key.budget_usd,
            "spent_usd": usd(mine.spent_nano),
            "requests": mine.totals.requests,
            "input_tokens": mine.totals.input_tokens,
            "output_tokens": mine.totals.output_tokens,
        }))),
        Err(error) => super::keys::key_error(error).write(res),
    }
}
