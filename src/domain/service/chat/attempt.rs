//! One upstream attempt under the timeouts of SPEC 2.1: open it, then read the whole answer, or
//! hold a stream back until its commit point (SPEC 5.5). Every failure here is an
//! `AttemptFailure` for the failover policy to judge.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::{Instant, timeout_at};

use super::api::ChatSettings;
use super::relay::RestOfStream;
use crate::domain::exchange::{
    Answer, AnswerPart, AnswerStream, EventStream, Transcript, UpstreamBody, UpstreamChatRequest,
    UpstreamEvent, UpstreamReply,
};
use crate::domain::failover::{AttemptFailure, CommitGate, GateDecision, upstream_status};
use crate::domain::ports::UpstreamClient;
use crate::domain::provider::ProviderConfig;

/// A successful attempt.
pub(super) enum Attempt {
    Complete {
        status: u16,
        answer: Answer,
        headers_ms: f64,
    },
    /// Committed: what was held back and the rest of the stream.
    Stream {
        rest: Box<RestOfStream>,
        headers_ms: f64,
        transcript: Option<Box<dyn Transcript>>,
    },
}

pub(super) fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// Runs one attempt against `provider`.
pub(super) async fn run(
    upstream: &dyn UpstreamClient,
    provider: &ProviderConfig,
    request: UpstreamChatRequest,
    settings: &ChatSettings,
) -> Result<Attempt, AttemptFailure> {
    let t = settings.timeouts;
    let started = Instant::now();
    let deadline = started + t.total;
    let stream = request.stream;
    let (reply, headers_ms) = open(
        upstream,
        provider,
        request,
        deadline.min(started + t.first_byte),
        settings,
    )
    .await?;
    let status = upstream_status(provider.vendor, reply.status);
    let UpstreamReply {
        retry_after,
        body,
        transcript,
        ..
    } = reply;
    let events = match body {
        UpstreamBody::Whole(body) => {
            let answer = read_whole(body, deadline, settings).await?;
            if status >= 400 {
                let message = answer.error_message.unwrap_or_default();
                return Err(AttemptFailure::Status {
                    status,
                    body: provider.redact(answer.bytes),
                    message: redacted(provider, message),
                    retry_after,
                });
            }
            if stream {
                return Err(AttemptFailure::transport(format!(
                    "upstream answered {status} without a stream"
                )));
            }
            return Ok(Attempt::Complete {
                status,
                answer,
                headers_ms,
            });
        }
        UpstreamBody::Events(events) if stream => events,
        UpstreamBody::Events(_) => {
            return Err(AttemptFailure::transport(
                "upstream streamed an answer that was asked for whole",
            ));
        }
    };
    let first_event_by = deadline.min(started + t.first_byte);
    let (events, held) = hold_until_commit(events, first_event_by, provider, settings).await?;
    Ok(Attempt::Stream {
        rest: Box::new(RestOfStream::new(events, held, deadline, t.idle)),
        headers_ms,
        transcript,
    })
}

/// Holds a stream's events back until its commit point (SPEC 5.5): what was held, and the rest of
/// the stream; a failure before it is the attempt's failure.
async fn hold_until_commit(
    mut events: EventStream,
    first_event_by: Instant,
    provider: &ProviderConfig,
    settings: &ChatSettings,
) -> Result<(EventStream, VecDeque<UpstreamEvent>), AttemptFailure> {
    let mut gate = CommitGate::new(settings.commit);
    let mut held: VecDeque<UpstreamEvent> = VecDeque::new();
    loop {
        let event = match timeout_at(first_event_by, events.next()).await {
            Err(_) => {
                return Err(AttemptFailure::transport(format!(
                    "no stream event from upstream within {}s",
                    settings.timeouts.first_byte.as_secs_f64()
                )));
            }
            Ok(None) => {
                return Err(AttemptFailure::transport(
                    "upstream ended the stream before any content",
                ));
            }
            Ok(Some(Err(e))) => return Err(AttemptFailure::transport(e.0)),
            Ok(Some(Ok(event))) => event,
        };
        match gate.observe(event.kind, event.bytes.len()) {
            GateDecision::Fail => {
                let message = event.message.unwrap_or_default();
                return Err(AttemptFailure::transport(format!(
                    "upstream stream error: {}",
                    redacted(provider, message)
                )));
            }
            GateDecision::Hold => held.push_back(event),
            GateDecision::Commit => {
                held.push_back(event);
                return Ok((events, held));
            }
        }
    }
}

/// Sends the request; resolves when the upstream's headers arrive, by `headers_by` at the latest.
async fn open(
    upstream: &dyn UpstreamClient,
    provider: &ProviderConfig,
    request: UpstreamChatRequest,
    headers_by: Instant,
    settings: &ChatSettings,
) -> Result<(UpstreamReply, f64), AttemptFailure> {
    let started = Instant::now();
    match timeout_at(headers_by, upstream.chat(provider, request)).await {
        Err(_) => Err(AttemptFailure::transport(format!(
            "no response from upstream within {}s",
            settings.timeouts.first_byte.as_secs_f64()
        ))),
        Ok(Err(e)) => Err(AttemptFailure::transport(redacted(provider, e.0))),
        Ok(Ok(reply)) => Ok((reply, ms_since(started))),
    }
}

/// A message from upstream with the provider's key taken out, should it appear in it.
fn redacted(provider: &ProviderConfig, message: String) -> String {
    String::from_utf8_lossy(&provider.redact(Bytes::from(message))).into_owned()
}

/// Reads a whole answer within the attempt's deadline, idle bound and size cap.
async fn read_whole(
    mut body: AnswerStream,
    deadline: Instant,
    settings: &ChatSettings,
) -> Result<Answer, AttemptFailure> {
    let max_bytes = settings.max_response_bytes;
    loop {
        let next_by = deadline.min(Instant::now() + settings.timeouts.idle);
        match timeout_at(next_by, body.next()).await {
            Err(_) => {
                return Err(AttemptFailure::transport(
                    "upstream stopped sending its answer (timeout)",
                ));
            }
            Ok(None) => {
                return Err(AttemptFailure::transport(
                    "upstream answer ended before it was complete",
                ));
            }
            Ok(Some(Err(e))) => return Err(AttemptFailure::transport(e.0)),
            Ok(Some(Ok(AnswerPart::Progress(received)))) if received > max_bytes => {
                return Err(AttemptFailure::transport(format!(
                    "upstream answer is larger than {max_bytes} bytes"
                )));
            }
            Ok(Some(Ok(AnswerPart::Progress(_)))) => {}
            Ok(Some(Ok(AnswerPart::Done(answer)))) => return Ok(answer),
        }
    }
}
