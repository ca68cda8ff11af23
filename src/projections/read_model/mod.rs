//! The documented tables, built from the events a batch at a time.
//!
//! A batch is applied in three steps. The events are mapped onto the rows they touch, in
//! memory, by one module per aggregate ([`users`], [`requests`], [`approvals`],
//! [`certificates`], [`notifications`], [`config`], [`refusals`]): pure functions of the
//! event and the rows as they stand, which also describe the event's audit row. The rows
//! the mapping needs are loaded first, one query per table for the whole batch
//! ([`table::Table`]). What changed is then written back in one statement per table, and the
//! audit rows with their hash chain in three more ([`crate::projections::audit`]). Every value
//! is copied from the events (times included), ids of derived rows are UUIDv5s of their
//! identity, and the per-aggregate position guard makes re-applying an event a no-op.

mod approvals;
mod certificates;
mod config;
mod notifications;
mod positions;
mod refusals;
mod requests;
mod statements;
mod table;
mod users;

#[cfg(test)]
mod tests;

use anyhow::Context;
use sqlx::PgConnection;
use uuid::Uuid;

use self::table::Table;
use super::audit::{self, AuditEntry, AuditRow, ChainTip, Destination};
use crate::feed::{DomainEvent, StoredEvent};

/// Namespace of derived row ids (approvals, answers, revocations, private keys).
const ROW_NAMESPACE: Uuid = Uuid::from_u128(0x2c7b_91d4_0e6f_4f3a_8a25_6e1d_9c0b_7a44);

fn row_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&ROW_NAMESPACE, parts.join("/").as_bytes())
}

/// How often a batch may find rows it has not loaded yet (each time loads them all). The
/// rows one event needs are found in at most two rounds: its own, then those they name.
const MAX_LOAD_ROUNDS: usize = 4;

/// Binds one array per named field of the changed rows, in order (`unnest($1::…[], …)`).
macro_rules! bind_columns {
    ($query:expr, $changed:expr, $($field:ident),+ $(,)?) => {
        $query$(.bind($changed.iter().map(|(_, row)| &row.$field).collect::<Vec<_>>()))+
    };
}
pub(crate) use bind_columns;

