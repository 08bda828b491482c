//! What a virtual key's limits and budget count (SPEC 3.1), in the domain's terms: the charge a
//! request asks the ledger for before it starts, the ledger's verdict, the settlement with the
//! real usage afterwards, and the usage aggregates `/usage` reads.
//!
//! Limits are sliding windows of one minute, kept as one-second buckets, so the count of any 60 s
//! is exact to one second. Budgets reserve a request's worst case before it starts and settle
//! the real cost after, so concurrent requests cannot overshoot by more than what is in flight.

use serde::Serialize;

use super::keys::{PeriodWindow, VirtualKey};
use super::usage::{NanoUsd, Usage};

/// Output tokens reserved for a request that does not say how many it may produce.
pub const DEFAULT_RESERVED_OUTPUT_TOKENS: u64 = 4096;
/// Characters per token when input tokens are estimated from the body's size.
pub const BYTES_PER_TOKEN: u64 = 4;

/// What a request is expected to take, before it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

impl Estimate {
    /// From the body's size and its `max_tokens` (or the default reservation).
    pub fn of(body_bytes: usize, max_output_tokens: Option<u64>) -> Estimate {
        Estimate {
            input_tokens: (body_bytes as u64).div_ceil(BYTES_PER_TOKEN),
            output_tokens: max_output_tokens.unwrap_or(DEFAULT_RESERVED_OUTPUT_TOKENS),
        }
    }

    pub fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.input_tokens,
            completion_tokens: self.output_tokens,
            ..Usage::default()
        }
    }
}

/// What one request asks of a key's ledger before it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Charge {
    pub key_id: String,
    /// Unix seconds.
    pub now: f64,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u32>,
    /// The budget and what to reserve against it.
    pub budget: Option<BudgetCharge>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BudgetCharge {
    pub period: PeriodWindow,
    pub limit: NanoUsd,
    pub reserve: NanoUsd,
}

impl Charge {
    /// The charge for one request of `key`, reserving `reserve` against its budget.
    pub fn for_key(key: &VirtualKey, now: f64, reserve: NanoUsd) -> Charge {
        Charge {
            key_id: key.id.clone(),
            now,
            rpm: key.rpm,
            tpm: key.tpm,
            max_parallel: key.max_parallel,
            budget: key.budget_nano().map(|limit| BudgetCharge {
                period: key.budget_period.window(now),
                limit,
                reserve,
            }),
        }
    }
}

/// Which limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Requests,
    Tokens,
    Parallel,
    Budget,
}

/// The ledger's answer to a charge.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Admitted(Allowance),
    Refused {
        limit: Limit,
        /// Seconds until trying again can succeed (for `Retry-After`).
        retry_after: u64,
        allowance: Allowance,
    },
}

/// What is left in the key's windows after this request (for the `x-ratelimit-*` headers).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Allowance {
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub requests_remaining: u64,
    pub tokens_remaining: u64,
    /// Seconds until the oldest request (or token) counted leaves the window.
    pub requests_reset: f64,
    pub tokens_reset: f64,
}

/// What a finished request settles: its real tokens and cost, and the slots it held.
#[derive(Debug, Clone, PartialEq)]
pub struct Settlement {
    pub key_id: String,
    pub now: f64,
    /// Tokens the request used, counted in the key's tokens-per-minute window when it has one.
    pub tokens: Option<u64>,
    /// Whether the request held a `max_parallel` slot.
    pub release_parallel: bool,
    /// The budget period, what was reserved in it and what the request really cost.
    pub period: PeriodWindow,
    pub reserved: NanoUsd,
    pub cost: NanoUsd,
}

/// What `/usage` groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    Key,
    Team,
    Model,
    Provider,
    Day,
}

impl UsageGroup {
    pub const ALL: [UsageGroup; 5] = [
        UsageGroup::Key,
        UsageGroup::Team,
        UsageGroup::Model,
        UsageGroup::Provider,
        UsageGroup::Day,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageGroup::Key => "key",
            UsageGroup::Team => "team",
            UsageGroup::Model => "model",
            UsageGroup::Provider => "provider",
            UsageGroup::Day => "day",
        }
    }

    pub fn parse(text: &str) -> Option<UsageGroup> {
        UsageGroup::ALL.into_iter().find(|g| g.as_str() == text)
    }
}

