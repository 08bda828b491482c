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

#[cfg(test)]
mod tests {
    use super::*;

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
