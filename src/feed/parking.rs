//! Parked streams: no consumer stalls on one event. When an event cannot be applied (not a
//! passing fault of the database, but an error that would come back every time), the
//! runner parks that aggregate's stream for that consumer: the failure is recorded here
//! (event, error, attempts, first and last time), the stream's later events wait (so its
//! order is kept), and every other aggregate's events keep flowing. After a fix,
//! [`Projector::retry_parked`](super::Projector::retry_parked) applies the stream's waiting
//! events in order and unparks it.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};

use super::{FeedConsumer, StoredEvent};

/// An aggregate's stream: (aggregate type, aggregate id).
pub type Stream = (String, String);

/// A stream one consumer stopped applying.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ParkedStream {
    /// The consumer.
    pub consumer: String,
    /// The aggregate's type.
    pub aggregate_type: String,
    /// The aggregate's id.
    pub aggregate_id: String,
    /// The global position of the first event not applied (what `projections retry` takes).
    pub first_global_seq: i64,
    /// Its type.
    pub event_type: String,
    /// Its sequence within the aggregate.
    pub sequence: i64,
    /// Why it could not be applied, the last time it was tried.
    pub error: String,
    /// How often it was tried.
    pub attempts: i32,
    /// When it first failed.
    pub first_failed_at: DateTime<Utc>,
    /// When it last failed.
    pub last_failed_at: DateTime<Utc>,
}

impl StoredEvent {
    /// The stream this event belongs to.
    pub fn stream(&self) -> Stream {
        (self.aggregate_type.clone(), self.aggregate_id.clone())
    }
}

/// Whether `error` is a passing fault (a lost connection, a restart, a serialization
/// failure, a lock or statement timeout) that is worth retrying as it is, rather than a
/// reason to park.
pub fn is_transient(error: &anyhow::Error) -> bool {
    error
        .chain()
        .any(|cause| match cause.downcast_ref::<sqlx::Error>() {
            Some(sqlx::Error::Database(database)) => database.code().is_some_and(|code| {
                matches!(&*code, "40001" | "40P01" | "55P03" | "57014")
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("57P")
            }),
            Some(
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed,
            ) => true,
            _ => false,
        })
}

/// Applies `events` (in `conn`'s transaction) but those of `parked` streams: all at once if
/// they apply, otherwise one by one, parking the stream of each event that fails on its own
/// (and so skipping that stream's later events). A passing fault is returned as an error,
/// for the caller to retry the whole batch.
pub async fn apply_or_park<C: FeedConsumer>(
    consumer: &C,
    conn: &mut PgConnection,
    events: &[StoredEvent],
    parked: &mut HashSet<Stream>,
) -> anyhow::Result<()> {
    // Copied only when something is parked: usually nothing is.
    let live: std::borrow::Cow<'_, [StoredEvent]> = if parked.is_empty() {
        events.into()
    } else {
        events
            .iter()
            .filter(|event| !parked.contains(&event.stream()))
            .cloned()
            .collect::<Vec<_>>()
            .into()
    };
    let Err(error) = try_apply(consumer, conn, &live).await else {
        return Ok(());
    };
    if is_transient(&error) {
        return Err(error);
    }
    for event in live.iter() {
        if parked.contains(&event.stream()) {
            continue;
        }
        let Err(error) = try_apply(consumer, conn, std::slice::from_ref(event)).await else {
            continue;
        };
        if is_transient(&error) {
            return Err(error);
        }
        let error = format!("{error:#}");
        tracing::error!(
            consumer = consumer.name(),
            aggregate_type = %event.aggregate_type,
            aggregate_id = %event.aggregate_id,
            event = %event.event_type,
            global_seq = event.global_seq,
            %error,
            "an event cannot be applied; its stream is parked, the rest goes on"
        );
        park(conn, consumer.name(), event, &error).await?;
        parked.insert(event.stream());
    }
    Ok(())
}

/// Applies `events` inside a savepoint of `conn`'s transaction: all of them, or (on error)
/// none.
pub(super) async fn try_apply<C: FeedConsumer>(
    consumer: &C,
    conn: &mut PgConnection,
    events: &[StoredEvent],
) -> anyhow::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut attempt = sqlx::Connection::begin(&mut *conn).await?;
    match consumer.apply_batch(&mut attempt, events).await {
        Ok(()) => Ok(attempt.commit().await?),
        Err(error) => {
            attempt.rollback().await?;
            Err(error)
        }
    }
}

/// The streams `consumer` has parked.
pub async fn parked(conn: &mut PgConnection, consumer: &str) -> anyhow::Result<HashSet<Stream>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_type, aggregate_id FROM parked_streams WHERE consumer = $1",
    )
    .bind(consumer)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Parks `event`'s stream for `consumer` (in the caller's transaction).
