//! Configuration: the environment (after `.env`) turned into typed settings, once, at start-up
//! (SPEC 2). Every invalid value stops start-up with the variable named; keys stay in secrecy types.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use validator::Validate;

use crate::domain::model::{LogicalModel, Model};
use crate::domain::provider::{ProviderConfig, RetryPolicy, Vendor};
use crate::domain::usage::Price;
use crate::outbound::redis::RedisTarget;

pub const DEFAULT_AUTH_TOKEN: &str = "timeline";
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// A value the gateway cannot start with: which variable, what is wrong, what was expected.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub variable: String,
    pub problem: String,
    pub expected: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} (expected {})",
            self.variable, self.problem, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

fn invalid(variable: &str, problem: impl Into<String>, expected: &str) -> ConfigError {
    ConfigError {
        variable: variable.to_string(),
        problem: problem.into(),
        expected: expected.to_string(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    /// `REDIS_URL` or `REDIS_CLUSTER_NODES`: one Redis server, a Redis Cluster or a Sentinel set;
    /// unset, the stores are in memory.
    pub redis: Option<RedisTarget>,
    pub redis_pool_size: usize,
    /// `REDIS_WRITE_INTERVAL_MS`: how long the per-request bookkeeping (routing metrics, usage
    /// aggregates) is batched before it is written to Redis; zero writes every record at once.
    pub redis_write_interval: Duration,
    pub auth_token: SecretString,
    pub auth_token_is_default: bool,
    /// `APIPROXY_ADMIN_TOKEN` (SPEC 3.1): the management credential; unset, the gateway token is
    /// also admin.
    pub admin_token: Option<SecretString>,
    /// `METRICS_PUBLIC`: `/metrics` without a credential.
    pub metrics_public: bool,
    pub models_cache_ttl: Duration,
    pub mask_as_browser: bool,
    pub mask_user_agent: String,
    pub mask_origin: Option<String>,
    pub mask_referer: Option<String>,
    /// A tracing filter directive (`debug`, `info`, `warn`, `error`).
    pub log_level: String,
    /// `LOG_TIMEZONE`: log timestamps in this IANA zone; system local time when unset.
    pub log_timezone: Option<chrono_tz::Tz>,
    pub log_format: LogFormat,
    /// Log request and response bodies (`LOG_BODIES`); off by default: prompts are the users' data.
    pub log_bodies: bool,
    pub upstream_connect_timeout: Duration,
    pub upstream_first_byte_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_request_body_bytes: usize,
    pub session_ttl: Duration,
    pub context_max_entries: usize,
    pub context_ttl: Duration,
    /// Sessions whose context history is kept; past it the least recently written go.
    pub context_max_sessions: usize,
    pub logical_models_file: Option<PathBuf>,
    pub provider_failure_threshold: u32,
    pub provider_cooldown: Duration,
    pub shutdown_grace: Duration,
    /// `CLIENT_BODY_TIMEOUT`: how long a client may take to send its whole request body (408 after).
    pub client_body_timeout: Duration,
    /// `MAX_IN_FLIGHT`: requests in progress (streams until their last byte) beyond which new
    /// ones are refused at once with 503; [`default_max_in_flight`] when unset.
    pub max_in_flight: usize,
    /// `WORKERS`: serving threads, each with its own runtime, listening socket and upstream
    /// connection pool (thread per core); the number of CPU cores when unset.
    pub workers: usize,
    pub providers: Vec<ProviderConfig>,
}

/// `MAX_IN_FLIGHT`'s default, sized for the machine: 1,024 requests per CPU core, but at most
/// half the process's open-file limit (each request in progress holds a client and an upstream
/// connection; past the limit `accept` fails, which serves nobody), and never below 64.
pub fn default_max_in_flight() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let by_cores = cores.saturating_mul(1024);
    let by_files = open_file_limit().map_or(usize::MAX, |limit| limit / 2);
    by_cores.min(by_files).max(64)
}

/// The soft `RLIMIT_NOFILE`, where the platform has one.
fn open_file_limit() -> Option<usize> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own and reads nothing else.
        let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
        if status == 0 && limit.rlim_cur != libc::RLIM_INFINITY {
            return usize::try_from(limit.rlim_cur).ok();
        }
        None
    }
    #[cfg(not(unix))]
    None
}

