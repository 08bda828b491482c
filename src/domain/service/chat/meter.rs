//! Metering of one chat request (SPEC 3.1): the key's limits and budget are checked, and its worst
//! case reserved, before any upstream is asked; the real usage is settled and recorded once the
//! answer is known. A [`Ticket`] settles when dropped too, so a client that goes away mid-stream,
//! an answer that never came or a panic still gives the reservation and the parallel slot back.

use std::sync::Arc;

use super::background::settle_or_spawn;
use crate::domain::keys::{PeriodWindow, VirtualKey, day_of};
use crate::domain::metering::{
    Allowance, Charge, Estimate, GATEWAY_KEY, Limit, Settlement, UsageRecord, Verdict,
};
use crate::domain::ports::{Clock, KeyLedger, UsageStore};
use crate::domain::usage::{NanoUsd, Price, Usage};
use crate::domain::watch::Watch;
use crate::metric_handles::{self, Cache};

thread_local! {
    static TEAM_TOKENS: Cache<3, metrics::Counter> = Default::default();
    static COST: Cache<2, metrics::Counter> = Default::default();
}

/// Why a key's request is refused before any upstream is asked.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRefusal {
    /// The key's `models` do not include the model asked for.
    ModelNotAllowed(String),
    /// Over a limit or the budget.
    Limited {
        limit: Limit,
        /// Seconds until trying again can succeed; `None` for a budget that never starts again.
        retry_after: Option<u64>,
        allowance: Allowance,
    },
    /// The ledger cannot be reached: a limit never fails open.
    LedgerUnavailable,
}

pub struct Meter {
    pub(super) ledger: Arc<dyn KeyLedger>,
    pub(super) usage: Arc<dyn UsageStore>,
    pub(super) clock: Arc<dyn Clock>,
}

/// What the ledger holds for a request until it settles.
struct Held {
    period: PeriodWindow,
    reserved: NanoUsd,
    parallel: bool,
}

/// Who served the request, for the settlement.
struct Served {
    provider: String,
    /// The metrics label of the physical model.
    model_label: String,
    price: Option<Price>,
}

/// One request's metering, from admission to settlement.
pub struct Ticket {
    meter: Arc<Meter>,
    key: Option<Arc<VirtualKey>>,
    logical: String,
    estimate: Estimate,
    held: Option<Held>,
    served: Option<Served>,
    usage: Option<Usage>,
    /// What is left of the key's limits, for the `x-ratelimit-*` headers.
    pub allowance: Option<Allowance>,
    settled: bool,
    /// The console's record of the request, when someone watches the live feed.
    watch: Option<Arc<Watch>>,
}

impl Meter {
    /// Admits a request of `key` (the gateway token's when `None`), reserving the estimate at
    /// the highest price among the upstreams that may serve it.
    pub async fn admit(
        self: &Arc<Self>,
        key: Option<Arc<VirtualKey>>,
        logical: &str,
        estimate: Estimate,
        worst_price: Option<Price>,
    ) -> Result<Ticket, KeyRefusal> {
        let mut ticket = Ticket {
            meter: self.clone(),
            key: key.clone(),
            logical: logical.to_string(),
            estimate,
            held: None,
            served: None,
            usage: None,
            allowance: None,
            settled: false,
            watch: None,
        };
        let Some(key) = key.filter(|k| k.is_limited()) else {
            return Ok(ticket);
        };
        let now = self.clock.now();
        let reserve = worst_price.map_or(0, |p| p.cost(&estimate.usage()));
        let charge = Charge::for_key(&key, now, reserve);
        let verdict = self.ledger.admit(&charge).await.map_err(|e| {
            tracing::warn!(error = %e, "key ledger unreachable; refusing the limited key's request");
            KeyRefusal::LedgerUnavailable
        })?;
        match verdict {
            Verdict::Admitted(allowance) => {
                ticket.allowance = Some(allowance);
                let (period, reserved) = match charge.budget {
                    Some(budget) => (budget.period, budget.reserve),
                    None => (key.budget_period.window(now), 0),
                };
                ticket.held = Some(Held {
                    period,
                    reserved,
                    parallel: key.max_parallel.is_some(),
                });
                Ok(ticket)
            }
            Verdict::Refused {
                limit,
                retry_after,
                allowance,
            } => {
                // Nothing was taken: the ticket has nothing to give back.
                ticket.settled = true;
                let retry_after = match limit {
                    Limit::Budget => key.budget_period.seconds_left(now),
                    _ => Some(retry_after.max(1)),
                };
                Err(KeyRefusal::Limited {
                    limit,
                    retry_after,
                    allowance,
                })
            }
        }
    }
}

