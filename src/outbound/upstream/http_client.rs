//! Sending to upstreams over pooled reqwest clients, one per serving worker (a connection's task
//! runs on the worker that opened it, so sharing one pool between workers would wake another
//! thread for every request). Each provider's headers (auth the
//! vendor's way, browser mask, custom headers) are built once at start-up and again on a reload,
//! not per request.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
// foldhash: looked up per upstream call by provider id, a configured name.
use hashbrown::HashMap;

use futures_util::StreamExt;
use reqwest::header::{
    ACCEPT, CONTENT_TYPE, HOST, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER,
};
use secrecy::ExposeSecret;

use super::bodies::ByteStream;
use crate::domain::exchange::{Dialect, TransportError};
use crate::domain::ports::ListModelsError;
use crate::domain::provider::{ProviderConfig, ProviderSet, Vendor};

/// Browser-like headers added to chat requests when `MASK_AS_BROWSER` is on.
#[derive(Debug, Clone, Default)]
pub struct MaskHeaders {
    pub user_agent: String,
    pub origin: Option<String>,
    pub referer: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HttpUpstreamSettings {
    pub connect_timeout: Duration,
    pub mask: Option<MaskHeaders>,
    /// Serving workers (`WORKERS`): one connection pool each.
    pub workers: usize,
}

/// Largest model list body the gateway reads.
const MAX_MODEL_LIST_BYTES: usize = 16 * 1024 * 1024;
/// Bound on a models-path call, which has no per-request deadline of its own.
const MODEL_LIST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
struct ProviderHeaders {
    /// For a JSON answer (`Accept: application/json`).
    chat: HeaderMap,
    /// For an event stream (`Accept: text/event-stream`).
    chat_stream: HeaderMap,
    plain: HeaderMap,
    /// The chat URL parsed once, when it does not depend on the model (all but Gemini).
    chat_url: Option<reqwest::Url>,
    /// The Responses URL, for providers that take the Responses API natively.
    responses_url: Option<reqwest::Url>,
}

/// One provider's headers with the configuration they were built from.
struct Prepared {
    config: Arc<ProviderConfig>,
    headers: Arc<ProviderHeaders>,
}

/// Every provider's headers for one configuration, built and checked before it is put in force.
pub struct PreparedHeaders {
    by_id: HashMap<String, Prepared>,
    mask: Option<MaskHeaders>,
}

impl PreparedHeaders {
    /// Builds the headers of every provider in `providers`; an invalid value (a key or custom
    /// header that is no HTTP header value) is an error naming the provider, so a reload can be
    /// refused before anything changes.
    pub fn build(providers: &ProviderSet, mask: Option<MaskHeaders>) -> Result<Self, String> {
        let mut by_id = HashMap::new();
        for provider in providers.iter() {
            let headers = provider_headers(provider, mask.as_ref())?;
            by_id.insert(
                provider.id.clone(),
                Prepared {
                    config: provider.clone(),
                    headers: Arc::new(headers),
                },
            );
        }
        Ok(PreparedHeaders { by_id, mask })
    }
}

pub struct HttpUpstream {
    /// One client (and connection pool) per serving worker, indexed by [`crate::worker::index`].
    clients: Vec<reqwest::Client>,
    /// Swapped whole by a reload; each call takes it with one atomic load.
    headers: ArcSwap<PreparedHeaders>,
}

impl HttpUpstream {
    pub fn new(settings: &HttpUpstreamSettings, providers: &ProviderSet) -> Result<Self, String> {
        let clients = (0..settings.workers.max(1))
            .map(|_| {
                reqwest::Client::builder()
                    .connect_timeout(settings.connect_timeout)
                    .pool_idle_timeout(Duration::from_secs(90))
                    .pool_max_idle_per_host(256)
                    .tcp_nodelay(true)
                    // Never follow redirects: the provider's key would follow them to another
                    // host, and the redirect layer costs every request.
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| format!("cannot build the HTTP client: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let headers = PreparedHeaders::build(providers, settings.mask.clone())?;
        Ok(HttpUpstream {
            clients,
            headers: ArcSwap::from_pointee(headers),
        })
    }

    /// The calling worker's client: its pooled connections are driven on this very thread.
    fn client(&self) -> &reqwest::Client {
        let index = crate::worker::index();
        &self.clients[index % self.clients.len()]
    }

    /// Puts a reloaded configuration's headers in force. The pooled client (and its open
    /// connections) stays: only what is sent changes.
    pub fn install(&self, headers: PreparedHeaders) {
        self.headers.store(Arc::new(headers));
    }

    /// The headers built for this very configuration. A request that started before a reload
    /// changed its provider holds the old configuration: its headers are built for it on the
    /// spot (rare), never taken from the new one (another key, another base URL).
    fn headers_for(
        &self,
        provider: &ProviderConfig,
    ) -> Result<Arc<ProviderHeaders>, TransportError> {
        let table = self.headers.load();
        match table.by_id.get(&provider.id) {
            // The entry holds its configuration alive, so no other one can have its address.
            Some(prepared) if std::ptr::eq(Arc::as_ptr(&prepared.config), provider) => {
                Ok(prepared.headers.clone())
            }
            _ => provider_headers(provider, table.mask.as_ref())
                .map(Arc::new)
                .map_err(TransportError),
        }
    }
}

fn header_value(value: &str, what: &str, provider: &str) -> Result<HeaderValue, String> {
    HeaderValue::from_str(value)
        .map_err(|_| format!("provider '{provider}': {what} is not a valid HTTP header value"))
}

fn provider_headers(
    provider: &ProviderConfig,
    mask: Option<&MaskHeaders>,
) -> Result<ProviderHeaders, String> {
    let mut plain = HeaderMap::new();
    let key = provider.api_key.expose_secret();
    match provider.vendor {
        Vendor::OpenAi => {
            let mut value = header_value(&format!("Bearer {key}"), "the API key", &provider.id)?;
            value.set_sensitive(true);
            plain.insert(reqwest::header::AUTHORIZATION, value);
        }
        Vendor::Anthropic => {
            let mut value = header_value(key, "the API key", &provider.id)?;
            value.set_sensitive(true);
            plain.insert("x-api-key", value);
            plain.insert("anthropic-version", HeaderValue::from_static("2023-06-01"));
        }
        Vendor::Gemini => {
            let mut value = header_value(key, "the API key", &provider.id)?;
            value.set_sensitive(true);
            plain.insert("x-goog-api-key", value);
        }
    }
    if let Some(host) = plain_http_host(&provider.base_url) {
        plain.insert(HOST, host);
    }
    let mut chat = plain.clone();
    chat.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(mask) = mask {
        chat.insert(
            reqwest::header::USER_AGENT,
            header_value(&mask.user_agent, "MASK_USER_AGENT", &provider.id)?,
        );
        if let Some(origin) = &mask.origin {
            chat.insert(
                reqwest::header::ORIGIN,
                header_value(origin, "MASK_ORIGIN", &provider.id)?,
            );
        }
        if let Some(referer) = &mask.referer {
            chat.insert(
                reqwest::header::REFERER,
                header_value(referer, "MASK_REFERER", &provider.id)?,
            );
        }
    }
    // Custom headers come last and win, for chat and model-list calls alike.
    for (name, value) in &provider.custom_headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            format!(
                "provider '{}': custom header name '{name}' is invalid",
                provider.id
            )
        })?;
        let value = header_value(value, "a custom header value", &provider.id)?;
        chat.insert(name.clone(), value.clone());
        plain.insert(name, value);
    }
    let mut chat_stream = chat.clone();
    chat.insert(ACCEPT, HeaderValue::from_static("application/json"));
    chat_stream.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
    let chat_url = if provider.chat_path.contains("{model}") {
        None
    } else {
        reqwest::Url::parse(&provider.chat_url("")).ok()
    };
    let responses_url = match &provider.responses_path {
        Some(path) => Some(
            reqwest::Url::parse(&provider.url_for(path))
                .map_err(|e| format!("provider '{}': invalid Responses URL: {e}", provider.id))?,
        ),
        None => None,
    };
    Ok(ProviderHeaders {
        chat,
        chat_stream,
        plain,
        chat_url,
        responses_url,
    })
}

/// The `Host` header of a plain-HTTP upstream, made once. Such a connection is HTTP/1, where
/// hyper-util otherwise formats `host:port` on every request whose port is not the default one.
/// Over HTTPS the connection may turn out HTTP/2, which carries the authority itself, so the
/// header is left to hyper-util there.
fn plain_http_host(base_url: &str) -> Option<HeaderValue> {
    let url = reqwest::Url::parse(base_url).ok()?;
    if url.scheme() != "http" {
        return None;
    }
    let host = url.host_str()?;
    let value = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    HeaderValue::from_str(&value).ok()
}

/// A POST of `body` with `headers` (the provider's, prepared) and the client's `extra` headers.
fn post(
    url: reqwest::Url,
    headers: &HeaderMap,
    extra_headers: &[(String, String)],
    body: bytes::Bytes,
) -> reqwest::Request {
    let mut request = reqwest::Request::new(reqwest::Method::POST, url);
    *request.headers_mut() = headers.clone();
    if !extra_headers.is_empty() {
        request.headers_mut().extend(extra(extra_headers));
    }
    *request.body_mut() = Some(body.into());
    request
}

fn upstream_url(url: &str) -> Result<reqwest::Url, TransportError> {
    reqwest::Url::parse(url).map_err(|e| TransportError(format!("invalid upstream URL: {e}")))
}

/// Why a small answer could not be read whole.
enum Unread {
    TooLarge,
    Transport(String),
}

/// A small answer (a model list, a token count) read whole, up to [`MAX_MODEL_LIST_BYTES`].
async fn read_bounded(response: reqwest::Response) -> Result<Vec<u8>, Unread> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| Unread::Transport(describe(&e)))?;
        if body.len() + chunk.len() > MAX_MODEL_LIST_BYTES {
            return Err(Unread::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The client headers a native request carries, as upstream headers (invalid ones dropped).
fn extra(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.insert(name, value);
        }
    }
    map
}

