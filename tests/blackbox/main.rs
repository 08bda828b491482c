//! Black-box integration tests: the real `apiproxy` and `mock-upstream` binaries, driven over HTTP.
//!
//! One test binary (`cargo test --test blackbox`); each test starts its own gateway and mocks (and
//! its own `redis-server` for the Redis tests).

mod agents;
mod chat;
mod cli;
mod console;
mod console_api;
mod deploy;
mod docs_page;
mod documented;
mod edges;
mod errors;
mod failover;
mod faults;
mod gemini_ingress;
mod hostile;
mod ingress;
mod keys;
mod lifecycle;
mod management;
mod memory;
mod metrics;
mod models;
mod openapi_conformance;
mod redis_cluster;
#[path = "../common/redis_server.rs"]
mod redis_server;
mod redis_store;
mod reload;
mod resume;
mod routing;
mod secrets;
mod security;
mod streaming;
mod support;
mod vendors;
