//! The committed part of a stream: what was held back, then the upstream's remaining events, and
//! `Failed` if the upstream fails, goes silent or overruns its time. When it ends, the attempt is
//! recorded (a client that goes away records nothing: the upstream did not fail). A stream that
//! opted in to resume carries on on the next candidate instead of failing (`resume`).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream};
use tokio::time::{Instant, timeout_at};

use super::api::Relayed;
use super::recorder::StreamEnd;
use crate::domain::exchange::{EventStream, UpstreamEvent};
use crate::domain::failover::StreamEventKind;
use crate::domain::service::telemetry;
use crate::domain::usage::Price;

pub(super) struct RestOfStream {
    events: EventStream,
    held: VecDeque<UpstreamEvent>,
    deadline: Instant,
    idle: Duration,
    done: bool,
    on_end: Option<StreamEnd>,
    /// (provider, model) for token counts read from the stream's usage event.
    usage_label: Option<(String, String)>,
    /// Counts this stream in the open-streams gauge until it is dropped.
    _open: telemetry::OpenStream,
    /// Set only when the request opted in to stream resume: the common stream reads nothing.
    resume: Option<Box<dyn CarryOn>>,
    /// The error event that follows a resumed stream's marker.
    after_marker: Option<Relayed>,
}

/// What a stream that opted in to resume does with its events and its breaks (`resume::Resume`;
/// a trait so that the relay needs nothing of how a resume is made).
pub(super) trait CarryOn: Send {
    /// An event on its way to the client, read or spliced; `None`: the client must not see it.
    fn relay(&mut self, event: UpstreamEvent) -> Option<UpstreamEvent>;
    /// The marker of a resumed stream, once.
    fn marker(&mut self) -> Option<Relayed>;
    /// The stream broke (`why`): another attempt that takes it over, if one can.
    fn carry_on<'a>(&'a mut self, why: &'a str) -> BoxFuture<'a, Option<TakenOver>>;
}

/// A continuation that took a broken stream over.
pub(super) struct TakenOver {
    pub(super) parts: StreamParts,
    /// What to record when it ends (the request's ticket and context move over to it).
    pub(super) on_end: StreamEnd,
    /// (provider, model label) for its token counts and its charge.
    pub(super) usage_label: (String, String),
    pub(super) price: Option<Price>,
}

/// A committed stream's parts, for a resume to take over another attempt's stream.
pub(super) struct StreamParts {
    pub(super) events: EventStream,
    pub(super) held: VecDeque<UpstreamEvent>,
    pub(super) deadline: Instant,
}

impl RestOfStream {
    pub(super) fn new(
        events: EventStream,
        held: VecDeque<UpstreamEvent>,
        deadline: Instant,
        idle: Duration,
    ) -> Self {
        RestOfStream {
            events,
            held,
            deadline,
            idle,
            done: false,
            on_end: None,
            usage_label: None,
            _open: telemetry::OpenStream::new(),
            resume: None,
            after_marker: None,
        }
    }

    /// Carries the stream on on another candidate when it breaks (SPEC 5.5 stream resume).
    pub(super) fn resumable(mut self, resume: Box<dyn CarryOn>) -> Self {
        self.resume = Some(resume);
        self
    }

    /// The events of an attempt that a resume takes over (its gauge place is given back: the
    /// stream it continues holds one already).
    pub(super) fn into_parts(self) -> StreamParts {
        StreamParts {
            events: self.events,
            held: self.held,
            deadline: self.deadline,
        }
    }

    /// What to record when the stream ends, and the labels its token counts go under.
    pub(super) fn recorded(mut self, on_end: StreamEnd, usage_label: (String, String)) -> Self {
        self.on_end = Some(on_end);
        self.usage_label = Some(usage_label);
        self
    }

