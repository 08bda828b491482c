//! Upstream bodies read into the domain's terms, once: a whole answer (with progress, so the
//! domain's idle and size bounds hold while it arrives) or a stream framed into SSE events and
//! classified, each event's bytes kept verbatim (translated vendors' events become hub events).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, BoxStream, StreamExt};

use crate::domain::exchange::{
    Answer, AnswerPart, AnswerStream, Dialect, EventStream, TransportError, UpstreamEvent,
};
use crate::domain::failover::StreamEventKind;
use crate::protocol as wire;
use crate::protocol::codec::StreamTranslate;
use crate::protocol::sse::{self, SseFramer};

/// The raw body as the HTTP client reads it.
pub type ByteStream = BoxStream<'static, Result<Bytes, TransportError>>;

/// Reads a whole body, reporting progress per chunk; `finish` checks the body and reads what the
/// domain needs from it.
pub fn whole(
    raw: ByteStream,
    finish: impl FnOnce(Bytes) -> Result<Answer, TransportError> + Send + 'static,
) -> AnswerStream {
    let state = (raw, Vec::<Bytes>::new(), 0usize, Some(finish));
    stream::unfold(
        state,
        |(mut raw, mut parts, mut total, mut finish)| async move {
            finish.as_ref()?;
            let item = match raw.next().await {
                Some(Ok(chunk)) => {
                    total += chunk.len();
                    parts.push(chunk);
                    Ok(AnswerPart::Progress(total))
                }
                Some(Err(e)) => {
                    finish = None;
                    Err(e)
                }
                None => {
                    let done = finish.take()?;
                    done(joined(std::mem::take(&mut parts))).map(AnswerPart::Done)
                }
            };
            Some((item, (raw, parts, total, finish)))
        },
    )
    .boxed()
}

/// One buffer from the parts: no copy when the body came in one chunk.
fn joined(mut parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        out.extend_from_slice(&part);
    }
    out.freeze()
}

/// A successful answer in `dialect` (the hub's, or a client's own passed through): JSON, with its
/// usage read in the same pass by the dialect's own reader.
pub fn hub_answer(status: u16, bytes: Bytes, dialect: Dialect) -> Result<Answer, TransportError> {
    match wire::usage_of_answer(dialect, &bytes) {
        Ok(usage) => Ok(Answer {
            usage,
            bytes,
            error_message: None,
        }),
        Err(_) => Err(TransportError(format!(
            "upstream answered {status} with a body that is not JSON"
        ))),
    }
}

/// An error body: kept as it is, with the upstream's own message.
pub fn error_answer(bytes: Bytes) -> Answer {
    Answer {
        error_message: Some(wire::error_message(&bytes)),
        bytes,
        usage: None,
    }
}

/// How stream events are turned into the domain's events.
enum Reading {
    /// The events go on as they are, in their own dialect.
    Verbatim(Dialect),
    /// A vendor's events, translated into hub events.
    Translated(Box<dyn StreamTranslate>),
}

/// A stream passed on as it is: each event classified in `dialect`.
pub fn verbatim_events(raw: ByteStream, dialect: Dialect) -> EventStream {
    Framed::new(raw, Reading::Verbatim(dialect)).into_stream()
}

/// A vendor's stream, translated into hub events.
pub fn translated_events(raw: ByteStream, translator: Box<dyn StreamTranslate>) -> EventStream {
    Framed::new(raw, Reading::Translated(translator)).into_stream()
}

/// One event in the domain's terms, or `None` for noise no client may see.
fn read(dialect: Dialect, bytes: Bytes) -> Option<UpstreamEvent> {
    let kind = wire::read_event(dialect, &bytes)?;
    Some(classified(kind, dialect, bytes))
}

