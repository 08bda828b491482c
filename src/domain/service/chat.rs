//! The chat use case: plan the route, try the candidates with failover (QPS limits and half-open
//! probes honoured), and hand back a whole answer or a stream committed to one upstream; record
//! every attempt's outcome for routing, and the exchange for the session's context (SPEC 4.2, 5).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use serde_json::Value;
use tokio::time::{Instant, timeout_at};

use crate::domain::failover::{
    AllFailed, AttemptFailure, CommitGate, CommitLimits, FailureTally, GateDecision,
    StreamEventKind, upstream_message,
};
use crate::domain::health::{AttemptSample, BreakerPolicy};
use crate::domain::ports::{
    ByteStream, CircuitStore, Clock, ContextStore, MetricsStore, NativeRequest, QpsLimiter,
    SessionStore, UpstreamChatRequest, UpstreamClient, UpstreamReply,
};
use crate::domain::provider::{ProviderConfig, Vendor};
use crate::domain::service::routing::{Candidate, PlanError, Planner, RouteRequest};
use crate::domain::service::telemetry;
use crate::domain::session::{Session, context_entry};
use crate::protocol::WireFormat;
use crate::protocol::openai::{ChatBody, StreamAssembler};
use crate::protocol::sse::SseFramer;

/// The upstream timeouts of SPEC 2.1 (the connect timeout lives in the HTTP client).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Until response headers, and for streams until the first event.
    pub first_byte: Duration,
    /// Silence allowed between stream chunks.
    pub idle: Duration,
    /// Everything one attempt may take.
    pub total: Duration,
}

#[derive(Debug, Clone)]
pub struct ChatSettings {
    pub timeouts: Timeouts,
    pub commit: CommitLimits,
    pub session_ttl: Duration,
    pub context_max_entries: usize,
    pub context_ttl: Duration,
    /// The largest non-streamed upstream answer the gateway will hold in memory.
    pub max_response_bytes: usize,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            timeouts: Timeouts {
                first_byte: Duration::from_secs(60),
                idle: Duration::from_secs(120),
                total: Duration::from_secs(600),
            },
            commit: CommitLimits::default(),
            session_ttl: Duration::from_secs(7200),
            context_max_entries: 50,
            context_ttl: Duration::from_secs(604_800),
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

pub struct ChatRequest {
    pub body: ChatBody,
    pub stream: bool,
    pub session_id: Option<String>,
    /// The client's request in a vendor's own format, passed through to providers of that vendor.
    pub native: Option<Arc<NativeRequest>>,
}

/// Which upstream answered, after how many attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedBy {
    pub provider_id: String,
    pub model_id: String,
    pub attempts: u32,
    /// Time spent waiting on upstreams (every attempt, until the answer or the stream's commit),
    /// so the HTTP layer can tell the gateway's own overhead apart.
    pub upstream_ms: f64,
}

/// An answer, in `format`: the hub's, or the client's own when its request was passed through.
pub enum ChatReply {
    Complete {
        served: ServedBy,
        status: u16,
        body: Bytes,
        format: WireFormat,
    },
    /// Whole SSE events, ready to write; an upstream failure after commit ends with an error event.
    Stream {
        served: ServedBy,
        events: BoxStream<'static, Bytes>,
        format: WireFormat,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatError {
    /// A name the client sent is out of bounds (SPEC 4.1).
    InvalidName(crate::domain::names::NameError),
    ModelNotFound(String),
    ModelDisabled(String),
    NoCandidates(String),
    /// A non-retryable upstream error, relayed with the upstream's own status.
    UpstreamRejected {
        served: ServedBy,
        status: u16,
        body: Bytes,
        format: WireFormat,
    },
    AllFailed {
        attempts: u32,
        verdict: AllFailed,
    },
    /// The request exists only in a vendor's own format and no candidate takes that format.
    Untranslatable(String),
}

impl From<PlanError> for ChatError {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::InvalidName(error) => ChatError::InvalidName(error),
            PlanError::NotFound(model) => ChatError::ModelNotFound(model),
            PlanError::Disabled(model) => ChatError::ModelDisabled(model),
            PlanError::NoCandidates(model) => ChatError::NoCandidates(model),
        }
    }
}

/// The stores the chat path writes to besides routing's reads.
pub struct ChatStores {
    pub sessions: Arc<dyn SessionStore>,
    pub metrics: Arc<dyn MetricsStore>,
    pub circuits: Arc<dyn CircuitStore>,
    pub qps: Arc<dyn QpsLimiter>,
    pub context: Arc<dyn ContextStore>,
}

