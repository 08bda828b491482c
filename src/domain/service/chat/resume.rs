//! Stream resume (SPEC 5.5, opt-in per logical model or per request): when a committed stream
//! breaks, the answer so far is sent to the next candidate as a continuation, and its events are
//! spliced into the client's stream, which then ends with one marker saying who carried it on.
//!
//! The wire work (reading the partial answer, writing the continuation, rewriting the new events
//! to the first stream's ids) is the protocol's `ResumableStream`; this file decides who is asked
//! and records what happened. Only requests that opted in build one: the common stream reads
//! nothing.

use std::collections::VecDeque;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::admission::{Admission, admit_candidate};
use super::api::{ChatSettings, Relayed, ServedBy};
use super::attempt::{self, Attempt, ms_since};
use super::recorder::{Recorder, StreamEnd};
use super::relay::{CarryOn, TakenOver};
use crate::domain::exchange::{Dialect, ResumableStream, UpstreamChatRequest, UpstreamEvent};
use crate::domain::failover::{AttemptFailure, HealthEffect, after_failure};
use crate::domain::health::BreakerPolicy;
use crate::domain::ports::{CircuitStore, Clock, QpsLimiter, UpstreamClient};
use crate::domain::provider::Vendor;
use crate::domain::service::routing::Candidate;
use crate::domain::service::telemetry;
use crate::domain::session::Session;

/// What a resume needs of the chat service: the upstream, admission, and the recorder.
#[derive(Clone)]
pub(super) struct Services {
    pub(super) upstream: Arc<dyn UpstreamClient>,
    pub(super) qps: Arc<dyn QpsLimiter>,
    pub(super) circuits: Arc<dyn CircuitStore>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) breaker: BreakerPolicy,
    pub(super) recorder: Arc<Recorder>,
    pub(super) settings: ChatSettings,
}

/// One request's means to carry its stream on after a break.
pub(super) struct Resume {
    pub(super) follower: Box<dyn ResumableStream>,
    /// The stream's dialect: a continuation must answer in it, so only candidates speaking it
    /// are asked.
    pub(super) dialect: Dialect,
    /// The client's vendor headers, for a continuation in the vendor's own dialect.
    pub(super) headers: Vec<(String, String)>,
    /// The candidates not tried yet, in the failover order (each at most once per request).
    pub(super) candidates: VecDeque<Candidate>,
    pub(super) services: Services,
    pub(super) logical_id: String,
    /// The session to re-bind to the upstream that carries the stream on.
    pub(super) session: Option<(String, Option<Session>)>,
    /// Attempts so far, as `X-APIProxy-Attempts` counts them; resumes add theirs.
    pub(super) attempts: u32,
    /// The provider whose stream the client is getting now.
    pub(super) streaming_from: String,
    /// Events come from a continuation: they are spliced, not relayed as they are.
    pub(super) splicing: bool,
    /// The provider that carried the stream on, until the marker saying so is sent.
    pub(super) carried_by: Option<String>,
}

impl CarryOn for Resume {
    /// Read for the partial answer, or, from a continuation, spliced into the stream.
    fn relay(&mut self, event: UpstreamEvent) -> Option<UpstreamEvent> {
        if self.splicing {
            return self.follower.splice(event);
        }
        self.follower.observe(&event);
        Some(event)
    }

    /// Nothing for a stream that was not resumed.
    fn marker(&mut self) -> Option<Relayed> {
        let provider_id = self.carried_by.take()?;
        Some(Relayed::Resumed {
            provider_id,
            attempts: self.attempts,
        })
    }

    fn carry_on<'a>(&'a mut self, why: &'a str) -> BoxFuture<'a, Option<TakenOver>> {
        Box::pin(self.take_over(why))
    }
}

