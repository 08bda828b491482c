//! The Prometheus recorder behind the `metrics` facade, rendered by the gateway's `/metrics`.

use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds, from 100 µs (the gateway's own overhead) to two minutes (long completions).
const BUCKETS: [f64; 19] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0,
];

/// How often the recorder folds pending histogram samples into its buckets when nobody scrapes.
pub const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder; returns the handle that renders the text format.
pub fn install() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))
}

/// Runs the recorder's upkeep every `period`, off the request path, for as long as the runtime
/// lives. Histogram samples are queued raw until a render or an upkeep folds them into buckets;
/// without this, a gateway nobody scrapes keeps every sample it ever recorded (about 45 bytes per
/// request).
pub fn spawn_upkeep(handle: PrometheusHandle, period: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            handle.run_upkeep();
        }
    })
}
