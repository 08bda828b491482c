//! The chat use case (SPEC 4.2, 5): plan the route, try the candidates in order (QPS limits and
//! half-open probes honoured) until one answers or the failover policy says to relay, and hand back
//! a whole answer or a stream committed to one upstream.
//!
//! The concerns live in sibling files: `attempt` (one attempt under its timeouts, the commit
//! point), `admission` (MAX_QPS and probes, per candidate), `relay` (the committed stream),
//! `resume` (carrying a broken stream on, opt-in),
//! `recorder` (what is written afterwards), `api` (the request, answer and error types), `count`
//! (token counting by the vendors that offer it).

mod admission;
mod api;
mod attempt;
mod background;
mod count;
mod meter;
mod recorder;
mod relay;
mod resume;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::Value;
use tokio::time::Instant;

use admission::{Admission, admit_candidate};
pub use api::{ChatError, ChatReply, ChatRequest, ChatSettings, Relayed, ServedBy, Timeouts};
use attempt::{Attempt, ms_since};
pub use meter::{KeyRefusal, Meter, Ticket};
use recorder::{Recorder, StreamEnd};

use crate::domain::exchange::{Dialect, UpstreamChatRequest};
use crate::domain::failover::{
    AllFailed, AttemptFailure, FailureTally, HealthEffect, Next, after_failure,
};
use crate::domain::metering::Estimate;
use crate::domain::ports::{
    CircuitStore, Clock, ContextStore, KeyLedger, MetricsStore, QpsLimiter, SessionStore,
    UpstreamClient, UsageStore,
};
use crate::domain::service::routing::{Candidate, Planner, RouteRequest};
use crate::domain::service::telemetry;
use crate::domain::session::Session;
use crate::domain::usage::Price;

/// The stores the chat path writes to besides routing's reads.
pub struct ChatStores {
    pub sessions: Arc<dyn SessionStore>,
    pub metrics: Arc<dyn MetricsStore>,
    pub circuits: Arc<dyn CircuitStore>,
    pub qps: Arc<dyn QpsLimiter>,
    pub context: Arc<dyn ContextStore>,
    pub ledger: Arc<dyn KeyLedger>,
    pub usage: Arc<dyn UsageStore>,
}

pub struct ChatService {
    planner: Arc<Planner>,
    upstream: Arc<dyn UpstreamClient>,
    recorder: Arc<Recorder>,
    meter: Arc<Meter>,
    qps: Arc<dyn QpsLimiter>,
    circuits: Arc<dyn CircuitStore>,
    clock: Arc<dyn Clock>,
    settings: ChatSettings,
}

/// One request's way through the candidates: what the answer needs to be recorded.
struct Exchange<'a> {
    request: &'a ChatRequest,
    logical_id: String,
    previous_session: Option<Session>,
    /// The session and the request as JSON, when the exchange goes into a context history.
    context: Option<(String, Value)>,
    /// A stream that breaks after the commit is carried on by the next candidate (SPEC 5.5).
    resume: bool,
}

impl ChatService {
    pub fn new(
        planner: Arc<Planner>,
        upstream: Arc<dyn UpstreamClient>,
        stores: ChatStores,
        clock: Arc<dyn Clock>,
        settings: ChatSettings,
    ) -> Self {
        let recorder = Arc::new(Recorder {
            sessions: stores.sessions,
            metrics: stores.metrics,
            circuits: stores.circuits.clone(),
            context: stores.context,
            clock: clock.clone(),
            breaker: planner.breaker(),
            settings: settings.clone(),
        });
        let meter = Arc::new(Meter {
            ledger: stores.ledger,
            usage: stores.usage,
            clock: clock.clone(),
        });
        ChatService {
            planner,
            upstream,
            recorder,
            meter,
            qps: stores.qps,
            circuits: stores.circuits,
            clock,
            settings,
        }
    }

