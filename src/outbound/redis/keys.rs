//! Redis key names: the original's where it had them (SPEC 7), `llm:` prefixed where it did not.
//!
//! Ids and model names from clients end up inside keys, so the gateway's own bookkeeping keys
//! carry a `#`, which no accepted id or model name contains (`domain::names`): no request can
//! name, overwrite or change the type of one of them.

pub const AGGREGATE_MODELS: &str = "gateway:models:all";
pub const LOGICAL_INDEX: &str = "llm:logical:#index";
/// Ids deleted through the API, so a start-up model is not restored after its deletion.
pub const LOGICAL_DELETED: &str = "llm:logical:#deleted";
/// Where earlier versions kept the two sets above, inside the id space (a logical model named
/// `index` collided with them); moved once at start-up by `RedisLogicalModelStore::migrate`.
pub const LEGACY_LOGICAL_INDEX: &str = "llm:logical:index";
pub const LEGACY_LOGICAL_DELETED: &str = "llm:logical:deleted";

pub fn logical(id: &str) -> String {
    format!("llm:logical:{id}")
}

pub fn provider_models(provider_id: &str) -> String {
    format!("llm:vendor:{provider_id}:models")
}

pub fn session(conversation_id: &str) -> String {
    format!("llm:session:{conversation_id}")
}

/// Sessions with a context history, scored by their last write (bounds how many are kept).
pub const CONTEXT_INDEX: &str = "session:#index";

pub fn history(session_id: &str) -> String {
    format!("session:{session_id}:history")
}

/// A hash of per-second counters: `{second}:s`, `{second}:f`, `{second}:h{bucket}`.
pub fn metrics(logical_model: &str, provider_id: &str) -> String {
    format!("llm:metrics:{logical_model}:{provider_id}")
}

/// The logical models a provider has figures for (so no key scan is needed).
pub fn metrics_index(provider_id: &str) -> String {
    format!("llm:metrics:#index:{provider_id}")
}

pub fn circuit(provider_id: &str) -> String {
    format!("llm:circuit:{provider_id}")
}

pub fn qps(provider_id: &str, second: u64) -> String {
    format!("llm:qps:{provider_id}:{second}")
}

/// Virtual keys share one hash tag, so a Redis Cluster keeps a key's record, its hash mapping and
/// the index on one slot (a rotation is one MULTI/EXEC).
pub const VIRTUAL_KEY_INDEX: &str = "{apx:keys}:index";

/// A virtual key's record, JSON.
pub fn virtual_key(id: &str) -> String {
    format!("{{apx:keys}}:id:{id}")
}

/// When a virtual key was last used (Unix seconds), apart from its record.
pub fn virtual_key_used(id: &str) -> String {
    format!("{{apx:keys}}:used:{id}")
}

/// The id of the virtual key whose secret has this hash.
pub fn virtual_key_hash(secret_hash: &str) -> String {
    format!("{{apx:keys}}:hash:{secret_hash}")
}

/// A virtual key's ledger keys share the hash tag `{<id>}`, so one Lua script may touch them all
/// in a Redis Cluster. Requests per second: a hash second -> count.
pub fn key_requests(key_id: &str) -> String {
    format!("apx:key:{{{key_id}}}:req")
}

/// Tokens per second: a hash second -> tokens.
pub fn key_tokens(key_id: &str) -> String {
    format!("apx:key:{{{key_id}}}:tok")
}

/// Requests in flight (`max_parallel`).
pub fn key_parallel(key_id: &str) -> String {
    format!("apx:key:{{{key_id}}}:par")
}

/// Nano-dollars spent in one budget period (`d:2026-12-07`, `m:2026-12`, `total`).
pub fn key_spend(key_id: &str, period_id: &str) -> String {
    format!("apx:key:{{{key_id}}}:spend:{period_id}")
}

