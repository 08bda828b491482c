//! Providers as the domain sees them: identity, vendor protocol, routing weight and retry policy.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;

use bytes::Bytes;
use secrecy::{ExposeSecret, SecretString};

use super::model::{Model, PhysicalModel};
use super::usage::Price;

/// The wire protocol an upstream speaks (SPEC 2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    OpenAi,
    Anthropic,
    Gemini,
}

impl Vendor {
    /// Whether the vendor has its own endpoint that counts a request's input tokens (Anthropic's
    /// `/v1/messages/count_tokens`, Gemini's `:countTokens`; OpenAI's chat API has none).
    pub fn counts_tokens(self) -> bool {
        matches!(self, Vendor::Anthropic | Vendor::Gemini)
    }

    /// Infers the vendor from a provider id: `claude`/`anthropic` and `gemini`/`google` are native
    /// vendors, anything else is OpenAI-compatible.
    pub fn infer_from_id(id: &str) -> Vendor {
        let id = id.to_ascii_lowercase();
        if id.contains("claude") || id.contains("anthropic") {
            Vendor::Anthropic
        } else if id.contains("gemini") || id.contains("google") {
            Vendor::Gemini
        } else {
            Vendor::OpenAi
        }
    }

    pub fn parse(value: &str) -> Option<Vendor> {
        match value.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Vendor::OpenAi),
            "anthropic" | "claude" => Some(Vendor::Anthropic),
            "gemini" | "google" => Some(Vendor::Gemini),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Vendor::OpenAi => "openai",
            Vendor::Anthropic => "anthropic",
            Vendor::Gemini => "gemini",
        }
    }
}

impl fmt::Display for Vendor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which upstream HTTP statuses are worth trying the next candidate for (SPEC 5.1).
/// Transport errors are always retryable and are not part of this policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryPolicy {
    /// 429 and every 5xx: the rule for providers with no explicit list and no well-known id.
    Generic,
    /// Exactly these statuses (possibly none: `"none"` disables status retries).
    Codes(BTreeSet<u16>),
}

/// The list well-known vendors get when nothing is configured.
const WELL_KNOWN_DEFAULT: [u16; 5] = [429, 500, 502, 503, 504];

impl RetryPolicy {
    /// The policy a provider gets when `RETRYABLE_STATUS_CODES` is not set.
    pub fn default_for(provider_id: &str) -> RetryPolicy {
        match provider_id.to_ascii_lowercase().as_str() {
            "openai" | "gemini" | "claude" | "anthropic" => {
                RetryPolicy::Codes(WELL_KNOWN_DEFAULT.into_iter().collect())
            }
            _ => RetryPolicy::Generic,
        }
    }

    /// Parses `429,500,502-504` (whitespace ignored, inclusive ranges, duplicates dropped) or
    /// `none`. Any bad part is an error naming that part: a typo must not silently change failover.
    pub fn parse(value: &str) -> Result<RetryPolicy, String> {
        let trimmed = value.trim();
        if trimmed.eq_ignore_ascii_case("none") {
            return Ok(RetryPolicy::Codes(BTreeSet::new()));
        }
        let mut codes = BTreeSet::new();
        for raw in trimmed.split(',') {
            let part: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
            if part.is_empty() {
                continue;
            }
            match part.split_once('-') {
                Some((start, end)) => {
                    let (start, end) = (parse_status(start, &part)?, parse_status(end, &part)?);
                    if start > end {
                        return Err(format!("range '{part}' runs backwards"));
                    }
                    codes.extend(start..=end);
                }
                None => {
                    codes.insert(parse_status(&part, &part)?);
                }
            }
        }
        if codes.is_empty() {
            return Err("no status codes given (use 'none' to disable status retries)".into());
        }
        Ok(RetryPolicy::Codes(codes))
    }

