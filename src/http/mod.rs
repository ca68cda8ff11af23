//! The HTTP surface: one router for probes and (later) the chat platforms' webhooks.

mod health;

use axum::Router;
use axum::routing::get;
use sqlx::PgPool;

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: PgPool,
}

/// The whole router, so tests can drive it in-process or over a real socket.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .with_state(state)
}
