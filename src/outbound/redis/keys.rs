//! Redis key names: the original's where it had them (SPEC 7), `llm:` prefixed where it did not.

pub const AGGREGATE_MODELS: &str = "gateway:models:all";
pub const LOGICAL_INDEX: &str = "llm:logical:index";
/// Ids deleted through the API, so a start-up model is not restored after its deletion.
pub const LOGICAL_DELETED: &str = "llm:logical:deleted";

pub fn logical(id: &str) -> String {
    format!("llm:logical:{id}")
}

pub fn provider_models(provider_id: &str) -> String {
    format!("llm:vendor:{provider_id}:models")
}

pub fn session(conversation_id: &str) -> String {
    format!("llm:session:{conversation_id}")
}

pub fn history(session_id: &str) -> String {
    format!("session:{session_id}:history")
}

/// A hash of per-second counters: `{second}:s`, `{second}:f`, `{second}:h{bucket}`.
pub fn metrics(logical_model: &str, provider_id: &str) -> String {
    format!("llm:metrics:{logical_model}:{provider_id}")
}

/// The logical models a provider has figures for (so no key scan is needed).
pub fn metrics_index(provider_id: &str) -> String {
    format!("llm:metrics:index:{provider_id}")
}

pub fn circuit(provider_id: &str) -> String {
    format!("llm:circuit:{provider_id}")
}

pub fn qps(provider_id: &str, second: u64) -> String {
    format!("llm:qps:{provider_id}:{second}")
}