/// One day's usage sums for one grouping: a hash `<group value>\n<field>` -> integer. The day is
/// the hash tag, so one day's groupings share a slot (one MULTI per record).
pub fn usage(day: &str, group_by: &str) -> String {
    format!("apx:usage:{{{day}}}:{group_by}")
}

/// The Redis Cluster hash slot of a key: CRC16 (XMODEM) of its hash tag (the text between the
/// first `{` and the next `}`, when not empty), else of the whole key, modulo 16384. Used to send
/// a keyless command (UNWATCH) where a WATCH went, and by the tests that check that keys used
/// together share a slot.
pub fn slot(key: &str) -> u16 {
    let bytes = key.as_bytes();
    let hashed = bytes
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &bytes[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(bytes);
    let mut crc: u16 = 0;
    for byte in hashed {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::names::{check_id, check_logical_id, check_model_name};

    #[test]
    fn no_accepted_id_or_model_name_names_a_bookkeeping_key() {
        for own in [
            LOGICAL_INDEX,
            LOGICAL_DELETED,
            &metrics_index("p"),
            CONTEXT_INDEX,
        ] {
            for prefix in ["llm:logical:", "llm:metrics:", "session:"] {
                if let Some(id) = own.strip_prefix(prefix) {
                    let id = id.split(':').next().unwrap_or(id);
                    assert!(check_logical_id("id", id).is_err(), "{own}");
                    assert!(check_id("id", id).is_err(), "{own}");
                    assert!(check_model_name("model", id).is_err(), "{own}");
                }
            }
        }
        // The names that collided before are ordinary ids now.
        assert_ne!(logical("index"), LOGICAL_INDEX);
        assert_ne!(metrics("index", "p"), metrics_index("p"));
    }

    #[test]
    fn virtual_key_names_carry_their_hash_tags() {
        assert_eq!(virtual_key("key_1"), "{apx:keys}:id:key_1");
        assert_eq!(virtual_key_hash("ab"), "{apx:keys}:hash:ab");
        assert_eq!(
            key_spend("key_1", "m:2026-12"),
            "apx:key:{key_1}:spend:m:2026-12"
        );
        assert_eq!(key_parallel("key_1"), "apx:key:{key_1}:par");
        assert_eq!(usage("2026-12-07", "team"), "apx:usage:{2026-12-07}:team");
        assert_ne!(virtual_key("index"), VIRTUAL_KEY_INDEX);
    }

    #[test]
    fn slots_follow_redis_cluster_hashing() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot("123456789"), 0x31c3);
        assert_eq!(slot("foo"), 12182);
        assert_eq!(slot("{user1000}.following"), slot("{user1000}.followers"));
        assert_eq!(slot("foo{}{bar}"), slot("foo{}{bar}"));
        assert_ne!(slot("foo{}{bar}"), slot("bar"));
        assert_eq!(slot("foo{{bar}}zap"), slot("{bar"));
    }

    /// Every multi-key transaction and script of the adapters keeps to one slot.
    #[test]
    fn keys_used_together_share_a_slot() {
        let groups: Vec<Vec<String>> = vec![
            // A virtual key's record, hash mapping, last use and the index (create, rotate, delete).
            vec![
                VIRTUAL_KEY_INDEX.to_string(),
                virtual_key("key_1"),
                virtual_key_used("key_1"),
                virtual_key_hash("ab"),
                virtual_key_hash("cd"),
            ],
            // The ledger scripts' KEYS.
            vec![
                key_requests("key_1"),
                key_tokens("key_1"),
                key_parallel("key_1"),
                key_spend("key_1", "d:2026-12-07"),
                key_spend("key_1", "-"),
            ],
            // One day's usage groupings (one MULTI per record).
            vec![usage("2026-12-07", "key"), usage("2026-12-07", "team")],
        ];
        for group in groups {
            let first = slot(&group[0]);
            for key in &group {
                assert_eq!(slot(key), first, "{key} is not on the slot of {}", group[0]);
            }
        }
    }
}