fn retry_after(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
}

/// A transport error described without the URL's query string (it could carry a key).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connection to upstream failed"
    } else if error.is_timeout() {
        "upstream timed out"
    } else if error.is_body() || error.is_decode() {
        "upstream body was cut off"
    } else {
        "upstream request failed"
    };
    let mut source = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

impl HttpUpstream {
    /// The URL for one request: parsed once per provider when it does not depend on the model;
    /// Gemini streams use `:streamGenerateContent?alt=sse` in place of `:generateContent`; a
    /// Responses request goes to the provider's Responses path.
    fn chat_url(
        &self,
        provider: &ProviderConfig,
        headers: &ProviderHeaders,
        model_id: &str,
        stream: bool,
        dialect: Dialect,
    ) -> Result<reqwest::Url, TransportError> {
        if dialect == Dialect::Responses {
            return headers.responses_url.clone().ok_or_else(|| {
                TransportError(format!(
                    "provider '{}' takes no Responses requests",
                    provider.id
                ))
            });
        }
        if let Some(url) = &headers.chat_url {
            return Ok(url.clone());
        }
        let mut url = provider.chat_url(model_id);
        if stream && provider.vendor == Vendor::Gemini {
            url = url.replacen(":generateContent", ":streamGenerateContent?alt=sse", 1);
        }
        upstream_url(&url)
    }

