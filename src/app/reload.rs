//! Hot reload (SPEC 8): `SIGHUP` and `POST /admin/reload` read the environment file and
//! `LOGICAL_MODELS_FILE` again, validate all of it the way start-up does, and only then put the
//! new providers, upstream headers and logical models in force. A configuration that fails any
//! check is refused with its reasons and the running one stays. docs/operations.md says which
//! settings a reload changes and which wait for a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{ConfigError, Settings};
use crate::domain::provider::{ProviderConfig, ProviderSet};
use crate::domain::service::catalog::{
    Catalog, Reconfiguration, RefusalCause, Reload, ReloadRefused, ReloadReport,
};
use crate::outbound::upstream::{HttpUpstream, MaskHeaders, PreparedHeaders};

/// The process environment with the environment file on top of it, for the variables the real
/// environment does not set (the real environment wins, as at start-up; SPEC 2). The file's
/// values are never written into the process environment, so reading it again gives the file's
/// current content: a variable removed from the file is unset again. `required`: a missing file
/// is an error (it was named with `--env-file`), else it counts as empty.
pub fn read_environment(
    env_file: &Path,
    required: bool,
) -> Result<BTreeMap<String, String>, String> {
    let mut vars: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    match std::fs::read_to_string(env_file) {
        Ok(text) => {
            let from_file = crate::envfile::parse(&text, |name| std::env::var(name).ok())
                .map_err(|e| format!("cannot load {}: {e}", env_file.display()))?;
            let environment: BTreeSet<String> = vars.keys().cloned().collect();
            for (key, value) in from_file {
                if !environment.contains(&key) {
                    vars.insert(key, value);
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {}
        Err(e) => return Err(format!("cannot load {}: {e}", env_file.display())),
    }
    Ok(vars)
}

/// Whether a reload puts a new value of `name` in force. Everything else (listen address, store,
/// tokens, timeouts, limits, logging) is read once at start-up: see docs/operations.md.
pub fn is_reloadable(name: &str) -> bool {
    name == "LLM_PROVIDERS"
        || name.starts_with("LLM_PROVIDER_")
        || name == "LOGICAL_MODELS_FILE"
        || matches!(
            name,
            "MASK_AS_BROWSER" | "MASK_USER_AGENT" | "MASK_ORIGIN" | "MASK_REFERER"
        )
}

/// Where the configuration comes from, as start-up found it.
#[derive(Debug, Clone)]
pub struct Source {
    /// `--env-file`, else `APIPROXY_ENV_FILE`, else `.env`.
    pub env_file: PathBuf,
    /// The file was named with `--env-file`: it must exist.
    pub required: bool,
    /// The address the gateway listens on (restart-only; kept to check the token's exposure).
    pub host: String,
    pub port: u16,
}

/// Reads, checks and applies a new configuration; one reload at a time.
pub struct Reloader {
    source: Source,
    catalog: Arc<Catalog>,
    upstream: Arc<HttpUpstream>,
    /// Providers the configuration does not hold but the process added (demo mode's mocks):
    /// kept across reloads.
    pinned: Vec<ProviderConfig>,
    /// The variables the configuration in force was read from; the lock also makes concurrent
    /// reloads (a `SIGHUP` during a `POST`) run one after the other.
    vars: tokio::sync::Mutex<BTreeMap<String, String>>,
}

/// The outcomes `apiproxy_config_reloads_total` counts.
const OUTCOMES: [&str; 2] = ["applied", "refused"];

impl Reloader {
    /// `vars`: what start-up read (the baseline for the restart-only warnings); `file_models`:
    /// the models `LOGICAL_MODELS_FILE` gave at start-up.
    pub fn new(
        source: Source,
        catalog: Arc<Catalog>,
        upstream: Arc<HttpUpstream>,
        pinned: Vec<ProviderConfig>,
        vars: BTreeMap<String, String>,
        file_models: &[crate::domain::model::LogicalModel],
    ) -> Self {
        catalog.remember_file_models(file_models);
        // Zero from the start, so a dashboard sees the series before the first reload.
        for outcome in OUTCOMES {
            metrics::counter!("apiproxy_config_reloads_total", "outcome" => outcome).absolute(0);
        }
        Reloader {
            source,
            catalog,
            upstream,
            pinned,
            vars: tokio::sync::Mutex::new(vars),
        }
    }

    async fn apply(&self) -> Result<ReloadReport, ReloadRefused> {
        let mut previous = self.vars.lock().await;
        let vars = read_environment(&self.source.env_file, self.source.required)
            .map_err(|reason| refused(Some("APIPROXY_ENV_FILE"), reason))?;
        let (mut settings, mut warnings) = Settings::from_vars(&vars).map_err(config_refused)?;
        // The listen address is not reloaded; the token must still be safe for it.
        settings.host = self.source.host.clone();
        settings.port = self.source.port;
        settings.check_exposure().map_err(config_refused)?;
        let file_models = settings.load_logical_models().map_err(config_refused)?;

        let mut configs = settings.providers.clone();
        for pinned in &self.pinned {
            if !configs.iter().any(|c| c.id == pinned.id) {
                configs.push(pinned.clone());
            }
        }
        let providers = ProviderSet::carried_over(&self.catalog.providers(), configs);
        let mask = settings.mask_as_browser.then(|| MaskHeaders {
            user_agent: settings.mask_user_agent.clone(),
            origin: settings.mask_origin.clone(),
            referer: settings.mask_referer.clone(),
        });
        let headers =
            PreparedHeaders::build(&providers, mask).map_err(|reason| refused(None, reason))?;

        // Everything is valid: from here on the new configuration goes in.
        self.upstream.install(headers);
        let mut report = self
            .catalog
            .reconfigure(Reconfiguration {
                providers,
                file_models,
            })
            .await?;
        warnings.extend(restart_only_changes(&previous, &vars));
        warnings.append(&mut report.warnings);
        report.warnings = warnings;
        *previous = vars;
        Ok(report)
    }
}

#[async_trait]
impl Reload for Reloader {
    async fn reload(&self, trigger: &'static str) -> Result<ReloadReport, ReloadRefused> {
        let outcome = self.apply().await;
        match &outcome {
            Ok(report) => {
                metrics::counter!("apiproxy_config_reloads_total", "outcome" => "applied")
                    .increment(1);
                tracing::info!(
                    trigger,
                    providers_added = ?report.providers.added,
                    providers_removed = ?report.providers.removed,
                    providers_changed = ?report.providers.changed,
                    logical_models_upserted = ?report.logical_models.upserted,
                    logical_models_removed = ?report.logical_models.removed,
                    "configuration reloaded"
                );
                for warning in &report.warnings {
                    tracing::warn!(trigger, "{warning}");
                }
            }
            Err(refusal) => {
                metrics::counter!("apiproxy_config_reloads_total", "outcome" => "refused")
                    .increment(1);
                tracing::error!(
                    trigger,
                    "configuration reload refused, the running configuration stays: {refusal}"
                );
            }
        }
        outcome
    }
}

fn refused(variable: Option<&str>, reason: String) -> ReloadRefused {
    ReloadRefused {
        cause: RefusalCause::Invalid,
        variable: variable.map(str::to_string),
        reasons: vec![reason],
    }
}

fn config_refused(error: ConfigError) -> ReloadRefused {
    refused(Some(&error.variable), error.to_string())
}

/// A warning for each variable whose value changed but that a reload does not put in force.
/// Names only: values may be secrets.
fn restart_only_changes(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> Vec<String> {
    let names: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|name| !is_reloadable(name) && before.get(*name) != after.get(*name))
        .map(|name| {
            format!(
                "{name} changed; a reload does not apply it: it takes effect at the next restart"
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn providers_models_and_the_mask_reload_and_the_rest_waits_for_a_restart() {
        for name in [
            "LLM_PROVIDERS",
            "LLM_PROVIDER_a_API_KEY",
            "LOGICAL_MODELS_FILE",
            "MASK_AS_BROWSER",
            "MASK_REFERER",
        ] {
            assert!(is_reloadable(name), "{name}");
        }
        for name in [
            "HOST",
            "PORT",
            "REDIS_URL",
            "APIPROXY_AUTH_TOKEN",
            "APIPROXY_ADMIN_TOKEN",
            "UPSTREAM_TIMEOUT",
            "LOG_LEVEL",
        ] {
            assert!(!is_reloadable(name), "{name}");
        }
    }

    #[test]
    fn changed_restart_only_variables_are_named_without_their_values() {
        let before = vars(&[
            ("PORT", "8000"),
            ("APIPROXY_AUTH_TOKEN", "old-secret"),
            ("LLM_PROVIDERS", "a"),
            ("LOG_LEVEL", "INFO"),
        ]);
        let after = vars(&[
            ("PORT", "8000"),
            ("APIPROXY_AUTH_TOKEN", "new-secret"),
            ("LLM_PROVIDERS", "a,b"),
            ("UPSTREAM_TIMEOUT", "30"),
        ]);
        let warnings = restart_only_changes(&before, &after);
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        for name in ["APIPROXY_AUTH_TOKEN", "LOG_LEVEL", "UPSTREAM_TIMEOUT"] {
            assert!(warnings.iter().any(|w| w.starts_with(name)), "{warnings:?}");
        }
        assert!(
            !warnings.iter().any(|w| w.contains("secret")),
            "{warnings:?}"
        );
    }

    #[test]
    fn the_file_fills_in_what_the_environment_leaves_unset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("test.env");
        // PATH is set in any test environment: the real environment keeps winning for it.
        std::fs::write(
            &file,
            "APIPROXY_TEST_FROM_FILE=From dotenv\nPATH=/nowhere\n",
        )
        .expect("write");
        let vars = read_environment(&file, true).expect("read");
        assert_eq!(vars["APIPROXY_TEST_FROM_FILE"], "From dotenv");
        assert_ne!(vars["PATH"], "/nowhere");

        std::fs::write(&file, "").expect("rewrite");
        let vars = read_environment(&file, true).expect("read again");
        assert!(!vars.contains_key("APIPROXY_TEST_FROM_FILE"));
    }

    #[test]
    fn a_missing_file_is_an_error_only_when_it_was_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.env");
        assert!(read_environment(&missing, false).is_ok());
        let error = read_environment(&missing, true).expect_err("named file is missing");
        assert!(error.contains("missing.env"), "{error}");
    }
}
