//! Choosing an upstream: strategies, scores, the weighted pick and the failover order (SPEC 5.2).
//!
//! The score is multiplicative: `score = base_weight × quality`, where `quality` in [0.05, 1] falls
//! with latency, error rate, cost and a bad health status under the strategy's coefficients. With
//! no metrics `quality` is 1 for everyone, so traffic splits exactly by weight (3 and 1 give 75/25),
//! and no positive weight is ever dropped (the original subtracted penalties from the weight and
//! silently discarded weights below 0.25).

use serde::{Deserialize, Serialize};

use super::health::{ProviderStatus, RoutingMetrics};
use super::model::PhysicalModel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    #[default]
    Balanced,
    LatencyFirst,
    CostFirst,
    ReliabilityFirst,
}

/// Penalty coefficients of a strategy: latency, error rate, cost, health status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Coefficients {
    pub latency: f64,
    pub error: f64,
    pub cost: f64,
    pub status: f64,
}

impl Strategy {
    pub fn parse(name: &str) -> Option<Strategy> {
        match name {
            "balanced" => Some(Strategy::Balanced),
            "latency_first" => Some(Strategy::LatencyFirst),
            "cost_first" => Some(Strategy::CostFirst),
            "reliability_first" => Some(Strategy::ReliabilityFirst),
            _ => None,
        }
    }

    /// The original's presets (alpha, beta, gamma, delta).
    pub fn coefficients(self) -> Coefficients {
        let (latency, error, cost, status) = match self {
            Strategy::Balanced => (0.3, 0.3, 0.2, 0.2),
            Strategy::LatencyFirst => (0.6, 0.2, 0.1, 0.1),
            Strategy::CostFirst => (0.2, 0.2, 0.5, 0.1),
            Strategy::ReliabilityFirst => (0.3, 0.5, 0.1, 0.1),
        };
        Coefficients {
            latency,
            error,
            cost,
            status,
        }
    }
}

/// Latency at which the latency penalty saturates.
const LATENCY_CEILING_MS: f64 = 4000.0;
/// The least share of its weight a candidate keeps, however bad its figures: a recovering
/// provider still sees a trickle of traffic and can prove itself.
const MIN_QUALITY: f64 = 0.05;

/// What the scorer knows about one candidate besides its weight.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScoreInputs<'a> {
    pub metrics: Option<&'a RoutingMetrics>,
    /// Price relative to the dearest candidate, in [0, 1]; `None` when the price is unknown.
    pub relative_cost: Option<f64>,
}

pub fn score(base_weight: f64, inputs: ScoreInputs<'_>, strategy: Strategy) -> f64 {
    let c = strategy.coefficients();
    let mut penalty = 0.0;
    if let Some(m) = inputs.metrics {
        penalty += c.latency * (m.latency_p95_ms.max(0.0) / LATENCY_CEILING_MS).min(1.0);
        penalty += c.error * m.error_rate.clamp(0.0, 1.0);
        penalty += c.status
            * match m.status {
                ProviderStatus::Healthy => 0.0,
                ProviderStatus::Degraded => 0.5,
                ProviderStatus::Down => 1.0,
            };
    }
    if let Some(cost) = inputs.relative_cost {
        penalty += c.cost * cost.clamp(0.0, 1.0);
    }
    let weight = if base_weight.is_finite() && base_weight > 0.0 {
        base_weight
    } else {
        0.0
    };
    weight * (1.0 - penalty).clamp(MIN_QUALITY, 1.0)
}

/// A candidate with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub upstream: PhysicalModel,
    pub score: f64,
}

/// Picks an index in proportion to the scores (uniformly if none is positive), given one uniform
/// random number `unit` in [0, 1): the caller owns the randomness, so the pick is deterministic.
pub fn weighted_pick(scores: &[f64], unit: f64) -> Option<usize> {
    if scores.is_empty() {
        return None;
    }
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let total: f64 = scores.iter().filter(|s| s.is_finite() && **s > 0.0).sum();
    if total <= 0.0 {
        return Some(((unit * scores.len() as f64) as usize).min(scores.len() - 1));
    }
    let mut target = unit * total;
    for (index, s) in scores.iter().enumerate() {
        if s.is_finite() && *s > 0.0 {
            if target < *s {
                return Some(index);
            }
            target -= s;
        }
    }
    // Rounding can leave target a hair above the last positive score.
    scores.iter().rposition(|s| s.is_finite() && *s > 0.0)
}

