//! Health as routing sees it: each (logical model, provider) pair's recent attempts, aggregated over a
//! sliding window of a minute into RoutingMetrics, and each provider's circuit (cool-down and
//! half-open probe, SPEC 5.4).

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

/// Recent figures for one (logical model, provider) pair over the last minute.
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

/// One finished upstream attempt, as the metrics see it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AttemptSample {
    /// Epoch seconds when the attempt ended.
    pub at: f64,
    /// How long the client waited for the answer to begin: time to the first content event for a
    /// stream, the whole exchange otherwise. Only successes feed the latency percentiles, so a
    /// timeout does not pass for a slow answer.
    pub latency_ms: f64,
    /// Time until the upstream's response headers.
    pub ttfb_ms: f64,
    pub success: bool,
}

/// The window's length: figures describe the last minute.
pub const WINDOW_SECONDS: u64 = 60;

/// Upper bounds (ms) of the latency histogram's buckets; the last one is open-ended. Log-like
/// spacing keeps percentiles within about a quarter of the true value at a fixed cost per sample.
pub const LATENCY_BOUNDS_MS: [f64; 27] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0, 750.0, 1000.0,
    1500.0, 2000.0, 3000.0, 4000.0, 6000.0, 8000.0, 12000.0, 16000.0, 25000.0, 40000.0, 60000.0,
    120000.0, 300000.0,
];
const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// One second of attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondBucket {
    pub second: u64,
    pub successes: u64,
    pub failures: u64,
    pub latency_counts: Vec<u64>,
}

impl SecondBucket {
    fn empty(second: u64) -> Self {
        SecondBucket {
            second,
            successes: 0,
            failures: 0,
            latency_counts: vec![0; BUCKETS],
        }
    }
}

pub fn latency_bucket(latency_ms: f64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|bound| latency_ms <= *bound)
        .unwrap_or(BUCKETS - 1)
}

/// A minute of attempts in per-second buckets: recording and aggregating cost the same however
/// busy the provider is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricsWindow {
    buckets: Vec<SecondBucket>,
}

impl MetricsWindow {
    pub fn from_buckets(buckets: Vec<SecondBucket>) -> Self {
        MetricsWindow { buckets }
    }

    pub fn buckets(&self) -> &[SecondBucket] {
        &self.buckets
    }

    pub fn record(&mut self, sample: AttemptSample) {
        let second = sample.at.max(0.0) as u64;
        let slot = (second % WINDOW_SECONDS) as usize;
        if self.buckets.len() < WINDOW_SECONDS as usize {
            self.buckets
                .resize_with(WINDOW_SECONDS as usize, || SecondBucket::empty(u64::MAX));
        }
        let bucket = &mut self.buckets[slot];
        if bucket.second != second {
            *bucket = SecondBucket::empty(second);
        }
        if sample.success {
            bucket.successes += 1;
            bucket.latency_counts[latency_bucket(sample.latency_ms)] += 1;
        } else {
            bucket.failures += 1;
        }
    }

    /// The figures over the minute before `now`, or `None` when nothing happened in it.
    pub fn aggregate(
        &self,
        logical_model: &str,
        provider_id: &str,
        now: f64,
    ) -> Option<RoutingMetrics> {
        let now_second = now.max(0.0) as u64;
        let oldest = now_second.saturating_sub(WINDOW_SECONDS - 1);
        let mut successes = 0u64;
        let mut failures = 0u64;
        let mut counts = [0u64; BUCKETS];
        let mut last_second = 0u64;
        for bucket in self
            .buckets
            .iter()
            .filter(|b| b.second >= oldest && b.second <= now_second)
        {
            successes += bucket.successes;
            failures += bucket.failures;
            for (total, count) in counts.iter_mut().zip(&bucket.latency_counts) {
                *total += count;
            }
            last_second = last_second.max(bucket.second);
        }
        let total = successes + failures;
        if total == 0 {
            return None;
        }
        let error_rate = failures as f64 / total as f64;
        let p95 = percentile(&counts, 0.95);
        Some(RoutingMetrics {
            logical_model: logical_model.to_string(),
            provider_id: provider_id.to_string(),
            latency_p95_ms: p95,
            latency_p99_ms: percentile(&counts, 0.99),
            error_rate,
            success_qps_1m: successes as f64 / WINDOW_SECONDS as f64,
            total_requests_1m: total,
            last_updated: last_second as f64,
            status: ProviderStatus::from_figures(error_rate, p95),
        })
    }
}