    pub async fn chat(&self, mut request: ChatRequest) -> Result<ChatReply, ChatError> {
        // Watched (rare): the record learns the model asked for, then the one routed to.
        let watch = request.watch.take();
        if let Some(watch) = &watch {
            watch.routed(request.body.model(), request.stream);
        }
        let route = RouteRequest {
            session_id: request.session_id.clone(),
            ..RouteRequest::default()
        };
        if let Some(key) = &request.caller
            && !key.allows_model(request.body.model())
        {
            let refusal = KeyRefusal::ModelNotAllowed(request.body.model().to_string());
            return Err(ChatError::KeyRefused(refusal));
        }
        let plan = self.planner.plan(request.body.model(), &route).await?;
        let resume = request.stream && (request.stream_resume || plan.logical.stream_resume);
        let estimate = Estimate::of(request.body.byte_len(), request.body.max_output_tokens());
        // Only a budget needs the reservation's price: the common request skips the candidates.
        let worst = (request.caller.as_ref())
            .filter(|key| key.budget_usd.is_some())
            .and_then(|_| worst_price(&plan.order, estimate));
        let mut ticket = self
            .meter
            .admit(
                request.caller.clone(),
                &plan.logical.logical_id,
                estimate,
                worst,
            )
            .await
            .map_err(ChatError::KeyRefused)?;
        if let Some(watch) = watch {
            watch.routed(&plan.logical.logical_id, request.stream);
            // The ticket settles when the answer is complete or the stream ends: the record
            // gets its tokens and cost then.
            ticket.watched_by(watch);
        }
        let exchange = Exchange {
            request: &request,
            logical_id: plan.logical.logical_id.clone(),
            previous_session: plan.session.clone(),
            // Only a session keeps the exchange; without one the body is never re-parsed.
            context: (request.session_id.clone())
                .filter(|_| request.history)
                .map(|id| (id, request.body.to_json())),
            resume,
        };
        tracing::Span::current().record("logical_model", exchange.logical_id.as_str());

        let mut tally = FailureTally::default();
        let mut upstream_ms = 0.0;
        let mut candidates = Candidates::new(plan.order);
        let mut skipped_for_dialect = false;
        while let Some(candidate) = candidates.next(tally.attempts) {
            // Content only a vendor's own dialect can carry goes only to providers speaking it.
            if let Some(native) = request
                .native
                .as_ref()
                .filter(|n| n.untranslatable.is_some())
                && !candidate.provider.speaks(native.dialect)
            {
                skipped_for_dialect = true;
                continue;
            }
            match self.admit(&candidate).await {
                Admission::Go => {}
                Admission::ProbeTaken => {
                    candidates.probe_taken(candidate);
                    continue;
                }
                Admission::RateLimited => {
                    telemetry::attempt(&candidate.provider, "qps_limited");
                    tally.record(AttemptFailure::RateLimited {
                        retry_after: Some(1),
                    });
                    continue;
                }
            }
            let upstream_request = upstream_request(&request, &candidate);
            let dialect = upstream_request.dialect;
            let provider = &candidate.provider;
            let started = Instant::now();
            let outcome =
                attempt::run(&*self.upstream, provider, upstream_request, &self.settings).await;
            upstream_ms += ms_since(started);
            let served = ServedBy {
                provider_id: provider.id.clone(),
                model_id: candidate.upstream.model_id.clone(),
                attempts: tally.attempts + 1,
                upstream_ms,
                limits: ticket.allowance,
            };
            let failure = match outcome {
                Ok(attempt) => {
                    telemetry::attempt(provider, "success");
                    let model_label = telemetry::model_label(
                        &exchange.logical_id,
                        &provider.id,
                        &served.model_id,
                    );
                    ticket.served_by(
                        &provider.id,
                        model_label,
                        provider.price_of(&candidate.upstream),
                    );
                    let resume = match &attempt {
                        Attempt::Stream { .. } if exchange.resume => {
                            self.resume_for(&exchange, dialect, &served, &mut candidates)
                        }
                        _ => None,
                    };
                    let reply =
                        self.answered(&exchange, attempt, served, dialect, started, ticket, resume);
                    return Ok(reply);
                }
                Err(failure) => failure,
            };
            let verdict = after_failure(&failure, &provider.retry, candidate.needs_probe);
            match verdict.health {
                HealthEffect::Failure => self.recorder.attempt(
                    &exchange.logical_id,
                    &provider.id,
                    false,
                    ms_since(started),
                    0.0,
                ),
                HealthEffect::ReleaseProbe => self.release_probe(&candidate).await,
                HealthEffect::Nothing => {}
            }
            if verdict.next == Next::Relay {
                tracing::info!(provider = %provider.id, status = ?failure.status(), "upstream refused the request; relaying");
                telemetry::attempt(provider, "relayed_error");
                return Err(self.relayed(&exchange, failure, served, dialect));
            }
            tracing::warn!(
                provider = %provider.id,
                model = %served.model_id,
                status = ?failure.status(),
                error = %failure.describe(),
                "upstream attempt failed; trying the next candidate"
            );
            telemetry::attempt(provider, "failed_over");
            tally.record(failure);
        }
        Err(self.nobody_answered(exchange, tally, skipped_for_dialect))
    }

