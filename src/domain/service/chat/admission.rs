//! Admission of one candidate just before its attempt (SPEC 5.2, 5.4): a slot under its
//! provider's MAX_QPS, then the half-open probe when one is due. Shared by the failover loop and
//! stream resume.

use crate::domain::health::BreakerPolicy;
use crate::domain::ports::{CircuitStore, QpsLimiter};
use crate::domain::service::routing::Candidate;

pub(super) enum Admission {
    Go,
    RateLimited,
    ProbeTaken,
}

/// Whether `candidate` may be tried now: it takes a slot under its provider's MAX_QPS, then
/// claims the half-open probe when one is due.
pub(super) async fn admit_candidate(
    qps: &dyn QpsLimiter,
    circuits: &dyn CircuitStore,
    now: f64,
    breaker: BreakerPolicy,
    candidate: &Candidate,
) -> Admission {
    if let Some(max_qps) = candidate.provider.max_qps {
        let admitted = qps
            .try_acquire(&candidate.provider.id, max_qps, now)
            .await
            // A limit never fails open: an unknown count is treated as a full one.
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "QPS limiter failed; treating the provider as at its limit");
                false
            });
        if !admitted {
            return Admission::RateLimited;
        }
    }
    if candidate.needs_probe {
        // An unreachable circuit store lets the probe through: better than failing traffic.
        let claimed = circuits
            .claim_probe(&candidate.provider.id, now, breaker)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "circuit store unreachable; probing anyway");
                true
            });
        if !claimed {
            return Admission::ProbeTaken;
        }
    }
    Admission::Go
}
