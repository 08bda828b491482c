//! Routing metrics, circuits and QPS counters in memory.

// foldhash (hashbrown's default) rather than SipHash: these maps are read and written on every
// request, and their keys are configured names or bounded sets (SPEC's providers, models, keys).
use hashbrown::HashMap;

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::domain::health::{AttemptSample, BreakerPolicy, Circuit, MetricsWindow, RoutingMetrics};
use crate::domain::ports::{CircuitStore, MetricsStore, QpsLimiter, StoreResult};

/// Windows keyed by provider, then logical model, so a provider's figures are one lookup away.
#[derive(Default)]
pub struct MemoryMetricsStore {
    windows: Mutex<HashMap<String, HashMap<String, MetricsWindow>>>,
    records: std::sync::atomic::AtomicU64,
}

/// Every this many records, windows idle for a whole minute are dropped, so names that are asked
/// for once (pinned `provider/anything`) do not pile up.
const PRUNE_EVERY: u64 = 4096;
/// Most windows kept (about 16 KiB each): a flood of new names within one minute is not recorded
/// beyond it, rather than growing the process.
const MAX_WINDOWS: usize = 4096;

fn prune_idle(windows: &mut HashMap<String, HashMap<String, MetricsWindow>>, now: f64) {
    for by_model in windows.values_mut() {
        by_model.retain(|_, window| window.aggregate("", "", now).is_some());
    }
    windows.retain(|_, by_model| !by_model.is_empty());
}

#[async_trait]
impl MetricsStore for MemoryMetricsStore {
    async fn record(
        &self,
        logical_model: &str,
        provider_id: &str,
        sample: AttemptSample,
    ) -> StoreResult<()> {
        let mut windows = self.windows.lock();
        if self
            .records
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % PRUNE_EVERY
            == PRUNE_EVERY - 1
        {
            prune_idle(&mut windows, sample.at);
        }
        if let Some(window) = windows
            .get_mut(provider_id)
            .and_then(|by_model| by_model.get_mut(logical_model))
        {
            window.record(sample);
            return Ok(());
        }
        if windows.values().map(HashMap::len).sum::<usize>() >= MAX_WINDOWS {
            prune_idle(&mut windows, sample.at);
            if windows.values().map(HashMap::len).sum::<usize>() >= MAX_WINDOWS {
                return Ok(());
            }
        }
        let mut window = MetricsWindow::default();
        window.record(sample);
        windows
            .entry(provider_id.to_string())
            .or_default()
            .insert(logical_model.to_string(), window);
        Ok(())
    }

    async fn snapshot(
        &self,
        logical_model: &str,
        provider_ids: &[String],
        now: f64,
    ) -> StoreResult<Vec<Option<RoutingMetrics>>> {
        let windows = self.windows.lock();
        Ok(provider_ids
            .iter()
            .map(|provider| {
                windows
                    .get(provider)?
                    .get(logical_model)?
                    .aggregate(logical_model, provider, now)
            })
            .collect())
    }

    async fn for_provider(&self, provider_id: &str, now: f64) -> StoreResult<Vec<RoutingMetrics>> {
        let mut windows = self.windows.lock();
        let Some(by_model) = windows.get_mut(provider_id) else {
            return Ok(Vec::new());
        };
        let mut figures: Vec<RoutingMetrics> = Vec::new();
        // Logical models idle for a whole window are forgotten here, which bounds the map.
        by_model.retain(
            |logical, window| match window.aggregate(logical, provider_id, now) {
                Some(metrics) => {
                    figures.push(metrics);
                    true
                }
                None => false,
            },
        );
        figures.sort_by(|a, b| a.logical_model.cmp(&b.logical_model));
        Ok(figures)
    }
}

#[derive(Default)]
pub struct MemoryCircuitStore {
    circuits: Mutex<HashMap<String, Circuit>>,
}

#[async_trait]
impl CircuitStore for MemoryCircuitStore {
    async fn circuits(&self, provider_ids: &[String]) -> StoreResult<Vec<Circuit>> {
        let circuits = self.circuits.lock();
        Ok(provider_ids
            .iter()
            .map(|id| circuits.get(id).copied().unwrap_or_default())
            .collect())
    }

    async fn record(
        &self,
        provider_id: &str,
        success: bool,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<Circuit> {
        let mut circuits = self.circuits.lock();
        let circuit = circuits.entry(provider_id.to_string()).or_default();
        *circuit = if success {
            circuit.on_success()
        } else {
            circuit.on_failure(now, &policy)
        };
        Ok(*circuit)
    }

    async fn claim_probe(
        &self,
        provider_id: &str,
        now: f64,
        policy: BreakerPolicy,
    ) -> StoreResult<bool> {
        let mut circuits = self.circuits.lock();
        let circuit = circuits.entry(provider_id.to_string()).or_default();
        match circuit.claim_probe(now, &policy) {
            Some(claimed) => {
                *circuit = claimed;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// One counter per provider for the current calendar second.
#[derive(Default)]
pub struct MemoryQpsLimiter {
    counters: Mutex<HashMap<String, (u64, u32)>>,
}

#[async_trait]
impl QpsLimiter for MemoryQpsLimiter {
    async fn try_acquire(&self, provider_id: &str, max_qps: u32, now: f64) -> StoreResult<bool> {
        let second = now.max(0.0) as u64;
        let mut counters = self.counters.lock();
        let (counter_second, count) = counters
            .entry(provider_id.to_string())
            .or_insert((second, 0));
        if *counter_second != second {
            *counter_second = second;
            *count = 0;
        }
        if *count >= max_qps {
            return Ok(false);
        }
        *count += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: f64) -> AttemptSample {
        AttemptSample {
            at,
            success: true,
            latency_ms: 10.0,
            ttfb_ms: 5.0,
        }
    }

    #[tokio::test]
    async fn a_flood_of_new_names_keeps_at_most_max_windows() {
        let store = MemoryMetricsStore::default();
        for i in 0..3 * MAX_WINDOWS {
            store
                .record(&format!("p/name-{i}"), "p", sample(1000.0))
                .await
                .unwrap();
        }
        let kept: usize = store.windows.lock().values().map(HashMap::len).sum();
        assert_eq!(kept, MAX_WINDOWS);
        // A minute later the idle ones make room again.
        store.record("p/new", "p", sample(1100.0)).await.unwrap();
        let figures = store.for_provider("p", 1100.0).await.unwrap();
        assert_eq!(figures.len(), 1);
        assert_eq!(figures[0].logical_model, "p/new");
    }

    #[tokio::test]
    async fn the_limiter_admits_max_qps_per_calendar_second_then_refuses() {
        let limiter = MemoryQpsLimiter::default();
        for _ in 0..3 {
            assert!(limiter.try_acquire("p", 3, 100.1).await.unwrap());
        }
        assert!(
            !limiter.try_acquire("p", 3, 100.9).await.unwrap(),
            "the fourth in the same second is refused"
        );
        assert!(
            limiter.try_acquire("other", 3, 100.9).await.unwrap(),
            "limits are per provider"
        );
        assert!(
            limiter.try_acquire("p", 3, 101.0).await.unwrap(),
            "a new second starts a new count"
        );
    }
}
