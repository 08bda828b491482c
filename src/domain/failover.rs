//! Failover rules: what an attempt's failure was, whether the next candidate is worth trying, when a
//! stream is committed to one upstream, and what the client is told when every candidate failed.

use bytes::Bytes;

use super::provider::{RetryPolicy, Vendor};

/// Why one upstream attempt did not produce a usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptFailure {
    /// Connect failure, reset, timeout, a body cut short or unreadable: always retryable.
    Transport { message: String },
    /// The upstream answered with an error status.
    Status {
        status: u16,
        body: Bytes,
        /// The upstream's own message, read from `body` by the adapter.
        message: String,
        retry_after: Option<u64>,
    },
    /// The gateway held back a candidate at its `MAX_QPS`; retryable, counts as a 429.
    RateLimited { retry_after: Option<u64> },
}

impl AttemptFailure {
    pub fn transport(message: impl Into<String>) -> Self {
        AttemptFailure::Transport {
            message: message.into(),
        }
    }

    pub fn is_retryable(&self, policy: &RetryPolicy) -> bool {
        match self {
            AttemptFailure::Transport { .. } | AttemptFailure::RateLimited { .. } => true,
            AttemptFailure::Status { status, .. } => policy.is_retryable_status(*status),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            AttemptFailure::Status { status, .. } => Some(*status),
            AttemptFailure::RateLimited { .. } => Some(429),
            AttemptFailure::Transport { .. } => None,
        }
    }

    /// A short human description, safe to show a client (no headers, no keys).
    pub fn describe(&self) -> String {
        match self {
            AttemptFailure::Transport { message } => message.clone(),
            AttemptFailure::Status {
                status, message, ..
            } => format!("HTTP {status}: {message}"),
            AttemptFailure::RateLimited { .. } => "provider is at its MAX_QPS limit".into(),
        }
    }
}

/// Kinds of stream event the commit rule distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamEventKind {
    /// Carries nothing the client needs yet (a role-only first chunk, comments, pings).
    Preamble,
    /// Text, a tool-call delta or a finish reason.
    Content,
    /// The upstream's clean end of stream (`[DONE]`).
    End,
    /// The upstream reported an error inside a 200 stream.
    Error,
}

/// Bounds on what a stream may hold back before it commits anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

impl Default for CommitLimits {
    fn default() -> Self {
        CommitLimits {
            max_events: 64,
            max_bytes: 256 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateDecision {
    /// Keep holding; another candidate can still take over.
    Hold,
    /// Release what is held and stream the rest: the attempt is the answer now.
    Commit,
    /// The upstream failed before committing: try the next candidate.
    Fail,
}

/// The stream commit point (SPEC 5.5). The gateway holds a stream back until its first content event
/// or clean end, so that an upstream answering 200 and failing at once can still be failed over; it
/// commits anyway past the bounds so a long preamble cannot hold memory or the client forever.
#[derive(Debug, Clone)]
pub struct CommitGate {
    limits: CommitLimits,
    events: usize,
    bytes: usize,
}

impl CommitGate {
    pub fn new(limits: CommitLimits) -> Self {
        CommitGate {
            limits,
            events: 0,
            bytes: 0,
        }
    }

    pub fn observe(&mut self, kind: StreamEventKind, len: usize) -> GateDecision {
        self.events += 1;
        self.bytes += len;
        match kind {
            StreamEventKind::Error => GateDecision::Fail,
            StreamEventKind::Content | StreamEventKind::End => GateDecision::Commit,
            StreamEventKind::Preamble
                if self.events >= self.limits.max_events || self.bytes >= self.limits.max_bytes =>
            {
                GateDecision::Commit
            }
            StreamEventKind::Preamble => GateDecision::Hold,
        }
    }
}

/// Anthropic's 529 "overloaded" means what a 503 means: the provider is busy, try another. Every
/// other status is taken as it is.
pub fn upstream_status(vendor: Vendor, status: u16) -> u16 {
    match (vendor, status) {
        (Vendor::Anthropic, 529) => 503,
        (_, status) => status,
    }
}

/// What the chat use case does after a failed attempt (SPEC 5.1, 5.4, 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AfterFailure {
    pub next: Next,
    pub health: HealthEffect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Try the next candidate.
    TryNext,
    /// Give the client the upstream's answer as it is; nobody else is asked.
    Relay,
}

/// How the attempt counts for the provider's health (routing metrics and circuit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthEffect {
    /// The provider failed.
    Failure,
    /// The provider answered (a client error): it is up, so a half-open probe it held closes the
    /// circuit instead of leaving it waiting.
    ReleaseProbe,
    /// Nothing was asked of the provider.
    Nothing,
}

/// The failover policy: retryable failures move on and count against the provider; a
/// non-retryable answer is relayed, counting against the provider only when it is a 5xx.
pub fn after_failure(
    failure: &AttemptFailure,
    policy: &RetryPolicy,
    probe_held: bool,
) -> AfterFailure {
    let (next, health) = match failure {
        AttemptFailure::RateLimited { .. } => (Next::TryNext, HealthEffect::Nothing),
        failure if failure.is_retryable(policy) => (Next::TryNext, HealthEffect::Failure),
        AttemptFailure::Status { status, .. } if *status >= 500 => {
            (Next::Relay, HealthEffect::Failure)
        }
        _ if probe_held => (Next::Relay, HealthEffect::ReleaseProbe),
        _ => (Next::Relay, HealthEffect::Nothing),
    };
    AfterFailure { next, health }
}

/// What every failed attempt of one request adds up to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FailureTally {
    pub attempts: u32,
    pub last: Option<AttemptFailure>,
    only_rate_limits: bool,
    retry_after: Option<u64>,
}

