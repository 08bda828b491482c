//! Wire formats, pure: parsing, classification and translation of vendor payloads.

pub mod openai;
pub mod sse;