/// Suffixes of the per-provider variables, used to tell which id a variable belongs to.
const PROVIDER_SUFFIXES: [&str; 18] = [
    "PRICES_JSON",
    "RESPONSES_PATH",
    "RESPONSES",
    "NAME",
    "BASE_URL",
    "API_KEY",
    "VENDOR",
    "MODELS_PATH",
    "CHAT_PATH",
    "WEIGHT",
    "REGION",
    "MAX_QPS",
    "RETRYABLE_STATUS_CODES",
    "COST_INPUT",
    "COST_OUTPUT",
    "STATIC_MODELS_JSON",
    "STATIC_MODELS_FILE",
    "CUSTOM_HEADERS_JSON",
];

struct Vars<'a> {
    vars: &'a BTreeMap<String, String>,
}

impl Vars<'_> {
    /// A set, non-blank value.
    fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .parse()
                .map_err(|_| invalid(name, format!("'{raw}' is not valid"), expected)),
        }
    }

    fn seconds(&self, name: &str, default: u64) -> Result<Duration, ConfigError> {
        let expected = "a positive number of seconds";
        match self.get(name) {
            None => Ok(Duration::from_secs(default)),
            Some(raw) => match raw.parse::<f64>() {
                Ok(secs) if secs > 0.0 && secs.is_finite() && secs < 1e9 => {
                    Ok(Duration::from_secs_f64(secs))
                }
                _ => Err(invalid(
                    name,
                    format!("'{raw}' is not a positive number"),
                    expected,
                )),
            },
        }
    }

    fn positive<T>(&self, name: &str, default: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + Default + Copy,
    {
        let value = self.parse(name, default, "a positive whole number")?;
        if value <= T::default() {
            return Err(invalid(
                name,
                "must be greater than 0",
                "a positive whole number",
            ));
        }
        Ok(value)
    }

    fn flag(&self, name: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(invalid(
                name,
                format!("'{other}' is not a boolean"),
                "true or false",
            )),
        }
    }
}

