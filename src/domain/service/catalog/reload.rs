//! Putting a reloaded configuration in force (SPEC 8): the providers are swapped in one step; the
//! changes of `LOGICAL_MODELS_FILE` since the last load are applied to the logical models (new and
//! changed entries upserted, dropped ones deleted when nobody changed them since); model lists
//! cached under the old configuration are not served again. Reading and validating the new configuration is the caller's: this only applies one
//! that is already known to be valid.

use std::collections::HashMap;

use async_trait::async_trait;

use super::Catalog;
use crate::domain::model::LogicalModel;
use crate::domain::provider::{ProviderChanges, ProviderSet};

/// A validated configuration to put in force.
#[derive(Debug, Clone, Default)]
pub struct Reconfiguration {
    pub providers: ProviderSet,
    /// `LOGICAL_MODELS_FILE`'s models (none when the variable is unset), already checked against
    /// `providers`.
    pub file_models: Vec<LogicalModel>,
}

/// What a reload did to the logical models, each list in id order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogicalModelChanges {
    /// Entries the file added or changed since the last load, written to the store.
    pub upserted: Vec<String>,
    /// Models the previous file had, the new one has not, and nobody changed in between.
    pub removed: Vec<String>,
    /// Models the new file dropped but that were changed through the API since the file put
    /// them: kept, with a warning.
    pub kept: Vec<String>,
}

/// The answer to a reload that was applied: what changed, and what the operator should know.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReloadReport {
    pub providers: ProviderChanges,
    pub logical_models: LogicalModelChanges,
    pub warnings: Vec<String>,
}

/// Why a new configuration was refused; the running one stays in force untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRefused {
    pub cause: RefusalCause,
    /// The variable at fault, when one is (`LLM_PROVIDER_x_WEIGHT`, `LOGICAL_MODELS_FILE`).
    pub variable: Option<String>,
    pub reasons: Vec<String>,
}

/// Whose fault a refusal is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalCause {
    /// The new configuration is invalid: the files must be fixed.
    Invalid,
    /// The configuration may be fine but the logical-model store cannot be read: retry later.
    StoreUnavailable,
}

impl std::fmt::Display for ReloadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reasons.join("; "))
    }
}

/// The driving port of a reload: `SIGHUP` and `POST /admin/reload` both call it. `trigger` names
/// which one did, for the log.
#[async_trait]
pub trait Reload: Send + Sync {
    async fn reload(&self, trigger: &'static str) -> Result<ReloadReport, ReloadRefused>;
}

/// A model's definition without what the store stamps on it (times, derived endpoints), so the
/// same file entry compares equal to what an earlier load stored.
fn definition(model: &LogicalModel) -> LogicalModel {
    let mut model = model.clone();
    model.updated_at = 0.0;
    for upstream in &mut model.upstreams {
        upstream.updated_at = 0.0;
        upstream.endpoint.clear();
    }
    model
}

impl Catalog {
    /// Records what `LOGICAL_MODELS_FILE` gave at start-up (the store was seeded with it), so the
    /// first reload can tell the file's models from those created through the API.
    pub fn remember_file_models(&self, models: &[LogicalModel]) {
        *self.file_models.lock() = models
            .iter()
            .map(|m| (m.logical_id.clone(), definition(m)))
            .collect();
    }

    /// Puts `next` in force. Providers first, in one swap (requests that started before keep
    /// the set they hold); then the file's new and changed models are written and the dropped
    /// ones deleted, so a model never names a provider that is not there yet. Entries the file
    /// did not change are not written: what the API did to them since stands. Refused before anything changes when
    /// the logical-model store cannot be read; a write that fails after the swap is a warning.
    pub async fn reconfigure(&self, next: Reconfiguration) -> Result<ReloadReport, ReloadRefused> {
        let stored = self.logical.list().await.map_err(|e| ReloadRefused {
            cause: RefusalCause::StoreUnavailable,
            variable: None,
            reasons: vec![format!(
                "the logical-model store cannot be read ({e}); nothing was changed"
            )],
        })?;
        let stored: HashMap<String, LogicalModel> = stored
            .into_iter()
            .map(|m| (m.logical_id.clone(), m))
            .collect();
        let mut report = ReloadReport::default();

        let old = self.providers.replace(next.providers);
        let providers = self.providers();
        report.providers = old.changes_to(&providers);
        self.mark_stale(report.providers.touched());

        let now = self.clock.now();
        let previous = std::mem::take(&mut *self.file_models.lock());
        let mut remembered = HashMap::new();
        for model in next.file_models {
            let wanted = definition(&model);
            // An entry the file did not change is left as the store has it: an operator's PUT
            // or DELETE since the last load stands (as Redis' seeding keeps API deletions).
            let unchanged_in_file = previous.get(&model.logical_id) == Some(&wanted);
            let already_stored = stored
                .get(&model.logical_id)
                .is_some_and(|current| definition(current) == wanted);
            if !unchanged_in_file && !already_stored {
                let mut model = model;
                model.updated_at = now;
                match self.logical.put(model.clone()).await {
                    Ok(()) => report.logical_models.upserted.push(model.logical_id),
                    Err(e) => report.warnings.push(format!(
                        "logical model '{}' was not written ({e}); the store keeps its previous version",
                        model.logical_id
                    )),
                }
            }
            remembered.insert(wanted.logical_id.clone(), wanted);
        }

        let mut dropped: Vec<(String, LogicalModel)> = previous
            .into_iter()
            .filter(|(id, _)| !remembered.contains_key(id))
            .collect();
        dropped.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, as_the_file_put_it) in dropped {
            match stored.get(&id) {
                // Deleted through the API already: nothing to do.
                None => {}
                Some(current) if definition(current) == as_the_file_put_it => {
                    match self.logical.delete(&id).await {
                        Ok(_) => report.logical_models.removed.push(id),
                        Err(e) => report.warnings.push(format!(
                            "logical model '{id}' left the file but was not deleted ({e})"
                        )),
                    }
                }
                Some(_) => {
                    report.warnings.push(format!(
                        "logical model '{id}' left LOGICAL_MODELS_FILE but was changed through the API since; kept (DELETE /logical-models/{id} removes it)"
                    ));
                    report.logical_models.kept.push(id);
                }
            }
        }
        // Models that now name a provider that is gone (the file's own were checked against the
        // new providers before this): routing skips those upstreams.
        let mut orphans: Vec<String> = Vec::new();
        for model in stored.values() {
            if report.logical_models.removed.contains(&model.logical_id)
                || remembered.contains_key(&model.logical_id)
            {
                continue;
            }
            for upstream in &model.upstreams {
                if providers.get(&upstream.provider_id).is_none() {
                    orphans.push(format!(
                        "logical model '{}' names provider '{}', which is not configured; that upstream is skipped",
                        model.logical_id, upstream.provider_id
                    ));
                }
            }
        }
        orphans.sort();
        report.warnings.extend(orphans);
        *self.file_models.lock() = remembered;

        report.logical_models.upserted.sort();
        let changed = report.providers != ProviderChanges::default()
            || report.logical_models != LogicalModelChanges::default();
        if changed {
            self.forget_aggregate().await;
        }
        Ok(report)
    }
}

#[cfg(test)]
#[path = "reload_tests.rs"]
mod tests;
