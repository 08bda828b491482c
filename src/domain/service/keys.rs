//! The virtual-key use cases (SPEC 3.1): create, change, rotate and revoke keys; recognise a
//! presented secret (cached for at most a second, so a change reaches every instance within about
//! one); and report spending and usage.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::domain::keys::{
    BudgetPeriod, KeyState, SHOWN_PREFIX_LEN, VirtualKey, new_key_id, new_secret, secret_hash,
};
use crate::domain::metering::{UsageGroup, UsageTotals, days_between};
use crate::domain::names;
use crate::domain::ports::{Clock, KeyLedger, KeyStore, RandomSource, StoreError, UsageStore};

/// How long a looked-up key is trusted before the store is asked again (SPEC 3.1: a change
/// takes effect on every instance within about a second).
pub const KEY_CACHE_SECONDS: f64 = 1.0;
/// How long a cached key may stand in when the store cannot be reached.
const STALE_KEY_SECONDS: f64 = 60.0;
/// Secrets remembered at most (unknown ones included), so random guesses cannot grow memory.
const KEY_CACHE_ENTRIES: usize = 10_000;
/// How often one instance notes a key's use in the store: `last_used_at` is exact to this.
pub const TOUCH_SECONDS: f64 = 60.0;
/// The longest `/usage` range.
pub const MAX_USAGE_DAYS: usize = 400;

/// What a client sends to create a key, and what a change is checked as (SPEC 3.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    #[validate(length(min = 1, max = 128, message = "must be 1 to 128 characters"))]
    pub name: String,
    #[serde(default)]
    #[validate(custom(function = "team_name"))]
    pub team: Option<String>,
    #[serde(default)]
    #[validate(custom(function = "model_patterns"))]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    #[validate(range(min = 1, message = "must be at least 1 (omit it for no limit)"))]
    pub rpm: Option<u32>,
    #[serde(default)]
    #[validate(range(min = 1, message = "must be at least 1 (omit it for no limit)"))]
    pub tpm: Option<u64>,
    #[serde(default)]
    #[validate(range(min = 1, message = "must be at least 1 (omit it for no limit)"))]
    pub max_parallel: Option<u32>,
    #[serde(default)]
    #[validate(range(
        min = 0.0,
        max = 1e9,
        message = "must be a number of USD from 0 to 1e9"
    ))]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// RFC 3339.
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    #[validate(custom(function = "metadata_object"))]
    pub metadata: Option<Value>,
}

fn yes() -> bool {
    true
}

fn team_name(team: &str) -> Result<(), validator::ValidationError> {
    names::check_id("team", team)
        .map_err(|e| validator::ValidationError::new("team").with_message(e.problem.into()))
}

fn model_patterns(models: &[String]) -> Result<(), validator::ValidationError> {
    let bad = |m: &str| m.is_empty() || m.len() > 256 || m.chars().any(char::is_control);
    if models.len() > 1000 || models.iter().any(|m| bad(m)) {
        return Err(validator::ValidationError::new("models").with_message(
            "must be at most 1000 model names or `*` globs of 1 to 256 characters".into(),
        ));
    }
    Ok(())
}

fn metadata_object(metadata: &Value) -> Result<(), validator::ValidationError> {
    if !metadata.is_object() || metadata.to_string().len() > 16 * 1024 {
        return Err(validator::ValidationError::new("metadata")
            .with_message("must be a JSON object of at most 16 KiB".into()));
    }
    Ok(())
}

impl KeySpec {
    /// A spec from a JSON object, or the field at fault and why.
    pub fn parse(value: Value) -> Result<KeySpec, KeyError> {
        let Some(fields) = value.as_object() else {
            return Err(KeyError::Invalid((
                "body".into(),
                "must be a JSON object".into(),
            )));
        };
        // Serde's messages do not always say which field failed: try each on its own to name it.
        let blame = |field: &str, v: &Value| {
            let alone = serde_json::json!({ "name": "x", field: v });
            serde_json::from_value::<KeySpec>(alone).err().map(|e| {
                let problem = if e.to_string().starts_with("unknown field") {
                    "is not a key field (the secret cannot be set or changed: rotate the key)"
                        .to_string()
                } else {
                    e.to_string()
                };
                KeyError::Invalid((field.to_string(), problem))
            })
        };
        if let Some(error) = fields.iter().find_map(|(field, v)| blame(field, v)) {
            return Err(error);
        }
        serde_json::from_value(value).map_err(|e| KeyError::Invalid(("body".into(), e.to_string())))
    }

