//! Scheduled passes (expiry, escalation): a pass every period, one replica per pass by a
//! transaction-scoped advisory lock, released when the pass commits, rolls back or its
//! connection dies.

use std::future::Future;
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch::Receiver;

/// The pass's lease, or `None` when another replica holds it. Keep it alive for the pass.
pub async fn try_lease(
    pool: &PgPool,
    key: i64,
) -> sqlx::Result<Option<Transaction<'static, Postgres>>> {
    let mut lease = pool.begin().await?;
    let ours: bool = sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
        .bind(key)
        .fetch_one(&mut *lease)
        .await?;
    if ours {
        Ok(Some(lease))
    } else {
        // Ended here, not on drop: a dropped transaction stays open until its connection
        // next runs on the runtime.
        lease.rollback().await?;
        Ok(None)
    }
}

/// Runs `pass` every `every` until `stopped`.
pub async fn every<F, Fut, T>(name: &str, every: Duration, mut stopped: Receiver<bool>, pass: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    tracing::info!(every_s = every.as_secs(), "{name} job started");
    loop {
        if let Err(error) = pass().await {
            tracing::error!(error = format!("{error:#}"), "{name} pass failed");
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}
