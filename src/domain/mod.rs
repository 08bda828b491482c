//! The pure core: the rules of the product, free of HTTP, Redis and sockets.

pub mod console;
pub mod exchange;
pub mod failover;
pub mod health;
pub mod keys;
pub mod metering;
pub mod model;
pub mod names;
pub mod ports;
pub mod provider;
pub mod routing;
pub mod service;
pub mod session;
pub mod usage;
pub mod watch;