    /// The editable fields of a stored key, as a spec (for changes: the stored spec with the
    /// change laid over it is checked like a new key).
    pub fn of(key: &VirtualKey) -> KeySpec {
        KeySpec {
            name: key.name.clone(),
            team: key.team.clone(),
            models: key.models.clone(),
            rpm: key.rpm,
            tpm: key.tpm,
            max_parallel: key.max_parallel,
            budget_usd: key.budget_usd,
            budget_period: key.budget_period,
            expires_at: key.expires_at.map(rfc3339),
            enabled: key.enabled,
            metadata: key.metadata.clone(),
        }
    }

    /// `key` with this spec's fields (the id, secret, prefix and creation time stay).
    fn onto(self, key: VirtualKey, expires_at: Option<f64>) -> VirtualKey {
        VirtualKey {
            name: self.name,
            team: self.team,
            models: self.models,
            rpm: self.rpm,
            tpm: self.tpm,
            max_parallel: self.max_parallel,
            budget_usd: self.budget_usd,
            budget_period: self.budget_period,
            expires_at,
            enabled: self.enabled,
            metadata: self.metadata,
            ..key
        }
    }

    /// The checked fields: `Err` names the field and the problem.
    fn checked(&self) -> Result<Option<f64>, KeyError> {
        self.validate()
            .map_err(|e| KeyError::Invalid(first_problem(&e)))?;
        self.expires_at
            .as_deref()
            .map(|at| {
                chrono::DateTime::parse_from_rfc3339(at)
                    .map(|t| t.timestamp_millis() as f64 / 1000.0)
                    .map_err(|_| {
                        KeyError::Invalid((
                            "expires_at".into(),
                            format!("'{at}' is not an RFC 3339 time such as 2027-01-31T00:00:00Z"),
                        ))
                    })
            })
            .transpose()
    }
}

