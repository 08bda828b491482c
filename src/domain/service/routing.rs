//! Planning a request's route: resolve the model, gather what is known about each upstream (health
//! figures, circuit, price, session), score under a strategy and order the candidates (SPEC 5.2-5.4).
//! Chat requests and `POST /routing/decide` share it, so the decision endpoint tells the truth.

use std::sync::Arc;

use crate::domain::health::{Availability, BreakerPolicy, Circuit, RoutingMetrics};
use crate::domain::model::{LogicalModel, PhysicalModel};
use crate::domain::names::{NameError, check_model_name};
use crate::domain::ports::{CircuitStore, Clock, MetricsStore, RandomSource, SessionStore};
use crate::domain::provider::ProviderConfig;
use crate::domain::routing::{ScoreInputs, Scored, Strategy, failover_order, score};
use crate::domain::service::catalog::{Catalog, Resolution};
use crate::domain::session::Session;

/// What the caller asks of the route beyond the model name.
#[derive(Debug, Clone, Default)]
pub struct RouteRequest {
    pub strategy: Strategy,
    /// Soft: upstreams in this region (case-insensitive) are preferred when there are any.
    pub preferred_region: Option<String>,
    pub exclude_providers: Vec<String>,
    pub session_id: Option<String>,
}

/// One upstream in the failover order, with everything the decision used.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub upstream: PhysicalModel,
    pub provider: Arc<ProviderConfig>,
    pub score: f64,
    pub metrics: Option<RoutingMetrics>,
    pub circuit: Circuit,
    /// Whether this attempt must first claim the half-open probe.
    pub needs_probe: bool,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub logical: LogicalModel,
    pub order: Vec<Candidate>,
    pub session: Option<Session>,
    /// Whether the first candidate is there because the session is bound to it.
    pub sticky: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PlanError {
    /// The model name is out of bounds (SPEC 4.1): refused before any lookup.
    InvalidName(NameError),
    NotFound(String),
    Disabled(String),
    NoCandidates(String),
}

pub struct Planner {
    catalog: Arc<Catalog>,
    sessions: Arc<dyn SessionStore>,
    metrics: Arc<dyn MetricsStore>,
    circuits: Arc<dyn CircuitStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    breaker: BreakerPolicy,
}