/// One finished request, as the usage aggregates count it.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRecord {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// The key's id, or `gateway` for the gateway and admin tokens.
    pub key: String,
    pub team: Option<String>,
    /// The logical model asked for.
    pub model: String,
    pub provider: String,
    pub usage: Usage,
    pub cost: NanoUsd,
}

impl UsageRecord {
    /// The group this record falls in for each grouping (a record without a team has no team
    /// group).
    pub fn group(&self, by: UsageGroup) -> Option<&str> {
        match by {
            UsageGroup::Key => Some(&self.key),
            UsageGroup::Team => self.team.as_deref(),
            UsageGroup::Model => Some(&self.model),
            UsageGroup::Provider => Some(&self.provider),
            UsageGroup::Day => Some(&self.day),
        }
    }
}

/// The key the gateway and admin tokens' usage is counted under.
pub const GATEWAY_KEY: &str = "gateway";

/// Sums of one usage group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct UsageTotals {
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    pub reasoning_tokens: u64,
    pub cost_nano_usd: u64,
}

impl UsageTotals {
    /// The fields in the order stores keep them, with their names.
    pub const FIELDS: [&'static str; 7] = [
        "requests",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost_nano_usd",
    ];

    /// One request's contribution, in the order of [`Self::FIELDS`].
    pub fn increments(record: &UsageRecord) -> [u64; 7] {
        let u = &record.usage;
        [
            1,
            u.prompt_tokens,
            u.completion_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
            record.cost,
        ]
    }

    /// Adds the value of one named field (unknown names are ignored).
    pub fn add(&mut self, field: &str, value: u64) {
        let slot = match field {
            "requests" => &mut self.requests,
            "input_tokens" => &mut self.input_tokens,
            "output_tokens" => &mut self.output_tokens,
            "cache_read_tokens" => &mut self.cache_read_tokens,
            "cache_write_tokens" => &mut self.cache_write_tokens,
            "reasoning_tokens" => &mut self.reasoning_tokens,
            "cost_nano_usd" => &mut self.cost_nano_usd,
            _ => return,
        };
        *slot = slot.saturating_add(value);
    }
}

/// Every UTC day from `from` to `to` (both `YYYY-MM-DD`, inclusive), at most `max` of them;
/// `None` when a date is not one or `to` is before `from`.
pub fn days_between(from: &str, to: &str, max: usize) -> Option<Vec<String>> {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    let (from, to) = (parse(from)?, parse(to)?);
    if to < from {
        return None;
    }
    Some(
        from.iter_days()
            .take_while(|d| *d <= to)
            .take(max)
            .map(|d| d.format("%Y-%m-%d").to_string())
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_reserves_max_tokens_or_the_default() {
        let e = Estimate::of(401, Some(100));
        assert_eq!((e.input_tokens, e.output_tokens), (101, 100));
        assert_eq!(
            Estimate::of(0, None).output_tokens,
            DEFAULT_RESERVED_OUTPUT_TOKENS
        );
    }

    #[test]
    fn day_ranges_are_inclusive_and_bounded() {
        let days = days_between("2026-11-29", "2026-12-02", 10).unwrap();
        assert_eq!(
            days,
            ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]
        );
        assert_eq!(
            days_between("2026-01-01", "2026-12-31", 5).unwrap().len(),
            5
        );
        assert!(days_between("2026-12-02", "2026-12-01", 10).is_none());
        assert!(days_between("2026-13-01", "2026-12-01", 10).is_none());
    }

    #[test]
    fn records_fall_in_one_group_per_grouping() {
        let record = UsageRecord {
            day: "2026-12-07".into(),
            key: "key_1".into(),
            team: None,
            model: "gpt".into(),
            provider: "openai".into(),
            usage: Usage::default(),
            cost: 5,
        };
        assert_eq!(record.group(UsageGroup::Team), None);
        assert_eq!(record.group(UsageGroup::Provider), Some("openai"));
        let mut totals = UsageTotals::default();
        for (field, value) in UsageTotals::FIELDS
            .iter()
            .zip(UsageTotals::increments(&record))
        {
            totals.add(field, value);
        }
        assert_eq!((totals.requests, totals.cost_nano_usd), (1, 5));
        assert_eq!(UsageGroup::parse("team"), Some(UsageGroup::Team));
        assert_eq!(UsageGroup::parse("week"), None);
    }
}
