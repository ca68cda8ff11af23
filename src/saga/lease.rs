//! One replica per scheduled pass: a transaction-scoped advisory lock, released when the
//! pass commits, rolls back or its connection dies.

use sqlx::{PgPool, Postgres, Transaction};

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
    Ok(ours.then_some(lease))
}
