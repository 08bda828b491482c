//! A Gemini client's own request as the domain's payload: Gemini names the model in the URL, so
//! the body goes to a Gemini provider unchanged whatever model it is routed to.

use bytes::Bytes;

use crate::domain::exchange::ChatPayload;

#[derive(Debug, Clone)]
pub struct GeminiBody {
    /// The model the URL named (the logical model).
    pub model: String,
    pub bytes: Bytes,
}

impl ChatPayload for GeminiBody {
    fn model(&self) -> &str {
        &self.model
    }

    /// The body as it is: the upstream URL carries the physical model.
    fn with_model(&self, _model_id: &str) -> Bytes {
        self.bytes.clone()
    }

    fn to_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.bytes).unwrap_or(serde_json::Value::Null)
    }
}
