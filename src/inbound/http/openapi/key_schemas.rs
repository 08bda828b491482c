//! Wire schemas of the virtual keys and usage endpoints (SPEC 3.1), apart from the chat and
//! management ones in `schemas` (same conventions: doc comments are the descriptions).

use salvo::oapi::{Components, ToSchema};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Registers the schemas of this module.
pub fn all(components: &mut Components) {
    let _ = NewKey::to_schema(components);
    let _ = KeyChange::to_schema(components);
    let _ = KeyObject::to_schema(components);
    let _ = CreatedKey::to_schema(components);
    let _ = KeyList::to_schema(components);
    let _ = UsageReport::to_schema(components);
    let _ = OwnUsage::to_schema(components);
}

/// A new virtual key. Only `name` is required; every limit is off when absent.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "NewKey", example = json!({"name": "ci-bot", "team": "platform", "models": ["gpt-4o*", "claude-*"], "rpm": 60, "tpm": 100000, "max_parallel": 4, "budget_usd": 50, "budget_period": "monthly"})))]
pub struct NewKey {
    /// 1 to 128 characters.
    pub name: String,
    /// A team name (usage groups by it; the `/metrics` cost and token counters are labelled with it).
    pub team: Option<String>,
    /// Logical model names or `*` globs the key may ask for; absent: every model.
    pub models: Option<Vec<String>>,
    /// Requests per sliding minute.
    pub rpm: Option<u32>,
    /// Tokens (input and output) per sliding minute.
    pub tpm: Option<u64>,
    /// Requests in progress at once.
    pub max_parallel: Option<u32>,
    /// Spending limit in USD per budget period.
    pub budget_usd: Option<f64>,
    /// `daily`, `monthly` (UTC calendar month, default) or `total`.
    pub budget_period: Option<String>,
    /// RFC 3339 time after which the key is refused.
    pub expires_at: Option<String>,
    /// Default true.
    pub enabled: Option<bool>,
    /// Any JSON object of at most 16 KiB, kept with the key.
    pub metadata: Option<Value>,
}

/// Fields of a key to change (the others stay); `null` clears an optional one.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "KeyChange", example = json!({"enabled": false})))]
pub struct KeyChange {
    pub name: Option<String>,
    pub team: Option<String>,
    pub models: Option<Vec<String>>,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    pub max_parallel: Option<u32>,
    pub budget_usd: Option<f64>,
    pub budget_period: Option<String>,
    pub expires_at: Option<String>,
    pub enabled: Option<bool>,
    pub metadata: Option<Value>,
}

/// A virtual key; never its secret.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "KeyObject"))]
pub struct KeyObject {
    /// `key_` and 24 hex digits.
    pub id: String,
    pub name: String,
    #[salvo(schema(required))]
    pub team: Option<String>,
    /// The first 10 characters of the secret, to tell keys apart.
    pub prefix: String,
    #[salvo(schema(required))]
    pub models: Option<Vec<String>>,
    #[salvo(schema(required))]
    pub rpm: Option<u32>,
    #[salvo(schema(required))]
    pub tpm: Option<u64>,
    #[salvo(schema(required))]
    pub max_parallel: Option<u32>,
    #[salvo(schema(required))]
    pub budget_usd: Option<f64>,
    /// `daily`, `monthly` or `total`.
    pub budget_period: String,
    /// Spent in the current budget period, USD.
    pub spent_usd: f64,
    #[salvo(schema(required))]
    pub expires_at: Option<String>,
    pub enabled: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339, or null before the key's first request.
    #[salvo(schema(required))]
    pub last_used_at: Option<String>,
    #[salvo(schema(required))]
    pub metadata: Option<Value>,
}

/// A key just created or rotated, with its secret.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "CreatedKey"))]
pub struct CreatedKey {
    /// The secret (`sk-apx-...`), shown this once: only its hash is stored.
    pub key: String,
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub budget_period: String,
    pub spent_usd: f64,
    pub enabled: bool,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "KeyList"))]
pub struct KeyList {
    pub keys: Vec<KeyObject>,
    pub total: u64,
}

/// Usage and cost per group.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "UsageReport"))]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub group_by: String,
    pub usage: Vec<UsageRow>,
}

// `UsageReport.usage[]`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct UsageRow {
    /// The key id (`gateway` for the gateway and admin tokens), team, logical model, provider or day.
    pub group: String,
    pub requests: u64,
    /// Every input token, cached ones included.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Part of the output tokens.
    pub reasoning_tokens: u64,
    pub cost_usd: f64,
}

/// A virtual key's own usage in its current budget period.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "OwnUsage"))]
pub struct OwnUsage {
    pub key_id: String,
    /// `d:YYYY-MM-DD`, `m:YYYY-MM` or `total`.
    pub period: String,
    #[salvo(schema(required))]
    pub budget_usd: Option<f64>,
    pub spent_usd: f64,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}
