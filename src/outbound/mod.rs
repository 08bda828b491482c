//! Adapters the domain's ports plug into: stores and upstream clients.

pub mod console_feed;
pub mod console_stats;
pub mod memory;
pub mod prometheus;
pub mod redis;
pub mod system;
pub mod upstream;