    /// Records a successful attempt and turns it into the reply.
    #[allow(clippy::too_many_arguments)]
    fn answered(
        &self,
        exchange: &Exchange<'_>,
        attempt: Attempt,
        served: ServedBy,
        dialect: Dialect,
        started: Instant,
        mut ticket: Ticket,
        resume: Option<resume::Resume>,
    ) -> ChatReply {
        let provider_id = served.provider_id.clone();
        let logical_id = &exchange.logical_id;
        let model_label = telemetry::model_label(logical_id, &provider_id, &served.model_id);
        let session_id = exchange.request.session_id.as_deref();
        self.recorder.bind(
            session_id,
            exchange.previous_session.clone(),
            logical_id,
            &served,
        );
        match attempt {
            Attempt::Complete {
                status,
                answer,
                headers_ms,
            } => {
                telemetry::count_answer(&provider_id, model_label, answer.usage.as_ref());
                if let Some(usage) = &answer.usage {
                    ticket.observe(usage);
                }
                ticket.finish();
                self.recorder.attempt(
                    logical_id,
                    &provider_id,
                    true,
                    ms_since(started),
                    headers_ms,
                );
                if let Some((session_id, request_json)) = exchange.context.clone() {
                    let response = serde_json::from_slice(&answer.bytes).unwrap_or(Value::Null);
                    self.recorder.remember(&session_id, request_json, response);
                }
                ChatReply::Complete {
                    served,
                    status,
                    body: answer.bytes,
                    dialect,
                }
            }
            Attempt::Stream {
                rest,
                headers_ms,
                transcript,
            } => {
                let on_end = StreamEnd {
                    recorder: self.recorder.clone(),
                    logical_id: logical_id.clone(),
                    provider_id: provider_id.clone(),
                    latency_ms: ms_since(started),
                    headers_ms,
                    ticket: Some(ticket),
                    // Without a transcript (a vendor's own stream) the exchange is not recorded.
                    context: exchange
                        .context
                        .clone()
                        .zip(transcript)
                        .map(|((id, request), transcript)| (id, request, transcript)),
                };
                let label = (provider_id, model_label.to_string());
                let rest = rest.recorded(on_end, label);
                let rest = match resume {
                    Some(resume) => rest.resumable(Box::new(resume)),
                    None => rest,
                };
                ChatReply::Stream {
                    served,
                    events: rest.into_stream(),
                    dialect,
                }
            }
        }
    }

    /// What a stream that opted in needs to be carried on after a break: the follower of its
    /// dialect (`None` when that dialect's streams cannot be resumed) and the candidates not
    /// tried yet.
    fn resume_for(
        &self,
        exchange: &Exchange<'_>,
        dialect: Dialect,
        served: &ServedBy,
        candidates: &mut Candidates,
    ) -> Option<resume::Resume> {
        let request = exchange.request;
        let (payload, headers) = match dialect {
            Dialect::Hub => (&request.body, Vec::new()),
            _ => {
                let native = request.native.as_ref()?;
                (&native.body, native.headers.clone())
            }
        };
        let follower = payload.resumable(dialect)?;
        Some(resume::Resume {
            follower,
            dialect,
            headers,
            candidates: std::mem::take(&mut candidates.queue),
            services: resume::Services {
                upstream: self.upstream.clone(),
                qps: self.qps.clone(),
                circuits: self.circuits.clone(),
                clock: self.clock.clone(),
                breaker: self.planner.breaker(),
                recorder: self.recorder.clone(),
                settings: self.settings.clone(),
            },
            logical_id: exchange.logical_id.clone(),
            session: (request.session_id.clone()).map(|id| (id, exchange.previous_session.clone())),
            attempts: served.attempts,
            streaming_from: served.provider_id.clone(),
            splicing: false,
            carried_by: None,
        })
    }