    pub fn is_retryable_status(&self, status: u16) -> bool {
        match self {
            RetryPolicy::Generic => status == 429 || (500..=599).contains(&status),
            RetryPolicy::Codes(codes) => codes.contains(&status),
        }
    }
}

fn parse_status(text: &str, part: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(code) if (100..=599).contains(&code) => Ok(code),
        _ => Err(format!(
            "'{part}' is not an HTTP status code or an inclusive range such as 502-504"
        )),
    }
}

/// One configured upstream provider, built from the environment at start-up or on a reload;
/// immutable after (a reload builds new ones).
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub id: String,
    pub name: String,
    /// API base without a trailing slash.
    pub base_url: String,
    pub api_key: SecretString,
    pub vendor: Vendor,
    pub models_path: String,
    pub chat_path: String,
    /// Where the provider takes OpenAI Responses requests as they are, when it does (an
    /// OpenAI-vendor provider with `RESPONSES=true`); `None` when `/v1/responses` goes to it
    /// translated to chat.
    pub responses_path: Option<String>,
    pub weight: f64,
    pub region: Option<String>,
    pub max_qps: Option<u32>,
    pub retry: RetryPolicy,
    pub cost_input: Option<f64>,
    pub cost_output: Option<f64>,
    /// `PRICES_JSON`: prices per upstream model id.
    pub prices: std::collections::HashMap<String, Price>,
    /// A fixed model list that replaces the call to the models path.
    pub static_models: Option<Vec<Model>>,
    pub custom_headers: Vec<(String, String)>,
}

impl ProviderConfig {
    /// `base_url` joined with `path`, without doubling a version segment the base already ends with
    /// (`https://api.openai.com/v1` + `/v1/models` gives `.../v1/models`, not `.../v1/v1/models`).
    pub fn url_for(&self, path: &str) -> String {
        join_url(&self.base_url, path)
    }

    /// The chat URL for one physical model (Gemini puts the model in the path, percent-encoded as
    /// one segment so no name can reach another path or add a query).
    pub fn chat_url(&self, model_id: &str) -> String {
        self.url_for(&self.chat_path_for(model_id))
    }

    /// The chat URL as shown to operators (`GET /logical-models`, `/routing/decide`): credentials
    /// in the base URL masked.
    pub fn shown_chat_url(&self, model_id: &str) -> String {
        join_url(&self.masked_base_url(), &self.chat_path_for(model_id))
    }

    /// The chat path with the model in place of `{model}`, percent-encoded as one segment.
    fn chat_path_for(&self, model_id: &str) -> String {
        self.chat_path
            .replace("{model}", &encode_path_segment(model_id))
    }

    /// `body` with this provider's secrets (its key and custom header values) replaced, so an
    /// upstream error that echoes them never reaches a client.
    pub fn redact(&self, body: Bytes) -> Bytes {
        let key = self.api_key.expose_secret();
        let (userinfo, query) = url_secrets(&self.base_url);
        let secrets = std::iter::once(key)
            .filter(|k| k.len() >= 4)
            .chain(userinfo.into_iter().chain(query).filter(|s| s.len() >= 4))
            .chain(
                self.custom_headers
                    .iter()
                    .map(|(_, value)| value.as_str())
                    // Short values ("true", "1") are settings, not secrets, and common in JSON.
                    .filter(|v| v.len() >= 8),
            );
        let mut out: Option<Vec<u8>> = None;
        for secret in secrets {
            let current = out.as_deref().unwrap_or(&body);
            if let Some(replaced) = replace_all(current, secret.as_bytes(), b"[redacted]") {
                out = Some(replaced);
            }
        }
        out.map_or(body, Bytes::from)
    }

    /// `base_url` as shown to operators: credentials in its userinfo and query replaced by `****`.
    pub fn masked_base_url(&self) -> String {
        let (userinfo, query) = url_secrets(&self.base_url);
        let mut shown = self.base_url.clone();
        if let Some(userinfo) = userinfo {
            shown = shown.replacen(&format!("{userinfo}@"), "****@", 1);
        }
        if let Some(query) = query {
            shown = shown.replacen(&format!("?{query}"), "?****", 1);
        }
        shown
    }