/// Whether `host` (a bind address) accepts connections from this machine only.
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Settings {
    /// Refuses to listen beyond this machine with the public default token: anyone who can reach
    /// the port would spend every provider key's money. On a loopback address it is a warning.
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if !self.auth_token_is_default || is_loopback(&self.host) {
            return Ok(());
        }
        Err(invalid(
            "APIPROXY_AUTH_TOKEN",
            format!(
                "unset, blank or the public default '{DEFAULT_AUTH_TOKEN}' while the gateway would listen on {}, which other machines can reach; refusing to start",
                self.host
            ),
            "a secret of your own (clients send its Base64 form, which `apiproxy encode-token <token>` prints), or HOST=127.0.0.1",
        ))
    }

    /// Reads every setting from `vars`. Returns the settings and the warnings to log.
    pub fn from_vars(
        vars: &BTreeMap<String, String>,
    ) -> Result<(Settings, Vec<String>), ConfigError> {
        let v = Vars { vars };
        let mut warnings = Vec::new();
        let token = v.get("APIPROXY_AUTH_TOKEN").unwrap_or(DEFAULT_AUTH_TOKEN);
        let log_level = match v
            .get("LOG_LEVEL")
            .unwrap_or("INFO")
            .to_ascii_uppercase()
            .as_str()
        {
            "DEBUG" => "debug",
            "INFO" => "info",
            "WARNING" | "WARN" => "warn",
            "ERROR" | "CRITICAL" => "error",
            other => {
                return Err(invalid(
                    "LOG_LEVEL",
                    format!("'{other}' is not a level"),
                    "DEBUG, INFO, WARNING, ERROR or CRITICAL",
                ));
            }
        };
        let log_format = match v
            .get("LOG_FORMAT")
            .unwrap_or("text")
            .to_ascii_lowercase()
            .as_str()
        {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(invalid(
                    "LOG_FORMAT",
                    format!("'{other}' is not a format"),
                    "text or json",
                ));
            }
        };
        let redis = match (v.get("REDIS_URL"), v.get("REDIS_CLUSTER_NODES")) {
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "REDIS_CLUSTER_NODES",
                    "REDIS_URL is set too",
                    "one of them: REDIS_CLUSTER_NODES=host:port,... or \
                     REDIS_URL=redis+cluster://[:password@]host:port,... (the form with a password)",
                ));
            }
            (Some(url), None) => Some(
                RedisTarget::from_url(url)
                    .map_err(|e| invalid("REDIS_URL", e.problem, e.expected))?,
            ),
            (None, Some(nodes)) => Some(
                RedisTarget::from_cluster_nodes(nodes)
                    .map_err(|e| invalid("REDIS_CLUSTER_NODES", e.problem, e.expected))?,
            ),
        };
        let providers = parse_providers(vars, &mut warnings)?;
        let settings = Settings {
            host: v.get("HOST").unwrap_or("127.0.0.1").to_string(),
            port: v.parse("PORT", 8000u16, "a TCP port number 0-65535")?,
            redis,
            redis_pool_size: v.positive("REDIS_POOL_SIZE", 64usize)?,
            redis_write_interval: {
                let expected = "a whole number of milliseconds from 0 to 10000";
                let ms = v.parse("REDIS_WRITE_INTERVAL_MS", 100u64, expected)?;
                if ms > 10_000 {
                    return Err(invalid(
                        "REDIS_WRITE_INTERVAL_MS",
                        "is over 10000",
                        expected,
                    ));
                }
                Duration::from_millis(ms)
            },
            auth_token_is_default: token == DEFAULT_AUTH_TOKEN,
            auth_token: SecretString::from(token.to_string()),
            admin_token: v
                .get("APIPROXY_ADMIN_TOKEN")
                .map(|t| SecretString::from(t.to_string())),
            metrics_public: v.flag("METRICS_PUBLIC", false)?,
            models_cache_ttl: v.seconds("MODELS_CACHE_TTL", 300)?,
            mask_as_browser: v.flag("MASK_AS_BROWSER", true)?,
            mask_user_agent: v
                .get("MASK_USER_AGENT")
                .unwrap_or(DEFAULT_USER_AGENT)
                .to_string(),
            mask_origin: v.get("MASK_ORIGIN").map(str::to_string),
            mask_referer: v.get("MASK_REFERER").map(str::to_string),
            log_level: log_level.to_string(),
            log_timezone: match v.get("LOG_TIMEZONE") {
                None => None,
                Some(name) => Some(name.parse::<chrono_tz::Tz>().map_err(|_| {
                    invalid(
                        "LOG_TIMEZONE",
                        format!("'{name}' is not a time zone"),
                        "an IANA name such as Asia/Shanghai or UTC",
                    )
                })?),
            },
            log_format,
            log_bodies: v.flag("LOG_BODIES", false)?,
            upstream_connect_timeout: v.seconds("UPSTREAM_CONNECT_TIMEOUT", 10)?,
            upstream_first_byte_timeout: v.seconds("UPSTREAM_FIRST_BYTE_TIMEOUT", 60)?,
            upstream_idle_timeout: v.seconds("UPSTREAM_IDLE_TIMEOUT", 120)?,
            upstream_timeout: v.seconds("UPSTREAM_TIMEOUT", 600)?,
            max_request_body_bytes: v.positive("MAX_REQUEST_BODY_BYTES", 32 * 1024 * 1024usize)?,
            session_ttl: v.seconds("SESSION_TTL", 7200)?,
            context_max_entries: v.positive("CONTEXT_MAX_ENTRIES", 50usize)?,
            context_ttl: v.seconds("CONTEXT_TTL", 604_800)?,
            context_max_sessions: v.positive("CONTEXT_MAX_SESSIONS", 10_000usize)?,
            logical_models_file: v.get("LOGICAL_MODELS_FILE").map(PathBuf::from),
            provider_failure_threshold: v.positive("PROVIDER_FAILURE_THRESHOLD", 3u32)?,
            provider_cooldown: v.seconds("PROVIDER_COOLDOWN_SECONDS", 30)?,
            shutdown_grace: v.seconds("SHUTDOWN_GRACE_SECONDS", 30)?,
            client_body_timeout: v.seconds("CLIENT_BODY_TIMEOUT", 30)?,
            max_in_flight: match v.get("MAX_IN_FLIGHT") {
                None => default_max_in_flight(),
                Some(_) => v.positive("MAX_IN_FLIGHT", 1usize)?,
            },
            workers: match v.positive(
                "WORKERS",
                std::thread::available_parallelism().map_or(1, usize::from),
            )? {
                n if n <= 1024 => n,
                _ => {
                    return Err(invalid(
                        "WORKERS",
                        "must be at most 1024",
                        "a whole number from 1 to 1024",
                    ));
                }
            },
            providers,
        };
        if settings.auth_token_is_default {
            warnings.push(format!(
                "APIPROXY_AUTH_TOKEN is the default '{DEFAULT_AUTH_TOKEN}': anyone who knows it can use your providers; set your own"
            ));
        }
        match v.get("APIPROXY_ADMIN_TOKEN") {
            None => warnings.push(
                "APIPROXY_ADMIN_TOKEN is unset: the gateway token (and only it) can also manage providers, models, keys and usage; set an admin token to keep clients out of management".to_string(),
            ),
            Some(admin) if admin == token => {
                return Err(invalid(
                    "APIPROXY_ADMIN_TOKEN",
                    "the same as APIPROXY_AUTH_TOKEN, so every client would be admin",
                    "a secret different from the gateway token",
                ));
            }
            Some(_) => {}
        }
        Ok((settings, warnings))
    }

    /// Reads and checks `LOGICAL_MODELS_FILE`: a JSON list of LogicalModel objects whose upstreams
    /// name configured providers. Endpoints are derived later, never taken from the file.
    pub fn load_logical_models(&self) -> Result<Vec<LogicalModel>, ConfigError> {
        let Some(path) = &self.logical_models_file else {
            return Ok(Vec::new());
        };
        const VAR: &str = "LOGICAL_MODELS_FILE";
        const EXPECTED: &str = "a JSON array of LogicalModel objects";
        let text = std::fs::read_to_string(path).map_err(|e| {
            invalid(
                VAR,
                format!("cannot read '{}': {e}", path.display()),
                EXPECTED,
            )
        })?;
        let models: Vec<LogicalModel> = serde_json::from_str(&text).map_err(|e| {
            invalid(
                VAR,
                format!("'{}' is not valid: {e}", path.display()),
                EXPECTED,
            )
        })?;
        let mut models = models;
        for model in &mut models {
            // As PUT /logical-models would store it: endpoints are derived, never taken from input.
            for upstream in &mut model.upstreams {
                upstream.endpoint.clear();
            }
            if model.display_name.is_empty() {
                model.display_name = model.logical_id.clone();
            }
        }
        let mut seen = std::collections::HashSet::new();
        for model in &models {
            model.validate().map_err(|e| {
                invalid(
                    VAR,
                    format!(
                        "logical model '{}': {}",
                        model.logical_id,
                        e.to_string().replace('\n', "; ")
                    ),
                    EXPECTED,
                )
            })?;
            if !seen.insert(model.logical_id.as_str()) {
                return Err(invalid(
                    VAR,
                    format!("logical model '{}' appears twice", model.logical_id),
                    EXPECTED,
                ));
            }
            for upstream in &model.upstreams {
                if !self.providers.iter().any(|p| p.id == upstream.provider_id) {
                    return Err(invalid(
                        VAR,
                        format!(
                            "logical model '{}' names provider '{}', which is not in LLM_PROVIDERS",
                            model.logical_id, upstream.provider_id
                        ),
                        "upstreams whose provider_id is a configured provider",
                    ));
                }
            }
        }
        Ok(models)
    }
}