    pub(super) fn into_stream(self) -> BoxStream<'static, Relayed> {
        stream::unfold(self, |mut state| async move {
            let piece = state.next_piece().await?;
            Some((piece, state))
        })
        .boxed()
    }

    fn end(&mut self, success: bool) {
        self.done = true;
        if let Some(on_end) = self.on_end.take() {
            on_end.finish(success);
        }
    }

    fn fail(&mut self, reason: &str) -> Option<Relayed> {
        self.end(false);
        let failed = Relayed::Failed(reason.to_string());
        // A stream resumed before says so before its error event, which is its end.
        match self.resume.as_mut().and_then(|resume| resume.marker()) {
            Some(marker) => {
                self.after_marker = Some(failed);
                Some(marker)
            }
            None => Some(failed),
        }
    }

    async fn next_piece(&mut self) -> Option<Relayed> {
        loop {
            if let Some(event) = self.held.pop_front() {
                let event = match &mut self.resume {
                    None => event,
                    Some(resume) => {
                        // A resumed stream's end is told first: the marker goes just before it.
                        if event.kind == StreamEventKind::End
                            && let Some(marker) = resume.marker()
                        {
                            self.held.push_front(event);
                            return Some(marker);
                        }
                        match resume.relay(event) {
                            Some(event) => event,
                            None => continue,
                        }
                    }
                };
                if let Some(on_end) = &mut self.on_end {
                    on_end.observe(&event);
                }
                if let (Some(usage), Some((provider, model))) = (&event.usage, &self.usage_label) {
                    telemetry::count_tokens(provider, model, usage);
                }
                return Some(Relayed::Event(event.bytes));
            }
            if self.done {
                if let Some(piece) = self.after_marker.take() {
                    return Some(piece);
                }
                // A resumed stream that ended without an end event still says it was resumed.
                return self.resume.as_mut().and_then(|resume| resume.marker());
            }
            let next_by = self.deadline.min(Instant::now() + self.idle);
            match timeout_at(next_by, self.events.next()).await {
                Err(_) => {
                    let why = if Instant::now() >= self.deadline {
                        "upstream stream exceeded the total time allowed"
                    } else {
                        "upstream stream went silent past the idle timeout"
                    };
                    if !self.resumed(why).await {
                        return self.fail(why);
                    }
                }
                Ok(None) => self.end(true),
                Ok(Some(Err(e))) => {
                    if !self.resumed(&e.0).await {
                        return self.fail(&e.0);
                    }
                }
                // An error inside the stream is a break too, when the stream may be resumed;
                // otherwise it reaches the client as the upstream sent it.
                Ok(Some(Ok(event)))
                    if event.kind == StreamEventKind::Error && self.resume.is_some() =>
                {
                    let why = event.message.clone().unwrap_or_else(|| {
                        "upstream sent an error event inside the stream".to_string()
                    });
                    if !self.resumed(&why).await {
                        self.held.push_back(event);
                    }
                }
                Ok(Some(Ok(event))) => self.held.push_back(event),
            }
        }
    }

    /// Tries to carry the broken stream on on another candidate (only when the request opted
    /// in): true when a continuation took over, its events next.
    async fn resumed(&mut self, why: &str) -> bool {
        let Some(resume) = self.resume.as_mut() else {
            return false;
        };
        let Some(taken) = resume.carry_on(why).await else {
            return false;
        };
        let StreamParts {
            events,
            held,
            deadline,
        } = taken.parts;
        self.events = events;
        self.held = held;
        self.deadline = deadline;
        // The broken attempt is recorded as failed; the request's metering and context go on
        // with the stream, so the client is charged for and remembers what it got.
        let mut on_end = taken.on_end;
        if let Some(mut broken) = self.on_end.take() {
            on_end.ticket = broken.ticket.take();
            on_end.context = broken.context.take();
            broken.finish(false);
        }
        if let Some(ticket) = &mut on_end.ticket {
            ticket.served_by(&taken.usage_label.0, &taken.usage_label.1, taken.price);
        }
        self.on_end = Some(on_end);
        self.usage_label = Some(taken.usage_label);
        true
    }
}