/// The client-facing verdict when no candidate answered.
#[derive(Debug, Clone, PartialEq)]
pub enum AllFailed {
    /// Every failure was a 429 or a QPS limit: tell the client when to come back.
    RateLimited { retry_after: u64, message: String },
    Upstream {
        last_status: Option<u16>,
        message: String,
    },
}

impl FailureTally {
    pub fn record(&mut self, failure: AttemptFailure) {
        let is_429 = failure.status() == Some(429);
        self.only_rate_limits = is_429 && (self.attempts == 0 || self.only_rate_limits);
        let hint = match &failure {
            AttemptFailure::Status { retry_after, .. }
            | AttemptFailure::RateLimited { retry_after } => *retry_after,
            AttemptFailure::Transport { .. } => None,
        };
        if let Some(hint) = hint {
            self.retry_after = Some(self.retry_after.map_or(hint, |r| r.min(hint)));
        }
        self.attempts += 1;
        self.last = Some(failure);
    }

    pub fn verdict(&self, logical_model: &str) -> AllFailed {
        let last_status = self.last.as_ref().and_then(AttemptFailure::status);
        let mut message =
            format!("All upstream providers failed for logical model '{logical_model}'");
        if let Some(status) = last_status {
            message.push_str(&format!("; last_status={status}"));
        }
        if let Some(last) = &self.last {
            message.push_str(&format!("; last_error={}", last.describe()));
        }
        if self.only_rate_limits && self.attempts > 0 {
            // The soonest any candidate said it would accept again, at least a second.
            AllFailed::RateLimited {
                retry_after: self.retry_after.unwrap_or(1).max(1),
                message,
            }
        } else {
            AllFailed::Upstream {
                last_status,
                message,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> AttemptFailure {
        AttemptFailure::Status {
            status: code,
            body: Bytes::from_static(b"{\"error\":{\"message\":\"busy\"}}"),
            message: "busy".into(),
            retry_after: None,
        }
    }

    #[test]
    fn transport_failures_are_always_retryable_and_statuses_follow_the_policy() {
        let none = RetryPolicy::parse("none").unwrap();
        assert!(AttemptFailure::transport("reset").is_retryable(&none));
        assert!(!status(500).is_retryable(&none));
        assert!(status(503).is_retryable(&RetryPolicy::Generic));
        assert!(!status(400).is_retryable(&RetryPolicy::Generic));
    }

    #[test]
    fn a_stream_holds_preambles_and_commits_on_content_or_end() {
        let mut gate = CommitGate::new(CommitLimits::default());
        assert_eq!(
            gate.observe(StreamEventKind::Preamble, 80),
            GateDecision::Hold
        );
        assert_eq!(
            gate.observe(StreamEventKind::Content, 80),
            GateDecision::Commit
        );
        let mut gate = CommitGate::new(CommitLimits::default());
        assert_eq!(gate.observe(StreamEventKind::End, 12), GateDecision::Commit);
    }

    #[test]
    fn an_error_before_content_fails_the_attempt() {
        let mut gate = CommitGate::new(CommitLimits::default());
        gate.observe(StreamEventKind::Preamble, 10);
        assert_eq!(gate.observe(StreamEventKind::Error, 10), GateDecision::Fail);
    }

    #[test]
    fn a_long_preamble_commits_at_the_bounds() {
        let mut gate = CommitGate::new(CommitLimits {
            max_events: 3,
            max_bytes: 1000,
        });
        assert_eq!(
            gate.observe(StreamEventKind::Preamble, 1),
            GateDecision::Hold
        );
        assert_eq!(
            gate.observe(StreamEventKind::Preamble, 1),
            GateDecision::Hold
        );
        assert_eq!(
            gate.observe(StreamEventKind::Preamble, 1),
            GateDecision::Commit
        );
        let mut gate = CommitGate::new(CommitLimits {
            max_events: 100,
            max_bytes: 10,
        });
        assert_eq!(
            gate.observe(StreamEventKind::Preamble, 11),
            GateDecision::Commit
        );
    }

    #[test]
    fn all_429s_give_rate_limited_with_the_soonest_retry_after() {
        let mut tally = FailureTally::default();
        tally.record(AttemptFailure::Status {
            status: 429,
            body: Bytes::new(),
            message: String::new(),
            retry_after: Some(7),
        });
        tally.record(AttemptFailure::Status {
            status: 429,
            body: Bytes::new(),
            message: String::new(),
            retry_after: Some(3),
        });
        match tally.verdict("gpt") {
            AllFailed::RateLimited {
                retry_after,
                message,
            } => {
                assert_eq!(retry_after, 3);
                assert!(message.contains("'gpt'") && message.contains("last_status=429"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mixed_failures_give_upstream_failed_naming_the_last_error() {
        let mut tally = FailureTally::default();
        tally.record(status(429));
        tally.record(AttemptFailure::transport("connection refused"));
        match tally.verdict("gpt") {
            AllFailed::Upstream {
                last_status,
                message,
            } => {
                assert_eq!(last_status, None);
                assert!(message.contains("connection refused"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    /// One row per rule of SPEC 5.1 and 5.4 that decides what follows a failed attempt.
    #[test]
    fn the_failover_policy_table() {
        let generic = RetryPolicy::Generic;
        let none = RetryPolicy::parse("none").unwrap();
        let rate_limited = AttemptFailure::RateLimited {
            retry_after: Some(1),
        };
        use HealthEffect::*;
        use Next::*;
        let rows: [(&str, AttemptFailure, &RetryPolicy, bool, Next, HealthEffect); 9] = [
            (
                "a transport error moves on",
                AttemptFailure::transport("reset"),
                &none,
                false,
                TryNext,
                Failure,
            ),
            (
                "a retryable 5xx moves on",
                status(503),
                &generic,
                false,
                TryNext,
                Failure,
            ),
            (
                "a retryable 429 moves on",
                status(429),
                &generic,
                false,
                TryNext,
                Failure,
            ),
            (
                "a retryable status ends a probe as a failure",
                status(502),
                &generic,
                true,
                TryNext,
                Failure,
            ),
            (
                "a non-retryable 4xx is relayed",
                status(400),
                &generic,
                false,
                Relay,
                Nothing,
            ),
            (
                "a 4xx answering a probe closes the circuit",
                status(403),
                &generic,
                true,
                Relay,
                ReleaseProbe,
            ),
            (
                "a non-retryable 5xx is relayed and still counts",
                status(500),
                &none,
                false,
                Relay,
                Failure,
            ),
            (
                "a 429 not in the policy is relayed",
                status(429),
                &none,
                false,
                Relay,
                Nothing,
            ),
            (
                "a MAX_QPS hold-back moves on and asked nobody",
                rate_limited,
                &none,
                false,
                TryNext,
                Nothing,
            ),
        ];
        for (rule, failure, policy, probe, next, health) in rows {
            assert_eq!(
                after_failure(&failure, policy, probe),
                AfterFailure { next, health },
                "{rule}"
            );
        }
    }

    #[test]
    fn anthropic_overloaded_is_a_503_and_nothing_else_changes() {
        assert_eq!(upstream_status(Vendor::Anthropic, 529), 503);
        assert_eq!(upstream_status(Vendor::OpenAi, 529), 529);
        assert_eq!(upstream_status(Vendor::Gemini, 529), 529);
        assert_eq!(upstream_status(Vendor::Anthropic, 500), 500);
    }
}