/// The `q` quantile of a bucketed distribution, interpolated linearly inside its bucket.
fn percentile(counts: &[u64], q: f64) -> f64 {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return 0.0;
    }
    // Nearest rank: the smallest value with at least q of the samples at or below it.
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (index, count) in counts.iter().enumerate() {
        if *count == 0 {
            continue;
        }
        if seen + count >= rank {
            let lower = if index == 0 {
                0.0
            } else {
                LATENCY_BOUNDS_MS[index - 1]
            };
            let upper = LATENCY_BOUNDS_MS.get(index).copied().unwrap_or(lower * 2.0);
            let within = (rank - seen) as f64 / *count as f64;
            return lower + (upper - lower) * within;
        }
        seen += count;
    }
    LATENCY_BOUNDS_MS[LATENCY_BOUNDS_MS.len() - 1]
}

/// Cool-down settings (`PROVIDER_FAILURE_THRESHOLD`, `PROVIDER_COOLDOWN_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    pub failure_threshold: u32,
    pub cooldown_seconds: f64,
    /// How long a probe may stay unanswered before another request may probe instead (the probe's
    /// client may have gone away). Set to the upstream's total timeout.
    pub probe_lease_seconds: f64,
}

/// A provider's circuit (SPEC 5.4), the state machine of specs/001-model-routing/routing.md:
///
/// ```text
/// Closed(n) --failure, n+1 < threshold--> Closed(n+1)
/// Closed(n) --failure, n+1 = threshold--> Open(until = now + cooldown)
/// Closed(n) --success--> Closed(0)
/// Open(until) --a request claims the probe, now >= until--> HalfOpen(probe started now)
/// HalfOpen --success--> Closed(0)
/// HalfOpen --failure--> Open(until = now + cooldown)
/// HalfOpen(started) --probe lease expired, a request claims it--> HalfOpen(started = now)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Circuit {
    Closed { consecutive_failures: u32 },
    Open { until: f64 },
    HalfOpen { probe_started: f64 },
}

impl Default for Circuit {
    fn default() -> Self {
        Circuit::Closed {
            consecutive_failures: 0,
        }
    }
}

/// What a circuit means for the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    Available,
    /// Cooled down: the next request may try it as the one probe.
    ProbeAllowed,
    /// Pass it over (unless nothing else is left).
    CoolingDown,
}

impl Circuit {
    pub fn availability(&self, now: f64, policy: &BreakerPolicy) -> Availability {
        match *self {
            Circuit::Closed { .. } => Availability::Available,
            Circuit::Open { until } if now >= until => Availability::ProbeAllowed,
            Circuit::Open { .. } => Availability::CoolingDown,
            Circuit::HalfOpen { probe_started }
                if now - probe_started >= policy.probe_lease_seconds =>
            {
                Availability::ProbeAllowed
            }
            Circuit::HalfOpen { .. } => Availability::CoolingDown,
        }
    }

    pub fn on_success(self) -> Circuit {
        Circuit::Closed {
            consecutive_failures: 0,
        }
    }

    pub fn on_failure(self, now: f64, policy: &BreakerPolicy) -> Circuit {
        let open = Circuit::Open {
            until: now + policy.cooldown_seconds,
        };
        match self {
            Circuit::Closed {
                consecutive_failures,
            } => {
                let failures = consecutive_failures.saturating_add(1);
                if failures >= policy.failure_threshold.max(1) {
                    open
                } else {
                    Circuit::Closed {
                        consecutive_failures: failures,
                    }
                }
            }
            // A failed probe, or a failure of a request that started before the circuit opened.
            Circuit::HalfOpen { .. } | Circuit::Open { .. } => open,
        }
    }

    /// The circuit after a request claims the probe, or `None` when no probe may start now.
    pub fn claim_probe(self, now: f64, policy: &BreakerPolicy) -> Option<Circuit> {
        (self.availability(now, policy) == Availability::ProbeAllowed)
            .then_some(Circuit::HalfOpen { probe_started: now })
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
