//! What passes between the chat use case and an upstream, in the domain's own terms: the request
//! body as a payload whose model can be rewritten, the dialect it is written in, and the answer as
//! a whole body or as classified stream events. Adapters do the framing and parsing; the domain
//! only reads the verdicts.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::failover::StreamEventKind;
use super::provider::{ProviderConfig, Vendor};

/// A chat request body as the domain needs it: which model it names, and the same body for another
/// model. Everything else stays the adapter's business (and passes through untouched).
pub trait ChatPayload: Send + Sync + std::fmt::Debug {
    /// The model the client asked for.
    fn model(&self) -> &str;
    /// The body with only `model` replaced, ready to send.
    fn with_model(&self, model_id: &str) -> Bytes;
    /// The body as JSON, for the session's context history.
    fn to_json(&self) -> serde_json::Value;
    /// The most output tokens the request allows (`max_tokens`), for budget reservations.
    fn max_output_tokens(&self) -> Option<u64> {
        None
    }
    /// The body's size in bytes, from which input tokens are estimated before the answer says.
    fn byte_len(&self) -> usize {
        0
    }
    /// A follower of this body's answer stream, written in `dialect`, that can continue it on
    /// another upstream after a break (SPEC 5.5 stream resume); `None` when that dialect's streams
    /// cannot be resumed. Only asked for when the request opted in.
    fn resumable(&self, _dialect: Dialect) -> Option<Box<dyn ResumableStream>> {
        None
    }
}

/// Follows a committed stream so that another upstream can carry it on after a break (SPEC 5.5):
/// it reads the answer so far from the events the client got, writes the request that continues
/// it, and rewrites the continuation's events so the client sees one stream (same ids, no second
/// preamble). The wire formats are the protocol layer's; the domain only drives it.
pub trait ResumableStream: Send {
    /// An event the client got.
    fn observe(&mut self, event: &UpstreamEvent);
    /// The request, for `model_id`, that continues the answer so far (the conversation plus the
    /// partial answer: as an assistant prefill when `prefill`, the provider taking a trailing
    /// assistant message as the start of its answer, else with an instruction to continue), or
    /// `None` when the answer cannot be continued (it holds more than text, or nothing).
    /// Prepares the rewriting of that continuation's events.
    fn continuation(&mut self, model_id: &str, prefill: bool) -> Option<Bytes>;
    /// One event of the continuation as the client gets it (and as it is observed), or `None`
    /// when the client must not see it (a second preamble).
    fn splice(&mut self, event: UpstreamEvent) -> Option<UpstreamEvent>;
}

/// The wire format of a request and of its answer. Every vendor adapter speaks the hub (the OpenAI
/// chat format, translated as needed); a vendor's own dialect goes only to providers of that vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Hub,
    Anthropic,
    /// The OpenAI Responses API.
    Responses,
    /// Google's `generateContent` API.
    Gemini,
}

impl ProviderConfig {
    /// Whether the provider takes requests written in `dialect` as they are: every provider the
    /// hub; Anthropic's and Gemini's own dialects, providers of that vendor; the Responses API,
    /// OpenAI providers configured to take it (SPEC 4.7, 4.8).
    pub fn speaks(&self, dialect: Dialect) -> bool {
        match dialect {
            Dialect::Hub => true,
            Dialect::Anthropic => self.vendor == Vendor::Anthropic,
            Dialect::Responses => self.responses_path.is_some(),
            Dialect::Gemini => self.vendor == Vendor::Gemini,
        }
    }
}

/// The client's request in a vendor's own dialect, passed through to providers of that vendor.
#[derive(Debug, Clone)]
pub struct NativeRequest {
    pub dialect: Dialect,
    pub body: Arc<dyn ChatPayload>,
    /// Client headers the vendor defines (`anthropic-version`, `anthropic-beta`).
    pub headers: Vec<(String, String)>,
    /// Why the request has no hub form (content only the vendor understands, e.g. documents or
    /// server tools): then only providers that speak its dialect may serve it.
    pub untranslatable: Option<String>,
}

