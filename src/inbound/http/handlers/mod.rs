//! One module per endpoint family.

pub mod chat;
pub mod health;
pub mod models;
