//! Provider model-list entries as vendors write them (OpenAI's `id`, Gemini's `name: "models/x"`
//! and `inputTokenLimit`, ...), read into the domain's `Model`.

use serde_json::Value;

use crate::domain::model::{DEFAULT_CONTEXT_LENGTH, Model, ModelCapability};

/// Normalises one raw entry of a provider's list: a bare string id, or an object with `id`
/// (or `model_id`, or Gemini's `name: "models/x"`). Entries without an id are not models.
pub fn model_from_entry(provider_id: &str, entry: &Value) -> Option<Model> {
    let id = match entry {
        Value::String(id) => id.clone(),
        Value::Object(obj) => {
            let raw = ["id", "model_id", "name"]
                .iter()
                .find_map(|key| obj.get(*key).and_then(Value::as_str))?;
            super::gemini::model_id(raw).to_string()
        }
        _ => return None,
    };
    if id.trim().is_empty() {
        return None;
    }
    let field = |key: &str| entry.get(key);
    let text = |key: &str| field(key).and_then(Value::as_str).map(str::to_string);
    let context_length = [
        "context_length",
        "max_context",
        "context_window",
        "inputTokenLimit",
    ]
    .iter()
    .find_map(|key| field(key).and_then(Value::as_u64))
    .filter(|n| *n > 0)
    .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    .unwrap_or(DEFAULT_CONTEXT_LENGTH);
    let capabilities = match field("capabilities").or_else(|| field("capability")) {
        Some(Value::String(one)) => ModelCapability::parse(one).into_iter().collect(),
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(Value::as_str)
            .filter_map(ModelCapability::parse)
            .collect(),
        _ => Vec::new(),
    };
    let pricing = field("pricing").and_then(Value::as_object).map(|prices| {
        prices
            .iter()
            .filter_map(|(k, v)| {
                let number = v.as_f64().or_else(|| v.as_str()?.parse().ok())?;
                Some((k.clone(), number))
            })
            .collect()
    });
    Some(Model {
        family: text("family").unwrap_or_else(|| id.clone()),
        display_name: text("display_name")
            .or_else(|| text("displayName"))
            .unwrap_or_else(|| id.clone()),
        model_id: id,
        provider_id: provider_id.to_string(),
        context_length,
        capabilities: if capabilities.is_empty() {
            vec![ModelCapability::Chat]
        } else {
            capabilities
        },
        pricing,
        metadata: entry.is_object().then(|| entry.clone()),
        meta_hash: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn entries_normalise_from_strings_objects_and_gemini_names() {
        let plain = model_from_entry("p", &json!("gpt-4o")).unwrap();
        assert_eq!(
            (plain.model_id.as_str(), plain.context_length),
            ("gpt-4o", DEFAULT_CONTEXT_LENGTH)
        );
        assert_eq!(plain.capabilities, vec![ModelCapability::Chat]);
        let rich = model_from_entry(
            "p",
            &json!({"id":"b","context_length":16384,"capabilities":["Vision","nope"]}),
        )
        .unwrap();
        assert_eq!(
            (rich.context_length, rich.capabilities.clone()),
            (16384, vec![ModelCapability::Vision])
        );
        let gemini = model_from_entry(
            "g",
            &json!({"name":"models/gemini-2.0-flash","inputTokenLimit":1048576}),
        )
        .unwrap();
        assert_eq!(gemini.model_id, "gemini-2.0-flash");
        assert!(model_from_entry("p", &json!({"object":"model"})).is_none());
        assert!(model_from_entry("p", &json!(42)).is_none());
    }
}
