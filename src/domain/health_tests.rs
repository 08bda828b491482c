//! Unit tests of health: provider status, metrics windows and the circuit state machine.
use super::*;

fn sample(at: f64, latency_ms: f64, success: bool) -> AttemptSample {
    AttemptSample {
        at,
        latency_ms,
        ttfb_ms: latency_ms,
        success,
    }
}

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

#[test]
fn the_window_counts_errors_and_successes_per_minute() {
    let mut window = MetricsWindow::default();
    window.record(sample(1000.2, 100.0, true));
    window.record(sample(1000.7, 100.0, true));
    window.record(sample(1030.0, 0.0, false));
    let m = window.aggregate("l", "p", 1030.5).unwrap();
    assert_eq!(m.total_requests_1m, 3);
    assert!((m.error_rate - 1.0 / 3.0).abs() < 1e-9);
    assert!((m.success_qps_1m - 2.0 / 60.0).abs() < 1e-9);
    assert_eq!(
        m.status,
        ProviderStatus::Degraded,
        "1 in 3 is over 0.1 but not over 0.5"
    );
    assert_eq!(m.last_updated, 1030.0);
}

#[test]
fn samples_older_than_a_minute_drop_out() {
    let mut window = MetricsWindow::default();
    window.record(sample(1000.0, 100.0, false));
    window.record(sample(1059.0, 100.0, true));
    assert_eq!(
        window
            .aggregate("l", "p", 1059.0)
            .unwrap()
            .total_requests_1m,
        2
    );
    assert_eq!(
        window
            .aggregate("l", "p", 1060.0)
            .unwrap()
            .total_requests_1m,
        1
    );
    assert!(window.aggregate("l", "p", 1200.0).is_none());
    // A slot reused a minute later starts from zero.
    window.record(sample(1060.0, 100.0, true));
    assert_eq!(window.aggregate("l", "p", 1060.0).unwrap().error_rate, 0.0);
}

#[test]
fn percentiles_come_from_the_histogram_within_its_bucket_width() {
    let mut window = MetricsWindow::default();
    // 90 fast answers around 100 ms, 10 slow ones around 3 s.
    for i in 0..90 {
        window.record(sample(500.0 + (i % 30) as f64, 95.0, true));
    }
    for i in 0..10 {
        window.record(sample(500.0 + i as f64, 2900.0, true));
    }
    let m = window.aggregate("l", "p", 530.0).unwrap();
    assert!(
        m.latency_p95_ms > 2000.0 && m.latency_p95_ms <= 3000.0,
        "p95 {}",
        m.latency_p95_ms
    );
    assert!(m.latency_p99_ms <= 3000.0 && m.latency_p99_ms >= m.latency_p95_ms);
    assert_eq!(m.status, ProviderStatus::Degraded);
    let mut fast = MetricsWindow::default();
    for _ in 0..100 {
        fast.record(sample(10.0, 42.0, true));
    }
    let m = fast.aggregate("l", "p", 10.0).unwrap();
    assert!(
        m.latency_p95_ms > 20.0 && m.latency_p95_ms <= 50.0,
        "p95 {}",
        m.latency_p95_ms
    );
    assert_eq!(m.status, ProviderStatus::Healthy);
}

#[test]
fn failures_do_not_count_as_latency() {
    let mut window = MetricsWindow::default();
    window.record(sample(10.0, 60_000.0, false));
    window.record(sample(10.0, 100.0, true));
    assert!(window.aggregate("l", "p", 10.0).unwrap().latency_p99_ms <= 100.0);
}

const POLICY: BreakerPolicy = BreakerPolicy {
    failure_threshold: 3,
    cooldown_seconds: 30.0,
    probe_lease_seconds: 600.0,
};

#[test]
fn the_circuit_opens_after_the_threshold_of_consecutive_failures() {
    let mut circuit = Circuit::default();
    circuit = circuit.on_failure(0.0, &POLICY);
    circuit = circuit.on_failure(1.0, &POLICY);
    assert_eq!(
        circuit,
        Circuit::Closed {
            consecutive_failures: 2
        }
    );
    assert_eq!(circuit.availability(1.0, &POLICY), Availability::Available);
    circuit = circuit.on_failure(2.0, &POLICY);
    assert_eq!(circuit, Circuit::Open { until: 32.0 });
    assert_eq!(
        circuit.availability(31.9, &POLICY),
        Availability::CoolingDown
    );
}

#[test]
fn a_success_resets_the_count() {
    let circuit = Circuit::default()
        .on_failure(0.0, &POLICY)
        .on_failure(0.0, &POLICY)
        .on_success();
    assert_eq!(
        circuit.on_failure(0.0, &POLICY),
        Circuit::Closed {
            consecutive_failures: 1
        }
    );
}

#[test]
fn after_the_cooldown_exactly_one_probe_is_allowed() {
    let open = Circuit::Open { until: 32.0 };
    assert_eq!(open.claim_probe(31.0, &POLICY), None);
    let probing = open.claim_probe(32.0, &POLICY).unwrap();
    assert_eq!(
        probing,
        Circuit::HalfOpen {
            probe_started: 32.0
        }
    );
    assert_eq!(
        probing.availability(33.0, &POLICY),
        Availability::CoolingDown
    );
    assert_eq!(
        probing.claim_probe(33.0, &POLICY),
        None,
        "a second probe waits"
    );
}

#[test]
fn the_probe_closes_or_reopens_the_circuit() {
    let probing = Circuit::HalfOpen {
        probe_started: 32.0,
    };
    assert_eq!(
        probing.on_success(),
        Circuit::Closed {
            consecutive_failures: 0
        }
    );
    assert_eq!(
        probing.on_failure(40.0, &POLICY),
        Circuit::Open { until: 70.0 }
    );
}

#[test]
fn an_abandoned_probe_can_be_taken_over_after_its_lease() {
    let probing = Circuit::HalfOpen {
        probe_started: 32.0,
    };
    assert_eq!(
        probing.availability(631.0, &POLICY),
        Availability::CoolingDown
    );
    assert_eq!(
        probing.claim_probe(632.0, &POLICY),
        Some(Circuit::HalfOpen {
            probe_started: 632.0
        })
    );
}