/// Prepares a projector transaction: `updated_at` comes from the events, not the trigger;
/// and rows are found by their keys. Every read here looks rows up by key, but the
/// planner judges by statistics taken before the transaction: in a rebuild, which fills
/// empty tables in one transaction, it would scan whole tables it believes empty, once per
/// batch, and the rebuild would slow down with every batch.
pub(crate) async fn begin(conn: &mut PgConnection) -> anyhow::Result<()> {
    sqlx::query(
        "SELECT set_config('cert_assistant.projector', 'on', true), \
                set_config('enable_seqscan', 'off', true)",
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The rows of one batch, table by table.
#[derive(Default)]
pub(super) struct Rows {
    users: Table<users::UserRow>,
    requests: Table<requests::RequestRow>,
    /// Written once and never changed: inserted, not loaded.
    answers: Vec<requests::AnswersRow>,
    approvals: Table<approvals::RequestApprovals>,
    certificates: Table<certificates::CertificateRow>,
    private_keys: Table<certificates::PrivateKeyRow>,
    notifications: Table<notifications::NotificationRow>,
    config: Table<config::ConfigRow>,
    /// Rare tables' writes (ACM, revocations), in event order, after the rows.
    statements: Vec<statements::Statement>,
}

impl Rows {
    fn has_misses(&self) -> bool {
        self.users.has_misses()
            || self.requests.has_misses()
            || self.approvals.has_misses()
            || self.certificates.has_misses()
            || self.private_keys.has_misses()
            || self.notifications.has_misses()
            || self.config.has_misses()
    }

    async fn load_misses(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.users.load_misses(conn).await?;
        self.requests.load_misses(conn).await?;
        self.approvals.load_misses(conn).await?;
        self.certificates.load_misses(conn).await?;
        self.private_keys.load_misses(conn).await?;
        self.notifications.load_misses(conn).await?;
        self.config.load_misses(conn).await
    }

    fn reset(&mut self) {
        self.users.reset();
        self.requests.reset();
        self.answers.clear();
        self.approvals.reset();
        self.certificates.reset();
        self.private_keys.reset();
        self.notifications.reset();
        self.config.reset();
        self.statements.clear();
    }

    /// Writes what the batch changed, parents before children (foreign keys).
    async fn write(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        self.users.write(conn).await.context("writing users")?;
        self.requests
            .write(conn)
            .await
            .context("writing certificate_requests")?;
        requests::insert_answers(conn, &self.answers)
            .await
            .context("writing recommendation_answers")?;
        self.approvals
            .write(conn)
            .await
            .context("writing approvals")?;
        self.certificates
            .write(conn)
            .await
            .context("writing certificates")?;
        self.private_keys
            .write(conn)
            .await
            .context("writing private_keys")?;
        self.notifications
            .write(conn)
            .await
            .context("writing notifications")?;
        self.config
            .write(conn)
            .await
            .context("writing system_config")?;
        for statement in &self.statements {
            statement.execute(conn).await?;
        }
        Ok(())
    }
}

/// Applies a batch of events in feed order (each with its audit row), skipping those
/// applied before.
pub(crate) async fn apply_batch(
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> anyhow::Result<()> {
    apply_batch_continuing(conn, events, &mut ChainTip::unknown(), Destination::Live).await
}

/// [`apply_batch`], writing the audit rows into `destination` and continuing their chain
/// from `tip` (and moving it).
pub(crate) async fn apply_batch_continuing(
    conn: &mut PgConnection,
    events: &[StoredEvent],
    tip: &mut ChainTip,
    destination: Destination,
) -> anyhow::Result<()> {
    let mut positions = positions::Positions::load(conn, events).await?;
    let mut decoded = Vec::with_capacity(events.len());
    for event in events {
        if !positions.advance(event) {
            continue;
        }
        match event.decode().with_context(|| describe(event))? {
            Some(domain) => decoded.push((event, domain)),
            None => tracing::warn!(
                aggregate_type = %event.aggregate_type,
                "projector: unknown aggregate type; skipped"
            ),
        }
    }
    let mut rows = Rows::default();
    let mut rounds = 0;
    let audit_rows = loop {
        rows.reset();
        let audit_rows = decoded
            .iter()
            .map(|(stored, event)| {
                apply_one(&mut rows, stored, event).with_context(|| describe(stored))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        if !rows.has_misses() {
            break audit_rows;
        }
        rounds += 1;
        anyhow::ensure!(
            rounds <= MAX_LOAD_ROUNDS,
            "a batch still needed unloaded rows after {MAX_LOAD_ROUNDS} rounds"
        );
        rows.load_misses(conn)
            .await
            .context("loading the batch's rows")?;
    };
    rows.write(conn).await?;
    positions.save(conn).await?;
    audit::append(conn, &audit_rows, tip, destination).await
}

fn describe(event: &StoredEvent) -> String {
    format!(
        "applying {} #{} of {} {}",
        event.event_type, event.sequence, event.aggregate_type, event.aggregate_id
    )
}

/// Maps one event onto the rows; returns its audit row.
fn apply_one(
    rows: &mut Rows,
    stored: &StoredEvent,
    event: &DomainEvent,
) -> anyhow::Result<AuditRow> {
    let entry: AuditEntry = match event {
        DomainEvent::User(event) => users::apply(rows, event),
        DomainEvent::Request(event) => requests::apply(rows, stored, event)?,
        DomainEvent::Approval(event) => approvals::apply(rows, stored, event)?,
        DomainEvent::Certificate(event) => certificates::apply(rows, stored, event)?,
        DomainEvent::Refusal(event) => refusals::apply(event),
        DomainEvent::Config(event) => config::apply(rows, event),
        DomainEvent::Notification(event) => notifications::apply(rows, stored, event)?,
    };
    let row = AuditRow::new(stored, entry);
    if let Some((user_id, email, role)) = row.actor() {
        users::ensure(rows, user_id, email, role, stored.at());
    }
    Ok(row)
}
