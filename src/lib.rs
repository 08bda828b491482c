//! APIProxy: an AI gateway in front of many LLM providers.

pub mod app;
pub mod config;
pub mod domain;
pub mod envfile;
pub mod inbound;
pub mod logging;
pub mod metric_handles;
pub mod mock;
pub mod outbound;
pub mod protocol;
pub mod worker;