impl Resume {
    /// Asks the next candidates, in order, to continue the answer so far; the first whose
    /// continuation commits takes the stream over. `None` when the answer cannot be continued or
    /// nobody could: the stream then ends as it would without resume.
    async fn take_over(&mut self, why: &str) -> Option<TakenOver> {
        let broken = self.streaming_from.clone();
        while let Some(candidate) = self.candidates.pop_front() {
            // The client's stream is in one dialect: a continuation in another could not be
            // spliced into it.
            if !candidate.provider.speaks(self.dialect) {
                continue;
            }
            let provider = candidate.provider.clone();
            let model_id = candidate.upstream.model_id.clone();
            // Anthropic takes a trailing assistant message as the start of its answer.
            let prefill = provider.vendor == Vendor::Anthropic;
            let Some(body) = self.follower.continuation(&model_id, prefill) else {
                count(&broken, "not_resumable");
                tracing::info!(provider = %broken, error = %why, "stream broke; its answer so far cannot be continued (not text only)");
                return None;
            };
            let now = self.services.clock.now();
            let admission = admit_candidate(
                &*self.services.qps,
                &*self.services.circuits,
                now,
                self.services.breaker,
                &candidate,
            )
            .await;
            match admission {
                Admission::Go => {}
                Admission::RateLimited => {
                    telemetry::attempt(&provider, "qps_limited");
                    continue;
                }
                Admission::ProbeTaken => continue,
            }
            self.attempts += 1;
            let request = UpstreamChatRequest {
                model_id: model_id.clone(),
                body,
                dialect: self.dialect,
                stream: true,
                headers: self.headers.clone(),
                // The first attempt's transcript goes on recording the whole answer.
                transcript: false,
            };
            let started = Instant::now();
            let settings = &self.services.settings;
            let outcome =
                attempt::run(&*self.services.upstream, &provider, request, settings).await;
            let failure = match outcome {
                Ok(Attempt::Stream {
                    rest, headers_ms, ..
                }) => {
                    telemetry::attempt(&provider, "success");
                    count(&broken, "resumed");
                    tracing::warn!(
                        provider = %broken,
                        resumed_on = %provider.id,
                        attempts = self.attempts,
                        error = %why,
                        "stream broke after content reached the client; resumed on the next candidate"
                    );
                    self.splicing = true;
                    self.carried_by = Some(provider.id.clone());
                    self.streaming_from = provider.id.clone();
                    self.rebind(&provider.id, &model_id);
                    let label = telemetry::model_label(&self.logical_id, &provider.id, &model_id)
                        .to_string();
                    return Some(TakenOver {
                        parts: rest.into_parts(),
                        on_end: StreamEnd {
                            recorder: self.services.recorder.clone(),
                            logical_id: self.logical_id.clone(),
                            provider_id: provider.id.clone(),
                            latency_ms: ms_since(started),
                            headers_ms,
                            ticket: None,
                            context: None,
                        },
                        usage_label: (provider.id.clone(), label),
                        price: provider.price_of(&candidate.upstream),
                    });
                }
                Ok(Attempt::Complete { status, .. }) => AttemptFailure::transport(format!(
                    "upstream answered {status} without a stream"
                )),
                Err(failure) => failure,
            };
            let verdict = after_failure(&failure, &provider.retry, candidate.needs_probe);
            match verdict.health {
                HealthEffect::Failure => self.services.recorder.attempt(
                    &self.logical_id,
                    &provider.id,
                    false,
                    ms_since(started),
                    0.0,
                ),
                HealthEffect::ReleaseProbe => {
                    let breaker = self.services.breaker;
                    let _ = (self.services.circuits)
                        .record(&provider.id, true, now, breaker)
                        .await;
                }
                HealthEffect::Nothing => {}
            }
            // Mid-stream, even an upstream's refusal is only a reason to ask the next one.
            telemetry::attempt(&provider, "failed_over");
            tracing::warn!(
                provider = %provider.id,
                status = ?failure.status(),
                error = %failure.describe(),
                "stream resume attempt failed; trying the next candidate"
            );
        }
        count(&broken, "failed");
        tracing::warn!(provider = %broken, error = %why, "stream broke and no candidate could carry it on");
        None
    }

    /// The session follows the stream to the upstream that carries it on (SPEC 5.3).
    fn rebind(&mut self, provider_id: &str, model_id: &str) {
        let Some((session_id, previous)) = &self.session else {
            return;
        };
        let served = ServedBy {
            provider_id: provider_id.to_string(),
            model_id: model_id.to_string(),
            attempts: self.attempts,
            upstream_ms: 0.0,
            limits: None,
        };
        let recorder = &self.services.recorder;
        recorder.bind(
            Some(session_id),
            previous.clone(),
            &self.logical_id,
            &served,
        );
    }
}

/// `apiproxy_stream_resumes_total`: a committed stream broke with resume on; `provider` is the
/// one that broke, `outcome` what came of it (`resumed`, `failed`: nobody could carry it on,
/// `not_resumable`: the answer so far was not text only).
fn count(provider: &str, outcome: &'static str) {
    metrics::counter!(
        "apiproxy_stream_resumes_total",
        "provider" => provider.to_string(),
        "outcome" => outcome
    )
    .increment(1);
}
