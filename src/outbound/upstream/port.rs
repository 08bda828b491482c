//! The upstream port: each request goes out in its provider's format (the hub body as it is to
//! OpenAI-compatible providers and for a vendor's own dialect, translated by the vendor's codec
//! otherwise), and the answer comes back as the domain's whole answer or classified events.

use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::Value;

use super::bodies;
use super::http_client::{HttpUpstream, RawReply};
use crate::domain::exchange::{
    Answer, Dialect, TransportError, UpstreamBody, UpstreamChatRequest, UpstreamReply,
};
use crate::domain::model::Model;
use crate::domain::ports::{ListModelsError, UpstreamClient};
use crate::domain::provider::{ProviderConfig, Vendor};
use crate::protocol::anthropic::AnthropicCodec;
use crate::protocol::codec::VendorCodec;
use crate::protocol::gemini::GeminiCodec;
use crate::protocol::openai::StreamAssembler;
use crate::protocol::{self as wire, TranslateError, gemini};

/// The codec of a vendor the hub is translated to; `None` for OpenAI-compatible providers, which
/// take the hub format as it is.
fn codec_for(vendor: Vendor) -> Option<&'static dyn VendorCodec> {
    match vendor {
        Vendor::OpenAi => None,
        Vendor::Anthropic => Some(&AnthropicCodec),
        Vendor::Gemini => Some(&GeminiCodec),
    }
}

#[async_trait]
impl UpstreamClient for HttpUpstream {
    async fn chat(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
    ) -> Result<UpstreamReply, TransportError> {
        // Gemini names models `models/x`; the id alone goes in URLs and translated bodies.
        let model = gemini::model_id(&request.model_id);
        let codec = codec_for(provider.vendor).filter(|_| request.dialect == Dialect::Hub);
        let body = match codec {
            None => request.body.clone(),
            Some(codec) => match translated_request(codec, &request.body, model, request.stream) {
                Ok(body) => body,
                Err(error) => return Ok(untranslatable(error)),
            },
        };
        let raw = self
            .send(
                provider,
                model,
                request.stream,
                request.dialect,
                body,
                &request.headers,
            )
            .await?;
        Ok(reply(raw, &request, codec, model))
    }

    async fn count_tokens(
        &self,
        provider: &ProviderConfig,
        request: UpstreamChatRequest,
    ) -> Result<u64, TransportError> {
        let model = gemini::model_id(&request.model_id);
        let body = if request.dialect == Dialect::Hub {
            let chat: Value = serde_json::from_slice(&request.body)
                .map_err(|e| TransportError(format!("body is not JSON: {e}")))?;
            wire::count_tokens_request(provider.vendor, &chat, model)
                .map_err(|e| TransportError(e.message))?
        } else {
            request.body.clone()
        };
        let url = self.count_url(provider, model)?;
        let (status, answer) = self
            .post_small(provider, url, body, &request.headers)
            .await?;
        if status >= 400 {
            let message = wire::error_message(&answer);
            return Err(TransportError(format!("HTTP {status}: {message}")));
        }
        wire::counted_tokens(&answer)
            .ok_or_else(|| TransportError("the token count answer holds no count".into()))
    }

    async fn list_models(&self, provider: &ProviderConfig) -> Result<Vec<Model>, ListModelsError> {
        let (status, body) = self.fetch_models(provider).await?;
        if status >= 400 {
            let message = wire::error_message(&body);
            return Err(ListModelsError::Status { status, message });
        }
        super::model_list::parse_model_list(&provider.id, &body)
    }
}

fn translated_request(
    codec: &dyn VendorCodec,
    hub: &[u8],
    model: &str,
    stream: bool,
) -> Result<Bytes, TranslateError> {
    let chat: Value = serde_json::from_slice(hub)
        .map_err(|e| TranslateError::new(format!("body is not JSON: {e}"), None))?;
    let body = codec.request(&chat, model, stream)?;
    Ok(Bytes::from(body.to_string()))
}

/// The upstream's answer in the domain's terms, translated back to the hub when `codec` is set.
fn reply(
    raw: RawReply,
    request: &UpstreamChatRequest,
    codec: Option<&'static dyn VendorCodec>,
    model: &str,
) -> UpstreamReply {
    let RawReply {
        status,
        retry_after,
        body: raw_body,
    } = raw;
    let mut transcript = None;
    let body = match (codec, status >= 400, request.stream) {
        (None, true, _) => {
            UpstreamBody::Whole(bodies::whole(raw_body, |b| Ok(bodies::error_answer(b))))
        }
        (None, false, false) => {
            let dialect = request.dialect;
            UpstreamBody::Whole(bodies::whole(raw_body, move |b| {
                bodies::hub_answer(status, b, dialect)
            }))
        }
        (None, false, true) => {
            // Only hub streams are assembled for the context; a vendor's own stream is relayed.
            if request.transcript && request.dialect == Dialect::Hub {
                transcript = Some(Box::new(StreamAssembler::default()) as _);
            }
            UpstreamBody::Events(bodies::verbatim_events(raw_body, request.dialect))
        }
        (Some(codec), true, _) => UpstreamBody::Whole(bodies::whole(raw_body, move |b| {
            let hub = Bytes::from(codec.error(status, &b).to_string());
            Ok(bodies::error_answer(hub))
        })),
        (Some(codec), false, false) => {
            let model = model.to_string();
            UpstreamBody::Whole(bodies::whole(raw_body, move |b| {
                translated_answer(codec, &b, &model, status)
            }))
        }
        (Some(codec), false, true) => {
            if request.transcript {
                transcript = Some(Box::new(StreamAssembler::default()) as _);
            }
            let translator = codec.stream(model, now_seconds(), completion_id());
            UpstreamBody::Events(bodies::translated_events(raw_body, translator))
        }
    };
    UpstreamReply {
        status,
        retry_after,
        body,
        transcript,
    }
}

fn translated_answer(
    codec: &dyn VendorCodec,
    raw: &[u8],
    model: &str,
    status: u16,
) -> Result<Answer, TransportError> {
    let answer: Value = serde_json::from_slice(raw).map_err(|e| {
        TransportError(format!(
            "upstream answered {status} with a body that is not JSON: {e}"
        ))
    })?;
    let chat = codec
        .answer(&answer, model, now_seconds())
        .map_err(|e| TransportError(format!("upstream answer could not be read: {}", e.message)))?;
    bodies::hub_answer(status, Bytes::from(chat.to_string()), Dialect::Hub)
}

/// A reply made by the gateway itself: the request cannot be said in the vendor's format.
fn untranslatable(error: TranslateError) -> UpstreamReply {
    let body = serde_json::json!({"error": {
        "message": format!("this request cannot be sent to the provider: {}", error.message),
        "type": "invalid_request_error",
        "param": error.param,
        "code": "untranslatable_request",
    }});
    UpstreamReply::answered(400, bodies::error_answer(Bytes::from(body.to_string())))
}

fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn completion_id() -> String {
    format!("chatcmpl-{:024x}", rand::random::<u128>() >> 32)
}
