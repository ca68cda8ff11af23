//! Reading the event feed in commit order.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

/// An event as stored, with its position in the feed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    /// `CertificateRequest`, `Approval`, ...
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// Its sequence within the aggregate (from 1).
    pub sequence: i64,
    /// `RequestCreated`, ...
    pub event_type: String,
    /// `1.0`, ...
    pub event_version: String,
    /// The event, as serde wrote it.
    pub payload: serde_json::Value,
    /// Correlation id, platform, actor, client.
    pub metadata: serde_json::Value,
    /// Position in the global feed.
    pub global_seq: i64,
    /// The writing transaction's id (text of an xid8).
    #[sqlx(rename = "tx_text")]
    pub tx_id: String,
    /// When the store recorded it.
    pub recorded_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The moment the event says it happened (`at` inside the payload), else when stored.
    pub fn at(&self) -> DateTime<Utc> {
        self.payload
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|body| body.get("at"))
            .and_then(|at| serde_json::from_value(at.clone()).ok())
            .unwrap_or(self.recorded_at)
    }

    /// A metadata entry.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(serde_json::Value::as_str)
    }
}

/// The next `limit` events after (`tx_id`, `global_seq`) whose transactions are certainly
/// finished: below the oldest transaction still running, no earlier event can appear later.
pub(crate) async fn next_batch(
    conn: &mut PgConnection,
    after_tx: &str,
    after_seq: i64,
    limit: i64,
) -> Result<Vec<StoredEvent>, sqlx::Error> {
    sqlx::query_as(
        // The text form of tx_id gets its own name: ORDER BY would otherwise sort by the
        // output column, as text ("1001" < "991"), and skip events.
        "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
                e.payload, e.metadata, e.global_seq, e.tx_id::text AS tx_text, e.recorded_at \
           FROM events e \
          WHERE (e.tx_id, e.global_seq) > ($1::text::xid8, $2) \
            AND e.tx_id < pg_snapshot_xmin(pg_current_snapshot()) \
          ORDER BY e.tx_id, e.global_seq \
          LIMIT $3",
    )
    .bind(after_tx)
    .bind(after_seq)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await
}