/// A chat request ready for one upstream: the body in `dialect`, its model already rewritten.
#[derive(Debug, Clone)]
pub struct UpstreamChatRequest {
    pub model_id: String,
    pub body: Bytes,
    pub dialect: Dialect,
    pub stream: bool,
    /// Client headers that go along (a native request's vendor headers).
    pub headers: Vec<(String, String)>,
    /// Whether the caller wants the streamed answer assembled for the session's context.
    pub transcript: bool,
}

/// Failure to reach an upstream or read its answer: always retryable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct TransportError(pub String);

pub use super::usage::Usage;

/// One stream event, framed and classified by the adapter; `bytes` is the whole event exactly as
/// the client will get it.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamEvent {
    pub kind: StreamEventKind,
    pub bytes: Bytes,
    /// Token counts, when this event reports them.
    pub usage: Option<Usage>,
    /// The upstream's message, for an `Error` event.
    pub message: Option<String>,
}

impl UpstreamEvent {
    pub fn new(kind: StreamEventKind, bytes: Bytes) -> Self {
        UpstreamEvent {
            kind,
            bytes,
            usage: None,
            message: None,
        }
    }
}

/// A whole answer (a non-streamed answer, or any error body), read and checked by the adapter.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    pub bytes: Bytes,
    pub usage: Option<Usage>,
    /// The upstream's own message, for an error status.
    pub error_message: Option<String>,
}

/// A whole answer as it arrives: progress while the body is read (so the domain's idle and size
/// bounds hold), then the answer.
#[derive(Debug, Clone, PartialEq)]
pub enum AnswerPart {
    /// Bytes received so far.
    Progress(usize),
    Done(Answer),
}

pub type AnswerStream = BoxStream<'static, Result<AnswerPart, TransportError>>;
pub type EventStream = BoxStream<'static, Result<UpstreamEvent, TransportError>>;

/// The upstream's body: events for a successful stream, a whole answer for everything else.
pub enum UpstreamBody {
    Whole(AnswerStream),
    Events(EventStream),
}

/// Rebuilds a streamed answer for the session's context, one event at a time.
pub trait Transcript: Send {
    fn observe(&mut self, event: &UpstreamEvent);
    fn finish(self: Box<Self>) -> serde_json::Value;
}

/// The upstream's answer once its headers arrived; the body is read by the caller.
pub struct UpstreamReply {
    pub status: u16,
    /// Seconds from a `Retry-After` header, when the upstream sent one.
    pub retry_after: Option<u64>,
    pub body: UpstreamBody,
    /// Assembles the stream for the context, when asked for and the dialect allows it.
    pub transcript: Option<Box<dyn Transcript>>,
}

impl UpstreamReply {
    /// A whole answer that is already here (a reply made without a network read, and fakes).
    pub fn answered(status: u16, answer: Answer) -> Self {
        let part: Result<AnswerPart, TransportError> = Ok(AnswerPart::Done(answer));
        UpstreamReply {
            status,
            retry_after: None,
            body: UpstreamBody::Whole(futures_util::stream::iter([part]).boxed()),
            transcript: None,
        }
    }

    /// A stream whose events are already known.
    pub fn streamed(status: u16, events: Vec<Result<UpstreamEvent, TransportError>>) -> Self {
        UpstreamReply {
            status,
            retry_after: None,
            body: UpstreamBody::Events(futures_util::stream::iter(events).boxed()),
            transcript: None,
        }
    }
}

impl std::fmt::Debug for UpstreamReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamReply")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_speaks_the_hub_and_only_its_vendor_its_own_dialect() {
        for vendor in [Vendor::OpenAi, Vendor::Anthropic, Vendor::Gemini] {
            let provider = ProviderConfig {
                vendor,
                ..crate::domain::provider::provider_for_tests("p")
            };
            assert!(provider.speaks(Dialect::Hub));
            assert_eq!(
                provider.speaks(Dialect::Anthropic),
                vendor == Vendor::Anthropic
            );
            assert!(!provider.speaks(Dialect::Responses));
            assert_eq!(provider.speaks(Dialect::Gemini), vendor == Vendor::Gemini);
        }
        let responses = ProviderConfig {
            responses_path: Some("/v1/responses".into()),
            ..crate::domain::provider::provider_for_tests("p")
        };
        assert!(responses.speaks(Dialect::Responses));
    }
}
