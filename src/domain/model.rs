//! Models: what providers offer (Model), one upstream of a public name (PhysicalModel), and the
//! public name clients ask for (LogicalModel).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use super::names;
use super::usage::Price;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelCapability {
    Chat,
    Completion,
    Embedding,
    Vision,
    Audio,
    FunctionCalling,
}

impl ModelCapability {
    pub fn parse(text: &str) -> Option<ModelCapability> {
        match text.trim().to_ascii_lowercase().as_str() {
            "chat" => Some(Self::Chat),
            "completion" => Some(Self::Completion),
            "embedding" => Some(Self::Embedding),
            "vision" => Some(Self::Vision),
            "audio" => Some(Self::Audio),
            "function_calling" => Some(Self::FunctionCalling),
            _ => None,
        }
    }
}

/// Context length assumed when a provider does not say.
pub const DEFAULT_CONTEXT_LENGTH: u32 = 8192;

/// One model as a provider lists it, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Model {
    pub model_id: String,
    pub provider_id: String,
    pub family: String,
    pub display_name: String,
    pub context_length: u32,
    pub capabilities: Vec<ModelCapability>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<BTreeMap<String, f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub meta_hash: Option<String>,
}

/// One upstream of a logical model: a provider and the model id it knows the model by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
pub struct PhysicalModel {
    #[validate(length(min = 1, max = 128, message = "must be a configured provider id"))]
    pub provider_id: String,
    #[validate(custom(function = "model_name"))]
    pub model_id: String,
    /// Derived from the provider's base URL and chat path, shown for information only: an
    /// upstream URL is never taken from input (the provider's key would follow it).
    #[serde(default)]
    pub endpoint: String,
    #[serde(default = "default_weight")]
    #[validate(range(
        exclusive_min = 0.0,
        max = 1000000.0,
        message = "must be more than 0 and at most 1000000"
    ))]
    pub base_weight: f64,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub max_qps: Option<u32>,
    #[serde(default)]
    pub meta_hash: Option<String>,
    #[serde(default)]
    pub updated_at: f64,
    /// Prices per 1M tokens of this upstream (SPEC 3.1); wins over the provider's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[validate(custom(function = "price"))]
    pub pricing: Option<Price>,
}

fn price(value: &Price) -> Result<(), validator::ValidationError> {
    match value.problem() {
        Some(problem) => Err(validator::ValidationError::new("price").with_message(problem.into())),
        None => Ok(()),
    }
}

/// A logical model's id becomes a store key: the bounds every stored id has (SPEC 4.1).
fn logical_id(value: &str) -> Result<(), validator::ValidationError> {
    names::check_logical_id("logical_id", value).map_err(as_validation)
}

/// A physical model id goes into upstream URLs and headers: the bounds of a model name.
fn model_name(value: &str) -> Result<(), validator::ValidationError> {
    names::check_model_name("model_id", value).map_err(as_validation)
}

fn as_validation(error: names::NameError) -> validator::ValidationError {
    validator::ValidationError::new("name").with_message(error.problem.into())
}

fn default_weight() -> f64 {
    1.0
}

fn default_true() -> bool {
    true
}

/// The public model name clients ask for, mapped to one or more upstreams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Validate)]
pub struct LogicalModel {
    #[validate(custom(function = "logical_id"))]
    pub logical_id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_capabilities")]
    pub capabilities: Vec<ModelCapability>,
    #[validate(nested)]
    pub upstreams: Vec<PhysicalModel>,
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default)]
    pub updated_at: f64,
    /// Streams that break after content reached the client continue on the next candidate
    /// instead of ending with the error event (SPEC 5.5; opt-in, off by default).
    #[serde(default)]
    pub stream_resume: bool,
}

fn default_capabilities() -> Vec<ModelCapability> {
    vec![ModelCapability::Chat]
}

impl LogicalModel {
    /// A logical model built on the fly for a name that providers list (SPEC 4.2).
    pub fn dynamic(logical_id: &str, upstreams: Vec<PhysicalModel>, now: f64) -> LogicalModel {
        LogicalModel {
            logical_id: logical_id.to_string(),
            display_name: logical_id.to_string(),
            description: format!("Dynamic logical model for '{logical_id}'"),
            capabilities: default_capabilities(),
            upstreams,
            enabled: true,
            updated_at: now,
            stream_resume: false,
        }
    }
}

/// A requested name without its `group/` prefix (`team-a/gpt-4o` asks for `gpt-4o`).
pub fn strip_group(name: &str) -> &str {
    name.split_once('/').map_or(name, |(_, rest)| rest)
}

/// Whether a provider's model id answers to the requested name: the same name, the name without
/// its group prefix, or both without their prefixes.
pub fn model_matches(requested: &str, listed: &str) -> bool {
    requested == listed
        || strip_group(requested) == listed
        || strip_group(requested) == strip_group(listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dynamic_matching_ignores_group_prefixes() {
        assert!(model_matches("gpt-4o", "gpt-4o"));
        assert!(model_matches("group/gpt-4o", "gpt-4o"));
        assert!(model_matches("a/gpt-4o", "openai/gpt-4o"));
        assert!(!model_matches("gpt-4", "gpt-4o"));
    }

    #[test]
    fn logical_models_validate_weights_and_ids() {
        let mut model: LogicalModel = serde_json::from_value(json!({
            "logical_id": "m", "upstreams": [{"provider_id": "p", "model_id": "x", "base_weight": 0.0}]
        }))
        .unwrap();
        let errors = model.validate().unwrap_err().to_string();
        assert!(errors.contains("base_weight"), "{errors}");
        model.upstreams[0].base_weight = 0.1;
        assert!(model.validate().is_ok());
        // Stream resume is opt-in: off unless the model says so.
        assert!(!model.stream_resume);
        model.logical_id = "  ".into();
        assert!(
            model
                .validate()
                .unwrap_err()
                .to_string()
                .contains("logical_id")
        );
        // Ids that could name one of the store's own keys, or reach another URL path.
        for bad in ["index/x", "a b", "x\r\ny", &"m".repeat(257)] {
            model.logical_id = bad.into();
            assert!(model.validate().is_err(), "{bad:?}");
        }
        model.logical_id = "m".into();
        model.upstreams[0].model_id = "../../admin?x".into();
        assert!(
            model
                .validate()
                .unwrap_err()
                .to_string()
                .contains("model_id")
        );
    }
}