/// The first field error of a validation, as (field, message).
fn first_problem(errors: &validator::ValidationErrors) -> (String, String) {
    errors
        .field_errors()
        .into_iter()
        .next()
        .map(|(field, list)| {
            let message = list
                .first()
                .and_then(|e| e.message.clone())
                .map_or_else(|| "is invalid".to_string(), |m| m.to_string());
            (field.to_string(), message)
        })
        .unwrap_or_else(|| ("body".into(), "is invalid".into()))
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(at: f64) -> String {
    chrono::DateTime::from_timestamp_millis((at * 1000.0) as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KeyError {
    /// (field, problem)
    #[error("{}: {}", .0.0, .0.1)]
    Invalid((String, String)),
    #[error("no key with id '{0}'")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a presented secret is not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// Unknown, deleted or rotated away.
    Unknown,
    Disabled,
    Expired,
    /// The key store cannot be asked and nothing recent is known.
    StoreUnavailable,
}

/// A new key or a rotated one: the key and its secret, shown this once.
pub struct Minted {
    pub key: VirtualKey,
    pub secret: String,
}

/// Usage of one key in its current budget period (`GET /v1/usage`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyUsage {
    pub key: VirtualKey,
    pub period: String,
    pub spent_nano: u64,
    pub totals: UsageTotals,
}

struct Cached {
    key: Option<Arc<VirtualKey>>,
    fetched: f64,
}

pub struct KeyService {
    store: Arc<dyn KeyStore>,
    ledger: Arc<dyn KeyLedger>,
    usage: Arc<dyn UsageStore>,
    clock: Arc<dyn Clock>,
    random: Arc<dyn RandomSource>,
    cache: Mutex<HashMap<String, Cached>>,
    /// When this instance last noted each key's use in the store.
    touched: Mutex<HashMap<String, f64>>,
}

/// What the key list shows beside each key.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct KeyFigures {
    /// Spent in the current budget period, nano-dollars.
    pub spent: u64,
    pub last_used: Option<f64>,
}

impl KeyService {
    pub fn new(
        store: Arc<dyn KeyStore>,
        ledger: Arc<dyn KeyLedger>,
        usage: Arc<dyn UsageStore>,
        clock: Arc<dyn Clock>,
        random: Arc<dyn RandomSource>,
    ) -> Self {
        KeyService {
            store,
            ledger,
            usage,
            clock,
            random,
            cache: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
        }
    }

    /// Notes the key's use in the store, at most once a minute per instance, without making the
    /// request wait.
    fn touch(&self, key: &VirtualKey, now: f64) {
        {
            let mut touched = self.touched.lock();
            if touched
                .get(&key.id)
                .is_some_and(|at| now - at < TOUCH_SECONDS)
            {
                return;
            }
            if touched.len() >= KEY_CACHE_ENTRIES {
                touched.clear();
            }
            touched.insert(key.id.clone(), now);
        }
        let (store, id) = (self.store.clone(), key.id.clone());
        tokio::spawn(async move {
            if let Err(e) = store.touch(&id, now).await {
                tracing::debug!(error = %e, "key use not noted");
            }
        });
    }

    /// The usable key a secret belongs to.
    pub async fn authenticate(&self, secret: &str) -> Result<Arc<VirtualKey>, Denied> {
        let hash = secret_hash(secret);
        let now = self.clock.now();
        let cached = {
            let cache = self.cache.lock();
            cache.get(&hash).map(|c| (c.key.clone(), now - c.fetched))
        };
        let key = match cached {
            Some((key, age)) if age < KEY_CACHE_SECONDS => key,
            stale => match self.store.find_by_hash(&hash).await {
                Ok(found) => {
                    let found = found.map(Arc::new);
                    self.remember(hash, found.clone(), now);
                    found
                }
                Err(e) => match stale {
                    Some((key, age)) if age < STALE_KEY_SECONDS => {
                        tracing::warn!(error = %e, "key store unreachable; using the key as last seen");
                        key
                    }
                    _ => {
                        tracing::warn!(error = %e, "key store unreachable; refusing the key");
                        return Err(Denied::StoreUnavailable);
                    }
                },
            },
        };
        let key = key.ok_or(Denied::Unknown)?;
        match key.state(now) {
            KeyState::Usable => {
                self.touch(&key, now);
                Ok(key)
            }
            KeyState::Disabled => Err(Denied::Disabled),
            KeyState::Expired => Err(Denied::Expired),
        }
    }

    fn remember(&self, hash: String, key: Option<Arc<VirtualKey>>, now: f64) {
        let mut cache = self.cache.lock();
        if cache.len() >= KEY_CACHE_ENTRIES {
            cache.retain(|_, c| now - c.fetched < KEY_CACHE_SECONDS);
            if cache.len() >= KEY_CACHE_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(hash, Cached { key, fetched: now });
    }

    /// Forgets what this instance cached about a key (it changed here).
    fn forget(&self, hash: &str) {
        self.cache.lock().remove(hash);
    }

    fn mint(&self) -> (String, String) {
        let secret = new_secret(self.random.secret_bytes());
        (secret.clone(), secret_hash(&secret))
    }

    pub async fn create(&self, spec: KeySpec) -> Result<Minted, KeyError> {
        let expires_at = spec.checked()?;
        let (secret, hash) = self.mint();
        let key = spec.onto(
            VirtualKey {
                id: new_key_id(&self.random.secret_bytes()),
                name: String::new(),
                team: None,
                prefix: secret[..SHOWN_PREFIX_LEN].to_string(),
                secret_hash: hash,
                models: None,
                rpm: None,
                tpm: None,
                max_parallel: None,
                budget_usd: None,
                budget_period: BudgetPeriod::default(),
                expires_at: None,
                enabled: true,
                created_at: self.clock.now(),
                metadata: None,
            },
            expires_at,
        );
        self.store.create(key.clone()).await?;
        Ok(Minted { key, secret })
    }

    pub async fn list(&self) -> Result<Vec<VirtualKey>, KeyError> {
        Ok(self.store.list().await?)
    }

    pub async fn get(&self, id: &str) -> Result<VirtualKey, KeyError> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| KeyError::NotFound(id.to_string()))
    }

    /// Lays `change` (a JSON object of key fields) over the key and stores it once the result
    /// checks out as a whole.
    pub async fn change(&self, id: &str, change: &Value) -> Result<VirtualKey, KeyError> {
        let current = self.get(id).await?;
        let mut spec = serde_json::to_value(KeySpec::of(&current))
            .map_err(|e| KeyError::Invalid(("body".into(), e.to_string())))?;
        let Some(fields) = change.as_object() else {
            return Err(KeyError::Invalid((
                "body".into(),
                "must be a JSON object".into(),
            )));
        };
        for (field, value) in fields {
            spec[field] = value.clone();
        }
        let spec = KeySpec::parse(spec)?;
        let expires_at = spec.checked()?;
        let key = spec.onto(current, expires_at);
        if !self.store.update(key.clone(), &key.secret_hash).await? {
            return Err(KeyError::NotFound(id.to_string()));
        }
        self.forget(&key.secret_hash);
        Ok(key)
    }

    /// A new secret for the key; the old one stops working.
    pub async fn rotate(&self, id: &str) -> Result<Minted, KeyError> {
        let current = self.get(id).await?;
        let (secret, hash) = self.mint();
        let key = VirtualKey {
            prefix: secret[..SHOWN_PREFIX_LEN].to_string(),
            secret_hash: hash,
            ..current.clone()
        };
        if !self.store.update(key.clone(), &current.secret_hash).await? {
            return Err(KeyError::NotFound(id.to_string()));
        }
        self.forget(&current.secret_hash);
        Ok(Minted { key, secret })
    }

    pub async fn delete(&self, id: &str) -> Result<(), KeyError> {
        let current = self.get(id).await?;
        if !self.store.delete(id).await? {
            return Err(KeyError::NotFound(id.to_string()));
        }
        self.forget(&current.secret_hash);
        Ok(())
    }

    /// What each key spent in its current budget period and when it was last used, in order.
    pub async fn figures(&self, keys: &[VirtualKey]) -> Result<Vec<KeyFigures>, KeyError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let periods: Vec<(String, String)> = keys
            .iter()
            .map(|k| (k.id.clone(), k.budget_period.window(now).id))
            .collect();
        let ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        let (spent, used) = tokio::join!(self.ledger.spent(&periods), self.store.last_used(&ids));
        let (spent, used) = (spent?, used?);
        Ok((0..keys.len())
            .map(|i| KeyFigures {
                spent: spent.get(i).copied().unwrap_or(0),
                last_used: used.get(i).copied().flatten(),
            })
            .collect())
    }

    /// Usage per group over a range of days (`GET /usage`).
    pub async fn usage(
        &self,
        from: &str,
        to: &str,
        group_by: UsageGroup,
    ) -> Result<Vec<(String, UsageTotals)>, KeyError> {
        let days = days_between(from, to, MAX_USAGE_DAYS).ok_or_else(|| {
            KeyError::Invalid((
                "from".into(),
                "from and to must be dates YYYY-MM-DD with from not after to".into(),
            ))
        })?;
        Ok(self.usage.totals(&days, group_by, None).await?)
    }

    /// The calling key's own spending and usage in its current budget period (`GET /v1/usage`).
    pub async fn own_usage(&self, key: &VirtualKey) -> Result<KeyUsage, KeyError> {
        let now = self.clock.now();
        let period = key.budget_period.window(now);
        let today = crate::domain::keys::day_of(now);
        let first_day = match key.budget_period {
            BudgetPeriod::Daily => today.clone(),
            BudgetPeriod::Monthly => format!("{}-01", &today[..7]),
            BudgetPeriod::Total => crate::domain::keys::day_of(key.created_at),
        };
        // The newest days, when a key's whole life is longer than usage is kept.
        let mut days = days_between(&first_day, &today, usize::MAX).unwrap_or_default();
        days.drain(..days.len().saturating_sub(MAX_USAGE_DAYS));
        let periods = [(key.id.clone(), period.id.clone())];
        let (spent, totals) = tokio::join!(
            self.ledger.spent(&periods),
            self.usage
                .totals(&days, UsageGroup::Key, Some(key.id.clone())),
        );
        Ok(KeyUsage {
            key: key.clone(),
            period: period.id,
            spent_nano: spent?.first().copied().unwrap_or(0),
            totals: totals?.first().map(|(_, t)| *t).unwrap_or_default(),
        })
    }
}
