//! Virtual keys (SPEC 3.1): the record a team gets instead of the gateway token, and its rules:
//! which models it may ask for, when it stops working, how its secret is kept and in which budget
//! period its spending falls.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::usage::NanoUsd;

/// What every virtual key's secret starts with.
pub const SECRET_PREFIX: &str = "sk-apx-";
/// How many characters of the secret the key list shows (`sk-apx-` and three more).
pub const SHOWN_PREFIX_LEN: usize = 10;

/// When a key's budget starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// Each UTC day.
    Daily,
    /// Each UTC calendar month.
    #[default]
    Monthly,
    /// Once, for the key's whole life.
    Total,
}

/// One budget period: its name in the store and how long its spending must be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodWindow {
    /// `d:2026-12-07`, `m:2026-12` or `total`.
    pub id: String,
    /// Seconds the period's spending must outlive its last write (`None`: for ever).
    pub ttl_secs: Option<u64>,
}

impl BudgetPeriod {
    /// The period that `now` (Unix seconds) falls in.
    pub fn window(self, now: f64) -> PeriodWindow {
        match self {
            BudgetPeriod::Daily => PeriodWindow {
                id: format!("d:{}", day_of(now)),
                ttl_secs: Some(2 * 86_400),
            },
            BudgetPeriod::Monthly => PeriodWindow {
                id: format!("m:{}", &day_of(now)[..7]),
                ttl_secs: Some(32 * 86_400),
            },
            BudgetPeriod::Total => PeriodWindow {
                id: "total".into(),
                ttl_secs: None,
            },
        }
    }
}

impl BudgetPeriod {
    /// Seconds until the period that `now` falls in ends (`None`: it never does).
    pub fn seconds_left(self, now: f64) -> Option<u64> {
        use chrono::{Datelike, NaiveDate};
        let today = chrono::DateTime::from_timestamp(now.max(0.0) as i64, 0)?.date_naive();
        let next = match self {
            BudgetPeriod::Daily => today.succ_opt()?,
            BudgetPeriod::Monthly => match today.month() {
                12 => NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)?,
                m => NaiveDate::from_ymd_opt(today.year(), m + 1, 1)?,
            },
            BudgetPeriod::Total => return None,
        };
        let end = next.and_hms_opt(0, 0, 0)?.and_utc().timestamp() as f64;
        Some((end - now).ceil().max(1.0) as u64)
    }
}

/// The UTC day of a Unix time, `YYYY-MM-DD`. On every metered request, so the digits are written
/// by hand: `format!` with padding was most of its cost (about 1,300 instructions).
pub fn day_of(now: f64) -> String {
    use chrono::Datelike;
    let date = chrono::DateTime::from_timestamp(now.max(0.0) as i64, 0)
        .unwrap_or_default()
        .date_naive();
    let Some(year) = u32::try_from(date.year()).ok().filter(|&y| y <= 9999) else {
        return format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day());
    };
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let mut day = String::with_capacity(10);
    day.extend([year / 1000, year / 100, year / 10, year].map(digit));
    day.push('-');
    day.extend([date.month() / 10, date.month()].map(digit));
    day.push('-');
    day.extend([date.day() / 10, date.day()].map(digit));
    day
}

/// A virtual key as stored: never its secret, only the secret's hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VirtualKey {
    /// `key_` and 24 hex digits.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub team: Option<String>,
    /// The first characters of the secret, to tell keys apart in lists.
    pub prefix: String,
    /// SHA-256 of the secret, hex ([`secret_hash`]).
    pub secret_hash: String,
    /// Model names or `*` globs the key may ask for; `None`: every model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub rpm: Option<u32>,
    #[serde(default)]
    pub tpm: Option<u64>,
    #[serde(default)]
    pub max_parallel: Option<u32>,
    #[serde(default)]
    pub budget_usd: Option<f64>,
    #[serde(default)]
    pub budget_period: BudgetPeriod,
    /// Unix seconds after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<f64>,
    pub enabled: bool,
    pub created_at: f64,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// Why a key that exists is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Usable,
    Disabled,
    Expired,
}

impl VirtualKey {
    pub fn state(&self, now: f64) -> KeyState {
        if !self.enabled {
            KeyState::Disabled
        } else if self.expires_at.is_some_and(|at| now >= at) {
            KeyState::Expired
        } else {
            KeyState::Usable
        }
    }

    /// Whether the key may ask for `model` (exact names, or globs where `*` is any run of
    /// characters).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models
            .as_ref()
            .is_none_or(|patterns| patterns.iter().any(|p| glob_matches(p, model)))
    }

    /// Whether anything is counted before a request may start.
    pub fn is_limited(&self) -> bool {
        self.rpm.is_some()
            || self.tpm.is_some()
            || self.max_parallel.is_some()
            || self.budget_usd.is_some()
    }

    pub fn budget_nano(&self) -> Option<NanoUsd> {
        self.budget_usd.map(super::usage::nano_usd)
    }
}