    /// The price of one upstream model (SPEC 3.1): the logical model's `pricing` for it, else
    /// this provider's `PRICES_JSON` entry, else `COST_INPUT`/`COST_OUTPUT`; `None` when unpriced.
    pub fn price_of(&self, upstream: &PhysicalModel) -> Option<Price> {
        if let Some(price) = upstream.pricing {
            return Some(price);
        }
        if let Some(price) = self.prices.get(&upstream.model_id) {
            return Some(*price);
        }
        (self.cost_input.is_some() || self.cost_output.is_some()).then(|| Price {
            input: self.cost_input.unwrap_or(0.0),
            output: self.cost_output.unwrap_or(0.0),
            ..Price::default()
        })
    }

    /// `****abcd`: enough for an operator to tell keys apart, never enough to use one.
    pub fn masked_key(&self) -> String {
        mask_secret(self.api_key.expose_secret())
    }
}

/// A plain OpenAI-vendor provider `id` at `http://{id}.test` with key `k`, for unit tests to
/// adjust with struct-update syntax.
#[cfg(test)]
pub(crate) fn provider_for_tests(id: &str) -> ProviderConfig {
    ProviderConfig {
        id: id.into(),
        name: id.into(),
        base_url: format!("http://{id}.test"),
        api_key: SecretString::from("k".to_string()),
        vendor: Vendor::OpenAi,
        models_path: "/v1/models".into(),
        chat_path: "/v1/chat/completions".into(),
        responses_path: None,
        weight: 1.0,
        region: None,
        max_qps: None,
        retry: RetryPolicy::Generic,
        cost_input: None,
        cost_output: None,
        prices: Default::default(),
        static_models: None,
        custom_headers: Vec::new(),
    }
}