pub struct ChatService {
    planner: Arc<Planner>,
    upstream: Arc<dyn UpstreamClient>,
    recorder: Arc<Recorder>,
    qps: Arc<dyn QpsLimiter>,
    circuits: Arc<dyn CircuitStore>,
    clock: Arc<dyn Clock>,
    settings: ChatSettings,
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
        ChatService {
            planner,
            upstream,
            recorder,
            qps: stores.qps,
            circuits: stores.circuits,
            clock,
            settings,
        }
    }

    pub async fn chat(&self, request: ChatRequest) -> Result<ChatReply, ChatError> {
        let route = RouteRequest {
            session_id: request.session_id.clone(),
            ..RouteRequest::default()
        };
        let plan = self.planner.plan(request.body.model(), &route).await?;
        let logical_id = plan.logical.logical_id.clone();
        tracing::Span::current().record("logical_model", logical_id.as_str());
        // Only a session keeps the exchange; without one the body is never re-parsed.
        let context = request
            .session_id
            .as_ref()
            .map(|id| (id.clone(), request.body.to_value()));

        let mut tally = FailureTally::default();
        let mut upstream_ms = 0.0;
        let mut queue: VecDeque<Candidate> = plan.order.into();
        let mut probe_taken: Vec<Candidate> = Vec::new();
        let untranslatable = request
            .native
            .as_ref()
            .and_then(|n| n.untranslatable.clone());
        let mut skipped_untranslatable = false;
        loop {
            let candidate = match queue.pop_front() {
                Some(candidate) => candidate,
                // Every remaining probe was someone else's: rather than refuse, try those
                // providers anyway, as for cooling providers when nothing else is left (SPEC 5.4).
                None if tally.attempts == 0 && !probe_taken.is_empty() => {
                    queue.extend(probe_taken.drain(..).map(|mut c| {
                        c.needs_probe = false;
                        c
                    }));
                    continue;
                }
                None => break,
            };
            // Content only the vendor understands goes only to providers taking it natively.
            if untranslatable.is_some() && candidate.provider.vendor != Vendor::Anthropic {
                skipped_untranslatable = true;
                continue;
            }
            match self.admit(&candidate).await {
                Admission::Go => {}
                Admission::ProbeTaken => {
                    probe_taken.push(candidate);
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
            let provider = candidate.provider.clone();
            let model_id = candidate.upstream.model_id.clone();
            let upstream_request = UpstreamChatRequest {
                model_id: model_id.clone(),
                body: request.body.to_upstream(&model_id),
                stream: request.stream,
                native: request.native.clone(),
            };
            let format = upstream_request.answer_format(provider.vendor);
            let started = Instant::now();
            let outcome = if request.stream {
                self.attempt_stream(&provider, upstream_request).await
            } else {
                self.attempt_complete(&provider, upstream_request).await
            };
            upstream_ms += ms_since(started);
            let served = ServedBy {
                provider_id: provider.id.clone(),
                model_id,
                attempts: tally.attempts + 1,
                upstream_ms,
            };
            match outcome {
                Ok(Attempt::Complete {
                    status,
                    body,
                    headers_ms,
                    usage,
                }) => {
                    let latency_ms = ms_since(started);
                    telemetry::attempt(&provider, "success");
                    telemetry::count_answer(
                        &provider.id,
                        telemetry::model_label(&logical_id, &provider.id, &served.model_id),
                        usage.as_ref(),
                    );
                    self.recorder
                        .attempt(&logical_id, &provider.id, true, latency_ms, headers_ms);
                    self.recorder
                        .bind(&request, plan.session.clone(), &logical_id, &served);
                    if let Some((session_id, request_json)) = context {
                        let response = serde_json::from_slice(&body).unwrap_or(Value::Null);
                        self.recorder.remember(&session_id, request_json, response);
                    }
                    return Ok(ChatReply::Complete {
                        served,
                        status,
                        body,
                        format,
                    });
                }
                Ok(Attempt::Stream(mut rest)) => {
                    telemetry::attempt(&provider, "success");
                    rest.usage_label = Some((
                        provider.id.clone(),
                        telemetry::model_label(&logical_id, &provider.id, &served.model_id)
                            .to_string(),
                    ));
                    self.recorder
                        .bind(&request, plan.session.clone(), &logical_id, &served);
                    rest.on_end = Some(StreamEnd {
                        recorder: self.recorder.clone(),
                        logical_id,
                        provider_id: provider.id.clone(),
                        latency_ms: ms_since(started),
                        headers_ms: rest.headers_ms,
                        // The assembler reads hub chunks; a passed-through Anthropic stream is
                        // not assembled, so it leaves no context entry.
                        context: context
                            .map(|(id, req)| (id, req, StreamAssembler::default()))
                            .filter(|_| format == WireFormat::OpenAi),
                    });
                    return Ok(ChatReply::Stream {
                        served,
                        events: rest.into_stream(),
                        format,
                    });
                }
                Err(failure) if !failure.is_retryable(&provider.retry) => {
                    // Relayed as it is, no failover; a 4xx is the client's mistake, no health penalty.
                    tracing::info!(provider = %provider.id, status = ?failure.status(), "upstream refused the request; relaying");
                    telemetry::attempt(&provider, "relayed_error");
                    if failure.status().is_some_and(|status| status >= 500) {
                        // Not worth retrying elsewhere, but still the provider failing.
                        self.recorder.attempt(
                            &logical_id,
                            &provider.id,
                            false,
                            ms_since(started),
                            0.0,
                        );
                    } else {
                        self.release_probe_if_held(&candidate).await;
                    }
                    let (status, body) = match failure {
                        AttemptFailure::Status { status, body, .. } => (status, body),
                        other => (502, Bytes::from(other.describe())),
                    };
                    if let Some((session_id, request_json)) = context {
                        let response = serde_json::from_slice(&body)
                            .unwrap_or_else(|_| Value::String(upstream_message(&body)));
                        self.recorder.remember(&session_id, request_json, response);
                    }
                    return Err(ChatError::UpstreamRejected {
                        served,
                        status,
                        body,
                        format,
                    });
                }
                Err(failure) => {
                    tracing::warn!(
                        provider = %provider.id,
                        model = %served.model_id,
                        status = ?failure.status(),
                        error = %failure.describe(),
                        "upstream attempt failed; trying the next candidate"
                    );
                    telemetry::attempt(&provider, "failed_over");
                    self.recorder
                        .attempt(&logical_id, &provider.id, false, ms_since(started), 0.0);
                    tally.record(failure);
                }
            }
        }
        if tally.attempts == 0 {
            if let (true, Some(reason)) = (skipped_untranslatable, untranslatable) {
                return Err(ChatError::Untranslatable(reason));
            }
            return Err(ChatError::NoCandidates(logical_id));
        }
        let verdict = tally.verdict(&logical_id);
        if let Some((session_id, request_json)) = context {
            let message = match &verdict {
                AllFailed::RateLimited { message, .. } | AllFailed::Upstream { message, .. } => {
                    message.clone()
                }
            };
            self.recorder.remember(
                &session_id,
                request_json,
                serde_json::json!({"error": message}),
            );
        }
        Err(ChatError::AllFailed {
            attempts: tally.attempts,
            verdict,
        })
    }

    /// Whether this candidate may be tried now: it takes a slot under its provider's MAX_QPS, then
    /// claims the half-open probe when one is due. A store error lets the request through: losing
    /// a limit for a moment is better than failing traffic.
    async fn admit(&self, candidate: &Candidate) -> Admission {
        let now = self.clock.now();
        if let Some(max_qps) = candidate.provider.max_qps {
            let admitted = self
                .qps
                .try_acquire(&candidate.provider.id, max_qps, now)
                .await
                // A limit never fails open: an unknown count is treated as a full one.
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "QPS limiter failed; treating the provider as at its limit");
                    false
                });
            if !admitted {
                return Admission::RateLimited;
            }
        }
        if candidate.needs_probe {
            let claimed = self
                .circuits
                .claim_probe(&candidate.provider.id, now, self.planner.breaker())
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "circuit store unreachable; probing anyway");
                    true
                });
            if !claimed {
                return Admission::ProbeTaken;
            }
        }
        Admission::Go
    }

    /// A probe answered with a client error says nothing about the provider's health: close the
    /// circuit on the evidence that it answered at all.
    async fn release_probe_if_held(&self, candidate: &Candidate) {
        if candidate.needs_probe {
            let _ = self
                .circuits
                .record(
                    &candidate.provider.id,
                    true,
                    self.clock.now(),
                    self.planner.breaker(),
                )
                .await;
        }
    }

    async fn open(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
        headers_by: Instant,
    ) -> Result<(UpstreamReply, f64), AttemptFailure> {
        let started = Instant::now();
        match timeout_at(headers_by, self.upstream.chat(provider, request)).await {
            Err(_) => Err(AttemptFailure::transport(format!(
                "no response from upstream within {}s",
                self.settings.timeouts.first_byte.as_secs_f64()
            ))),
            Ok(Err(e)) => Err(AttemptFailure::transport(String::from_utf8_lossy(
                &provider.redact(Bytes::from(e.0)),
            ))),
            Ok(Ok(reply)) => Ok((reply, ms_since(started))),
        }
    }

    async fn attempt_complete(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
    ) -> Result<Attempt, AttemptFailure> {
        let t = self.settings.timeouts;
        let started = Instant::now();
        let deadline = started + t.total;
        let (reply, headers_ms) = self
            .open(provider, request, deadline.min(started + t.first_byte))
            .await?;
        let body = read_body(
            reply.body,
            deadline,
            t.idle,
            self.settings.max_response_bytes,
        )
        .await?;
        if reply.status >= 400 {
            return Err(AttemptFailure::Status {
                status: reply.status,
                body: provider.redact(body),
                retry_after: reply.retry_after,
            });
        }
        let Ok(usage) = telemetry::read_answer(&body) else {
            return Err(AttemptFailure::transport(format!(
                "upstream answered {} with a body that is not JSON",
                reply.status
            )));
        };
        Ok(Attempt::Complete {
            status: reply.status,
            body,
            headers_ms,
            usage,
        })
    }

    /// Opens a stream and holds it back until the commit point; failures before it are retryable.
    async fn attempt_stream(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
    ) -> Result<Attempt, AttemptFailure> {
        let t = self.settings.timeouts;
        let started = Instant::now();
        let deadline = started + t.total;
        let first_event_by = deadline.min(started + t.first_byte);
        let (reply, headers_ms) = self.open(provider, request, first_event_by).await?;
        let format = reply.format;
        let mut body = reply.body;
        if reply.status >= 400 {
            let bytes = read_body(body, deadline, t.idle, self.settings.max_response_bytes).await?;
            return Err(AttemptFailure::Status {
                status: reply.status,
                body: provider.redact(bytes),
                retry_after: reply.retry_after,
            });
        }
        let mut framer = SseFramer::new();
        let mut gate = CommitGate::new(self.settings.commit);
        let mut held: VecDeque<Bytes> = VecDeque::new();
        let mut committed = false;
        while !committed {
            let chunk = match timeout_at(first_event_by, body.next()).await {
                Err(_) => {
                    return Err(AttemptFailure::transport(format!(
                        "no stream event from upstream within {}s",
                        t.first_byte.as_secs_f64()
                    )));
                }
                Ok(None) => {
                    // A last event without its blank line still counts.
                    let last = framer.finish();
                    let commits = last.as_ref().is_some_and(|event| {
                        matches!(
                            format.classify(event),
                            StreamEventKind::Content | StreamEventKind::End
                        )
                    });
                    if !commits {
                        return Err(AttemptFailure::transport(
                            "upstream ended the stream before any content",
                        ));
                    }
                    held.extend(last);
                    break;
                }
                Ok(Some(Err(e))) => return Err(AttemptFailure::transport(e.0)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let events = framer
                .push(&chunk)
                .map_err(|e| AttemptFailure::transport(e.to_string()))?;
            for event in events {
                if format.is_garbage(&event) {
                    continue;
                }
                if committed {
                    held.push_back(event);
                    continue;
                }
                let kind = format.classify(&event);
                match gate.observe(kind, event.len()) {
                    GateDecision::Fail => return Err(stream_error_failure(&event)),
                    GateDecision::Hold => held.push_back(event),
                    GateDecision::Commit => {
                        committed = true;
                        held.push_back(event);
                    }
                }
                if kind == StreamEventKind::End {
                    committed = true;
                }
            }
        }
        Ok(Attempt::Stream(Box::new(RestOfStream {
            body,
            framer,
            queue: held,
            deadline,
            idle: t.idle,
            done: false,
            headers_ms,
            on_end: None,
            format,
            usage_label: None,
            _open: telemetry::OpenStream::new(),
        })))
    }
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Writes what the chat path learns: attempt outcomes (metrics and circuits), session bindings and
/// context. Store failures are logged and never fail the request.
struct Recorder {
    sessions: Arc<dyn SessionStore>,
    metrics: Arc<dyn MetricsStore>,
    circuits: Arc<dyn CircuitStore>,
    context: Arc<dyn ContextStore>,
    clock: Arc<dyn Clock>,
    breaker: BreakerPolicy,
    settings: ChatSettings,
}

/// Runs bookkeeping without making the client wait: a write that completes at once (the
/// in-memory stores) is done inline, saving a task and a cross-thread wake-up per request; one
/// that would wait (a Redis round trip) continues as a background task.
fn settle_or_spawn(work: impl std::future::Future<Output = ()> + Send + 'static) {
    let mut work = Box::pin(work);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if work.as_mut().poll(&mut cx).is_pending() {
        tokio::spawn(work);
    }
}

impl Recorder {
    /// The writers below never make the answer wait (see `settle_or_spawn`).
    fn attempt(
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

    fn bind(
        self: &Arc<Self>,
        request: &ChatRequest,
        previous: Option<Session>,
        logical_id: &str,
        served: &ServedBy,
    ) {
        let Some(conversation_id) = request.session_id.clone() else {
            return;
        };
        let session = Session::bind(
            previous,
            &conversation_id,
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

    fn remember(self: &Arc<Self>, session_id: &str, request: Value, response: Value) {
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
            Ok(crate::domain::health::Circuit::Open { until }) if !success => {
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
struct StreamEnd {
    recorder: Arc<Recorder>,
    logical_id: String,
    provider_id: String,
    latency_ms: f64,
    headers_ms: f64,
    context: Option<(String, Value, StreamAssembler)>,
}

impl StreamEnd {
    fn observe(&mut self, event: &[u8]) {
        if let Some((_, _, assembler)) = &mut self.context {
            assembler.observe(event);
        }
    }

    fn finish(self, success: bool) {
        let recorder = self.recorder;
        recorder.attempt(
            &self.logical_id,
            &self.provider_id,
            success,
            self.latency_ms,
            self.headers_ms,
        );
        if let Some((session_id, request, assembler)) = self.context {
            recorder.remember(&session_id, request, assembler.finish());
        }
    }
}

enum Admission {
    Go,
    RateLimited,
    ProbeTaken,
}

enum Attempt {
    Complete {
        status: u16,
        body: Bytes,
        headers_ms: f64,
        usage: Option<telemetry::Usage>,
    },
    Stream(Box<RestOfStream>),
}

/// An error event inside a 200 stream before content: the upstream's message, as a failure.
fn stream_error_failure(event: &[u8]) -> AttemptFailure {
    let message = crate::protocol::sse::event_data(event)
        .map(|data| upstream_message(data.as_bytes()))
        .unwrap_or_default();
    AttemptFailure::transport(format!("upstream stream error: {message}"))
}

/// Reads a whole body within the attempt's deadline, idle bound and size cap.
async fn read_body(
    mut body: ByteStream,
    deadline: Instant,
    idle: Duration,
    max_bytes: usize,
) -> Result<Bytes, AttemptFailure> {
    let mut out = BytesMut::new();
    loop {
        let next_by = deadline.min(Instant::now() + idle);
        match timeout_at(next_by, body.next()).await {
            Err(_) => {
                return Err(AttemptFailure::transport(
                    "upstream stopped sending its answer (timeout)",
                ));
            }
            Ok(None) => return Ok(out.freeze()),
            Ok(Some(Err(e))) => return Err(AttemptFailure::transport(e.0)),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > max_bytes {
                    return Err(AttemptFailure::transport(format!(
                        "upstream answer is larger than {max_bytes} bytes"
                    )));
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// The committed part of a stream: what was held back, then the upstream's remaining events, and
/// an error event if the upstream fails, goes silent or overruns its time. When it ends, the
/// attempt is recorded (a client that goes away records nothing: the upstream did not fail).
struct RestOfStream {
    body: ByteStream,
    framer: SseFramer,
    queue: VecDeque<Bytes>,
    deadline: Instant,
    idle: Duration,
    done: bool,
    headers_ms: f64,
    on_end: Option<StreamEnd>,
    /// The answer's wire format, for the gateway's own error event.
    format: WireFormat,
    /// (provider, model) for token counts read from the stream's usage chunk.
    usage_label: Option<(String, String)>,
    /// Counts this stream in the open-streams gauge until it is dropped.
    _open: telemetry::OpenStream,
}

impl RestOfStream {
    fn into_stream(self) -> BoxStream<'static, Bytes> {
        stream::unfold(self, |mut state| async move {
            let event = state.next_event().await?;
            Some((event, state))
        })
        .boxed()
    }

    fn end(&mut self, success: bool) {
        self.done = true;
        if let Some(on_end) = self.on_end.take() {
            on_end.finish(success);
        }
    }

    async fn fail(&mut self, message: &str) -> Option<Bytes> {
        self.end(false);
        Some(self.format.error_event(None, message))
    }

    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                if let Some(on_end) = &mut self.on_end {
                    on_end.observe(&event);
                }
                if let Some((provider, model)) = &self.usage_label
                    && self.format == WireFormat::OpenAi
                {
                    telemetry::usage_of_chunk(provider, model, &event);
                }
                return Some(event);
            }
            if self.done {
                return None;
            }
            let next_by = self.deadline.min(Instant::now() + self.idle);
            match timeout_at(next_by, self.body.next()).await {
                Err(_) => {
                    let why = if Instant::now() >= self.deadline {
                        "upstream stream exceeded the total time allowed"
                    } else {
                        "upstream stream went silent past the idle timeout"
                    };
                    return self.fail(why).await;
                }
                Ok(None) => {
                    if let Some(last) = self.framer.finish()
                        && !self.format.is_garbage(&last)
                    {
                        self.queue.push_back(last);
                    }
                    self.end(true);
                }
                Ok(Some(Err(e))) => return self.fail(&e.0).await,
                Ok(Some(Ok(chunk))) => match self.framer.push(&chunk) {
                    Ok(events) => {
                        let format = self.format;
                        self.queue
                            .extend(events.into_iter().filter(|e| !format.is_garbage(e)));
                    }
                    Err(e) => return self.fail(&e.to_string()).await,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The chat use case against mockall fakes of every port: no sockets.

    use super::*;
    use crate::domain::model::LogicalModel;
    use crate::domain::model::PhysicalModel;
    use crate::domain::ports::{
        MockClock, MockLogicalModelStore, MockModelCacheStore, MockQpsLimiter, MockRandomSource,
        MockSessionStore, MockUpstreamClient, QpsLimiter, TransportError, UpstreamReply,
    };
    use crate::domain::provider::ProviderRegistry;
    use crate::domain::service::catalog::Catalog;
    use crate::outbound::memory::{
        MemoryCircuitStore, MemoryContextStore, MemoryMetricsStore, MemoryQpsLimiter,
    };

    fn provider(id: &str) -> ProviderConfig {
        crate::domain::provider::provider_for_tests(id)
    }

    fn physical(provider_id: &str) -> PhysicalModel {
        PhysicalModel {
            provider_id: provider_id.into(),
            model_id: format!("{provider_id}-model"),
            endpoint: String::new(),
            base_weight: 1.0,
            region: None,
            max_qps: None,
            meta_hash: None,
            updated_at: 0.0,
        }
    }

    fn reply(status: u16, chunks: Vec<Result<&'static [u8], &'static str>>) -> UpstreamReply {
        let body = stream::iter(chunks.into_iter().map(|c| {
            c.map(Bytes::from_static)
                .map_err(|e| TransportError(e.into()))
        }))
        .boxed();
        UpstreamReply {
            status,
            retry_after: None,
            body,
            format: WireFormat::OpenAi,
        }
    }

    const ROLE: &[u8] = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n";
    const TEXT_A: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"from a\"}}]}\n\n";
    const TEXT_B: &[u8] = b"data: {\"choices\":[{\"delta\":{\"content\":\"from b\"}}]}\n\n";
    const DONE: &[u8] = b"data: [DONE]\n\n";

    const POLICY: BreakerPolicy = BreakerPolicy {
        failure_threshold: 3,
        cooldown_seconds: 30.0,
        probe_lease_seconds: 600.0,
    };

    /// The chat service over fakes: the given upstream, sessions and logical store, a fixed clock
    /// and a pick that is always the first candidate; health stores are the in-memory adapters.
    fn build(
        upstream: MockUpstreamClient,
        sessions: MockSessionStore,
        logical: MockLogicalModelStore,
        providers: Vec<ProviderConfig>,
        cache: MockModelCacheStore,
    ) -> ChatService {
        let qps = Arc::new(MemoryQpsLimiter::default());
        build_with_qps(upstream, sessions, logical, providers, cache, qps)
    }

    fn build_with_qps(
        upstream: MockUpstreamClient,
        sessions: MockSessionStore,
        logical: MockLogicalModelStore,
        providers: Vec<ProviderConfig>,
        cache: MockModelCacheStore,
        qps: Arc<dyn QpsLimiter>,
    ) -> ChatService {
        let mut clock = MockClock::new();
        clock.expect_now().return_const(1000.0);
        let clock: Arc<dyn Clock> = Arc::new(clock);
        let mut random = MockRandomSource::new();
        random.expect_unit().return_const(0.0);
        let upstream: Arc<dyn UpstreamClient> = Arc::new(upstream);
        let sessions: Arc<dyn SessionStore> = Arc::new(sessions);
        let metrics = Arc::new(MemoryMetricsStore::default());
        let circuits = Arc::new(MemoryCircuitStore::default());
        let catalog = Catalog::new(
            Arc::new(ProviderRegistry::new(providers)),
            Arc::new(logical),
            Arc::new(cache),
            upstream.clone(),
            clock.clone(),
            Duration::from_secs(300),
        );
        let planner = Planner::new(
            Arc::new(catalog),
            sessions.clone(),
            metrics.clone(),
            circuits.clone(),
            clock.clone(),
            Arc::new(random),
            POLICY,
        );
        let stores = ChatStores {
            sessions,
            metrics,
            circuits,
            qps,
            context: Arc::new(MemoryContextStore::new(clock.clone(), 1000)),
        };
        ChatService::new(
            Arc::new(planner),
            upstream,
            stores,
            clock,
            ChatSettings::default(),
        )
    }

    /// A service over providers `a` and `b` and a logical model `m` whose pick is always `a` first.
    fn service(upstream: MockUpstreamClient, sessions: MockSessionStore) -> ChatService {
        let mut logical = MockLogicalModelStore::new();
        logical.expect_get().returning(|id| {
            Ok((id == "m")
                .then(|| LogicalModel::dynamic("m", vec![physical("a"), physical("b")], 0.0)))
        });
        build(
            upstream,
            sessions,
            logical,
            vec![provider("a"), provider("b")],
            MockModelCacheStore::new(),
        )
    }

    fn request(stream: bool, session_id: Option<&str>) -> ChatRequest {
        let body = ChatBody::parse(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#)
            .unwrap();
        ChatRequest {
            body,
            stream,
            session_id: session_id.map(str::to_string),
            native: None,
        }
    }

    fn expect_chat(
        upstream: &mut MockUpstreamClient,
        provider_id: &'static str,
        times: usize,
        make: fn() -> UpstreamReply,
    ) {
        upstream
            .expect_chat()
            .withf(move |p, _| p.id == provider_id)
            .times(times)
            .returning(move |_, _| Ok(make()));
    }

    /// Lets the background bookkeeping tasks run (the test runtime has one thread).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    async fn collect(events: BoxStream<'static, Bytes>) -> String {
        let all: Vec<Bytes> = events.collect().await;
        all.iter()
            .map(|b| String::from_utf8_lossy(b).to_string())
            .collect()
    }

    #[tokio::test]
    async fn a_healthy_first_candidate_answers_and_the_model_is_rewritten() {
        let mut upstream = MockUpstreamClient::new();
        upstream
            .expect_chat()
            .withf(|p, r| {
                p.id == "a"
                    && r.model_id == "a-model"
                    && std::str::from_utf8(&r.body)
                        .unwrap()
                        .contains("\"model\":\"a-model\"")
            })
            .times(1)
            .returning(|_, _| Ok(reply(200, vec![Ok(b"{\"ok\":true}")])));
        let outcome = service(upstream, MockSessionStore::new())
            .chat(request(false, None))
            .await;
        match outcome {
            Ok(ChatReply::Complete {
                served,
                status,
                body,
                ..
            }) => {
                assert_eq!(
                    (served.provider_id.as_str(), served.attempts, status),
                    ("a", 1, 200)
                );
                assert_eq!(&body[..], b"{\"ok\":true}");
            }
            _ => panic!("expected a complete answer"),
        }
    }

    #[tokio::test]
    async fn a_retryable_status_fails_over_and_rebinds_the_session() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || {
            reply(503, vec![Ok(b"{\"error\":{\"message\":\"busy\"}}")])
        });
        expect_chat(&mut upstream, "b", 1, || {
            reply(200, vec![Ok(b"{\"ok\":1}")])
        });
        let mut sessions = MockSessionStore::new();
        sessions.expect_get().times(1).returning(|_| Ok(None));
        sessions
            .expect_put()
            .withf(|s, ttl| {
                s.provider_id == "b"
                    && s.model_id == "b-model"
                    && s.conversation_id == "c1"
                    && *ttl == Duration::from_secs(7200)
            })
            .times(1)
            .returning(|_, _| Ok(()));
        let svc = service(upstream, sessions);
        let outcome = svc.chat(request(false, Some("c1"))).await;
        match outcome {
            Ok(ChatReply::Complete { served, .. }) => {
                assert_eq!((served.provider_id.as_str(), served.attempts), ("b", 2))
            }
            _ => panic!("expected b to answer"),
        }
        // The binding is written in the background; the mock checks its one call when dropped.
        settle().await;
        drop(svc);
    }

    #[tokio::test]
    async fn a_transport_error_and_a_200_that_is_not_json_both_fail_over() {
        // Each failure on the first candidate; the second answers, so the failover itself is seen.
        let failures: [fn(&mut MockUpstreamClient); 2] = [
            |upstream| {
                upstream
                    .expect_chat()
                    .withf(|p, _| p.id == "a")
                    .times(1)
                    .returning(|_, _| Err(TransportError("connection refused".into())));
            },
            |upstream| expect_chat(upstream, "a", 1, || reply(200, vec![Ok(b"<html>")])),
        ];
        for (case, fail_a) in failures.into_iter().enumerate() {
            let mut upstream = MockUpstreamClient::new();
            fail_a(&mut upstream);
            expect_chat(&mut upstream, "b", 1, || reply(200, vec![Ok(b"{}")]));
            match service(upstream, MockSessionStore::new())
                .chat(request(false, None))
                .await
            {
                Ok(ChatReply::Complete { served, .. }) => assert_eq!(
                    (served.provider_id.as_str(), served.attempts),
                    ("b", 2),
                    "case {case}"
                ),
                _ => panic!("case {case}: expected b to answer after a failed"),
            }
        }
        // A non-JSON 200 from the last candidate too: every candidate failed, and the message
        // says why.
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || reply(200, vec![Ok(b"<html>")]));
        expect_chat(&mut upstream, "b", 1, || reply(200, vec![Ok(b"<html>")]));
        match service(upstream, MockSessionStore::new())
            .chat(request(false, None))
            .await
        {
            Err(ChatError::AllFailed {
                attempts,
                verdict: AllFailed::Upstream { message, .. },
            }) => {
                assert_eq!(attempts, 2);
                assert!(message.contains("not JSON"), "{message}");
            }
            _ => panic!("expected every candidate to fail"),
        }
    }

    #[tokio::test]
    async fn a_stream_that_fails_before_its_first_content_fails_over() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || {
            reply(200, vec![Ok(ROLE), Err("reset")])
        });
        expect_chat(&mut upstream, "b", 1, || {
            reply(200, vec![Ok(ROLE), Ok(TEXT_B), Ok(DONE)])
        });
        match service(upstream, MockSessionStore::new())
            .chat(request(true, None))
            .await
        {
            Ok(ChatReply::Stream { served, events, .. }) => {
                assert_eq!((served.provider_id.as_str(), served.attempts), ("b", 2));
                let text = collect(events).await;
                assert!(
                    text.contains("from b") && text.ends_with("data: [DONE]\n\n"),
                    "{text}"
                );
                assert!(!text.contains("upstream_error"));
            }
            _ => panic!("expected b's stream"),
        }
    }

    #[tokio::test]
    async fn an_error_event_before_content_fails_over_too() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || {
            reply(
                200,
                vec![Ok(b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n")],
            )
        });
        expect_chat(&mut upstream, "b", 1, || {
            reply(200, vec![Ok(TEXT_B), Ok(DONE)])
        });
        let outcome = service(upstream, MockSessionStore::new())
            .chat(request(true, None))
            .await;
        assert!(
            matches!(outcome, Ok(ChatReply::Stream { served, .. }) if served.provider_id == "b")
        );
    }

    #[tokio::test]
    async fn a_failure_after_content_ends_with_an_error_event_and_no_second_attempt() {
        let mut upstream = MockUpstreamClient::new();
        // Events split across chunks arrive whole; then the upstream dies.
        expect_chat(&mut upstream, "a", 1, || {
            reply(
                200,
                vec![
                    Ok(ROLE),
                    Ok(&TEXT_A[..20]),
                    Ok(&TEXT_A[20..]),
                    Err("reset by peer"),
                ],
            )
        });
        expect_chat(&mut upstream, "b", 0, || reply(200, vec![]));
        match service(upstream, MockSessionStore::new())
            .chat(request(true, None))
            .await
        {
            Ok(ChatReply::Stream { served, events, .. }) => {
                assert_eq!(served.provider_id, "a");
                let text = collect(events).await;
                let expected_start = format!(
                    "{}{}",
                    String::from_utf8_lossy(ROLE),
                    String::from_utf8_lossy(TEXT_A)
                );
                assert!(text.starts_with(&expected_start), "{text}");
                let last = text.trim_end().rsplit("data: ").next().unwrap_or_default();
                let error: serde_json::Value =
                    serde_json::from_str(last).expect("last event is JSON");
                assert_eq!(error["error"]["type"], "upstream_error");
                assert_eq!(error["error"]["message"], "reset by peer");
                assert!(error["error"]["status"].is_null());
                assert!(!text.contains("[DONE]"));
            }
            _ => panic!("expected a's stream"),
        }
    }

    #[tokio::test]
    async fn a_non_retryable_4xx_is_relayed_without_trying_anyone_else() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || {
            reply(
                400,
                vec![Ok(b"{\"error\":{\"message\":\"bad temperature\"}}")],
            )
        });
        expect_chat(&mut upstream, "b", 0, || reply(200, vec![]));
        match service(upstream, MockSessionStore::new())
            .chat(request(true, None))
            .await
        {
            Err(ChatError::UpstreamRejected {
                status,
                body,
                served,
                ..
            }) => {
                assert_eq!((status, served.provider_id.as_str()), (400, "a"));
                assert!(String::from_utf8_lossy(&body).contains("bad temperature"));
            }
            _ => panic!("expected the 400 to be relayed"),
        }
    }

    #[tokio::test]
    async fn when_everyone_fails_the_verdict_names_the_model_and_last_error() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || {
            reply(500, vec![Ok(b"{\"error\":{\"message\":\"a down\"}}")])
        });
        expect_chat(&mut upstream, "b", 1, || {
            reply(502, vec![Ok(b"{\"error\":{\"message\":\"b down\"}}")])
        });
        match service(upstream, MockSessionStore::new())
            .chat(request(false, None))
            .await
        {
            Err(ChatError::AllFailed {
                attempts: 2,
                verdict:
                    AllFailed::Upstream {
                        last_status,
                        message,
                    },
            }) => {
                assert_eq!(last_status, Some(502));
                assert!(
                    message.contains("'m'") && message.contains("b down"),
                    "{message}"
                );
            }
            _ => panic!("expected all to fail"),
        }
    }

    #[tokio::test]
    async fn when_everyone_answers_429_the_client_gets_rate_limited() {
        let mut upstream = MockUpstreamClient::new();
        upstream.expect_chat().times(2).returning(|_, _| {
            let mut r = reply(429, vec![Ok(b"{}")]);
            r.retry_after = Some(4);
            Ok(r)
        });
        let outcome = service(upstream, MockSessionStore::new())
            .chat(request(false, None))
            .await;
        assert!(matches!(
            outcome,
            Err(ChatError::AllFailed {
                verdict: AllFailed::RateLimited { retry_after: 4, .. },
                ..
            })
        ));
    }

    #[tokio::test]
    async fn an_unknown_model_is_not_found_without_calling_upstreams_for_chat() {
        let mut upstream = MockUpstreamClient::new();
        upstream.expect_chat().times(0);
        upstream.expect_list_models().returning(|_| Ok(Vec::new()));
        let mut logical = MockLogicalModelStore::new();
        logical.expect_get().returning(|_| Ok(None));
        let mut cache = MockModelCacheStore::new();
        cache.expect_provider_models().returning(|_| Ok(None));
        cache
            .expect_put_provider_models()
            .returning(|_, _, _| Ok(()));
        let svc = build(
            upstream,
            MockSessionStore::new(),
            logical,
            vec![provider("a")],
            cache,
        );
        let body = ChatBody::parse(br#"{"model":"nope","messages":[]}"#).unwrap();
        let outcome = svc
            .chat(ChatRequest {
                body,
                stream: false,
                session_id: None,
                native: None,
            })
            .await;
        assert_eq!(outcome.err(), Some(ChatError::ModelNotFound("nope".into())));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_silent_past_the_first_byte_timeout_fails_over() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || UpstreamReply {
            status: 200,
            retry_after: None,
            body: stream::pending().boxed(),
            format: WireFormat::OpenAi,
        });
        expect_chat(&mut upstream, "b", 1, || {
            reply(200, vec![Ok(TEXT_B), Ok(DONE)])
        });
        let outcome = service(upstream, MockSessionStore::new())
            .chat(request(true, None))
            .await;
        assert!(
            matches!(outcome, Ok(ChatReply::Stream { served, .. }) if served.provider_id == "b" && served.attempts == 2)
        );
    }

    #[tokio::test]
    async fn a_provider_failing_past_the_threshold_is_passed_over_during_its_cooldown() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 3, || reply(500, vec![Ok(b"{}")]));
        expect_chat(&mut upstream, "b", 5, || {
            reply(200, vec![Ok(b"{\"ok\":1}")])
        });
        let svc = service(upstream, MockSessionStore::new());
        for expected_attempts in [2, 2, 2, 1, 1] {
            settle().await;
            match svc.chat(request(false, None)).await {
                Ok(ChatReply::Complete { served, .. }) => {
                    assert_eq!(
                        (served.provider_id.as_str(), served.attempts),
                        ("b", expected_attempts)
                    );
                }
                _ => panic!("b should answer"),
            }
        }
    }

    #[tokio::test]
    async fn a_provider_at_its_max_qps_is_passed_over_and_all_limited_is_429() {
        let mut limited = provider("a");
        limited.max_qps = Some(2);
        let mut logical = MockLogicalModelStore::new();
        logical
            .expect_get()
            .returning(|_| Ok(Some(LogicalModel::dynamic("m", vec![physical("a")], 0.0))));
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 2, || reply(200, vec![Ok(b"{}")]));
        let svc = build(
            upstream,
            MockSessionStore::new(),
            logical,
            vec![limited],
            MockModelCacheStore::new(),
        );
        for _ in 0..2 {
            assert!(svc.chat(request(false, None)).await.is_ok());
        }
        // The clock stands still: the third request is in the same second.
        match svc.chat(request(false, None)).await {
            Err(ChatError::AllFailed {
                verdict:
                    AllFailed::RateLimited {
                        retry_after,
                        message,
                    },
                ..
            }) => {
                assert_eq!(retry_after, 1);
                assert!(message.contains("MAX_QPS"), "{message}");
            }
            _ => panic!("expected 429"),
        }
    }

    #[tokio::test]
    async fn a_failing_qps_limiter_limits_rather_than_letting_everything_through() {
        let mut limited = provider("a");
        limited.max_qps = Some(1000);
        let mut logical = MockLogicalModelStore::new();
        logical
            .expect_get()
            .returning(|_| Ok(Some(LogicalModel::dynamic("m", vec![physical("a")], 0.0))));
        let mut qps = MockQpsLimiter::new();
        qps.expect_try_acquire()
            .returning(|_, _, _| Err(crate::domain::ports::StoreError("down".into())));
        let svc = build_with_qps(
            MockUpstreamClient::new(),
            MockSessionStore::new(),
            logical,
            vec![limited],
            MockModelCacheStore::new(),
            Arc::new(qps),
        );
        match svc.chat(request(false, None)).await {
            Err(ChatError::AllFailed {
                verdict: AllFailed::RateLimited { .. },
                ..
            }) => {}
            Err(other) => panic!("expected 429, got {other:?}"),
            Ok(_) => panic!("expected 429, got an answer"),
        }
    }

    #[tokio::test]
    async fn a_model_name_out_of_bounds_is_refused_before_any_store_or_upstream() {
        let svc = build(
            MockUpstreamClient::new(),
            MockSessionStore::new(),
            MockLogicalModelStore::new(),
            vec![provider("a")],
            MockModelCacheStore::new(),
        );
        let mut request = request(false, None);
        request.body = ChatBody::parse(
            br#"{"model":"a/../../admin?x","messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        match svc.chat(request).await {
            Err(ChatError::InvalidName(error)) => assert_eq!(error.field, "model"),
            Err(other) => panic!("expected InvalidName, got {other:?}"),
            Ok(_) => panic!("expected InvalidName, got an answer"),
        }
    }

    #[tokio::test]
    async fn the_session_context_keeps_the_assembled_stream() {
        let mut upstream = MockUpstreamClient::new();
        expect_chat(&mut upstream, "a", 1, || {
            reply(200, vec![Ok(ROLE), Ok(TEXT_A), Ok(DONE)])
        });
        let mut sessions = MockSessionStore::new();
        sessions.expect_get().returning(|_| Ok(None));
        sessions.expect_put().times(1).returning(|_, _| Ok(()));
        let svc = service(upstream, sessions);
        let Ok(ChatReply::Stream { events, .. }) = svc.chat(request(true, Some("s"))).await else {
            panic!("expected a stream")
        };
        let _ = collect(events).await;
        settle().await;
        let history = svc.recorder.context.history("s").await.unwrap();
        assert_eq!(history.len(), 1);
        let entry: serde_json::Value = serde_json::from_str(&history[0]).unwrap();
        assert_eq!(entry["response"]["message"]["content"], "from a");
        assert_eq!(entry["request"]["messages"][0]["content"], "hi");
    }
}