/// `*` matches any run of characters (including none); everything else matches itself.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: the whole text must be the pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// How the store knows a secret: SHA-256, hex. The secrets are 190 random bits, so a fast hash
/// is as safe as a slow one and keeps the check cheap.
pub fn secret_hash(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(secret.as_bytes());
    // By hand rather than through `fmt`: this runs on every request carrying a key.
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// A new secret from 32 random bytes: `sk-apx-` and 32 characters of `[A-Za-z0-9]`.
pub fn new_secret(random: [u8; 32]) -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut secret = String::with_capacity(SECRET_PREFIX.len() + 32);
    secret.push_str(SECRET_PREFIX);
    // 256 = 4 × 62 + 8: the small bias towards the first eight letters costs under 0.2 bits.
    secret.extend(random.iter().map(|b| ALPHABET[*b as usize % 62] as char));
    secret
}

/// A new key id from random bytes: `key_` and 24 hex digits.
pub fn new_key_id(random: &[u8]) -> String {
    let mut id = String::from("key_");
    for byte in random.iter().take(12) {
        use std::fmt::Write;
        let _ = write!(id, "{byte:02x}");
    }
    id
}

/// Whether a presented credential looks like a virtual key (so the store is asked at all).
pub fn looks_like_key(credential: &str) -> bool {
    credential.starts_with(SECRET_PREFIX) && credential.len() <= 128
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_of_writes_the_utc_date_as_chrono_formats_it() {
        let formatted = |now: f64| {
            chrono::DateTime::from_timestamp(now.max(0.0) as i64, 0)
                .unwrap_or_default()
                .format("%Y-%m-%d")
                .to_string()
        };
        // Every 1,000,003 seconds from 1970 to past 2100, day boundaries, and nonsense times.
        let mut times: Vec<f64> = (0..4_400).map(|i| f64::from(i) * 1_000_003.0).collect();
        times.extend([
            -5.0,
            0.0,
            86_399.9,
            86_400.0,
            951_782_400.0,
            1.7e9,
            253_402_300_799.0,
        ]);
        for now in times {
            assert_eq!(day_of(now), formatted(now), "at {now}");
        }
        assert_eq!(day_of(1_796_694_000.0), "2026-12-08");
        assert_eq!(day_of(f64::NAN), "1970-01-01");
        assert_eq!(
            day_of(1e300),
            "1970-01-01",
            "out of chrono's range: the epoch, as before"
        );
    }

    fn key() -> VirtualKey {
        VirtualKey {
            id: "key_1".into(),
            name: "n".into(),
            team: None,
            prefix: "sk-apx-abc".into(),
            secret_hash: secret_hash("sk-apx-abc"),
            models: None,
            rpm: None,
            tpm: None,
            max_parallel: None,
            budget_usd: None,
            budget_period: BudgetPeriod::Monthly,
            expires_at: None,
            enabled: true,
            created_at: 0.0,
            metadata: None,
        }
    }

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        for (pattern, text, expected) in [
            ("gpt-4o", "gpt-4o", true),
            ("gpt-4o", "gpt-4o-mini", false),
            ("gpt-*", "gpt-4o-mini", true),
            ("*-mini", "gpt-4o-mini", true),
            ("claude-*-sonnet*", "claude-3-5-sonnet-latest", true),
            ("claude-*-sonnet*", "claude-3-opus", false),
            ("*", "anything/at/all", true),
            ("a*a", "a", false),
            ("a*a", "aa", true),
        ] {
            assert_eq!(glob_matches(pattern, text), expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn keys_without_a_model_list_allow_everything() {
        let mut k = key();
        assert!(k.allows_model("x"));
        k.models = Some(vec!["gpt-*".into(), "claude".into()]);
        assert!(k.allows_model("gpt-4o") && k.allows_model("claude"));
        assert!(!k.allows_model("claude-3") && !k.allows_model("gemini"));
    }

    #[test]
    fn disabled_and_expired_keys_are_not_usable() {
        let mut k = key();
        assert_eq!(k.state(10.0), KeyState::Usable);
        k.expires_at = Some(10.0);
        assert_eq!(k.state(9.9), KeyState::Usable);
        assert_eq!(k.state(10.0), KeyState::Expired);
        k.enabled = false;
        assert_eq!(k.state(0.0), KeyState::Disabled);
    }

    #[test]
    fn periods_are_utc_days_months_or_for_ever() {
        // 2026-12-07T23:59:59Z
        let now = 1_796_687_999.0;
        assert_eq!(BudgetPeriod::Daily.window(now).id, "d:2026-12-07");
        assert_eq!(BudgetPeriod::Daily.window(now + 1.0).id, "d:2026-12-08");
        assert_eq!(BudgetPeriod::Monthly.window(now).id, "m:2026-12");
        assert_eq!(BudgetPeriod::Total.window(now).ttl_secs, None);
        assert_eq!(BudgetPeriod::Daily.seconds_left(now), Some(1));
        assert_eq!(
            BudgetPeriod::Monthly.seconds_left(now),
            Some(24 * 86_400 + 1)
        );
        assert_eq!(BudgetPeriod::Total.seconds_left(now), None);
    }

    #[test]
    fn secrets_have_the_prefix_and_their_hash_is_hex() {
        let secret = new_secret([7; 32]);
        assert!(
            secret.starts_with("sk-apx-") && secret.len() == 39,
            "{secret}"
        );
        assert!(looks_like_key(&secret));
        let hash = secret_hash(&secret);
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, secret_hash("sk-apx-other"));
        assert_eq!(new_key_id(&[0xab; 16]), format!("key_{}", "ab".repeat(12)));
    }
}
