//! The chat use case: resolve the model, order the candidates, try them with failover, and hand back
//! either a whole answer or a stream committed to one upstream (SPEC 4.2, 5).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::time::{Instant, timeout_at};

use crate::domain::failover::{
    AllFailed, AttemptFailure, CommitGate, CommitLimits, FailureTally, GateDecision,
    StreamEventKind, upstream_message,
};
use crate::domain::model::LogicalModel;
use crate::domain::ports::{
    ByteStream, Clock, RandomSource, SessionStore, UpstreamChatRequest, UpstreamClient,
};
use crate::domain::provider::ProviderConfig;
use crate::domain::routing::{ScoreInputs, Scored, Strategy, failover_order, score};
use crate::domain::service::catalog::{Catalog, Resolution};
use crate::domain::session::Session;
use crate::protocol::openai::{self, ChatBody};
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
            max_response_bytes: 64 * 1024 * 1024,
        }
    }
}

pub struct ChatRequest {
    pub body: ChatBody,
    pub stream: bool,
    pub session_id: Option<String>,
}

/// Which upstream answered, after how many attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct ServedBy {
    pub provider_id: String,
    pub model_id: String,
    pub attempts: u32,
}

pub enum ChatReply {
    Complete {
        served: ServedBy,
        status: u16,
        body: Bytes,
    },
    /// Whole SSE events, ready to write; an upstream failure after commit ends with an error event.
    Stream {
        served: ServedBy,
        events: BoxStream<'static, Bytes>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatError {
    ModelNotFound(String),
    ModelDisabled(String),
    NoCandidates(String),
    /// A non-retryable upstream error, relayed with the upstream's own status.
    UpstreamRejected {
        served: ServedBy,
        status: u16,
        body: Bytes,
    },
    AllFailed {
        attempts: u32,
        verdict: AllFailed,
    },
}

pub struct ChatService {
    catalog: Arc<Catalog>,
    sessions: Arc<dyn SessionStore>,
    upstream: Arc<dyn UpstreamClient>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    settings: ChatSettings,
}

impl ChatService {
    pub fn new(
        catalog: Arc<Catalog>,
        sessions: Arc<dyn SessionStore>,
        upstream: Arc<dyn UpstreamClient>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
        settings: ChatSettings,
    ) -> Self {
        ChatService {
            catalog,
            sessions,
            upstream,
            clock,
            random,
            settings,
        }
    }

