//! Choosing an upstream: strategies, scores, the weighted pick and the failover order (SPEC 5.2).
//!
//! The score is multiplicative: `score = base_weight × quality`, where `quality` in [0.05, 1] falls
//! with error rate, latency, cost and a bad health status under the strategy's coefficients. With
//! no metrics `quality` is 1 for everyone, so traffic splits exactly by weight (3 and 1 give 75/25),
//! and no positive weight is ever dropped, however small.

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

    /// How much each figure weighs under this strategy: latency, error rate, cost, health status
    /// (SPEC 5.2).
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
    let weight = if base_weight.is_finite() && base_weight > 0.0 {
        base_weight
    } else {
        0.0
    };
    weight * quality(inputs, strategy)
}

/// How much of its weight a candidate keeps, in [MIN_QUALITY, 1]: a product of one factor per
/// signal, each 1 when the signal is perfect or unknown.
///
/// - reliability: `(1 - error_rate)^(4β)`, the chance an attempt succeeds, sharpened by the
///   strategy (balanced β=.3 gives exponent 1.2; reliability_first β=.5 gives 2);
/// - latency: `1 - α · min(p95 / 4000 ms, 1)`;
/// - cost: `1 - γ · price / dearest candidate's price`;
/// - status: `1 - δ · (0 healthy, .5 degraded, 1 down)`.
pub fn quality(inputs: ScoreInputs<'_>, strategy: Strategy) -> f64 {
    let c = strategy.coefficients();
    let mut q = 1.0;
    if let Some(m) = inputs.metrics {
        let success = (1.0 - m.error_rate).clamp(0.0, 1.0);
        q *= success.powf(4.0 * c.error);
        q *= 1.0 - c.latency * (m.latency_p95_ms.max(0.0) / LATENCY_CEILING_MS).min(1.0);
        q *= 1.0
            - c.status
                * match m.status {
                    ProviderStatus::Healthy => 0.0,
                    ProviderStatus::Degraded => 0.5,
                    ProviderStatus::Down => 1.0,
                };
    }
    if let Some(cost) = inputs.relative_cost {
        q *= 1.0 - c.cost * cost.clamp(0.0, 1.0);
    }
    if q.is_finite() {
        q.clamp(MIN_QUALITY, 1.0)
    } else {
        MIN_QUALITY
    }
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
            pricing: None,
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

    fn metrics(error_rate: f64, p95: f64) -> RoutingMetrics {
        RoutingMetrics {
            logical_model: "l".into(),
            provider_id: "p".into(),
            latency_p95_ms: p95,
            latency_p99_ms: p95,
            error_rate,
            success_qps_1m: 1.0,
            total_requests_1m: 60,
            last_updated: 0.0,
            status: ProviderStatus::from_figures(error_rate, p95),
        }
    }

    /// Share of 10,000 seeded picks that go to a provider with these figures, against an equal-weight
    /// healthy one (p95 100 ms, no errors).
    fn share_with(figures: &RoutingMetrics, strategy: Strategy) -> f64 {
        let healthy = metrics(0.0, 100.0);
        let scores = [
            score(
                1.0,
                ScoreInputs {
                    metrics: Some(figures),
                    relative_cost: None,
                },
                strategy,
            ),
            score(
                1.0,
                ScoreInputs {
                    metrics: Some(&healthy),
                    relative_cost: None,
                },
                strategy,
            ),
        ];
        let mut rng = StdRng::seed_from_u64(11);
        let hits = (0..10_000)
            .filter(|_| weighted_pick(&scores, rng.random()) == Some(0))
            .count();
        hits as f64 / 10_000.0
    }

    #[test]
    fn traffic_moves_away_as_the_error_rate_rises() {
        let shares: Vec<f64> = [0.0, 0.05, 0.2, 0.6, 1.0]
            .iter()
            .map(|rate| share_with(&metrics(*rate, 100.0), Strategy::Balanced))
            .collect();
        assert!(
            (shares[0] - 0.5).abs() < 0.02,
            "equal figures split evenly: {shares:?}"
        );
        assert!(
            shares.windows(2).all(|w| w[1] < w[0]),
            "each rise takes traffic away: {shares:?}"
        );
        assert!(
            shares[3] < 0.25,
            "60% errors loses most of its traffic: {shares:?}"
        );
        assert!(
            shares[4] < 0.07 && shares[4] > 0.02,
            "a failing provider keeps a trickle: {shares:?}"
        );
    }

    #[test]
    fn traffic_moves_away_as_latency_rises_most_under_latency_first() {
        let shares: Vec<f64> = [100.0, 800.0, 2500.0, 5000.0]
            .iter()
            .map(|p95| share_with(&metrics(0.0, *p95), Strategy::Balanced))
            .collect();
        assert!(shares.windows(2).all(|w| w[1] < w[0]), "{shares:?}");
        let slow = metrics(0.0, 3000.0);
        assert!(share_with(&slow, Strategy::LatencyFirst) < share_with(&slow, Strategy::Balanced));
    }

    #[test]
    fn cost_first_prefers_the_cheaper_provider() {
        let cheap = score(
            1.0,
            ScoreInputs {
                metrics: None,
                relative_cost: Some(0.1),
            },
            Strategy::CostFirst,
        );
        let dear = score(
            1.0,
            ScoreInputs {
                metrics: None,
                relative_cost: Some(1.0),
            },
            Strategy::CostFirst,
        );
        assert!(cheap > dear * 1.5, "cheap {cheap} dear {dear}");
    }

    #[test]
    fn unknown_strategies_are_refused() {
        assert_eq!(Strategy::parse("cost_first"), Some(Strategy::CostFirst));
        assert_eq!(Strategy::parse("fastest"), None);
    }
}
