//! Token usage and its price: what one answer consumed, what a physical model costs per 1M tokens,
//! and the cost of the one at the other (SPEC 3.1).
//!
//! Conventions (OpenAI's): `prompt_tokens` counts every input token, cached or not, so cache reads
//! and cache writes are parts of it; `reasoning_tokens` are part of `completion_tokens`. Readers of
//! other vendors' usage convert to this (Anthropic's `input_tokens` excludes its cache tokens).

use serde::{Deserialize, Serialize};

/// Token counts an answer reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    #[serde(default)]
    pub cache_read_tokens: u64,
    #[serde(default)]
    pub cache_write_tokens: u64,
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Input and output together.
    pub fn total(&self) -> u64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }

    /// Folds in a later report of the same answer. Streams report usage in pieces (Anthropic:
    /// input at the start, output at the end) or as running totals (Gemini), never as increments,
    /// so each count is the largest seen.
    pub fn merge(&mut self, later: &Usage) {
        self.prompt_tokens = self.prompt_tokens.max(later.prompt_tokens);
        self.completion_tokens = self.completion_tokens.max(later.completion_tokens);
        self.cache_read_tokens = self.cache_read_tokens.max(later.cache_read_tokens);
        self.cache_write_tokens = self.cache_write_tokens.max(later.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.max(later.reasoning_tokens);
    }
}

/// Nano-dollars (1e-9 USD): money as an integer, so stores can add it atomically and exactly.
pub type NanoUsd = u64;

/// USD as nano-dollars (negative and non-finite amounts as zero).
pub fn nano_usd(usd: f64) -> NanoUsd {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e9).round() as NanoUsd
    } else {
        0
    }
}

/// Nano-dollars as USD.
pub fn usd(nano: NanoUsd) -> f64 {
    nano as f64 / 1e9
}

/// A physical model's prices in USD per 1M tokens. Cache reads and writes cost the input price
/// unless priced apart.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Price {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

impl Price {
    /// Every price is a finite number at least 0.
    pub fn problem(&self) -> Option<&'static str> {
        let ok = |p: f64| p.is_finite() && p >= 0.0;
        let all = [self.input, self.output]
            .into_iter()
            .chain(self.cache_read)
            .chain(self.cache_write);
        (!all.into_iter().all(ok))
            .then_some("prices must be numbers at least 0 (USD per 1M tokens)")
    }

    /// What `usage` costs: fresh input, cache reads, cache writes and output each at their price.
    pub fn cost(&self, usage: &Usage) -> NanoUsd {
        let cached = usage
            .cache_read_tokens
            .saturating_add(usage.cache_write_tokens);
        let fresh = usage.prompt_tokens.saturating_sub(cached);
        // USD per 1M tokens is nano-USD per 1e-3 token: tokens × price × 1000.
        let part = |tokens: u64, price: f64| tokens as f64 * price * 1000.0;
        let total = part(fresh, self.input)
            + part(
                usage.cache_read_tokens,
                self.cache_read.unwrap_or(self.input),
            )
            + part(
                usage.cache_write_tokens,
                self.cache_write.unwrap_or(self.input),
            )
            + part(usage.completion_tokens, self.output);
        if total.is_finite() && total > 0.0 {
            total.round() as NanoUsd
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_reads_get_their_own_price_and_fresh_input_the_rest() {
        let price = Price {
            input: 2.5,
            output: 10.0,
            cache_read: Some(1.25),
            cache_write: None,
        };
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 100_000,
            cache_read_tokens: 400_000,
            cache_write_tokens: 100_000,
            reasoning_tokens: 50_000,
        };
        // 500k fresh × 2.5 + 400k × 1.25 + 100k × 2.5 (write at input) + 100k × 10.
        let expected = 1.25 + 0.5 + 0.25 + 1.0;
        assert_eq!(price.cost(&usage), nano_usd(expected));
        assert_eq!(usd(price.cost(&usage)), expected);
    }

    #[test]
    fn a_single_token_at_a_small_price_is_not_rounded_away() {
        let price = Price {
            input: 0.1,
            output: 0.4,
            ..Price::default()
        };
        let one = Usage {
            prompt_tokens: 1,
            completion_tokens: 1,
            ..Usage::default()
        };
        assert_eq!(price.cost(&one), 500);
    }

    #[test]
    fn stream_reports_merge_to_the_largest_counts() {
        let mut usage = Usage {
            prompt_tokens: 30,
            completion_tokens: 1,
            cache_read_tokens: 20,
            ..Usage::default()
        };
        usage.merge(&Usage {
            completion_tokens: 12,
            ..Usage::default()
        });
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cache_read_tokens
            ),
            (30, 12, 20)
        );
    }

    #[test]
    fn bad_prices_are_named() {
        assert!(
            Price {
                input: -1.0,
                ..Price::default()
            }
            .problem()
            .is_some()
        );
        assert!(
            Price {
                cache_read: Some(f64::NAN),
                ..Price::default()
            }
            .problem()
            .is_some()
        );
        assert!(
            Price {
                input: 1.0,
                output: 2.0,
                ..Price::default()
            }
            .problem()
            .is_none()
        );
        assert_eq!(nano_usd(f64::INFINITY), 0);
        assert_eq!(nano_usd(-3.0), 0);
    }
}
