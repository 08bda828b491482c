//! What every handler shares.

use std::sync::Arc;

use salvo::Depot;

use super::auth::TokenCheck;
use crate::domain::service::catalog::Catalog;
use crate::domain::service::chat::ChatService;

pub struct AppState {
    pub catalog: Arc<Catalog>,
    pub chat: Arc<ChatService>,
    pub tokens: TokenCheck,
    pub max_body_bytes: usize,
}

impl AppState {
    pub fn from_depot(depot: &Depot) -> Option<Arc<AppState>> {
        depot.get_typed::<Arc<AppState>>().ok().cloned()
    }
}