fn provider_ids(vars: &BTreeMap<String, String>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for id in vars
        .get("LLM_PROVIDERS")
        .map(String::as_str)
        .unwrap_or("")
        .split(',')
    {
        let id = id.trim();
        if !id.is_empty() && !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    ids
}

fn parse_providers(
    vars: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<ProviderConfig>, ConfigError> {
    let ids = provider_ids(vars);
    // Variables for ids that LLM_PROVIDERS does not list: the seed README's most common mistake.
    for name in vars.keys() {
        let Some(rest) = name.strip_prefix("LLM_PROVIDER_") else {
            continue;
        };
        let owner = PROVIDER_SUFFIXES.iter().find_map(|suffix| {
            rest.strip_suffix(suffix)
                .and_then(|id| id.strip_suffix('_'))
        });
        match owner {
            Some(id)
                if ids
                    .iter()
                    .any(|known| known == id || known.to_ascii_uppercase() == id) => {}
            Some(id) => warnings.push(format!(
                "{name} is set but provider id '{id}' is not in LLM_PROVIDERS ({}); it is ignored",
                if ids.is_empty() {
                    "which is empty".to_string()
                } else {
                    ids.join(",")
                }
            )),
            None => warnings.push(format!(
                "{name} is not a known provider variable; it is ignored"
            )),
        }
    }
    let mut providers = Vec::new();
    for id in ids {
        if let Some(provider) = parse_provider(vars, &id, warnings)? {
            providers.push(provider);
        }
    }
    Ok(providers)
}

fn parse_provider(
    vars: &BTreeMap<String, String>,
    id: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<ProviderConfig>, ConfigError> {
    let v = Vars { vars };
    // `LLM_PROVIDER_openai_NAME`, or the upper-case form `LLM_PROVIDER_OPENAI_NAME`.
    let var = |suffix: &str| {
        let exact = format!("LLM_PROVIDER_{id}_{suffix}");
        if v.get(&exact).is_some() {
            return exact;
        }
        let upper = format!("LLM_PROVIDER_{}_{suffix}", id.to_ascii_uppercase());
        if v.get(&upper).is_some() {
            upper
        } else {
            exact
        }
    };
    let mut missing = Vec::new();
    for required in ["NAME", "BASE_URL", "API_KEY"] {
        if v.get(&var(required)).is_none() {
            missing.push(var(required));
        }
    }
    if !missing.is_empty() {
        warnings.push(format!(
            "provider '{id}' is skipped: {} is not set",
            missing.join(", ")
        ));
        return Ok(None);
    }
    let get = |suffix: &str| v.get(&var(suffix)).map(str::to_string);
    let base_var = var("BASE_URL");
    let base_url = get("BASE_URL").unwrap_or_default();
    match reqwest::Url::parse(&base_url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {}
        _ => {
            return Err(invalid(
                &base_var,
                format!("'{base_url}' is not an http(s) URL"),
                "a URL such as https://api.openai.com",
            ));
        }
    }
    let vendor = match get("VENDOR") {
        None => Vendor::infer_from_id(id),
        Some(raw) => Vendor::parse(&raw).ok_or_else(|| {
            invalid(
                &var("VENDOR"),
                format!("'{raw}' is not a vendor"),
                "openai, anthropic or gemini",
            )
        })?,
    };
    let weight_var = var("WEIGHT");
    let weight: f64 = v.parse(&weight_var, 1.0, "a number greater than 0")?;
    if !(weight > 0.0 && weight.is_finite()) {
        return Err(invalid(
            &weight_var,
            "must be greater than 0",
            "a number greater than 0",
        ));
    }
    let retry = match get("RETRYABLE_STATUS_CODES") {
        None => RetryPolicy::default_for(id),
        Some(raw) => RetryPolicy::parse(&raw).map_err(|problem| {
            invalid(
                &var("RETRYABLE_STATUS_CODES"),
                problem,
                "a list such as 429,500,502-504, or none",
            )
        })?,
    };
    let max_qps = match get("MAX_QPS") {
        None => None,
        Some(_) => Some(v.positive::<u32>(&var("MAX_QPS"), 1)?),
    };
    let cost = |suffix: &str| -> Result<Option<f64>, ConfigError> {
        let name = var(suffix);
        match v.get(&name) {
            None => Ok(None),
            Some(raw) => match raw.parse::<f64>() {
                Ok(c) if c >= 0.0 && c.is_finite() => Ok(Some(c)),
                _ => Err(invalid(
                    &name,
                    format!("'{raw}' is not a price"),
                    "a non-negative number (price per 1M tokens)",
                )),
            },
        }
    };
    let static_models = parse_static_models(
        &v,
        id,
        &var("STATIC_MODELS_JSON"),
        &var("STATIC_MODELS_FILE"),
    )?;
    let custom_headers = match get("CUSTOM_HEADERS_JSON") {
        None => Vec::new(),
        Some(raw) => {
            let name = var("CUSTOM_HEADERS_JSON");
            let map: BTreeMap<String, String> = serde_json::from_str(&raw).map_err(|_| {
                invalid(
                    &name,
                    "not a JSON object of strings",
                    "a JSON object such as {\"api-key\":\"...\"}",
                )
            })?;
            map.into_iter().collect()
        }
    };
    let path = |suffix: &str, default: &str| {
        let p = get(suffix).unwrap_or_else(|| default.to_string());
        if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        }
    };
    // Native Responses pass-through (SPEC 4.8): only an OpenAI-vendor provider can take it.
    let responses_path = match v.flag(&var("RESPONSES"), false)? {
        false => None,
        true if vendor == Vendor::OpenAi => Some(path("RESPONSES_PATH", "/v1/responses")),
        true => {
            return Err(invalid(
                &var("RESPONSES"),
                format!("provider '{id}' is not of the openai vendor"),
                "true only for providers with VENDOR=openai (the Responses API is OpenAI's)",
            ));
        }
    };
    if let Some(region) = get("REGION")
        && region.len() > 64
    {
        warnings.push(format!("{} is unusually long", var("REGION")));
    }
    Ok(Some(ProviderConfig {
        id: id.to_string(),
        name: get("NAME").unwrap_or_default(),
        base_url: base_url.trim_end_matches('/').to_string(),
        api_key: SecretString::from(get("API_KEY").unwrap_or_default()),
        vendor,
        models_path: path("MODELS_PATH", default_models_path(vendor)),
        chat_path: path("CHAT_PATH", default_chat_path(vendor)),
        responses_path,
        weight,
        region: get("REGION"),
        max_qps,
        retry,
        cost_input: cost("COST_INPUT")?,
        cost_output: cost("COST_OUTPUT")?,
        prices: parse_prices(&var("PRICES_JSON"), get("PRICES_JSON"))?,
        static_models,
        custom_headers,
    }))
}

/// `PRICES_JSON`: `{"model": {"input": 2.5, "output": 10, "cache_read": 1.25, "cache_write": 0}}`,
/// USD per 1M tokens (SPEC 2.2).
fn parse_prices(
    name: &str,
    raw: Option<String>,
) -> Result<std::collections::HashMap<String, Price>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(Default::default());
    };
    let expected = "a JSON object of model ids to {\"input\":2.5,\"output\":10,\"cache_read\":1.25,\"cache_write\":3.75} (USD per 1M tokens)";
    let prices: std::collections::HashMap<String, Price> = serde_json::from_str(&raw)
        .map_err(|e| invalid(name, format!("not valid prices: {e}"), expected))?;
    for (model, price) in &prices {
        if let Some(problem) = price.problem() {
            return Err(invalid(
                name,
                format!("model '{model}': {problem}"),
                expected,
            ));
        }
    }
    Ok(prices)
}

