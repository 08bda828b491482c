//! Upstream clients: one shared pooled HTTP client, requests shaped per vendor.

mod http_client;

pub use http_client::{HttpUpstream, HttpUpstreamSettings, MaskHeaders};