pub(super) async fn park(
    conn: &mut PgConnection,
    consumer: &str,
    event: &StoredEvent,
    error: &str,
) -> anyhow::Result<()> {
    let error: String = error.chars().filter(|c| *c != '\0').take(4_000).collect();
    sqlx::query(
        "INSERT INTO parked_streams (consumer, aggregate_type, aggregate_id, first_tx_id, \
                                     first_global_seq, event_type, sequence, error, attempts) \
         VALUES ($1, $2, $3, $4::text::xid8, $5, $6, $7, $8, 2) \
         ON CONFLICT (consumer, aggregate_type, aggregate_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(&event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(&event.tx_id)
    .bind(event.global_seq)
    .bind(&event.event_type)
    .bind(event.sequence)
    .bind(error)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Every parked stream, in feed order of the first event that failed (the order a retry
/// applies them in, so a stream that depends on another comes after it).
pub async fn list(pool: &PgPool) -> anyhow::Result<Vec<ParkedStream>> {
    Ok(sqlx::query_as(
        "SELECT consumer, aggregate_type, aggregate_id, first_global_seq, event_type, sequence, \
                error, attempts, first_failed_at, last_failed_at \
           FROM parked_streams ORDER BY first_global_seq, consumer",
    )
    .fetch_all(pool)
    .await?)
}

/// How many streams each consumer has parked (consumers with none are left out).
pub async fn counts(pool: &PgPool) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT consumer, count(*) FROM parked_streams GROUP BY consumer ORDER BY consumer",
    )
    .fetch_all(pool)
    .await
}

/// Parked streams nobody was told about yet, marked told in `conn`'s transaction.
pub async fn unreported(conn: &mut PgConnection, limit: i64) -> anyhow::Result<Vec<ParkedStream>> {
    Ok(sqlx::query_as(
        "UPDATE parked_streams SET reported_at = now() \
          WHERE (consumer, aggregate_type, aggregate_id) IN ( \
                SELECT consumer, aggregate_type, aggregate_id FROM parked_streams \
                 WHERE reported_at IS NULL ORDER BY first_failed_at LIMIT $1 \
                   FOR UPDATE SKIP LOCKED) \
         RETURNING consumer, aggregate_type, aggregate_id, first_global_seq, event_type, \
                   sequence, error, attempts, first_failed_at, last_failed_at",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?)
}

/// The events of a parked stream the consumer has not applied: from the first that failed
/// up to its checkpoint (`upto`), in feed order.
pub(super) async fn waiting_events(
    conn: &mut PgConnection,
    parked: &ParkedStream,
    upto: (&str, i64),
) -> anyhow::Result<Vec<StoredEvent>> {
    Ok(sqlx::query_as(
        "SELECT e.aggregate_type, e.aggregate_id, e.sequence, e.event_type, e.event_version, \
                e.payload, e.metadata, e.global_seq, e.tx_id::text AS tx_text, e.recorded_at \
           FROM events e \
           JOIN parked_streams p ON p.consumer = $1 AND p.aggregate_type = e.aggregate_type \
                                AND p.aggregate_id = e.aggregate_id \
          WHERE e.aggregate_type = $2 AND e.aggregate_id = $3 \
            AND (e.tx_id, e.global_seq) >= (p.first_tx_id, p.first_global_seq) \
            AND (e.tx_id, e.global_seq) <= ($4::text::xid8, $5) \
          ORDER BY e.tx_id, e.global_seq",
    )
    .bind(&parked.consumer)
    .bind(&parked.aggregate_type)
    .bind(&parked.aggregate_id)
    .bind(upto.0)
    .bind(upto.1)
    .fetch_all(&mut *conn)
    .await?)
}

/// Unparks a stream whose waiting events were applied.
pub(super) async fn unpark(conn: &mut PgConnection, parked: &ParkedStream) -> anyhow::Result<()> {
    sqlx::query(
        "DELETE FROM parked_streams WHERE consumer = $1 AND aggregate_type = $2 \
            AND aggregate_id = $3",
    )
    .bind(&parked.consumer)
    .bind(&parked.aggregate_type)
    .bind(&parked.aggregate_id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records another failed attempt at a parked stream.
pub(super) async fn failed_again(
    pool: &PgPool,
    parked: &ParkedStream,
    error: &str,
) -> anyhow::Result<()> {
    let error: String = error.chars().filter(|c| *c != '\0').take(4_000).collect();
    sqlx::query(
        "UPDATE parked_streams SET attempts = attempts + 1, error = $4, last_failed_at = now() \
          WHERE consumer = $1 AND aggregate_type = $2 AND aggregate_id = $3",
    )
    .bind(&parked.consumer)
    .bind(&parked.aggregate_type)
    .bind(&parked.aggregate_id)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}
