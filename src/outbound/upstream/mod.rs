//! Upstream clients: one shared pooled HTTP client; OpenAI-compatible providers get the hub body as
//! it is, Anthropic and Gemini providers get it translated (and their answers translated back).

mod bodies;
mod http_client;
mod model_list;
mod port;

pub use http_client::{HttpUpstream, HttpUpstreamSettings, MaskHeaders, PreparedHeaders};
pub use model_list::parse_model_list;
