//! What the chat path learns, written without making the client wait: attempt outcomes (routing
//! metrics and circuits), session bindings and context. Store failures are logged and never fail
//! the request.

use std::sync::Arc;

use serde_json::Value;

use super::api::{ChatSettings, ServedBy};
use super::background::settle_or_spawn;
use crate::domain::exchange::{Transcript, UpstreamEvent};
use crate::domain::health::{AttemptSample, BreakerPolicy, Circuit};
use crate::domain::ports::{CircuitStore, Clock, ContextStore, MetricsStore, SessionStore};
use crate::domain::session::{Session, context_entry};

/// Writes what the chat path learns: attempt outcomes (metrics and circuits), session bindings and
/// context. Store failures are logged and never fail the request.
pub(super) struct Recorder {
    pub(super) sessions: Arc<dyn SessionStore>,
    pub(super) metrics: Arc<dyn MetricsStore>,
    pub(super) circuits: Arc<dyn CircuitStore>,
    pub(super) context: Arc<dyn ContextStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) breaker: BreakerPolicy,
    pub(super) settings: ChatSettings,
}

impl Recorder {
    /// The writers below never make the answer wait (see `settle_or_spawn`).
    pub(super) fn attempt(
        self: &Arc<Self>,
        logical_id: &str,
        provider_id: &str,
        success: bool,
        latency_ms: f64,
        headers_ms: f64,
    ) {
        let (this, logical_id, provider_id) = (
            self.clone(),
            logical_id.to_string(),
            provider_id.to_string(),
        );
        settle_or_spawn(async move {
            this.write_attempt(&logical_id, &provider_id, success, latency_ms, headers_ms)
                .await
        });
    }

    pub(super) fn bind(
        self: &Arc<Self>,
        session_id: Option<&str>,
        previous: Option<Session>,
        logical_id: &str,
        served: &ServedBy,
    ) {
        let Some(conversation_id) = session_id else {
            return;
        };
        let session = Session::bind(
            previous,
            conversation_id,
            logical_id,
            &served.provider_id,
            &served.model_id,
            self.clock.now(),
        );
        let this = self.clone();
        settle_or_spawn(async move {
            if let Err(e) = this.sessions.put(session, this.settings.session_ttl).await {
                tracing::warn!(error = %e, "session binding not stored");
            }
        });
    }

    pub(super) fn remember(self: &Arc<Self>, session_id: &str, request: Value, response: Value) {
        let (this, session_id) = (self.clone(), session_id.to_string());
        settle_or_spawn(async move { this.write_context(&session_id, request, response).await });
    }

    async fn write_attempt(
        &self,
        logical_id: &str,
        provider_id: &str,
        success: bool,
        latency_ms: f64,
        headers_ms: f64,
    ) {
        let now = self.clock.now();
        let sample = AttemptSample {
            at: now,
            latency_ms,
            ttfb_ms: headers_ms,
            success,
        };
        let (metrics, circuit) = tokio::join!(
            self.metrics.record(logical_id, provider_id, sample),
            self.circuits
                .record(provider_id, success, now, self.breaker),
        );
        if let Err(e) = metrics {
            tracing::warn!(error = %e, "routing metrics not recorded");
        }
        match circuit {
            Ok(Circuit::Open { until }) if !success => {
                metrics::counter!("apiproxy_cooldowns_total", "provider" => provider_id.to_string()).increment(1);
                tracing::warn!(
                    provider = provider_id,
                    cooldown_until = until,
                    "provider is cooling down after repeated failures"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "circuit not updated"),
        }
    }

    async fn write_context(&self, session_id: &str, request: Value, response: Value) {
        let entry = context_entry(request, response, self.clock.now());
        if let Err(e) = self
            .context
            .append(
                session_id,
                entry,
                self.settings.context_max_entries,
                self.settings.context_ttl,
            )
            .await
        {
            tracing::warn!(error = %e, "session context not stored");
        }
    }
}

/// What to record when a committed stream ends.
pub(super) struct StreamEnd {
    pub(super) recorder: Arc<Recorder>,
    pub(super) logical_id: String,
    pub(super) provider_id: String,
    pub(super) latency_ms: f64,
    pub(super) headers_ms: f64,
    /// The request's metering, settled with the stream's usage when it ends (or when dropped).
    pub(super) ticket: Option<super::meter::Ticket>,
    /// The session, the request, and the transcript that rebuilds the answer.
    pub(super) context: Option<(String, Value, Box<dyn Transcript>)>,
}

impl StreamEnd {
    pub(super) fn observe(&mut self, event: &UpstreamEvent) {
        if let (Some(usage), Some(ticket)) = (&event.usage, &mut self.ticket) {
            ticket.observe(usage);
        }
        if let Some((_, _, transcript)) = &mut self.context {
            transcript.observe(event);
        }
    }

    pub(super) fn finish(self, success: bool) {
        if let Some(ticket) = self.ticket {
            ticket.finish();
        }
        let recorder = self.recorder;
        recorder.attempt(
            &self.logical_id,
            &self.provider_id,
            success,
            self.latency_ms,
            self.headers_ms,
        );
        if let Some((session_id, request, transcript)) = self.context {
            recorder.remember(&session_id, request, transcript.finish());
        }
    }
}
