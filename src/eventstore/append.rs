//! Writing the first events of new aggregates, several in one transaction: what cqrs-es
//! does for one aggregate per commit, for a command that starts more than one stream (a
//! submitted request opens its approval in the same commit).

use std::collections::HashMap;

use cqrs_es::{Aggregate, DomainEvent as _};
use sqlx::PgConnection;
use uuid::Uuid;

/// The first events of an aggregate that has none yet, serialized as cqrs-es stores them
/// (sequence from 1, the event's type and version, its payload as JSON).
#[derive(Debug, Clone)]
pub struct NewStream {
    aggregate_type: &'static str,
    aggregate_id: String,
    events: Vec<(String, String, serde_json::Value)>,
}

impl NewStream {
    /// `events` as aggregate `id`'s first.
    pub fn new<A: Aggregate>(id: Uuid, events: &[A::Event]) -> Result<Self, AppendError> {
        let events = events
            .iter()
            .map(|event| {
                let payload = serde_json::to_value(event).map_err(AppendError::Unwritable)?;
                Ok((event.event_type(), event.event_version(), payload))
            })
            .collect::<Result<_, AppendError>>()?;
        Ok(Self {
            aggregate_type: A::TYPE,
            aggregate_id: id.to_string(),
            events,
        })
    }

    /// How many events it holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Why an append failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// One of the aggregates already had events: someone else created it first.
    #[error("the {0} already exists")]
    Exists(String),
    /// The database did not take the events.
    #[error("the event store could not be written")]
    Database(#[source] sqlx::Error),
    /// An event did not serialize.
    #[error("an event could not be serialized: {0}")]
    Unwritable(#[source] serde_json::Error),
}

/// Writes `streams` with `metadata` on every event, in one statement on `conn` (a
/// transaction the caller commits). The events' primary key is the concurrency guard: an
/// aggregate that already has a first event is refused with [`AppendError::Exists`] and
/// nothing is written. Events keep their order, stream after stream, in the feed.
pub async fn append_new(
    conn: &mut PgConnection,
    streams: &[NewStream],
    metadata: &HashMap<String, String>,
) -> Result<(), AppendError> {
    let count = streams.iter().map(NewStream::len).sum();
    let mut types = Vec::with_capacity(count);
    let mut ids = Vec::with_capacity(count);
    let mut sequences = Vec::with_capacity(count);
    let mut event_types = Vec::with_capacity(count);
    let mut versions = Vec::with_capacity(count);
    let mut payloads = Vec::with_capacity(count);
    for stream in streams {
        for (sequence, (event_type, version, payload)) in (1_i64..).zip(&stream.events) {
            types.push(stream.aggregate_type);
            ids.push(stream.aggregate_id.as_str());
            sequences.push(sequence);
            event_types.push(event_type.as_str());
            versions.push(version.as_str());
            payloads.push(payload);
        }
    }
    let metadata = serde_json::to_value(metadata).map_err(AppendError::Unwritable)?;
    // jsonb in, json stored: the same text as cqrs-es's own inserts, which bind jsonb.
    sqlx::query(
        "INSERT INTO events \
           (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT t, i, s, et, ev, p::json, $7::jsonb::json \
           FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[]) \
                WITH ORDINALITY AS u(t, i, s, et, ev, p, n) \
          ORDER BY n",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&sequences)
    .bind(&event_types)
    .bind(&versions)
    .bind(&payloads)
    .bind(&metadata)
    .execute(conn)
    .await
    .map_err(|error| match error.as_database_error() {
        Some(database) if database.is_unique_violation() => AppendError::Exists(
            streams
                .iter()
                .map(|s| format!("{} {}", s.aggregate_type, s.aggregate_id))
                .collect::<Vec<_>>()
                .join(" or "),
        ),
        _ => AppendError::Database(error),
    })?;
    Ok(())
}
