//! What callers give the chat use case and get back: the request, the settings, the answer (whole
//! or streamed) and every way it can fail.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::meter::KeyRefusal;
use crate::domain::exchange::{ChatPayload, Dialect, NativeRequest};
use crate::domain::failover::{AllFailed, CommitLimits};
use crate::domain::keys::VirtualKey;
use crate::domain::metering::Allowance;
use crate::domain::names::NameError;
use crate::domain::service::routing::PlanError;
use crate::domain::watch::Watch;

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
    /// The request in the hub format.
    pub body: Arc<dyn ChatPayload>,
    pub stream: bool,
    /// The session: sticky routing to the upstream that served it last (SPEC 5.3).
    pub session_id: Option<String>,
    /// Whether the exchange also goes into the session's context history (an `X-Session-Id` the
    /// client set; an agent's own session id only keeps it on one upstream, SPEC 4.8).
    pub history: bool,
    /// The client's request in a vendor's own dialect, passed through to providers of that vendor.
    pub native: Option<Arc<NativeRequest>>,
    /// The virtual key that sent it (`None`: the gateway or admin token), whose models, limits
    /// and budget apply (SPEC 3.1).
    pub caller: Option<Arc<VirtualKey>>,
    /// The client asked for stream resume (`X-APIProxy-Stream-Resume: true`, SPEC 5.5); a logical
    /// model with `stream_resume` turns it on for every request.
    pub stream_resume: bool,
    /// Set only while the console's live feed has subscribers: the request's record, which the
    /// use case fills in (logical model, tokens, cost) and which is published once it is over.
    pub watch: Option<Arc<Watch>>,
}

impl ChatRequest {
    /// Why only providers speaking the native dialect can serve this request, if that is so.
    pub fn untranslatable(&self) -> Option<&str> {
        self.native.as_ref()?.untranslatable.as_deref()
    }
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
    /// What is left of the calling key's limits (for the `x-ratelimit-*` headers).
    pub limits: Option<Allowance>,
}

/// One piece of a committed stream, for the inbound adapter to write in the client's format.
#[derive(Debug, Clone, PartialEq)]
pub enum Relayed {
    /// A whole upstream event, verbatim.
    Event(Bytes),
    /// The upstream failed after the first byte: the stream ends here, with this reason.
    Failed(String),
    /// The stream broke and was carried on by another upstream (SPEC 5.5 stream resume): sent
    /// once, just before the end, for the client to be told (`: apiproxy-resumed ...`).
    Resumed {
        /// The provider that carried the stream to its end.
        provider_id: String,
        /// Every attempt of the request, the resumes included.
        attempts: u32,
    },
}

/// An answer in `dialect`: the hub's, or the client's own when its request was passed through.
pub enum ChatReply {
    Complete {
        served: ServedBy,
        status: u16,
        body: Bytes,
        dialect: Dialect,
    },
    Stream {
        served: ServedBy,
        events: BoxStream<'static, Relayed>,
        dialect: Dialect,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum ChatError {
    /// A name the client sent is out of bounds (SPEC 4.1).
    InvalidName(NameError),
    ModelNotFound(String),
    ModelDisabled(String),
    NoCandidates(String),
    /// A non-retryable upstream error, relayed with the upstream's own status.
    UpstreamRejected {
        served: ServedBy,
        status: u16,
        body: Bytes,
        /// The upstream's own message, read from `body`.
        message: String,
        dialect: Dialect,
    },
    AllFailed {
        attempts: u32,
        verdict: AllFailed,
    },
    /// The request exists only in a vendor's own dialect and no candidate speaks it.
    Untranslatable(String),
    /// The calling key may not make this request now (SPEC 3.1).
    KeyRefused(KeyRefusal),
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
