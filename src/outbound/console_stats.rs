//! The console overview's samples (`GET /admin/stats`): every 2 s a task renders the process's
//! own Prometheus metrics, reads the few series the overview charts and diffs them against the
//! previous render into one sample of a 15-minute ring. The request path pays nothing for it: the
//! series are the ones `/metrics` already counts, and all the work is this task's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusHandle;

use crate::domain::console::{Percentiles, SAMPLE_SECONDS, TrafficSample, WINDOW_SECONDS};
use crate::domain::ports::{Clock, TrafficStats};

/// How often a sample is taken.
pub const INTERVAL: Duration = Duration::from_secs(SAMPLE_SECONDS);
/// Samples kept: 15 minutes at one every 2 s.
pub const CAPACITY: usize = (WINDOW_SECONDS / SAMPLE_SECONDS) as usize;

/// The `endpoint` labels of proxied requests (Gemini's generation calls have labels of their own,
/// apart from the model lists).
const PROXIED: [&str; 5] = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/*:generateContent",
    "/v1beta/models/*:streamGenerateContent",
];

const REQUESTS: &str = "apiproxy_requests_total";
const OVERHEAD: &str = "apiproxy_gateway_overhead_seconds_bucket";
const UPSTREAM: &str = "apiproxy_upstream_duration_seconds_bucket";
const TOKENS: &str = "apiproxy_tokens_total";
const COST: &str = "apiproxy_cost_nano_usd_total";

/// A cumulative histogram: (upper bound in seconds, observations at or below it), by bound.
pub type Buckets = Vec<(f64, f64)>;

/// The series one render holds, summed over the proxied endpoints (counters since start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub requests: f64,
    /// Answered with a status >= 500 or 429.
    pub errors: f64,
    pub overhead: Buckets,
    pub upstream: Buckets,
    pub tokens: f64,
    pub cost_nano_usd: f64,
}

/// One line of the text format: name, labels, value.
struct Line<'a> {
    name: &'a str,
    labels: Vec<(&'a str, String)>,
    value: f64,
}

impl Line<'_> {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The labels of `{a="x",b="y"}` (without the braces) and the rest of the line after them.
fn labels(text: &str) -> Option<(Vec<(&str, String)>, &str)> {
    let mut labels = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((labels, after));
        }
        let (name, after) = rest.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((name.trim(), value));
        rest = &after[end + 1..];
    }
}

/// One sample line of the text format; `None` for comments, blank and unreadable lines.
fn line(text: &str) -> Option<Line<'_>> {
    let text = text.trim();
    if text.is_empty() || text.starts_with('#') {
        return None;
    }
    let name_end = text.find(['{', ' '])?;
    let name = &text[..name_end];
    let (labels, rest) = match text[name_end..].strip_prefix('{') {
        Some(inside) => labels(inside)?,
        None => (Vec::new(), &text[name_end..]),
    };
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Line {
        name,
        labels,
        value,
    })
}

/// Adds `count` to the bucket bounded by `le`.
fn add_bucket(buckets: &mut Buckets, le: f64, count: f64) {
    match buckets.iter_mut().find(|(bound, _)| *bound == le) {
        Some((_, total)) => *total += count,
        None => {
            buckets.push((le, count));
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
}

/// The series the overview needs, from a render of the text format.
pub fn parse(text: &str) -> Totals {
    let mut totals = Totals::default();
    for line in text.lines().filter_map(line) {
        let proxied = || line.label("endpoint").is_some_and(|e| PROXIED.contains(&e));
        match line.name {
            REQUESTS if proxied() => {
                totals.requests += line.value;
                let status: u16 = line
                    .label("status")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if status >= 500 || status == 429 {
                    totals.errors += line.value;
                }
            }
            OVERHEAD | UPSTREAM if proxied() => {
                let le = match line.label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => match le.parse() {
                        Ok(le) => le,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                let buckets = match line.name {
                    OVERHEAD => &mut totals.overhead,
                    _ => &mut totals.upstream,
                };
                add_bucket(buckets, le, line.value);
            }
            TOKENS => totals.tokens += line.value,
            COST => totals.cost_nano_usd += line.value,
            _ => {}
        }
    }
    totals
}

/// How much a counter grew; a counter that went down was reset, and counts from zero again.
fn grew(before: f64, now: f64) -> f64 {
    if now >= before { now - before } else { now }
}

/// The observations between two renders of a histogram, still cumulative by bound.
fn bucket_growth(before: &[(f64, f64)], now: &[(f64, f64)]) -> Buckets {
    let prior = |le: f64| {
        before
            .iter()
            .find(|(bound, _)| *bound == le)
            .map_or(0.0, |(_, count)| *count)
    };
    let diffs: Buckets = now.iter().map(|&(le, n)| (le, n - prior(le))).collect();
    // Any bucket that went down means the histogram was reset: all of it is new.
    if diffs.iter().any(|(_, d)| *d < 0.0) {
        now.to_vec()
    } else {
        diffs
    }
}

/// The `q` quantile (0..1) of a cumulative histogram, by linear interpolation inside the bucket
/// it falls in (the lowest bucket starts at 0; a quantile in the `+Inf` bucket is the highest
/// finite bound, as Prometheus's `histogram_quantile` answers). `None` when it is empty.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last().map(|(_, n)| *n).filter(|n| *n > 0.0)?;
    let rank = q.clamp(0.0, 1.0) * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank && count > below {
            if le.is_infinite() {
                return Some(lower);
            }
            return Some(lower + (le - lower) * (rank - below) / (count - below));
        }
        if le.is_finite() {
            lower = le;
        }
        below = count;
    }
    Some(lower)
}

fn percentiles_ms(buckets: &[(f64, f64)]) -> Percentiles {
    let ms = |q| quantile(buckets, q).map(|s| s * 1000.0);
    Percentiles {
        p50: ms(0.5),
        p99: ms(0.99),
    }
}

/// The sample of the interval between two renders `seconds` apart, ending at `at` (unix ms).
pub fn sample(before: &Totals, now: &Totals, seconds: f64, at: u64) -> TrafficSample {
    let seconds = seconds.max(0.001);
    let requests = grew(before.requests, now.requests);
    let errors = grew(before.errors, now.errors).min(requests);
    TrafficSample {
        at,
        requests_per_second: requests / seconds,
        error_rate: if requests > 0.0 {
            errors / requests
        } else {
            0.0
        },
        overhead_ms: percentiles_ms(&bucket_growth(&before.overhead, &now.overhead)),
        upstream_ms: percentiles_ms(&bucket_growth(&before.upstream, &now.upstream)),
        tokens_per_minute: grew(before.tokens, now.tokens) * 60.0 / seconds,
        cost_per_hour_usd: grew(before.cost_nano_usd, now.cost_nano_usd) / 1e9 * 3600.0 / seconds,
    }
}

/// The last [`CAPACITY`] samples, oldest first.
#[derive(Default)]
pub struct TrafficRing {
    samples: Mutex<VecDeque<TrafficSample>>,
}

impl TrafficRing {
    pub fn push(&self, sample: TrafficSample) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == CAPACITY {
            samples.pop_front();
        }
        samples.push_back(sample);
    }
}

impl TrafficStats for TrafficRing {
    fn samples_since(&self, since: Option<u64>) -> Vec<TrafficSample> {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let since = since.unwrap_or(0);
        // Oldest first: the new ones are the tail.
        let first = samples.partition_point(|s| s.at <= since);
        samples.range(first..).cloned().collect()
    }
}

/// Takes a sample every `period` into `ring`, for as long as the process lives, on a thread of its
/// own: rendering takes a moment, which no serving worker should wait for.
pub fn spawn_sampler(
    handle: PrometheusHandle,
    ring: Arc<TrafficRing>,
    clock: Arc<dyn Clock>,
    period: Duration,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("console-stats".into())
        .spawn(move || {
            let mut before = parse(&handle.render());
            let mut taken = Instant::now();
            loop {
                // Sleeping to the next tick, not for a period: the render's time does not drift it.
                std::thread::sleep(period.saturating_sub(taken.elapsed()));
                let now = parse(&handle.render());
                let seconds = taken.elapsed().as_secs_f64();
                taken = Instant::now();
                let at = (clock.now() * 1000.0).max(0.0) as u64;
                ring.push(sample(&before, &now, seconds, at));
                before = now;
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENDER: &str = r#"# TYPE apiproxy_requests_total counter
apiproxy_requests_total{endpoint="/v1/chat/completions",status="200"} 8
apiproxy_requests_total{endpoint="/v1/chat/completions",status="502"} 1
apiproxy_requests_total{endpoint="/v1/messages",status="429"} 1
apiproxy_requests_total{endpoint="/providers",status="500"} 4
apiproxy_requests_total{endpoint="/v1/models",status="200"} 3
apiproxy_requests_total{endpoint="/v1beta/models",status="200"} 6
apiproxy_requests_total{endpoint="/v1beta/models/*:generateContent",status="200"} 2
apiproxy_requests_total{endpoint="/v1beta/models/*:streamGenerateContent",status="503"} 1

# TYPE apiproxy_tokens_total counter
apiproxy_tokens_total{provider="a",model="m \"quoted\", odd",kind="prompt"} 100
apiproxy_tokens_total{provider="a",model="m",kind="completion"} 50
# TYPE apiproxy_cost_nano_usd_total counter
apiproxy_cost_nano_usd_total{team="none",model="m"} 2000000
# TYPE apiproxy_gateway_overhead_seconds histogram
apiproxy_gateway_overhead_seconds_bucket{endpoint="/v1/chat/completions",le="0.0001"} 2
apiproxy_gateway_overhead_seconds_bucket{endpoint="/v1/chat/completions",le="0.001"} 8
apiproxy_gateway_overhead_seconds_bucket{endpoint="/v1/chat/completions",le="+Inf"} 9
apiproxy_gateway_overhead_seconds_sum{endpoint="/v1/chat/completions"} 0.004
apiproxy_gateway_overhead_seconds_count{endpoint="/v1/chat/completions"} 9
apiproxy_gateway_overhead_seconds_bucket{endpoint="/v1/messages",le="0.0001"} 1
apiproxy_gateway_overhead_seconds_bucket{endpoint="/v1/messages",le="0.001"} 1
apiproxy_gateway_overhead_seconds_bucket{endpoint="/v1/messages",le="+Inf"} 1
apiproxy_gateway_overhead_seconds_bucket{endpoint="/providers",le="0.0001"} 7
apiproxy_gateway_overhead_seconds_bucket{endpoint="/providers",le="0.001"} 7
apiproxy_gateway_overhead_seconds_bucket{endpoint="/providers",le="+Inf"} 7
# TYPE apiproxy_upstream_duration_seconds histogram
apiproxy_upstream_duration_seconds_bucket{endpoint="/v1/responses",le="0.1"} 4
apiproxy_upstream_duration_seconds_bucket{endpoint="/v1/responses",le="1"} 4
apiproxy_upstream_duration_seconds_bucket{endpoint="/v1/responses",le="+Inf"} 4
"#;

    #[test]
    fn the_proxied_series_are_read_and_the_rest_left_out() {
        let totals = parse(RENDER);
        // Gemini's generation calls count; its model lists (`/v1beta/models`) do not.
        assert_eq!(totals.requests, 13.0);
        assert_eq!(totals.errors, 3.0);
        assert_eq!(totals.tokens, 150.0);
        assert_eq!(totals.cost_nano_usd, 2_000_000.0);
        assert_eq!(
            totals.overhead,
            vec![(0.0001, 3.0), (0.001, 9.0), (f64::INFINITY, 10.0)]
        );
        assert_eq!(
            totals.upstream,
            vec![(0.1, 4.0), (1.0, 4.0), (f64::INFINITY, 4.0)]
        );
    }

    #[test]
    fn unreadable_lines_are_skipped() {
        let text = "garbage\napiproxy_tokens_total{kind=\"prompt\" 5\napiproxy_tokens_total{kind=\"x\"} NaNx\napiproxy_tokens_total 7\n";
        assert_eq!(parse(text).tokens, 7.0);
        assert_eq!(parse(""), Totals::default());
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let buckets = [(0.1, 50.0), (0.2, 100.0), (f64::INFINITY, 100.0)];
        // The median is the top of the first bucket; 75 % is half way through the second.
        assert!((quantile(&buckets, 0.5).unwrap() - 0.1).abs() < 1e-12);
        assert!((quantile(&buckets, 0.75).unwrap() - 0.15).abs() < 1e-12);
        // Inside the lowest bucket, from 0.
        assert!((quantile(&buckets, 0.25).unwrap() - 0.05).abs() < 1e-12);
        // Beyond the last finite bound: that bound.
        let tail = [(0.1, 1.0), (f64::INFINITY, 10.0)];
        assert_eq!(quantile(&tail, 0.99), Some(0.1));
        assert_eq!(quantile(&[(0.1, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn a_sample_is_the_difference_of_two_renders_as_rates() {
        let before = Totals {
            requests: 10.0,
            errors: 1.0,
            overhead: vec![(0.001, 4.0), (f64::INFINITY, 4.0)],
            upstream: vec![(0.1, 4.0), (1.0, 4.0), (f64::INFINITY, 4.0)],
            tokens: 100.0,
            cost_nano_usd: 1e6,
        };
        let now = Totals {
            requests: 30.0,
            errors: 6.0,
            overhead: vec![(0.001, 24.0), (f64::INFINITY, 24.0)],
            upstream: vec![(0.1, 4.0), (1.0, 24.0), (f64::INFINITY, 24.0)],
            tokens: 300.0,
            cost_nano_usd: 3e6,
        };
        let s = sample(&before, &now, 2.0, 1_765_130_000_000);
        assert_eq!(s.at, 1_765_130_000_000);
        assert_eq!(s.requests_per_second, 10.0);
        assert_eq!(s.error_rate, 0.25);
        assert!((s.overhead_ms.p50.unwrap() - 0.5).abs() < 1e-9);
        // Only this interval's 20 upstream waits count, all between 0.1 s and 1 s.
        assert!((s.upstream_ms.p50.unwrap() - 550.0).abs() < 1e-6);
        assert!((s.upstream_ms.p99.unwrap() - 991.0).abs() < 1e-6);
        assert_eq!(s.tokens_per_minute, 6000.0);
        assert!((s.cost_per_hour_usd - 3.6).abs() < 1e-9);
    }

    #[test]
    fn an_empty_interval_has_no_percentiles_and_no_errors() {
        let totals = parse(RENDER);
        let s = sample(&totals, &totals, 2.0, 1);
        assert_eq!(s.requests_per_second, 0.0);
        assert_eq!(s.error_rate, 0.0);
        assert_eq!(s.overhead_ms, Percentiles::default());
        assert_eq!(s.upstream_ms, Percentiles::default());
        assert_eq!(s.tokens_per_minute, 0.0);
        // Nothing rendered yet (no recorder, or no request so far): the same.
        let s = sample(&Totals::default(), &Totals::default(), 2.0, 1);
        assert_eq!((s.requests_per_second, s.overhead_ms.p50), (0.0, None));
    }

    #[test]
    fn a_counter_reset_counts_from_zero() {
        let before = Totals {
            requests: 100.0,
            tokens: 500.0,
            overhead: vec![(0.001, 90.0), (f64::INFINITY, 100.0)],
            ..Totals::default()
        };
        let now = Totals {
            requests: 4.0,
            tokens: 40.0,
            overhead: vec![(0.001, 4.0), (f64::INFINITY, 4.0)],
            ..Totals::default()
        };
        let s = sample(&before, &now, 2.0, 1);
        assert_eq!(s.requests_per_second, 2.0);
        assert_eq!(s.tokens_per_minute, 1200.0);
        assert!((s.overhead_ms.p50.unwrap() - 0.5).abs() < 1e-9);
    }

    #[test]
    fn the_ring_keeps_fifteen_minutes_and_filters_by_time() {
        let ring = TrafficRing::default();
        for at in 1..=(CAPACITY as u64 + 10) {
            ring.push(sample(&Totals::default(), &Totals::default(), 2.0, at));
        }
        let all = ring.samples_since(None);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all[0].at, 11);
        let recent = ring.samples_since(Some(CAPACITY as u64 + 8));
        let ats: Vec<u64> = recent.iter().map(|s| s.at).collect();
        assert_eq!(ats, vec![CAPACITY as u64 + 9, CAPACITY as u64 + 10]);
        assert!(ring.samples_since(Some(u64::MAX)).is_empty());
    }
}
