//! Failover rules: what an attempt's failure was, whether the next candidate is worth trying, when a
//! stream is committed to one upstream, and what the client is told when every candidate failed.

use bytes::Bytes;

use super::provider::RetryPolicy;

/// Why one upstream attempt did not produce a usable answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptFailure {
    /// Connect failure, reset, timeout, a body cut short or unreadable: always retryable.
    Transport { message: String },
    /// The upstream answered with an error status.
    Status {
        status: u16,
        body: Bytes,
        retry_after: Option<u64>,
    },
    /// The gateway held back a QPS-limited candidate (later issue); retryable, counts as a 429.
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
            AttemptFailure::Status { status, body, .. } => {
                format!("HTTP {status}: {}", upstream_message(body))
            }
            AttemptFailure::RateLimited { .. } => "provider is at its MAX_QPS limit".into(),
        }
    }
}

/// The message inside an upstream error body: OpenAI's and Anthropic's `error.message`, Gemini's
/// `error.message`, a top-level `message`, or the text itself, cut to a readable length.
pub fn upstream_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v.pointer("/error/message")
            .or_else(|| v.get("message"))
            .or_else(|| v.get("error").filter(|e| e.is_string()))
            .and_then(|m| m.as_str())
            .map(str::to_string)
    });
    let text = from_json.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_string());
    truncate_chars(&text, 500)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
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
            retry_after: Some(7),
        });
        tally.record(AttemptFailure::Status {
            status: 429,
            body: Bytes::new(),
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

    #[test]
    fn upstream_messages_are_extracted_and_cut() {
        assert_eq!(
            upstream_message(br#"{"error":{"message":"bad key"}}"#),
            "bad key"
        );
        assert_eq!(upstream_message(b"plain text "), "plain text");
        assert!(
            upstream_message("x".repeat(2000).as_bytes())
                .chars()
                .count()
                <= 501
        );
    }
}