    /// POSTs a body already in the provider's format; resolves when the response headers arrive.
    pub(super) async fn send(
        &self,
        provider: &ProviderConfig,
        model_id: &str,
        stream: bool,
        dialect: Dialect,
        body: bytes::Bytes,
        extra_headers: &[(String, String)],
    ) -> Result<RawReply, TransportError> {
        let headers = self.headers_for(provider)?;
        let url = self.chat_url(provider, &headers, model_id, stream, dialect)?;
        let prepared = if stream {
            &headers.chat_stream
        } else {
            &headers.chat
        };
        let response = self
            .client()
            .execute(post(url, prepared, extra_headers, body))
            .await
            .map_err(|e| TransportError(describe(&e)))?;
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| TransportError(describe(&e))))
            .boxed();
        Ok(RawReply {
            status,
            retry_after,
            body,
        })
    }

    /// The URL of the vendor's token counter for `model_id`, next to its chat URL: Anthropic's
    /// `/v1/messages/count_tokens`, Gemini's `:countTokens`.
    pub(super) fn count_url(
        &self,
        provider: &ProviderConfig,
        model_id: &str,
    ) -> Result<reqwest::Url, TransportError> {
        let chat = provider.chat_url(model_id);
        let url = match provider.vendor {
            Vendor::Gemini => chat.replacen(":generateContent", ":countTokens", 1),
            Vendor::Anthropic => match chat.split_once('?') {
                Some((path, query)) => format!("{path}/count_tokens?{query}"),
                None => format!("{chat}/count_tokens"),
            },
            Vendor::OpenAi => {
                return Err(TransportError(
                    "OpenAI-compatible providers count no tokens".into(),
                ));
            }
        };
        upstream_url(&url)
    }

    /// POSTs a small JSON body with the provider's chat headers and reads the whole answer, bounded
    /// like a model list: the status and the body.
    pub(super) async fn post_small(
        &self,
        provider: &ProviderConfig,
        url: reqwest::Url,
        body: bytes::Bytes,
        extra_headers: &[(String, String)],
    ) -> Result<(u16, Vec<u8>), TransportError> {
        let headers = self.headers_for(provider)?;
        let response = self
            .client()
            .execute(post(url, &headers.chat, extra_headers, body))
            .await
            .map_err(|e| TransportError(describe(&e)))?;
        let status = response.status().as_u16();
        match read_bounded(response).await {
            Ok(bytes) => Ok((status, bytes)),
            Err(Unread::TooLarge) => Err(TransportError("answer is too large".into())),
            Err(Unread::Transport(e)) => Err(TransportError(e)),
        }
    }

    /// GETs the provider's model list: the status and the body (bounded in size and time).
    pub(super) async fn fetch_models(
        &self,
        provider: &ProviderConfig,
    ) -> Result<(u16, Vec<u8>), ListModelsError> {
        let headers = self
            .headers_for(provider)
            .map_err(|e| ListModelsError::Transport(e.0))?;
        let fetch = async {
            let response = self
                .client()
                .get(provider.url_for(&provider.models_path))
                .headers(headers.plain.clone())
                .header(ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| ListModelsError::Transport(describe(&e)))?;
            let status = response.status().as_u16();
            match read_bounded(response).await {
                Ok(body) => Ok((status, body)),
                Err(Unread::TooLarge) => {
                    Err(ListModelsError::Malformed("model list is too large".into()))
                }
                Err(Unread::Transport(e)) => Err(ListModelsError::Transport(e)),
            }
        };
        tokio::time::timeout(MODEL_LIST_TIMEOUT, fetch)
            .await
            .unwrap_or_else(|_| {
                Err(ListModelsError::Transport(
                    "model list request timed out".into(),
                ))
            })
    }
}

