//! Rebuilding the read model from the event store.

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::{PgConnection, PgPool};

use super::audit::fresh::{self, FreshTrail};
use super::audit::{ChainTip, Destination};
use super::projector::READ_MODEL;
use super::read_model;
use crate::feed::{self, FeedConsumer, StoredEvent};

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct ReplayReport {
    /// Events applied.
    pub events: usize,
    /// How long it took.
    pub elapsed: Duration,
    /// Streams that could not be applied and are parked (see `projections status`).
    pub parked: usize,
}

impl ReplayReport {
    /// Throughput.
    pub fn events_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.events as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Empties the projected tables and applies every event again, all in one transaction that
/// deletes rather than truncates: readers keep reading the old rows (MVCC) and see the new
/// ones whole when it commits, and a failure changes nothing. The audit rows, most of the
/// work, are written into a fresh copy of `audit_logs` without indexes, which replaces the
/// live partitions at the end ([`FreshTrail`]), as does their chain; readers wait only
/// for that swap.
/// The live projector's lease is held throughout, so it skips its turns rather than races,
/// and catches up from the replay's checkpoint afterwards. `system_config` keeps its rows
/// (they are seeded by migrations); configuration events are applied on top again.
pub async fn replay(pool: &PgPool, batch_size: i64) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    fresh::drop_retired(pool).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT 1 FROM projector_checkpoints WHERE name = $1 FOR UPDATE")
        .bind(READ_MODEL)
        .fetch_one(&mut *tx)
        .await
        .context("taking the projector's lease")?;
    read_model::begin(&mut tx).await?;
    let trail = FreshTrail::create(&mut tx)
        .await
        .context("preparing the rebuilt audit trail")?;
    sqlx::query("UPDATE system_config SET updated_by = NULL WHERE updated_by IS NOT NULL")
        .execute(&mut *tx)
        .await?;
    // Children first, so no foreign key is ever left dangling. The old audit rows go with
    // their partitions at the swap, but they name users, so they are deleted first too
    // (that marks them gone for this transaction only; it touches no index).
    for table in [
        "audit_logs",
        "private_keys",
        "acm_certificates",
        "certificate_revocations",
        "certificates",
        "approvals",
        "recommendation_answers",
        "notifications",
        "certificate_requests",
        "projection_positions",
        "users",
    ] {
        sqlx::query(&format!("DELETE FROM {table}"))
            .execute(&mut *tx)
            .await
            .with_context(|| format!("emptying {table}"))?;
    }
    // A rebuild tries every stream again; what still fails is parked anew, not a stop.
    sqlx::query("DELETE FROM parked_streams WHERE consumer = $1")
        .bind(READ_MODEL)
        .execute(&mut *tx)
        .await?;

    let mut parked = std::collections::HashSet::new();
    let rebuild = Rebuild::default();
    let (events, (after_tx, after_seq)) = walk_feed(&mut tx, batch_size, async |conn, batch| {
        feed::parking::apply_or_park(&rebuild, conn, batch, &mut parked)
            .await
            .context("replaying")
    })
    .await?;
    sqlx::query(
        "UPDATE projector_checkpoints SET last_tx_id = $2::text::xid8, last_global_seq = $3, \
             events_applied = $4, updated_at = now() WHERE name = $1",
    )
    .bind(READ_MODEL)
    .bind(&after_tx)
    .bind(after_seq)
    .bind(i64::try_from(events).unwrap_or(i64::MAX))
    .execute(&mut *tx)
    .await?;
    trail
        .swap(&mut tx)
        .await
        .context("swapping in the rebuilt audit trail")?;
    tx.commit().await?;
    fresh::drop_retired(pool).await?;
    Ok(ReplayReport {
        events,
        elapsed: started.elapsed(),
        parked: parked.len(),
    })
}

/// The read model during a rebuild: one transaction throughout, so the end of the audit
/// chain (a fresh copy, empty at first) is carried from batch to batch rather than looked up.
#[derive(Debug, Clone)]
struct Rebuild {
    tip: std::sync::Arc<std::sync::Mutex<ChainTip>>,
}

impl Default for Rebuild {
    fn default() -> Self {
        Self {
            tip: std::sync::Arc::new(std::sync::Mutex::new(ChainTip::empty())),
        }
    }
}

impl Rebuild {
    fn tip(&self) -> ChainTip {
        self.tip.lock().map(|tip| tip.clone()).unwrap_or_default()
    }
}

impl FeedConsumer for Rebuild {
    fn name(&self) -> &'static str {
        READ_MODEL
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a StoredEvent,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        self.apply_batch(conn, std::slice::from_ref(event))
    }

    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[StoredEvent],
    ) -> anyhow::Result<()> {
        // Moved only when the batch applied: a batch rolled back to its savepoint leaves
        // the chain where it was.
        let mut tip = self.tip();
        read_model::apply_batch_continuing(conn, events, &mut tip, Destination::Fresh).await?;
        if let Ok(mut shared) = self.tip.lock() {
            *shared = tip;
        }
        Ok(())
    }
}

/// Reads every event in batches of `batch_size`, as [`replay`] does, and applies nothing:
/// the baseline a replay is measured against.
pub async fn read_feed(pool: &PgPool, batch_size: i64) -> anyhow::Result<ReplayReport> {
    let started = Instant::now();
    let mut tx = pool.begin().await?;
    let (events, _) = walk_feed(&mut tx, batch_size, async |_, _| Ok(())).await?;
    tx.rollback().await?;
    Ok(ReplayReport {
        events,
        elapsed: started.elapsed(),
        parked: 0,
    })
}

/// Hands the whole feed to `each`, `batch_size` events at a time, in `conn`'s transaction;
/// returns how many events there were and the position of the last.
async fn walk_feed(
    conn: &mut PgConnection,
    batch_size: i64,
    mut each: impl AsyncFnMut(&mut PgConnection, &[StoredEvent]) -> anyhow::Result<()>,
) -> anyhow::Result<(usize, (String, i64))> {
    let mut position = ("0".to_owned(), 0_i64);
    let mut events = 0;
    loop {
        let batch = feed::next_batch(conn, &position.0, position.1, batch_size).await?;
        let Some(last) = batch.last() else {
            return Ok((events, position));
        };
        position = (last.tx_id.clone(), last.global_seq);
        each(conn, &batch).await?;
        events += batch.len();
    }
}
