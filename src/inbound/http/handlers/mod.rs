//! One module per endpoint family; `input` and `output` hold what they share (no handler
//! imports another), `messages_api` the Anthropic exchange two endpoints serve.

pub mod admin;
pub mod chat;
pub mod console;
pub mod console_data;
pub mod context;
pub mod docs;
pub mod gemini;
pub mod health;
pub mod input;
pub mod keys;
pub mod logical_models;
pub mod messages;
pub mod messages_api;
pub mod metrics;
pub mod models;
pub mod output;
pub mod providers;
pub mod responses;
pub mod routing;
pub mod usage;
