//! The PostgreSQL store: connecting (to `DATABASE_URL` or a private cluster) and migrating.
//!
//! One database holds both sides of the system: the event store (`events`, `snapshots`) that
//! the aggregates write, and the documented relational read model that projections fill and
//! auditors query.

pub mod follow;
pub mod private_cluster;

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

use crate::config::DatabaseConfig;
use private_cluster::{PrivateCluster, PrivateClusterOptions};

/// The migrations under `migrations/`, embedded in the binary. Append-only: an applied
/// migration is never edited; sqlx refuses to start when one was.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The database the service uses inside its private cluster.
pub const PRIVATE_DATABASE: &str = "cert_assistant";

/// An open database: the pool, and the private cluster behind it if the service runs one.
#[derive(Debug)]
pub struct Database {
    pool: PgPool,
    cluster: Option<PrivateCluster>,
}

impl Database {
    /// Connects to `DATABASE_URL` when configured; otherwise starts (or reuses) the private
    /// cluster and connects to its `cert_assistant` database, creating it on first use.
    pub async fn open(config: &DatabaseConfig) -> anyhow::Result<Self> {
        match &config.url {
            Some(url) => {
                let options = PgConnectOptions::from_str(url.expose_secret())
                    .context("DATABASE_URL is not a valid PostgreSQL URL")?;
                let pool = pool(config, options)
                    .await
                    .context("could not connect to the PostgreSQL server of DATABASE_URL")?;
                Ok(Self {
                    pool,
                    cluster: None,
                })
            }
            None => {
                let options = PrivateClusterOptions {
                    root: config
                        .private
                        .data_dir
                        .clone()
                        .unwrap_or_else(private_cluster::default_root),
                    bin_dir: config.private.bin_dir.clone(),
                    run_as_user: config
                        .private
                        .run_as_user
                        .clone()
                        .unwrap_or_else(|| "postgres".to_owned()),
                    durable: true,
                };
                let cluster = PrivateCluster::start(&options)
                    .await
                    .context("could not start the private PostgreSQL cluster")?;
                let result = async {
                    create_database_if_missing(
                        &cluster.connect_options("postgres"),
                        PRIVATE_DATABASE,
                    )
                    .await?;
                    pool(config, cluster.connect_options(PRIVATE_DATABASE))
                        .await
                        .context("could not connect to the private PostgreSQL cluster")
                }
                .await;
                match result {
                    Ok(pool) => {
                        tracing::info!(
                            psql = %cluster.psql_hint(PRIVATE_DATABASE),
                            "using the private PostgreSQL cluster"
                        );
                        Ok(Self {
                            pool,
                            cluster: Some(cluster),
                        })
                    }
                    Err(e) => {
                        if let Err(stop) = cluster.stop().await {
                            tracing::warn!(error = %stop, "could not stop the private PostgreSQL cluster");
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The private cluster, if the service runs one.
    pub fn private_cluster(&self) -> Option<&PrivateCluster> {
        self.cluster.as_ref()
    }

    /// Closes the pool and stops the private cluster if this process started it.
    pub async fn close(self) -> anyhow::Result<()> {
        self.pool.close().await;
        if let Some(cluster) = self.cluster {
            cluster
                .stop()
                .await
                .context("could not stop the private PostgreSQL cluster")?;
            tracing::info!("private PostgreSQL stopped");
        }
        Ok(())
    }
}

/// One `system_config` value as stored (`None` when the key is not set). Callers parse it
/// and fall back to their documented default.
pub async fn setting(pool: &PgPool, key: &str) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar("SELECT config_value FROM system_config WHERE config_key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await
}

/// Applies every pending migration. Safe to run from several replicas at once: sqlx takes an
/// advisory lock for the duration.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("could not apply the database migrations")
}

/// A pooled connection idle for longer than this is pinged before it is handed out, so one
/// the server dropped (a restart, a failover) is replaced instead of failing a command; one
/// in steady use is not (sqlx's default pings on every acquire: a round trip per statement,
/// half the round trips of a `/cert status` under load).
const PING_WHEN_IDLE_FOR: Duration = Duration::from_millis(100);

/// A pool on the read replica of `database.read_url`, when one is set.
pub async fn open_reads(config: &DatabaseConfig) -> anyhow::Result<Option<PgPool>> {
    let Some(url) = &config.read_url else {
        return Ok(None);
    };
    let options = PgConnectOptions::from_str(url.expose_secret())
        .context("database.read_url is not a valid PostgreSQL URL")?;
    let pool = pool(config, options)
        .await
        .context("could not connect to the read replica of database.read_url")?;
    Ok(Some(pool))
}

async fn pool(config: &DatabaseConfig, options: PgConnectOptions) -> anyhow::Result<PgPool> {
    let options = options.application_name("cert-assistant");
    Ok(PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // Kept open between bursts: a quiet hour must not make the next command pay for
        // connecting (they are still retired after sqlx's default lifetime of 30 minutes).
        .idle_timeout(None)
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_WHEN_IDLE_FOR {
                    // A connection the server dropped is closed and another one used.
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await?)
}

/// A listener on `channel` over a connection of its own (made with the pool's options, not
/// taken from it: a listener holds its connection for as long as it listens, and the pool's
/// connections are for statements). It reconnects by itself after a lost connection.
pub async fn listen(pool: &PgPool, channel: &str) -> sqlx::Result<sqlx::postgres::PgListener> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with((*pool.connect_options()).clone());
    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Opens all of the pool's connections now, so the first requests after a start do
/// not each wait for a connection to be made.
pub async fn warm(pool: &PgPool) -> anyhow::Result<()> {
    let size = pool.options().get_max_connections() as usize;
    let mut held = Vec::with_capacity(size);
    while held.len() < size {
        // Each one held makes the next acquire open a new connection.
        held.push(
            pool.acquire()
                .await
                .context("could not open the database connections")?,
        );
    }
    Ok(())
}

/// Creates `name` unless it exists. Concurrent callers are fine: losing the race is success.
pub async fn create_database_if_missing(
    server: &PgConnectOptions,
    name: &str,
) -> anyhow::Result<()> {
    let mut conn = server
        .connect()
        .await
        .context("could not connect to the PostgreSQL server")?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !exists {
        let create = format!("CREATE DATABASE {}", quote_identifier(name));
        if let Err(e) = sqlx::query(&create).execute(&mut conn).await {
            let duplicate = e
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "42P04" || code == "23505");
            if !duplicate {
                return Err(e).with_context(|| format!("could not create database {name}"));
            }
        }
    }
    Ok(())
}

/// Quotes an SQL identifier (`"name"`, inner quotes doubled).
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