fn parse_static_models(
    v: &Vars<'_>,
    id: &str,
    json_var: &str,
    file_var: &str,
) -> Result<Option<Vec<Model>>, ConfigError> {
    const EXPECTED: &str =
        "a JSON list such as [\"model-a\", {\"id\":\"model-b\",\"context_length\":16384}]";
    let (raw, source) = match (v.get(json_var), v.get(file_var)) {
        (Some(json), _) => (json.to_string(), json_var),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| invalid(file_var, format!("cannot read '{path}': {e}"), EXPECTED))?;
            (text, file_var)
        }
        (None, None) => return Ok(None),
    };
    let value: serde_json::Value = serde_json::from_str(&raw)
        .map_err(|e| invalid(source, format!("not valid JSON: {e}"), EXPECTED))?;
    let entries = match value {
        serde_json::Value::Array(items) => items,
        object @ serde_json::Value::Object(_) => vec![object],
        _ => return Err(invalid(source, "not a list of models", EXPECTED)),
    };
    let mut models = Vec::new();
    for entry in &entries {
        let model = crate::protocol::models::model_from_entry(id, entry)
            .ok_or_else(|| invalid(source, format!("entry {entry} has no model id"), EXPECTED))?;
        models.push(model);
    }
    Ok(Some(models))
}

