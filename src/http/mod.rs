//! The HTTP surface: one router for probes and the chat platforms' webhooks.

mod ca;
pub mod dashboard;
pub mod downloads;
mod health;
pub mod metrics;
mod traced;

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
    /// What `/metrics` keeps between scrapes.
    pub scrapes: Arc<metrics::Scrapes>,
}

/// The whole router, so tests can drive it in-process or over a real socket. Slack's routes
/// are there when Slack is configured.
pub fn router(
    state: AppState,
    slack: Option<SlackState>,
    discord: Option<crate::chat::discord::DiscordState>,
    teams: Option<crate::chat::teams::TeamsState>,
    downloads: Option<downloads::DownloadState>,
    dashboard: Option<dashboard::DashboardState>,
) -> Router {
    let mut router = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/ca/crl.der", get(ca::crl))
        .route("/ca/chain.pem", get(ca::chain))
        .with_state(state);
    if let Some(slack) = slack {
        router = router.merge(tracked("slack", slack::router(slack)));
    }
    if let Some(discord) = discord {
        router = router.merge(tracked("discord", crate::chat::discord::router(discord)));
    }
    if let Some(teams) = teams {
        router = router.merge(tracked("teams", crate::chat::teams::router(teams)));
    }
    if let Some(dashboard) = dashboard {
        router = router.merge(dashboard::router(dashboard).layer(
            axum::middleware::from_fn_with_state("dashboard", traced::traced),
        ));
    }
    if let Some(downloads) = downloads {
        router = router.merge(downloads::router(downloads).layer(
            axum::middleware::from_fn_with_state("downloads", traced::traced),
        ));
    }
    router
}

/// `GET /metrics`, for the main listener or one of its own (`metrics.listen`).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape))
        .with_state(state)
}

/// `platform`'s routes, timed and counted for `/metrics`.
fn tracked(platform: &'static str, routes: Router) -> Router {
    routes.layer(axum::middleware::from_fn_with_state(
        platform,
        metrics::track,
    ))
}
