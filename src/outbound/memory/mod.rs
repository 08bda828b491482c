//! In-memory stores: the default, for one gateway process with nothing to install.

mod expiring;
mod logical_models;
mod model_cache;
mod sessions;

pub use logical_models::MemoryLogicalModelStore;
pub use model_cache::MemoryModelCache;
pub use sessions::MemorySessionStore;
