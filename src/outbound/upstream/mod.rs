//! Upstream clients: one shared pooled HTTP client; OpenAI-compatible providers get the hub body as
//! it is, Anthropic and Gemini providers get it translated (and their answers translated back).

mod http_client;
mod vendor;

pub use http_client::{HttpUpstream, HttpUpstreamSettings, MaskHeaders};