/// An upstream's answer as the HTTP client got it: status, `Retry-After`, raw body.
pub(super) struct RawReply {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: ByteStream,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::provider::{ProviderRegistry, provider_for_tests};

    fn bearer(headers: &ProviderHeaders) -> String {
        headers
            .plain
            .get(reqwest::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    fn with_key(id: &str, key: &str) -> ProviderConfig {
        ProviderConfig {
            api_key: secrecy::SecretString::from(key.to_string()),
            ..provider_for_tests(id)
        }
    }

    fn settings() -> HttpUpstreamSettings {
        HttpUpstreamSettings {
            connect_timeout: Duration::from_secs(1),
            mask: None,
            workers: 1,
        }
    }

    #[test]
    fn a_request_on_the_old_configuration_never_gets_the_new_key() {
        let registry = ProviderRegistry::new(vec![with_key("a", "old-key")]);
        let old = registry.snapshot();
        let upstream = HttpUpstream::new(&settings(), &old).expect("client");
        let Some(old_a) = old.get("a") else {
            panic!("a is configured");
        };
        assert_eq!(
            bearer(&upstream.headers_for(old_a).expect("headers")),
            "Bearer old-key"
        );

        registry.replace(ProviderSet::carried_over(
            &old,
            vec![with_key("a", "new-key")],
        ));
        let new = registry.snapshot();
        upstream.install(PreparedHeaders::build(&new, None).expect("headers"));
        let Some(new_a) = new.get("a") else {
            panic!("a is configured");
        };
        assert_eq!(
            bearer(&upstream.headers_for(new_a).expect("headers")),
            "Bearer new-key"
        );
        // A stream or failover still holding the old configuration sends the old key.
        assert_eq!(
            bearer(&upstream.headers_for(old_a).expect("headers")),
            "Bearer old-key"
        );
    }

    #[test]
    fn an_invalid_header_value_is_refused_before_anything_is_installed() {
        let set = ProviderSet::new(vec![with_key("a", "bad\nkey")]);
        let error = PreparedHeaders::build(&set, None).err().expect("refused");
        assert!(error.contains("provider 'a'"), "{error}");
    }

    #[test]
    fn the_mask_of_the_configuration_in_force_applies_to_chat_headers() {
        let set = ProviderSet::new(vec![provider_for_tests("a")]);
        let upstream = HttpUpstream::new(&settings(), &set).expect("client");
        let mask = MaskHeaders {
            user_agent: "Reloaded/1.0".into(),
            origin: None,
            referer: None,
        };
        upstream.install(PreparedHeaders::build(&set, Some(mask)).expect("headers"));
        let Some(a) = set.get("a") else {
            panic!("a is configured");
        };
        let headers = upstream.headers_for(a).expect("headers");
        assert_eq!(
            headers
                .chat
                .get(reqwest::header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            Some("Reloaded/1.0")
        );
    }
}
