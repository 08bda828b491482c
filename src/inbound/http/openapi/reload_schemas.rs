//! Wire schema of `POST /admin/reload` (SPEC 8): what a reload changed (same conventions as
//! `schemas`: doc comments are the descriptions).

use salvo::oapi::{Components, ToSchema};
use serde::{Deserialize, Serialize};

/// Registers the schemas of this module.
pub fn all(components: &mut Components) {
    let _ = ReloadReport::to_schema(components);
}

/// A reload that was applied: what it changed, and what an operator should know.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(name = "ReloadReport", example = json!({
    "providers": {"added": ["mistral"], "removed": [], "changed": ["openai"]},
    "logical_models": {"upserted": ["chat-fast"], "removed": ["old-model"], "kept": []},
    "warnings": ["UPSTREAM_TIMEOUT changed; a reload does not apply it: it takes effect at the next restart"]
})))]
pub struct ReloadReport {
    pub providers: ProviderChanges,
    pub logical_models: LogicalModelChanges,
    /// Variables that changed but wait for a restart, models kept or skipped, store writes that
    /// failed: nothing that stopped the reload.
    pub warnings: Vec<String>,
}

// `ReloadReport.providers`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct ProviderChanges {
    /// Provider ids the new configuration adds.
    pub added: Vec<String>,
    /// Provider ids it drops (requests already running on them finish there).
    pub removed: Vec<String>,
    /// Provider ids whose configuration changed (any variable, the key included); their cached
    /// model lists are fetched again.
    pub changed: Vec<String>,
}

// `ReloadReport.logical_models`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[salvo(schema(inline))]
pub struct LogicalModelChanges {
    /// Models of `LOGICAL_MODELS_FILE` that are new or whose stored definition differed.
    pub upserted: Vec<String>,
    /// Models the previous file listed, the new one does not, and nobody changed since: deleted.
    pub removed: Vec<String>,
    /// Models the file dropped but that were changed through the API since: kept.
    pub kept: Vec<String>,
}