impl Ticket {
    /// The upstream that answered: its usage will be charged at `price`.
    pub fn served_by(&mut self, provider: &str, model_label: &str, price: Option<Price>) {
        self.served = Some(Served {
            provider: provider.to_string(),
            model_label: model_label.to_string(),
            price,
        });
    }

    /// The console's record of the request: told the tokens and cost when the ticket settles.
    pub fn watched_by(&mut self, watch: Arc<Watch>) {
        self.watch = Some(watch);
    }

    /// A usage report of the answer (streams report in pieces).
    pub fn observe(&mut self, usage: &Usage) {
        self.usage.get_or_insert_with(Usage::default).merge(usage);
    }

    /// Settles now (the answer is complete).
    pub fn finish(mut self) {
        self.settle();
    }

    fn settle(&mut self) {
        if std::mem::replace(&mut self.settled, true) {
            return;
        }
        let meter = self.meter.clone();
        let now = meter.clock.now();
        // An answer that reported no usage is charged for its estimated input; a request nobody
        // answered costs nothing.
        let usage = self.served.as_ref().map(|_| {
            self.usage.unwrap_or(Usage {
                prompt_tokens: self.estimate.input_tokens,
                ..Usage::default()
            })
        });
        let cost = match (&self.served, &usage) {
            (Some(served), Some(usage)) => served.price.map_or(0, |p| p.cost(usage)),
            _ => 0,
        };
        if let Some(watch) = self.watch.take() {
            let priced = self.served.as_ref().is_some_and(|s| s.price.is_some());
            watch.settled(self.usage.as_ref(), priced.then_some(cost));
        }
        let settlement = self.key.as_ref().and_then(|key| {
            let held = self.held.take();
            if held.is_none() && cost == 0 {
                return None;
            }
            let (period, reserved, parallel) = match held {
                Some(h) => (h.period, h.reserved, h.parallel),
                None => (key.budget_period.window(now), 0, false),
            };
            Some(Settlement {
                key_id: key.id.clone(),
                now,
                tokens: key.tpm.and(usage.map(|u| u.total())),
                release_parallel: parallel,
                period,
                reserved,
                cost,
            })
        });
        let record = self.served.take().zip(usage).map(|(served, usage)| {
            let team = self.key.as_ref().and_then(|k| k.team.clone());
            count(
                self.key.is_some(),
                team.as_deref(),
                &served.model_label,
                &usage,
                cost,
            );
            UsageRecord {
                day: day_of(now),
                key: self
                    .key
                    .as_ref()
                    .map_or(GATEWAY_KEY.to_string(), |k| k.id.clone()),
                team,
                model: std::mem::take(&mut self.logical),
                provider: served.provider,
                usage,
                cost,
            }
        });
        if settlement.is_none() && record.is_none() {
            return;
        }
        settle_or_spawn(async move {
            if let Some(settlement) = settlement
                && let Err(e) = meter.ledger.settle(&settlement).await
            {
                tracing::warn!(error = %e, key = %settlement.key_id, "key spending not settled");
            }
            if let Some(record) = record
                && let Err(e) = meter.usage.record(&record).await
            {
                tracing::warn!(error = %e, "usage not recorded");
            }
        });
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle();
    }
}

/// Tokens and cost by team and model on `/metrics` (teams are named by admins, models are
/// metric labels already bounded by `telemetry::model_label`). Tokens by team are counted for
/// virtual keys only (the gateway token's are in `apiproxy_tokens_total` already); cost for every
/// request, under team `none` when there is no key or no team.
fn count(keyed: bool, team: Option<&str>, model: &str, usage: &Usage, cost: NanoUsd) {
    let team = team.unwrap_or("none");
    let kinds = [
        ("input", usage.prompt_tokens),
        ("output", usage.completion_tokens),
        ("cache_read", usage.cache_read_tokens),
        ("cache_write", usage.cache_write_tokens),
        ("reasoning", usage.reasoning_tokens),
    ];
    for (kind, tokens) in kinds {
        if keyed && tokens > 0 {
            metric_handles::get(&TEAM_TOKENS, [team, model, kind], || {
                metrics::counter!("apiproxy_team_tokens_total", "team" => team.to_string(), "model" => model.to_string(), "kind" => kind)
            })
            .increment(tokens);
        }
    }
    if cost > 0 {
        // The facade's counters are integers: cost is counted exactly, in nano-dollars.
        metric_handles::get(&COST, [team, model], || {
            metrics::counter!("apiproxy_cost_nano_usd_total", "team" => team.to_string(), "model" => model.to_string())
        })
        .increment(cost);
    }
}
