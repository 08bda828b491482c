//! What the chat use case reports to `/metrics`, through the `metrics` facade (a no-op until the
//! Prometheus recorder is installed): attempts by provider, vendor and outcome, token usage when
//! the upstream reports it, and the open-streams gauge.

use metrics::Counter;

use crate::domain::exchange::Usage;
use crate::domain::provider::ProviderConfig;
use crate::metric_handles::{self, Cache};

thread_local! {
    static ATTEMPTS: Cache<3, Counter> = Default::default();
    static FAILOVERS: Cache<1, Counter> = Default::default();
    static TOKENS: Cache<3, Counter> = Default::default();
}

/// One upstream attempt's outcome: `success`, `failed_over`, `relayed_error` or `qps_limited`.
pub fn attempt(provider: &ProviderConfig, outcome: &'static str) {
    let vendor = provider.vendor.as_str();
    metric_handles::get(&ATTEMPTS, [&provider.id, vendor, outcome], || {
        metrics::counter!(
            "apiproxy_upstream_attempts_total",
            "provider" => provider.id.clone(),
            "vendor" => vendor,
            "outcome" => outcome
        )
    })
    .increment(1);
    if outcome == "failed_over" {
        metric_handles::get(
            &FAILOVERS,
            [&provider.id],
            || metrics::counter!("apiproxy_failovers_total", "provider" => provider.id.clone()),
        )
        .increment(1);
    }
}

/// The `model` label of token counters: the physical model, unless the client named it by
/// pinning (`provider/anything`), which would make one series per name a client invents.
pub fn model_label<'a>(logical_id: &str, provider_id: &str, model_id: &'a str) -> &'a str {
    let pinned = logical_id
        .split_once('/')
        .is_some_and(|(prefix, rest)| prefix == provider_id && rest == model_id);
    if pinned { "other" } else { model_id }
}

/// Counts the tokens an answer or a stream's usage event reported.
pub fn count_tokens(provider: &str, model: &str, usage: &Usage) {
    for (kind, count) in [
        ("prompt", usage.prompt_tokens),
        ("completion", usage.completion_tokens),
    ] {
        if count > 0 {
            metric_handles::get(&TOKENS, [provider, model, kind], || {
                metrics::counter!("apiproxy_tokens_total", "provider" => provider.to_string(), "model" => model.to_string(), "kind" => kind)
            })
            .increment(count);
        }
    }
}

/// Counts the tokens a whole answer reported, if it did.
pub fn count_answer(provider: &str, model: &str, usage: Option<&Usage>) {
    if let Some(usage) = usage {
        count_tokens(provider, model, usage);
    }
}

/// Holds one place in the `apiproxy_open_streams` gauge for as long as it lives.
pub struct OpenStream;

impl OpenStream {
    pub fn new() -> Self {
        metrics::gauge!("apiproxy_open_streams").increment(1.0);
        OpenStream
    }
}

impl Default for OpenStream {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        metrics::gauge!("apiproxy_open_streams").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::model_label;

    #[test]
    fn pinned_names_are_not_metric_labels() {
        assert_eq!(model_label("gpt", "openai", "gpt-4o"), "gpt-4o");
        assert_eq!(model_label("group/gpt-4o", "openai", "gpt-4o"), "gpt-4o");
        assert_eq!(
            model_label("openai/anything-at-all", "openai", "anything-at-all"),
            "other"
        );
    }
}
