//! Health as routing sees it: a provider's recent latency and error figures and the status they imply.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderStatus {
    Healthy,
    Degraded,
    Down,
}

impl ProviderStatus {
    /// SPEC 5.4: down over 0.5 error rate, degraded over 0.1 or p95 over 2000 ms.
    pub fn from_figures(error_rate: f64, latency_p95_ms: f64) -> ProviderStatus {
        if error_rate > 0.5 {
            ProviderStatus::Down
        } else if error_rate > 0.1 || latency_p95_ms > 2000.0 {
            ProviderStatus::Degraded
        } else {
            ProviderStatus::Healthy
        }
    }
}

/// Recent figures for one (logical model, provider) pair over a window of about a minute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingMetrics {
    pub logical_model: String,
    pub provider_id: String,
    pub latency_p95_ms: f64,
    pub latency_p99_ms: f64,
    pub error_rate: f64,
    pub success_qps_1m: f64,
    pub total_requests_1m: u64,
    pub last_updated: f64,
    pub status: ProviderStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_spec_thresholds() {
        assert_eq!(
            ProviderStatus::from_figures(0.6, 10.0),
            ProviderStatus::Down
        );
        assert_eq!(
            ProviderStatus::from_figures(0.2, 10.0),
            ProviderStatus::Degraded
        );
        assert_eq!(
            ProviderStatus::from_figures(0.0, 2500.0),
            ProviderStatus::Degraded
        );
        assert_eq!(
            ProviderStatus::from_figures(0.05, 300.0),
            ProviderStatus::Healthy
        );
    }
}
