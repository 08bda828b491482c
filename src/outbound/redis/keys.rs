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
}
