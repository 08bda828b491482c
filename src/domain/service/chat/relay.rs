//! The committed part of a stream: what was held back, then the upstream's remaining events, and
//! `Failed` if the upstream fails, goes silent or overruns its time. When it ends, the attempt is
//! recorded (a client that goes away records nothing: the upstream did not fail).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use tokio::time::{Instant, timeout_at};

use super::api::Relayed;
use super::recorder::StreamEnd;
use crate::domain::exchange::{EventStream, UpstreamEvent};
use crate::domain::service::telemetry;

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
        Some(Relayed::Failed(reason.to_string()))
    }

    async fn next_piece(&mut self) -> Option<Relayed> {
        loop {
            if let Some(event) = self.held.pop_front() {
                if let Some(on_end) = &mut self.on_end {
                    on_end.observe(&event);
                }
                if let (Some(usage), Some((provider, model))) = (&event.usage, &self.usage_label) {
                    telemetry::count_tokens(provider, model, usage);
                }
                return Some(Relayed::Event(event.bytes));
            }
            if self.done {
                return None;
            }
            let next_by = self.deadline.min(Instant::now() + self.idle);
            match timeout_at(next_by, self.events.next()).await {
                Err(_) => {
                    let why = if Instant::now() >= self.deadline {
                        "upstream stream exceeded the total time allowed"
                    } else {
                        "upstream stream went silent past the idle timeout"
                    };
                    return self.fail(why);
                }
                Ok(None) => self.end(true),
                Ok(Some(Err(e))) => return self.fail(&e.0),
                Ok(Some(Ok(event))) => self.held.push_back(event),
            }
        }
    }
}