/// The order in which a request tries its candidates: a sticky binding first when it is still a
/// candidate, else a weighted pick; then the rest by descending score. Each candidate appears once.
pub fn failover_order(
    mut scored: Vec<Scored>,
    sticky: Option<(&str, &str)>,
    unit: f64,
) -> Vec<Scored> {
    let first = sticky
        .and_then(|(provider, model)| {
            scored
                .iter()
                .position(|s| s.upstream.provider_id == provider && s.upstream.model_id == model)
        })
        .or_else(|| {
            let scores: Vec<f64> = scored.iter().map(|s| s.score).collect();
            weighted_pick(&scores, unit)
        });
    let Some(first) = first else { return scored };
    let head = scored.remove(first);
    scored.sort_by(|a, b| b.score.total_cmp(&a.score));
    scored.insert(0, head);
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn upstream(provider: &str, weight: f64) -> PhysicalModel {
        PhysicalModel {
            provider_id: provider.into(),
            model_id: "m".into(),
            endpoint: String::new(),
            base_weight: weight,
            region: None,
            max_qps: None,
            meta_hash: None,
            updated_at: 0.0,
        }
    }

    fn share_of_first(weights: &[f64], picks: usize) -> f64 {
        let mut rng = StdRng::seed_from_u64(7);
        let scores: Vec<f64> = weights
            .iter()
            .map(|w| score(*w, ScoreInputs::default(), Strategy::Balanced))
            .collect();
        let hits = (0..picks)
            .filter(|_| weighted_pick(&scores, rng.random()) == Some(0))
            .count();
        hits as f64 / picks as f64
    }

    #[test]
    fn weights_three_and_one_split_75_25() {
        let share = share_of_first(&[3.0, 1.0], 10_000);
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }

    #[test]
    fn a_small_weight_still_gets_its_share() {
        // 0.1 against 1.0 is 1/11 of the traffic, about 9.1%.
        let share = share_of_first(&[0.1, 1.0], 10_000);
        assert!((share - 1.0 / 11.0).abs() < 0.02, "share {share}");
    }

    #[test]
    fn bad_metrics_lower_the_score_but_never_to_zero() {
        let metrics = RoutingMetrics {
            logical_model: "l".into(),
            provider_id: "p".into(),
            latency_p95_ms: 9000.0,
            latency_p99_ms: 9000.0,
            error_rate: 1.0,
            success_qps_1m: 0.0,
            total_requests_1m: 10,
            last_updated: 0.0,
            status: ProviderStatus::Down,
        };
        let inputs = ScoreInputs {
            metrics: Some(&metrics),
            relative_cost: Some(1.0),
        };
        let bad = score(1.0, inputs, Strategy::Balanced);
        assert!(bad > 0.0 && bad < score(1.0, ScoreInputs::default(), Strategy::Balanced));
    }

    #[test]
    fn failover_order_is_the_pick_then_the_rest_by_score() {
        let scored = vec![
            Scored {
                upstream: upstream("a", 1.0),
                score: 1.0,
            },
            Scored {
                upstream: upstream("b", 5.0),
                score: 5.0,
            },
            Scored {
                upstream: upstream("c", 3.0),
                score: 3.0,
            },
        ];
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..50 {
            let order = failover_order(scored.clone(), None, rng.random());
            let ids: Vec<&str> = order
                .iter()
                .map(|s| s.upstream.provider_id.as_str())
                .collect();
            assert_eq!(ids.len(), 3);
            let rest: Vec<&str> = ids[1..].to_vec();
            let mut expected: Vec<&str> = ["b", "c", "a"]
                .into_iter()
                .filter(|id| *id != ids[0])
                .collect();
            expected.dedup();
            assert_eq!(rest, expected);
        }
    }

    #[test]
    fn a_sticky_binding_goes_first_when_it_is_a_candidate() {
        let scored = vec![
            Scored {
                upstream: upstream("a", 9.0),
                score: 9.0,
            },
            Scored {
                upstream: upstream("b", 0.1),
                score: 0.1,
            },
        ];
        let mut rng = StdRng::seed_from_u64(3);
        let order = failover_order(scored.clone(), Some(("b", "m")), rng.random());
        assert_eq!(order[0].upstream.provider_id, "b");
        let order = failover_order(scored, Some(("gone", "m")), rng.random());
        assert_eq!(order.len(), 2);
    }

    #[test]
    fn unknown_strategies_are_refused() {
        assert_eq!(Strategy::parse("cost_first"), Some(Strategy::CostFirst));
        assert_eq!(Strategy::parse("fastest"), None);
    }
}
