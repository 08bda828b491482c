//! What a translation left out: request fields, tools and content blocks the target cannot honour
//! (SPEC 4.8). Agents send many of them on every turn; refusing them would break the agent, so the
//! translators drop them and say so here, and the HTTP adapter logs each at debug and counts it.

/// One thing left out: `label` is a fixed name (the metric label, so its values stay few);
/// `detail` says where, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DroppedItem {
    pub label: &'static str,
    pub detail: String,
}

/// The things one translation left out, in the order met.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dropped(Vec<DroppedItem>);

impl Dropped {
    pub fn new() -> Self {
        Dropped::default()
    }

    /// Notes one dropped thing.
    pub fn note(&mut self, label: &'static str, detail: impl Into<String>) {
        self.0.push(DroppedItem {
            label,
            detail: detail.into(),
        });
    }

    /// Notes every key of `object` outside `read`: under its own name when it is one of `known`
    /// (fields clients are known to send), else as `other_field`, so the labels stay few.
    pub fn note_unread_fields(
        &mut self,
        object: &serde_json::Map<String, serde_json::Value>,
        read: &[&str],
        known: &[&'static str],
    ) {
        for key in object.keys().filter(|k| !read.contains(&k.as_str())) {
            let label = known
                .iter()
                .find(|name| **name == key.as_str())
                .copied()
                .unwrap_or("other_field");
            self.note(label, key.as_str());
        }
    }

    pub fn items(&self) -> &[DroppedItem] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels, in order (for tests and logs).
    pub fn labels(&self) -> Vec<&'static str> {
        self.0.iter().map(|item| item.label).collect()
    }
}