/// Where a vendor lists its models when `MODELS_PATH` is not set.
fn default_models_path(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::Gemini => "/v1beta/models",
        _ => "/v1/models",
    }
}

/// Where a vendor takes chat requests when `CHAT_PATH` is not set (`{model}`: the model id).
fn default_chat_path(vendor: Vendor) -> &'static str {
    match vendor {
        Vendor::OpenAi => "/v1/chat/completions",
        Vendor::Anthropic => "/v1/messages",
        Vendor::Gemini => "/v1beta/models/{model}:generateContent",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn provider_vars(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut all = vars(&[
            ("LLM_PROVIDERS", " openai , ,local"),
            ("LLM_PROVIDER_openai_NAME", "OpenAI"),
            ("LLM_PROVIDER_openai_BASE_URL", "https://api.openai.com/v1/"),
            ("LLM_PROVIDER_openai_API_KEY", "sk-secret-1234"),
            ("LLM_PROVIDER_local_NAME", "Local"),
            ("LLM_PROVIDER_local_BASE_URL", "http://127.0.0.1:11434"),
            ("LLM_PROVIDER_local_API_KEY", "none"),
        ]);
        all.extend(vars(extra));
        all
    }

    #[test]
    fn the_default_token_is_refused_beyond_loopback() {
        for (host, token, allowed) in [
            ("127.0.0.1", None, true),
            ("localhost", Some("  "), true),
            ("::1", Some("timeline"), true),
            ("[::1]", None, true),
            ("127.0.0.2", None, true),
            ("0.0.0.0", None, false),
            ("0.0.0.0", Some(""), false),
            ("0.0.0.0", Some("timeline"), false),
            ("::", None, false),
            ("10.1.2.3", None, false),
            ("gateway.internal", None, false),
            ("0.0.0.0", Some("my-own-secret"), true),
        ] {
            let mut v = vars(&[("HOST", host)]);
            if let Some(token) = token {
                v.insert("APIPROXY_AUTH_TOKEN".into(), token.into());
            }
            let (settings, _) = Settings::from_vars(&v).unwrap();
            let checked = settings.check_exposure();
            assert_eq!(
                checked.is_ok(),
                allowed,
                "{host} with {token:?}: {checked:?}"
            );
            if let Err(e) = checked {
                let message = e.to_string();
                assert!(
                    message.starts_with("APIPROXY_AUTH_TOKEN")
                        && message.contains("encode-token")
                        && message.contains(host),
                    "{message}"
                );
            }
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let (settings, warnings) = Settings::from_vars(&BTreeMap::new()).unwrap();
        assert_eq!((settings.host.as_str(), settings.port), ("127.0.0.1", 8000));
        assert_eq!(settings.max_request_body_bytes, 32 * 1024 * 1024);
        assert!(settings.auth_token_is_default && settings.providers.is_empty());
        assert!(warnings.iter().any(|w| w.contains("APIPROXY_AUTH_TOKEN")));
    }

    #[test]
    fn providers_parse_with_their_defaults() {
        let (settings, _) = Settings::from_vars(&provider_vars(&[
            ("LLM_PROVIDER_local_WEIGHT", "0.1"),
            ("LLM_PROVIDER_local_RETRYABLE_STATUS_CODES", "429,500-502"),
            (
                "LLM_PROVIDER_local_STATIC_MODELS_JSON",
                r#"["llama3", {"id":"qwen","context_length":16384}]"#,
            ),
            (
                "LLM_PROVIDER_local_CUSTOM_HEADERS_JSON",
                r#"{"X-Team":"a"}"#,
            ),
        ]))
        .unwrap();
        let ids: Vec<&str> = settings.providers.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["openai", "local"]);
        let openai = &settings.providers[0];
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        assert_eq!(
            openai.chat_url("gpt-4o"),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(openai.api_key.expose_secret(), "sk-secret-1234");
        assert!(
            !format!("{openai:?}").contains("sk-secret-1234"),
            "keys must not reach Debug output"
        );
        let local = &settings.providers[1];
        assert_eq!(local.weight, 0.1);
        assert!(local.retry.is_retryable_status(501) && !local.retry.is_retryable_status(503));
        assert_eq!(
            local.static_models.as_ref().unwrap()[1].context_length,
            16384
        );
        assert_eq!(
            local.custom_headers,
            vec![("X-Team".to_string(), "a".to_string())]
        );
    }

    #[test]
    fn incomplete_providers_are_skipped_with_the_missing_variable_named() {
        let mut all = provider_vars(&[("LLM_PROVIDERS", "openai,bad")]);
        all.insert("LLM_PROVIDER_bad_NAME".into(), "Bad".into());
        let (settings, warnings) = Settings::from_vars(&all).unwrap();
        assert_eq!(settings.providers.len(), 1);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("LLM_PROVIDER_bad_BASE_URL")
                    && w.contains("LLM_PROVIDER_bad_API_KEY")),
            "{warnings:?}"
        );
    }

    #[test]
    fn variables_for_unlisted_ids_are_warned_about() {
        let (_, warnings) =
            Settings::from_vars(&provider_vars(&[("LLM_PROVIDER_azure_API_KEY", "k")])).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("LLM_PROVIDER_azure_API_KEY") && w.contains("'azure'")),
            "{warnings:?}"
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let cases = [
            ("PORT", "eighty"),
            ("LOG_LEVEL", "LOUD"),
            ("LOG_TIMEZONE", "Mars/Olympus"),
            ("UPSTREAM_TIMEOUT", "-1"),
            ("MAX_REQUEST_BODY_BYTES", "0"),
            ("REDIS_URL", "http://x"),
            ("MASK_AS_BROWSER", "maybe"),
            ("LLM_PROVIDER_openai_WEIGHT", "0"),
            ("LLM_PROVIDER_openai_RETRYABLE_STATUS_CODES", "5xx"),
            ("LLM_PROVIDER_openai_VENDOR", "azure"),
            ("LLM_PROVIDER_openai_BASE_URL", "api.openai.com"),
            ("LLM_PROVIDER_openai_STATIC_MODELS_JSON", "[1]"),
            ("LLM_PROVIDER_openai_CUSTOM_HEADERS_JSON", "[]"),
            ("LLM_PROVIDER_openai_MAX_QPS", "0"),
            ("WORKERS", "0"),
            ("WORKERS", "1025"),
            ("WORKERS", "two"),
        ];
        for (name, value) in cases {
            let err = Settings::from_vars(&provider_vars(&[(name, value)])).unwrap_err();
            assert_eq!(err.variable, name, "{err}");
            assert!(!err.to_string().contains("sk-secret"), "{err}");
        }
    }

    #[test]
    fn redis_targets_come_from_either_variable_and_wrong_forms_name_it() {
        let target = |vars: &[(&str, &str)]| {
            Settings::from_vars(&provider_vars(vars)).map(|(s, _)| s.redis.map(|t| t.describe()))
        };
        assert_eq!(target(&[]).unwrap(), None);
        assert_eq!(
            target(&[("REDIS_URL", "redis://127.0.0.1:6379/0")]).unwrap(),
            Some("redis (one server)".to_string())
        );
        assert_eq!(
            target(&[("REDIS_URL", "redis+cluster://:pw@h1:7000,h2:7001")]).unwrap(),
            Some("redis cluster (2 seed nodes)".to_string())
        );
        assert_eq!(
            target(&[("REDIS_CLUSTER_NODES", "h1:7000,h2:7001,h3:7002")]).unwrap(),
            Some("redis cluster (3 seed nodes)".to_string())
        );
        assert_eq!(
            target(&[("REDIS_URL", "redis+sentinel://s1:26379,s2:26380/mymaster/1")]).unwrap(),
            Some("redis sentinel (master 'mymaster', 2 sentinels)".to_string())
        );
        for (name, vars) in [
            (
                "REDIS_URL",
                vec![("REDIS_URL", "redis+sentinel://:sk-secret@s1:26379")],
            ),
            (
                "REDIS_URL",
                vec![("REDIS_URL", "redis+cluster://:sk-secret@h1:x")],
            ),
            ("REDIS_CLUSTER_NODES", vec![("REDIS_CLUSTER_NODES", " , ")]),
            (
                "REDIS_CLUSTER_NODES",
                vec![
                    ("REDIS_CLUSTER_NODES", "h1:7000"),
                    ("REDIS_URL", "redis://h1"),
                ],
            ),
            (
                "REDIS_CLUSTER_NODES",
                vec![("REDIS_CLUSTER_NODES", "h1:99999")],
            ),
        ] {
            let err = target(&vars).unwrap_err();
            assert_eq!(err.variable, name, "{err}");
            assert!(!err.to_string().contains("sk-secret"), "{err}");
        }
    }

    #[test]
    fn logical_models_file_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("models.json");
        std::fs::write(&path, r#"[{"logical_id":"gpt","upstreams":[{"provider_id":"openai","model_id":"gpt-4o","endpoint":"http://evil"}]}]"#).unwrap();
        let file = path.to_str().unwrap();
        let (settings, _) =
            Settings::from_vars(&provider_vars(&[("LOGICAL_MODELS_FILE", file)])).unwrap();
        let models = settings.load_logical_models().unwrap();
        assert_eq!(models[0].upstreams[0].base_weight, 1.0);
        std::fs::write(
            &path,
            r#"[{"logical_id":"gpt","upstreams":[{"provider_id":"nobody","model_id":"x"}]}]"#,
        )
        .unwrap();
        let err = settings.load_logical_models().unwrap_err();
        assert!(
            err.variable == "LOGICAL_MODELS_FILE" && err.problem.contains("nobody"),
            "{err}"
        );
        std::fs::write(&path, r#"[{"logical_id":"gpt","upstreams":[{"provider_id":"openai","model_id":"x","base_weight":-1}]}]"#).unwrap();
        assert!(
            settings
                .load_logical_models()
                .unwrap_err()
                .problem
                .contains("base_weight")
        );
    }
}
