//! Sessions: a conversation bound to the upstream that served it (SPEC 5.3).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub conversation_id: String,
    pub logical_model: String,
    pub provider_id: String,
    pub model_id: String,
    pub created_at: f64,
    pub last_accessed: f64,
    pub message_count: u64,
}

impl Session {
    /// The binding after a request of this conversation was served by (provider, model): a new
    /// session, or the previous one moved to the new upstream, touched and counted.
    pub fn bind(
        previous: Option<Session>,
        conversation_id: &str,
        logical_model: &str,
        provider_id: &str,
        model_id: &str,
        now: f64,
    ) -> Session {
        let (created_at, message_count) =
            previous.map_or((now, 0), |p| (p.created_at, p.message_count));
        Session {
            conversation_id: conversation_id.to_string(),
            logical_model: logical_model.to_string(),
            provider_id: provider_id.to_string(),
            model_id: model_id.to_string(),
            created_at,
            last_accessed: now,
            message_count: message_count + 1,
        }
    }

    /// The sticky (provider, model) this session asks for, if it belongs to this logical model.
    pub fn sticky_for(&self, logical_model: &str) -> Option<(&str, &str)> {
        (self.logical_model == logical_model).then_some((&self.provider_id, &self.model_id))
    }
}

/// Largest serialized context entry; larger requests or responses are kept as a preview.
pub const MAX_CONTEXT_ENTRY_BYTES: usize = 64 * 1024;
const PREVIEW_CHARS: usize = 4096;

/// One exchange of a session's history, serialized as JSON.
/// Past `MAX_CONTEXT_ENTRY_BYTES` each side over half the cap is replaced by a preview, so one huge prompt
/// cannot blow up the store.
pub fn context_entry(
    request: serde_json::Value,
    response: serde_json::Value,
    created_at: f64,
) -> String {
    let entry =
        serde_json::json!({"request": request, "response": response, "created_at": created_at});
    let text = entry.to_string();
    if text.len() <= MAX_CONTEXT_ENTRY_BYTES {
        return text;
    }
    let preview = |value: &serde_json::Value| {
        let text = value.to_string();
        // Half the cap each, less room for the keys and timestamp: the whole entry stays under it.
        if text.len() <= (MAX_CONTEXT_ENTRY_BYTES - 512) / 2 {
            return value.clone();
        }
        serde_json::json!({
            "truncated": true,
            "original_bytes": text.len(),
            "preview": text.chars().take(PREVIEW_CHARS).collect::<String>(),
        })
    };
    serde_json::json!({"request": preview(&entry["request"]), "response": preview(&entry["response"]), "created_at": created_at}).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_entries_are_json_and_capped() {
        let small = context_entry(serde_json::json!({"a": 1}), serde_json::json!("hi"), 5.0);
        let value: serde_json::Value = serde_json::from_str(&small).unwrap();
        assert_eq!(
            (value["request"]["a"].as_i64(), value["created_at"].as_f64()),
            (Some(1), Some(5.0))
        );
        let huge = serde_json::json!({"messages": [{"content": "x".repeat(500_000)}]});
        let capped = context_entry(huge, serde_json::json!({"ok": true}), 5.0);
        assert!(capped.len() <= MAX_CONTEXT_ENTRY_BYTES);
        let value: serde_json::Value = serde_json::from_str(&capped).unwrap();
        assert_eq!(value["request"]["truncated"], true);
        assert_eq!(value["response"]["ok"], true);
        let half = serde_json::json!("y".repeat(33_000));
        let both = context_entry(half.clone(), half, 5.0);
        assert!(
            both.len() <= MAX_CONTEXT_ENTRY_BYTES,
            "two big halves: {}",
            both.len()
        );
    }

    #[test]
    fn rebinding_keeps_creation_time_and_counts_messages() {
        let first = Session::bind(None, "c", "gpt", "a", "m", 10.0);
        assert_eq!((first.created_at, first.message_count), (10.0, 1));
        let moved = Session::bind(Some(first), "c", "gpt", "b", "m2", 20.0);
        assert_eq!(
            (moved.created_at, moved.last_accessed, moved.message_count),
            (10.0, 20.0, 2)
        );
        assert_eq!(moved.sticky_for("gpt"), Some(("b", "m2")));
        assert_eq!(moved.sticky_for("other"), None);
    }
}
