//! The running service: binds the listener, serves HTTP, and shuts down in order.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::config::Config;
use crate::http::{self, AppState};

/// A bound, not yet running, service. `build` then `run_until`: tests bind port 0, read
/// [`Application::local_addr`], and run it in the background.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Binds the configured address. The database must already be migrated.
    pub async fn build(config: &Config, pool: PgPool) -> anyhow::Result<Self> {
        let addr = config
            .listen_addr()
            .map_err(anyhow::Error::msg)
            .context("invalid listen address")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        Ok(Self {
            listener,
            state: AppState { pool },
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` completes, then finishes the requests in flight.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let addr = self.local_addr();
        tracing::info!(%addr, "listening");
        axum::serve(self.listener, http::router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")
    }
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "could not listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "could not listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("interrupted; shutting down"),
        () = terminate => tracing::info!("terminated; shutting down"),
    }
}
