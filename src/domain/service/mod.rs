//! Use cases that orchestrate the domain rules through the ports.

pub mod catalog;
pub mod chat;
pub mod keys;
pub mod routing;
pub mod telemetry;