    /// The upstream's own answer to a request it refused, relayed as it is.
    fn relayed(
        &self,
        exchange: &Exchange<'_>,
        failure: AttemptFailure,
        served: ServedBy,
        dialect: Dialect,
    ) -> ChatError {
        let (status, body, message) = match failure {
            AttemptFailure::Status {
                status,
                body,
                message,
                ..
            } => (status, body, message),
            other => (502, bytes::Bytes::from(other.describe()), other.describe()),
        };
        if let Some((session_id, request_json)) = exchange.context.clone() {
            let response =
                serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(message.clone()));
            self.recorder.remember(&session_id, request_json, response);
        }
        ChatError::UpstreamRejected {
            served,
            status,
            body,
            message,
            dialect,
        }
    }

    /// No candidate answered: nobody could be asked, or everyone failed.
    fn nobody_answered(
        &self,
        exchange: Exchange<'_>,
        tally: FailureTally,
        skipped_for_dialect: bool,
    ) -> ChatError {
        if tally.attempts == 0 {
            return match exchange.request.untranslatable() {
                Some(reason) if skipped_for_dialect => ChatError::Untranslatable(reason.into()),
                _ => ChatError::NoCandidates(exchange.logical_id),
            };
        }
        let verdict = tally.verdict(&exchange.logical_id);
        if let Some((session_id, request_json)) = exchange.context {
            let (AllFailed::RateLimited { message, .. } | AllFailed::Upstream { message, .. }) =
                &verdict;
            let response = serde_json::json!({ "error": message });
            self.recorder.remember(&session_id, request_json, response);
        }
        ChatError::AllFailed {
            attempts: tally.attempts,
            verdict,
        }
    }

    /// Whether this candidate may be tried now (see `admit_candidate`).
    async fn admit(&self, candidate: &Candidate) -> Admission {
        let now = self.clock.now();
        let breaker = self.planner.breaker();
        admit_candidate(&*self.qps, &*self.circuits, now, breaker, candidate).await
    }

    /// The provider answered the probe (with a client error): it is up, so its circuit closes.
    async fn release_probe(&self, candidate: &Candidate) {
        let now = self.clock.now();
        let breaker = self.planner.breaker();
        let _ = self
            .circuits
            .record(&candidate.provider.id, true, now, breaker)
            .await;
    }
}

/// The highest price the request could be charged at: its estimate at each candidate's price.
fn worst_price(order: &[Candidate], estimate: Estimate) -> Option<Price> {
    let usage = estimate.usage();
    order
        .iter()
        .filter_map(|c| c.provider.price_of(&c.upstream))
        .max_by_key(|price| price.cost(&usage))
}

/// The request as one candidate gets it: the client's own dialect when the provider speaks it
/// (only `model` rewritten), the hub's otherwise.
fn upstream_request(request: &ChatRequest, candidate: &Candidate) -> UpstreamChatRequest {
    let model_id = &candidate.upstream.model_id;
    let native = request
        .native
        .as_ref()
        .filter(|native| candidate.provider.speaks(native.dialect));
    let (body, dialect, headers) = match native {
        Some(native) => (
            native.body.with_model(model_id),
            native.dialect,
            native.headers.clone(),
        ),
        None => (request.body.with_model(model_id), Dialect::Hub, Vec::new()),
    };
    UpstreamChatRequest {
        model_id: model_id.clone(),
        body,
        dialect,
        stream: request.stream,
        headers,
        transcript: request.history && request.session_id.is_some(),
    }
}

/// The failover order, each candidate at most once, and the fallback for probes held elsewhere.
struct Candidates {
    queue: VecDeque<Candidate>,
    probe_taken: Vec<Candidate>,
}

impl Candidates {
    fn new(order: Vec<Candidate>) -> Self {
        Candidates {
            queue: order.into(),
            probe_taken: Vec::new(),
        }
    }

    /// The next candidate. When only providers whose probe someone else holds are left and
    /// nothing was tried, they are tried anyway rather than refusing, as cooling providers are
    /// when nothing else is left (SPEC 5.4).
    fn next(&mut self, attempts_so_far: u32) -> Option<Candidate> {
        if self.queue.is_empty() && attempts_so_far == 0 {
            self.queue
                .extend(self.probe_taken.drain(..).map(|mut candidate| {
                    candidate.needs_probe = false;
                    candidate
                }));
        }
        self.queue.pop_front()
    }

    fn probe_taken(&mut self, candidate: Candidate) {
        self.probe_taken.push(candidate);
    }
}
