//! The event feed: every event in commit order, decoded into the domain's own types, and
//! the runner that carries it to durable consumers (the read model, the saga's feeds, the
//! chat outbox). It sits below everything that follows the feed; only this module and
//! [`crate::eventstore`] read the `events` table.

pub mod parking;
mod runner;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate as _;
use serde::de::DeserializeOwned;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::approval::{Approval, ApprovalEvent};
use crate::domain::certificate::{Certificate, CertificateEvent};
use crate::domain::config::{Config, ConfigEvent};
use crate::domain::notification::{Notification, NotificationEvent};
use crate::domain::refusal::{Refusal, RefusalEvent};
use crate::domain::request::{CertificateRequest, RequestEvent};
use crate::domain::user::{User, UserEvent};

pub use runner::{
    ConsumerStatus, FeedConsumer, Projector, Retried, Step, Wakeups, consumer_status,
};

/// An event of any aggregate, decoded: what consumers match on instead of JSON paths.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "decoded once per event and matched at once; boxing would only add noise"
)]
pub enum DomainEvent {
    /// Of a certificate request.
    Request(RequestEvent),
    /// Of a request's approval.
    Approval(ApprovalEvent),
    /// Of an issued certificate.
    Certificate(CertificateEvent),
    /// Of a notification (e-mail or chat).
    Notification(NotificationEvent),
    /// Of a person.
    User(UserEvent),
    /// Of the runtime settings.
    Config(ConfigEvent),
    /// A refused attempt.
    Refusal(RefusalEvent),
}

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

    /// The aggregate's id as a UUID (every aggregate of ours has one).
    pub fn aggregate_uuid(&self) -> anyhow::Result<Uuid> {
        self.aggregate_id
            .parse()
            .with_context(|| format!("aggregate id {:?} is not a UUID", self.aggregate_id))
    }

    /// The payload as the event type `E` of its aggregate.
    pub fn payload_as<E: DeserializeOwned>(&self) -> anyhow::Result<E> {
        serde_json::from_value(self.payload.clone()).with_context(|| {
            format!(
                "unreadable {} payload (version {})",
                self.event_type, self.event_version
            )
        })
    }

    /// The event in the domain's own types; `None` for an aggregate type this version does
    /// not know (written by a newer release), which consumers skip.
    pub fn decode(&self) -> anyhow::Result<Option<DomainEvent>> {
        Ok(Some(match self.aggregate_type.as_str() {
            CertificateRequest::TYPE => DomainEvent::Request(self.payload_as()?),
            Approval::TYPE => DomainEvent::Approval(self.payload_as()?),
            Certificate::TYPE => DomainEvent::Certificate(self.payload_as()?),
            Notification::TYPE => DomainEvent::Notification(self.payload_as()?),
            User::TYPE => DomainEvent::User(self.payload_as()?),
            Config::TYPE => DomainEvent::Config(self.payload_as()?),
            Refusal::TYPE => DomainEvent::Refusal(self.payload_as()?),
            _ => return Ok(None),
        }))
    }

    /// A metadata entry.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata.get(key).and_then(serde_json::Value::as_str)
    }

    /// The span that appended it, in W3C form, when it was appended inside a trace: what it
    /// causes continues that trace.
    pub fn traceparent(&self) -> Option<&str> {
        self.meta(crate::telemetry::trace::TRACEPARENT)
    }
}

/// Waits (at most `within`) until the consumer `name` has applied every event committed
/// before this call; whether it had. For a page that must show what just happened, read
/// from the consumer's tables.
pub async fn caught_up(
    pool: &sqlx::PgPool,
    name: &str,
    within: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let horizon: String =
        sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text")
            .fetch_one(pool)
            .await?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let behind: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events e, projector_checkpoints c \
              WHERE c.name = $1 AND e.tx_id < $2::text::xid8 \
                AND (e.tx_id, e.global_seq) > (c.last_tx_id, c.last_global_seq))",
        )
        .bind(name)
        .bind(&horizon)
        .fetch_one(pool)
        .await?;
        if !behind {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// The next `limit` events after (`tx_id`, `global_seq`) whose transactions are certainly
/// finished: below the oldest transaction still running, no earlier event can appear later.
pub async fn next_batch(
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
