//! A provider's model list as it answers it: OpenAI's `{"data":[...]}`, Gemini's
//! `{"models":[...]}` or a bare list.

use crate::domain::model::Model;
use crate::domain::ports::ListModelsError;

/// Accepts OpenAI's `{"data":[...]}`, Gemini's `{"models":[...]}` or a bare list.
pub fn parse_model_list(provider_id: &str, body: &[u8]) -> Result<Vec<Model>, ListModelsError> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ListModelsError::Malformed(e.to_string()))?;
    let entries = match &value {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Object(obj) => match obj.get("data").or_else(|| obj.get("models")) {
            Some(serde_json::Value::Array(items)) => items,
            _ => {
                return Err(ListModelsError::Malformed(
                    "no 'data' or 'models' list".into(),
                ));
            }
        },
        _ => {
            return Err(ListModelsError::Malformed(
                "not a JSON list or object".into(),
            ));
        }
    };
    Ok(entries
        .iter()
        .filter_map(|entry| crate::protocol::models::model_from_entry(provider_id, entry))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_lists_of_every_shape_parse() {
        let openai =
            parse_model_list("p", br#"{"object":"list","data":[{"id":"a"},{"id":"b"}]}"#).unwrap();
        assert_eq!(openai.len(), 2);
        let gemini =
            parse_model_list("g", br#"{"models":[{"name":"models/gemini-2.0-flash"}]}"#).unwrap();
        assert_eq!(gemini[0].model_id, "gemini-2.0-flash");
        assert_eq!(parse_model_list("p", br#"["x"]"#).unwrap()[0].model_id, "x");
        assert!(parse_model_list("p", b"<html>").is_err());
        assert!(parse_model_list("p", br#"{"nothing":1}"#).is_err());
    }
}
