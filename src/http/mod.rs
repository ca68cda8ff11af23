//! The HTTP surface: one router for probes and the chat platforms' webhooks.

mod ca;
pub mod downloads;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use sqlx::PgPool;

use crate::adapters::ca::embedded::EmbeddedCa;
use crate::chat::slack::{self, SlackState};

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database pool.
    pub pool: PgPool,
    /// The embedded CA, whose CRL and chain are served here.
    pub ca: Option<Arc<EmbeddedCa>>,
}

/// The whole router, so tests can drive it in-process or over a real socket. Slack's routes
/// are there when Slack is configured.
pub fn router(
    state: AppState,
    slack: Option<SlackState>,
    discord: Option<crate::chat::discord::DiscordState>,
    teams: Option<crate::chat::teams::TeamsState>,
    downloads: Option<downloads::DownloadState>,
) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/ca/crl.der", get(ca::crl))
        .route("/ca/chain.pem", get(ca::chain))
        .with_state(state);
    if let Some(slack) = slack {
        router = router.merge(slack::router(slack));
    }
    if let Some(discord) = discord {
        router = router.merge(crate::chat::discord::router(discord));
    }
    if let Some(teams) = teams {
        router = router.merge(crate::chat::teams::router(teams));
    }
    if let Some(downloads) = downloads {
        router = router.merge(downloads::router(downloads));
    }
    router
}