/// One event of a known kind in the domain's terms.
fn classified(kind: StreamEventKind, dialect: Dialect, bytes: Bytes) -> UpstreamEvent {
    let mut event = UpstreamEvent::new(kind, bytes);
    match kind {
        StreamEventKind::Error => {
            event.message = Some(
                sse::event_data(&event.bytes)
                    .map(|data| wire::error_message(data.as_bytes()))
                    .unwrap_or_default(),
            );
        }
        _ => event.usage = wire::usage_of_event(dialect, &event.bytes),
    }
    event
}

struct Framed {
    raw: ByteStream,
    framer: SseFramer,
    reading: Reading,
    ready: VecDeque<UpstreamEvent>,
    done: bool,
}

impl Framed {
    fn new(raw: ByteStream, reading: Reading) -> Self {
        Framed {
            raw,
            framer: SseFramer::new(),
            reading,
            ready: VecDeque::new(),
            done: false,
        }
    }

    fn into_stream(self) -> EventStream {
        stream::unfold(self, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        })
        .boxed()
    }

    fn accept(&mut self, event: Bytes) -> Result<(), TransportError> {
        match &mut self.reading {
            // Noise a client must not see (a data line that is not JSON) is dropped here.
            Reading::Verbatim(dialect) => self.ready.extend(read(*dialect, event)),
            Reading::Translated(translator) => {
                let out = translator.push(&event).map_err(|e| {
                    TransportError(format!("unreadable stream event: {}", e.message))
                })?;
                self.ready
                    .extend(out.into_iter().filter_map(|e| read(Dialect::Hub, e)));
            }
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), TransportError> {
        self.done = true;
        // A last event without its blank line still counts.
        if let Some(last) = self.framer.finish() {
            self.accept(last)?;
        }
        if let Reading::Translated(translator) = &mut self.reading {
            let out = translator.finish();
            self.ready
                .extend(out.into_iter().filter_map(|e| read(Dialect::Hub, e)));
        }
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<UpstreamEvent, TransportError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let step = match self.raw.next().await {
                Some(Ok(chunk)) => match self.framer.push_bytes(chunk) {
                    Ok(events) => events.into_iter().try_for_each(|e| self.accept(e)),
                    Err(e) => Err(TransportError(e.to_string())),
                },
                Some(Err(e)) => Err(e),
                None => self.end(),
            };
            if let Err(e) = step {
                self.done = true;
                return Some(Err(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(chunks: &[&'static [u8]]) -> ByteStream {
        stream::iter(
            chunks
                .iter()
                .map(|c| Ok(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    #[tokio::test]
    async fn a_hub_stream_is_framed_once_classified_and_kept_verbatim() {
        let events: Vec<_> = verbatim_events(
            raw(&[
                b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\ndata: {not json\n\ndata: {\"choi",
                b"ces\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n",
                b"data: [DONE]",
            ]),
            Dialect::Hub,
        )
        .collect()
        .await;
        let events: Vec<UpstreamEvent> = events.into_iter().map(Result::unwrap).collect();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                StreamEventKind::Preamble,
                StreamEventKind::Content,
                StreamEventKind::End
            ]
        );
        assert_eq!(
            &events[1].bytes[..],
            b"data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n"
        );
        assert_eq!(
            events[1].usage,
            Some(crate::domain::exchange::Usage {
                prompt_tokens: 3,
                completion_tokens: 1,
                ..Default::default()
            })
        );
        // The last event lacked its blank line; the framer completes it.
        assert_eq!(&events[2].bytes[..], b"data: [DONE]\n\n");
    }

    #[tokio::test]
    async fn an_error_event_carries_the_upstream_message() {
        let mut events = verbatim_events(
            raw(&[b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n"]),
            Dialect::Hub,
        );
        let event = events.next().await.unwrap().unwrap();
        assert_eq!(event.kind, StreamEventKind::Error);
        assert_eq!(event.message.as_deref(), Some("overloaded"));
    }

    #[test]
    fn whole_answers_are_read_in_their_own_dialect() {
        use crate::domain::exchange::Usage;
        let anthropic = Bytes::from_static(
            br#"{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"Hi"}],
            "stop_reason":"end_turn","usage":{"input_tokens":21,"cache_creation_input_tokens":100,
            "cache_read_input_tokens":1000,"output_tokens":7}}"#,
        );
        let answer = hub_answer(200, anthropic, Dialect::Anthropic).unwrap();
        assert_eq!(
            answer.usage,
            Some(Usage {
                prompt_tokens: 1121,
                completion_tokens: 7,
                cache_read_tokens: 1000,
                cache_write_tokens: 100,
                reasoning_tokens: 0,
            })
        );
        let gemini = Bytes::from_static(
            br#"{"candidates":[],"usageMetadata":{"promptTokenCount":9,"cachedContentTokenCount":4,"candidatesTokenCount":2,"thoughtsTokenCount":3}}"#,
        );
        assert_eq!(
            hub_answer(200, gemini, Dialect::Gemini).unwrap().usage,
            Some(Usage {
                prompt_tokens: 9,
                completion_tokens: 5,
                cache_read_tokens: 4,
                cache_write_tokens: 0,
                reasoning_tokens: 3,
            })
        );
        let responses = Bytes::from_static(
            br#"{"object":"response","usage":{"input_tokens":30,"input_tokens_details":{"cached_tokens":20},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":6},"total_tokens":39}}"#,
        );
        assert_eq!(
            hub_answer(200, responses, Dialect::Responses)
                .unwrap()
                .usage,
            Some(Usage {
                prompt_tokens: 30,
                completion_tokens: 9,
                cache_read_tokens: 20,
                cache_write_tokens: 0,
                reasoning_tokens: 6,
            })
        );
        for dialect in [Dialect::Anthropic, Dialect::Gemini, Dialect::Responses] {
            assert!(hub_answer(200, Bytes::from_static(b"<html>"), dialect).is_err());
        }
    }

    #[tokio::test]
    async fn a_native_anthropic_stream_reports_its_usage() {
        use crate::domain::exchange::Usage;
        let events: Vec<UpstreamEvent> = verbatim_events(
            raw(&[
                b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":10,\"cache_read_input_tokens\":2000,\"output_tokens\":1}}}\n\n",
                b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
                b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n",
                b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            ]),
            Dialect::Anthropic,
        )
        .map(Result::unwrap)
        .collect()
        .await;
        let reports: Vec<Option<Usage>> = events.iter().map(|e| e.usage).collect();
        let start = Usage {
            prompt_tokens: 2035,
            completion_tokens: 1,
            cache_read_tokens: 2000,
            cache_write_tokens: 10,
            reasoning_tokens: 0,
        };
        let delta = Usage {
            completion_tokens: 15,
            ..Usage::default()
        };
        assert_eq!(reports, [Some(start), None, Some(delta), None]);
        let mut merged = start;
        merged.merge(&delta);
        assert_eq!(merged.completion_tokens, 15);
        assert_eq!(merged.prompt_tokens, 2035);
    }

    #[tokio::test]
    async fn a_whole_body_reports_progress_then_the_answer() {
        let parts: Vec<_> = whole(raw(&[b"{\"a\":", b"1}"]), |b| {
            hub_answer(200, b, Dialect::Hub)
        })
        .collect()
        .await;
        assert_eq!(parts[0], Ok(AnswerPart::Progress(5)));
        assert_eq!(parts[1], Ok(AnswerPart::Progress(7)));
        match &parts[2] {
            Ok(AnswerPart::Done(answer)) => assert_eq!(&answer.bytes[..], b"{\"a\":1}"),
            other => panic!("{other:?}"),
        }
        let not_json: Vec<_> = whole(raw(&[b"<html>"]), |b| hub_answer(200, b, Dialect::Hub))
            .collect()
            .await;
        assert!(matches!(&not_json[1], Err(e) if e.0.contains("not JSON")));
    }
}