    pub async fn chat(&self, request: ChatRequest) -> Result<ChatReply, ChatError> {
        let requested = request.body.model().to_string();
        let logical = match self.catalog.resolve(&requested).await {
            Resolution::Found(model) => model,
            Resolution::Disabled(id) => return Err(ChatError::ModelDisabled(id)),
            Resolution::NotFound => return Err(ChatError::ModelNotFound(requested)),
        };
        let candidates = self.candidates(&logical);
        if candidates.is_empty() {
            return Err(ChatError::NoCandidates(logical.logical_id));
        }
        let session = match &request.session_id {
            Some(id) => self.sessions.get(id).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "session store unreadable; routing without stickiness");
                None
            }),
            None => None,
        };
        let sticky = session
            .as_ref()
            .and_then(|s| s.sticky_for(&logical.logical_id));
        let order = failover_order(candidates, sticky, self.random.unit());

        let mut tally = FailureTally::default();
        for candidate in order {
            let Some(provider) = self
                .catalog
                .providers()
                .get(&candidate.upstream.provider_id)
                .cloned()
            else {
                continue;
            };
            let model_id = candidate.upstream.model_id.clone();
            let upstream_request = UpstreamChatRequest {
                model_id: model_id.clone(),
                body: request.body.to_upstream(&model_id),
                stream: request.stream,
            };
            let outcome = if request.stream {
                self.attempt_stream(&provider, upstream_request).await
            } else {
                self.attempt_complete(&provider, upstream_request).await
            };
            let served = ServedBy {
                provider_id: provider.id.clone(),
                model_id: model_id.clone(),
                attempts: tally.attempts + 1,
            };
            match outcome {
                Ok(reply) => {
                    self.bind_session(&request, session.clone(), &logical, &served)
                        .await;
                    return Ok(match reply {
                        Attempt::Complete { status, body } => ChatReply::Complete {
                            served,
                            status,
                            body,
                        },
                        Attempt::Stream(events) => ChatReply::Stream { served, events },
                    });
                }
                Err(failure) if !failure.is_retryable(&provider.retry) => {
                    tracing::info!(provider = %provider.id, status = ?failure.status(), "upstream refused the request; relaying");
                    let (status, body) = match failure {
                        AttemptFailure::Status { status, body, .. } => (status, body),
                        other => (502, Bytes::from(other.describe())),
                    };
                    return Err(ChatError::UpstreamRejected {
                        served,
                        status,
                        body,
                    });
                }
                Err(failure) => {
                    tracing::warn!(
                        provider = %provider.id,
                        model = %model_id,
                        status = ?failure.status(),
                        error = %failure.describe(),
                        "upstream attempt failed; trying the next candidate"
                    );
                    tally.record(failure);
                }
            }
        }
        let verdict = tally.verdict(&logical.logical_id);
        Err(ChatError::AllFailed {
            attempts: tally.attempts,
            verdict,
        })
    }

    /// The logical model's upstreams whose provider is configured, scored under the default
    /// strategy. Health inputs join the score with the routing-metrics issue (the seam is
    /// `ScoreInputs`).
    fn candidates(&self, logical: &LogicalModel) -> Vec<Scored> {
        logical
            .upstreams
            .iter()
            .filter(|upstream| {
                let known = self.catalog.providers().get(&upstream.provider_id).is_some();
                if !known {
                    tracing::warn!(provider = %upstream.provider_id, logical_model = %logical.logical_id, "upstream names an unconfigured provider; skipped");
                }
                known
            })
            .map(|upstream| Scored {
                score: score(upstream.base_weight, ScoreInputs::default(), Strategy::Balanced),
                upstream: upstream.clone(),
            })
            .collect()
    }

    async fn bind_session(
        &self,
        request: &ChatRequest,
        previous: Option<Session>,
        logical: &LogicalModel,
        served: &ServedBy,
    ) {
        let Some(conversation_id) = &request.session_id else {
            return;
        };
        let session = Session::bind(
            previous,
            conversation_id,
            &logical.logical_id,
            &served.provider_id,
            &served.model_id,
            self.clock.now(),
        );
        if let Err(e) = self.sessions.put(session, self.settings.session_ttl).await {
            tracing::warn!(error = %e, "session binding not stored");
        }
    }

    async fn open(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
        headers_by: Instant,
    ) -> Result<crate::domain::ports::UpstreamReply, AttemptFailure> {
        match timeout_at(headers_by, self.upstream.chat(provider, request)).await {
            Err(_) => Err(AttemptFailure::transport(format!(
                "no response from upstream within {}s",
                self.settings.timeouts.first_byte.as_secs_f64()
            ))),
            Ok(Err(e)) => Err(AttemptFailure::transport(e.0)),
            Ok(Ok(reply)) => Ok(reply),
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
        let reply = self
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
                body,
                retry_after: reply.retry_after,
            });
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(AttemptFailure::transport(format!(
                "upstream answered {} with a body that is not JSON",
                reply.status
            )));
        }
        Ok(Attempt::Complete {
            status: reply.status,
            body,
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
        let reply = self.open(provider, request, first_event_by).await?;
        let mut body = reply.body;
        if reply.status >= 400 {
            let bytes = read_body(body, deadline, t.idle, self.settings.max_response_bytes).await?;
            return Err(AttemptFailure::Status {
                status: reply.status,
                body: bytes,
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
                    return Err(AttemptFailure::transport(
                        "upstream ended the stream before any content",
                    ));
                }
                Ok(Some(Err(e))) => return Err(AttemptFailure::transport(e.0)),
                Ok(Some(Ok(chunk))) => chunk,
            };
            let events = framer
                .push(&chunk)
                .map_err(|e| AttemptFailure::transport(e.to_string()))?;
            for event in events {
                if committed {
                    held.push_back(event);
                    continue;
                }
                let kind = openai::classify_event(&event);
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
        let rest = RestOfStream {
            body,
            framer,
            queue: held,
            deadline,
            idle: t.idle,
            done: false,
        };
        Ok(Attempt::Stream(rest.into_stream()))
    }
}

enum Attempt {
    Complete { status: u16, body: Bytes },
    Stream(BoxStream<'static, Bytes>),
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
/// an error event if the upstream fails, goes silent or overruns its time.
struct RestOfStream {
    body: ByteStream,
    framer: SseFramer,
    queue: VecDeque<Bytes>,
    deadline: Instant,
    idle: Duration,
    done: bool,
}

impl RestOfStream {
    fn into_stream(self) -> BoxStream<'static, Bytes> {
        stream::unfold(self, |mut state| async move {
            let event = state.next_event().await?;
            Some((event, state))
        })
        .boxed()
    }

    async fn next_event(&mut self) -> Option<Bytes> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.done {
                return None;
            }
            let next_by = self.deadline.min(Instant::now() + self.idle);
            match timeout_at(next_by, self.body.next()).await {
                Err(_) => {
                    self.done = true;
                    let why = if Instant::now() >= self.deadline {
                        "upstream stream exceeded the total time allowed"
                    } else {
                        "upstream stream went silent past the idle timeout"
                    };
                    return Some(openai::error_event(None, why));
                }
                Ok(None) => {
                    self.done = true;
                    if let Some(last) = self.framer.finish() {
                        return Some(last);
                    }
                }
                Ok(Some(Err(e))) => {
                    self.done = true;
                    return Some(openai::error_event(None, &e.0));
                }
                Ok(Some(Ok(chunk))) => match self.framer.push(&chunk) {
                    Ok(events) => self.queue.extend(events),
                    Err(e) => {
                        self.done = true;
                        return Some(openai::error_event(None, &e.to_string()));
                    }
                },
            }
        }
    }
}
