//! Anthropic and Gemini behind the upstream port: the hub (OpenAI) request is translated to the
//! vendor's format, and the vendor's answer, stream or error back to the hub format, so the chat
//! use case, the commit rule and the retry policy work the same for every vendor.

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{self, StreamExt};
use serde_json::Value;

use super::http_client::HttpUpstream;
use crate::domain::ports::{ByteStream, TransportError, UpstreamChatRequest, UpstreamReply};
use crate::domain::provider::{ProviderConfig, Vendor};
use crate::protocol::sse::SseFramer;
use crate::protocol::{TranslateError, WireFormat, anthropic, gemini};

/// Largest vendor answer translated in one piece.
const MAX_ANSWER_BYTES: usize = 64 * 1024 * 1024;

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn completion_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}

fn one_chunk(bytes: Bytes) -> ByteStream {
    stream::once(async move { Ok(bytes) }).boxed()
}

/// A reply made by the gateway itself: the request cannot be said in the vendor's format.
fn untranslatable(error: TranslateError) -> UpstreamReply {
    let body = serde_json::json!({"error": {
        "message": format!("this request cannot be sent to the provider: {}", error.message),
        "type": "invalid_request_error",
        "param": error.param,
        "code": "untranslatable_request",
    }});
    UpstreamReply {
        status: 400,
        retry_after: None,
        body: one_chunk(Bytes::from(body.to_string())),
        format: WireFormat::OpenAi,
    }
}

pub(super) async fn translated_chat(
    upstream: &HttpUpstream,
    provider: &ProviderConfig,
    request: UpstreamChatRequest,
) -> Result<UpstreamReply, TransportError> {
    let vendor = provider.vendor;
    let chat: Value = match serde_json::from_slice(&request.body) {
        Ok(chat) => chat,
        Err(e) => {
            return Ok(untranslatable(TranslateError::new(
                format!("body is not JSON: {e}"),
                None,
            )));
        }
    };
    let model = request
        .model_id
        .strip_prefix("models/")
        .unwrap_or(&request.model_id)
        .to_string();
    let translated = match vendor {
        Vendor::Anthropic => anthropic::request_from_chat(&chat, &model, request.stream),
        _ => gemini::request_from_chat(&chat, &model, request.stream),
    };
    let body = match translated {
        Ok(body) => Bytes::from(body.to_string()),
        Err(error) => return Ok(untranslatable(error)),
    };
    let reply = upstream
        .send(provider, &model, request.stream, body, &[])
        .await?;
    let created = now_seconds();
    if reply.status >= 400 {
        let status = match (vendor, reply.status) {
            // Anthropic's "overloaded": retryable like a 503 under every retry policy.
            (Vendor::Anthropic, 529) => 503,
            (_, status) => status,
        };
        let body = stream::once(async move {
            let raw = collect(reply.body).await?;
            let (_, error) = match vendor {
                Vendor::Anthropic => anthropic::error_to_chat(reply.status, &raw),
                _ => gemini::error_to_chat(reply.status, &raw),
            };
            Ok(Bytes::from(error.to_string()))
        })
        .boxed();
        return Ok(UpstreamReply {
            status,
            retry_after: reply.retry_after,
            body,
            format: WireFormat::OpenAi,
        });
    }
    if !request.stream {
        let body = stream::once(async move {
            let raw = collect(reply.body).await?;
            let answer: Value = serde_json::from_slice(&raw).map_err(|e| {
                TransportError(format!(
                    "{vendor} answered with a body that is not JSON: {e}"
                ))
            })?;
            let chat = match vendor {
                Vendor::Anthropic => anthropic::chat_from_response(&answer, &model, created),
                _ => gemini::chat_from_response(&answer, &model, created),
            }
            .map_err(|e| {
                TransportError(format!("{vendor} answer could not be read: {}", e.message))
            })?;
            Ok(Bytes::from(chat.to_string()))
        })
        .boxed();
        return Ok(UpstreamReply {
            status: reply.status,
            retry_after: reply.retry_after,
            body,
            format: WireFormat::OpenAi,
        });
    }
    let translator = match vendor {
        Vendor::Anthropic => EventTranslator::Anthropic(anthropic::StreamTranslator::new(
            &model,
            created,
            completion_id(),
        )),
        _ => EventTranslator::Gemini(gemini::StreamTranslator::new(
            &model,
            created,
            completion_id(),
        )),
    };
    let state = TranslatedStream {
        inner: reply.body,
        framer: SseFramer::new(),
        translator,
        ready: VecDeque::new(),
        done: false,
    };
    Ok(UpstreamReply {
        status: reply.status,
        retry_after: reply.retry_after,
        body: state.into_stream(),
        format: WireFormat::OpenAi,
    })
}

async fn collect(mut body: ByteStream) -> Result<Bytes, TransportError> {
    let mut out = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        if out.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(TransportError(format!(
                "upstream answer is larger than {MAX_ANSWER_BYTES} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

enum EventTranslator {
    Anthropic(anthropic::StreamTranslator),
    Gemini(gemini::StreamTranslator),
}

impl EventTranslator {
    fn push(&mut self, event: &[u8]) -> Result<Vec<Bytes>, TranslateError> {
        match self {
            EventTranslator::Anthropic(t) => t.push(event),
            EventTranslator::Gemini(t) => t.push(event),
        }
    }

    fn finish(&mut self) -> Vec<Bytes> {
        match self {
            EventTranslator::Anthropic(t) => t.finish(),
            EventTranslator::Gemini(t) => t.finish(),
        }
    }
}

/// A vendor event stream re-emitted as OpenAI chunk events.
struct TranslatedStream {
    inner: ByteStream,
    framer: SseFramer,
    translator: EventTranslator,
    ready: VecDeque<Bytes>,
    done: bool,
}

impl TranslatedStream {
    fn into_stream(self) -> ByteStream {
        stream::unfold(self, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        })
        .boxed()
    }

    fn translate(&mut self, event: &[u8]) -> Result<(), TransportError> {
        let out = self
            .translator
            .push(event)
            .map_err(|e| TransportError(format!("unreadable stream event: {}", e.message)))?;
        self.ready.extend(out);
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<Bytes, TransportError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            match self.inner.next().await {
                Some(Ok(chunk)) => {
                    let events = match self.framer.push(&chunk) {
                        Ok(events) => events,
                        Err(e) => {
                            self.done = true;
                            return Some(Err(TransportError(e.to_string())));
                        }
                    };
                    for event in events {
                        if let Err(e) = self.translate(&event) {
                            self.done = true;
                            return Some(Err(e));
                        }
                    }
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                None => {
                    self.done = true;
                    if let Some(last) = self.framer.finish()
                        && let Err(e) = self.translate(&last)
                    {
                        return Some(Err(e));
                    }
                    self.ready.extend(self.translator.finish());
                }
            }
        }
    }
}