impl Planner {
    pub fn new(
        catalog: Arc<Catalog>,
        sessions: Arc<dyn SessionStore>,
        metrics: Arc<dyn MetricsStore>,
        circuits: Arc<dyn CircuitStore>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        breaker: BreakerPolicy,
    ) -> Self {
        Planner {
            catalog,
            sessions,
            metrics,
            circuits,
            clock,
            random,
            breaker,
        }
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    pub fn breaker(&self) -> BreakerPolicy {
        self.breaker
    }

    pub async fn plan(&self, requested: &str, request: &RouteRequest) -> Result<Plan, PlanError> {
        check_model_name("model", requested).map_err(PlanError::InvalidName)?;
        // The session does not depend on the model: read both at once.
        let (resolution, session) = tokio::join!(
            self.catalog.resolve(requested),
            self.load_session(request.session_id.as_deref())
        );
        let logical = match resolution {
            Resolution::Found(model) => model,
            Resolution::Disabled(id) => return Err(PlanError::Disabled(id)),
            Resolution::NotFound => return Err(PlanError::NotFound(requested.to_string())),
        };
        let upstreams = self.eligible_upstreams(&logical, request);
        if upstreams.is_empty() {
            return Err(PlanError::NoCandidates(logical.logical_id));
        }
        let provider_ids: Vec<String> = upstreams
            .iter()
            .map(|(u, _)| u.provider_id.clone())
            .collect();
        let now = self.clock.now();
        // Independent reads, issued together.
        let (metrics, circuits) = tokio::join!(
            self.metrics
                .snapshot(&logical.logical_id, &provider_ids, now),
            self.circuits.circuits(&provider_ids),
        );
        let metrics = metrics.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "routing metrics unreadable; routing by weight alone");
            vec![None; provider_ids.len()]
        });
        let circuits = circuits.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "circuits unreadable; treating every provider as available");
            vec![Circuit::default(); provider_ids.len()]
        });

        let mut candidates: Vec<Candidate> = Vec::with_capacity(upstreams.len());
        let mut cooling: Vec<Candidate> = Vec::new();
        let max_cost = upstreams
            .iter()
            .filter_map(|(_, p)| price(p))
            .fold(0.0, f64::max);
        for (((upstream, provider), metrics), circuit) in
            upstreams.into_iter().zip(metrics).zip(circuits)
        {
            let relative_cost = price(&provider)
                .filter(|_| max_cost > 0.0)
                .map(|c| c / max_cost);
            let inputs = ScoreInputs {
                metrics: metrics.as_ref(),
                relative_cost,
            };
            let availability = circuit.availability(now, &self.breaker);
            let candidate = Candidate {
                score: score(upstream.base_weight, inputs, request.strategy),
                upstream,
                provider,
                metrics,
                circuit,
                needs_probe: availability == Availability::ProbeAllowed,
            };
            if availability == Availability::CoolingDown {
                cooling.push(candidate);
            } else {
                candidates.push(candidate);
            }
        }
        // Cooling providers are passed over unless nothing else is left (SPEC 5.4).
        if candidates.is_empty() {
            candidates = cooling;
        }

        let sticky_target = session
            .as_ref()
            .and_then(|s| s.sticky_for(&logical.logical_id));
        let scored: Vec<Scored> = candidates
            .iter()
            .map(|c| Scored {
                upstream: c.upstream.clone(),
                score: c.score,
            })
            .collect();
        let ordered = failover_order(scored, sticky_target, self.random.unit());
        let sticky = match (sticky_target, ordered.first()) {
            (Some((provider, model)), Some(first)) => {
                first.upstream.provider_id == provider && first.upstream.model_id == model
            }
            _ => false,
        };
        let mut order = Vec::with_capacity(ordered.len());
        for scored in ordered {
            if let Some(index) = candidates
                .iter()
                .position(|c| c.upstream == scored.upstream)
            {
                order.push(candidates.swap_remove(index));
            }
        }
        Ok(Plan {
            logical,
            order,
            session,
            sticky,
        })
    }

    /// The upstreams with a configured provider, minus exclusions, preferring the region if any
    /// upstream is in it.
    fn eligible_upstreams(
        &self,
        logical: &LogicalModel,
        request: &RouteRequest,
    ) -> Vec<(PhysicalModel, Arc<ProviderConfig>)> {
        let providers = self.catalog.providers();
        let mut upstreams: Vec<(PhysicalModel, Arc<ProviderConfig>)> = Vec::new();
        for upstream in &logical.upstreams {
            if request.exclude_providers.contains(&upstream.provider_id) {
                continue;
            }
            if upstreams.iter().any(|(u, _)| {
                u.provider_id == upstream.provider_id && u.model_id == upstream.model_id
            }) {
                continue;
            }
            match providers.get(&upstream.provider_id) {
                Some(provider) => upstreams.push((upstream.clone(), provider.clone())),
                None => {
                    tracing::warn!(provider = %upstream.provider_id, logical_model = %logical.logical_id, "upstream names an unconfigured provider; skipped")
                }
            }
        }
        if let Some(region) = request.preferred_region.as_deref() {
            let region_of = |u: &PhysicalModel, p: &ProviderConfig| {
                u.region.clone().or_else(|| p.region.clone())
            };
            let in_region = |(u, p): &(PhysicalModel, Arc<ProviderConfig>)| {
                region_of(u, p).is_some_and(|r| r.eq_ignore_ascii_case(region))
            };
            if upstreams.iter().any(in_region) {
                upstreams.retain(in_region);
            }
        }
        upstreams
    }

    async fn load_session(&self, session_id: Option<&str>) -> Option<Session> {
        let id = session_id?;
        self.sessions.get(id).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "session store unreadable; routing without stickiness");
            None
        })
    }
}

/// A provider's price per 1M tokens, input and output together, when it is known.
fn price(provider: &ProviderConfig) -> Option<f64> {
    match (provider.cost_input, provider.cost_output) {
        (None, None) => None,
        (input, output) => Some(input.unwrap_or(0.0) + output.unwrap_or(0.0)),
    }
}