pub fn mask_secret(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 8 {
        return "****".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

/// The userinfo (`user:password`) and the query of a URL, the parts that may carry credentials.
fn url_secrets(url: &str) -> (Option<&str>, Option<&str>) {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority_end = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let userinfo = after_scheme[..authority_end]
        .rsplit_once('@')
        .map(|(userinfo, _)| userinfo);
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split('#').next().unwrap_or(q))
        .filter(|q| !q.is_empty());
    (userinfo, query)
}

/// Every occurrence of `needle` in `haystack` replaced, or `None` when there is none.
fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Option<Vec<u8>> {
    let first = haystack.windows(needle.len()).position(|w| w == needle)?;
    let mut out = Vec::with_capacity(haystack.len());
    out.extend_from_slice(&haystack[..first]);
    out.extend_from_slice(with);
    let mut rest = &haystack[first + needle.len()..];
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// `segment` percent-encoded so it stays one URL path segment: everything but RFC 3986's
/// unreserved characters is encoded, and so are the dots of a `.` or `..` segment.
pub fn encode_path_segment(segment: &str) -> String {
    let dot_segment = segment == "." || segment == "..";
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || matches!(byte, b'-' | b'_' | b'~')
            || (byte == b'.' && !dot_segment);
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

pub fn join_url(base: &str, path: &str) -> String {
    let base = base.trim_end_matches('/');
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let first_segment = path[1..].split(['/', '?']).next().unwrap_or("");
    if !first_segment.is_empty() && base.ends_with(&format!("/{first_segment}")) {
        return format!("{base}{}", &path[1 + first_segment.len()..]);
    }
    format!("{base}{path}")
}

/// One configuration's providers, in `LLM_PROVIDERS` order, looked up by id. Immutable: a reload
/// builds a new set, and a request keeps the set it started with (through its `Arc`) to its end.
#[derive(Debug, Clone, Default)]
pub struct ProviderSet {
    ordered: Vec<Arc<ProviderConfig>>,
}

impl ProviderSet {
    pub fn new(providers: Vec<ProviderConfig>) -> Self {
        ProviderSet {
            ordered: providers.into_iter().map(Arc::new).collect(),
        }
    }

    /// The set of `next`, where each provider configured exactly as in `current` keeps the
    /// `current` instance: what was built for it (upstream headers) stays valid.
    pub fn carried_over(current: &ProviderSet, next: Vec<ProviderConfig>) -> Self {
        let ordered = next
            .into_iter()
            .map(|provider| match current.get(&provider.id) {
                Some(same) if same.same_as(&provider) => same.clone(),
                _ => Arc::new(provider),
            })
            .collect();
        ProviderSet { ordered }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<ProviderConfig>> {
        // A handful of providers: a linear scan beats hashing here.
        self.ordered.iter().find(|p| p.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<ProviderConfig>> {
        self.ordered.iter()
    }

    pub fn len(&self) -> usize {
        self.ordered.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ordered.is_empty()
    }

    /// What `next` adds, removes and changes relative to this set, each in id order.
    pub fn changes_to(&self, next: &ProviderSet) -> ProviderChanges {
        let mut changes = ProviderChanges::default();
        for provider in next.iter() {
            match self.get(&provider.id) {
                None => changes.added.push(provider.id.clone()),
                Some(old) if !old.same_as(provider) => changes.changed.push(provider.id.clone()),
                Some(_) => {}
            }
        }
        for provider in self.iter() {
            if next.get(&provider.id).is_none() {
                changes.removed.push(provider.id.clone());
            }
        }
        changes.added.sort();
        changes.removed.sort();
        changes.changed.sort();
        changes
    }
}

/// The provider ids a new configuration adds, removes or changes (any field, the key included).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProviderChanges {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl ProviderChanges {
    /// Ids whose model list may differ now: added or changed providers.
    pub fn touched(&self) -> impl Iterator<Item = &String> {
        self.added.iter().chain(self.changed.iter())
    }
}

impl ProviderConfig {
    /// Whether `other` configures the provider exactly as this one does (secrets compared too, so
    /// a rotated key counts as a change).
    pub fn same_as(&self, other: &ProviderConfig) -> bool {
        self.id == other.id
            && self.name == other.name
            && self.base_url == other.base_url
            && self.api_key.expose_secret() == other.api_key.expose_secret()
            && self.vendor == other.vendor
            && self.models_path == other.models_path
            && self.chat_path == other.chat_path
            && self.responses_path == other.responses_path
            && self.weight == other.weight
            && self.region == other.region
            && self.max_qps == other.max_qps
            && self.retry == other.retry
            && self.cost_input == other.cost_input
            && self.cost_output == other.cost_output
            && self.prices == other.prices
            && self.static_models == other.static_models
            && self.custom_headers == other.custom_headers
    }
}

/// The providers in force: a [`ProviderSet`] replaced whole by a reload (SPEC 8). Readers take
/// the current set with [`ProviderRegistry::snapshot`], one atomic load that never waits on a
/// reload, and keep it for the rest of their request; a reload never changes a set in use.
#[derive(Debug, Default)]
pub struct ProviderRegistry {
    current: ArcSwap<ProviderSet>,
}

impl ProviderRegistry {
    pub fn new(providers: Vec<ProviderConfig>) -> Self {
        ProviderRegistry {
            current: ArcSwap::from_pointee(ProviderSet::new(providers)),
        }
    }

    /// The set in force now, to use for a whole request.
    pub fn snapshot(&self) -> Arc<ProviderSet> {
        self.current.load_full()
    }

    /// Puts `next` in force; returns the set it replaced. Requests that hold the old set finish
    /// on it.
    pub fn replace(&self, next: ProviderSet) -> Arc<ProviderSet> {
        self.current.swap(Arc::new(next))
    }
}

#[cfg(test)]
#[path = "provider_tests.rs"]
mod tests;
