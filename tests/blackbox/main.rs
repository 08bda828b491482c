//! Black-box integration tests: the real `apiproxy` and `mock-upstream` binaries, driven over HTTP.
//!
//! One test binary (`cargo test --test blackbox`); each test starts its own gateway and mocks.

mod chat;
mod cli;
mod errors;
mod failover;
mod lifecycle;
mod models;
mod streaming;
mod support;
