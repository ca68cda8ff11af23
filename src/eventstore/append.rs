//! Writing the first events of new aggregates, several in one statement: what cqrs-es does
//! for one aggregate per commit, for a command that starts more than one stream (a submitted
//! request opens its approval, and takes its number, in the same commit).

use std::collections::HashMap;

use chrono::NaiveDate;
use cqrs_es::{Aggregate, DomainEvent as _};
use sqlx::PgExecutor;
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

/// The events of several new streams as the columns of one INSERT (`$1`..`$7`).
struct Rows<'a> {
    types: Vec<&'static str>,
    ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    versions: Vec<&'a str>,
    payloads: Vec<&'a serde_json::Value>,
    metadata: serde_json::Value,
}

/// The INSERT of [`Rows`], from the rows of `FROM` (`unnest` of `$1`..`$6`, in order, and
/// whatever the caller joins to it). jsonb in, json stored: the same text as cqrs-es's own
/// inserts, which bind jsonb.
macro_rules! insert_events {
    ($from:literal) => {
        concat!(
            "INSERT INTO events \
               (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             SELECT t, i, s, et, ev, p::json, $7::jsonb::json \
               FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::jsonb[]) \
                    WITH ORDINALITY AS u(t, i, s, et, ev, p, n)",
            $from,
            " ORDER BY n"
        )
    };
}

impl<'a> Rows<'a> {
    fn new(
        streams: &'a [NewStream],
        metadata: &HashMap<String, String>,
    ) -> Result<Self, AppendError> {
        let count = streams.iter().map(NewStream::len).sum();
        let mut rows = Rows {
            types: Vec::with_capacity(count),
            ids: Vec::with_capacity(count),
            sequences: Vec::with_capacity(count),
            event_types: Vec::with_capacity(count),
            versions: Vec::with_capacity(count),
            payloads: Vec::with_capacity(count),
            metadata: serde_json::to_value(metadata).map_err(AppendError::Unwritable)?,
        };
        for stream in streams {
            for (sequence, (event_type, version, payload)) in (1_i64..).zip(&stream.events) {
                rows.types.push(stream.aggregate_type);
                rows.ids.push(stream.aggregate_id.as_str());
                rows.sequences.push(sequence);
                rows.event_types.push(event_type.as_str());
                rows.versions.push(version.as_str());
                rows.payloads.push(payload);
            }
        }
        Ok(rows)
    }

    fn bind<'q>(
        &'q self,
        query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        query
            .bind(&self.types)
            .bind(&self.ids)
            .bind(&self.sequences)
            .bind(&self.event_types)
            .bind(&self.versions)
            .bind(&self.payloads)
            .bind(&self.metadata)
    }
}

/// Maps a refused insert: a unique violation means one of the streams (or the number) was
/// taken by someone else first.
fn refused(error: sqlx::Error, streams: &[NewStream]) -> AppendError {
    match error.as_database_error() {
        Some(database) if database.is_unique_violation() => AppendError::Exists(
            streams
                .iter()
                .map(|s| format!("{} {}", s.aggregate_type, s.aggregate_id))
                .collect::<Vec<_>>()
                .join(" or "),
        ),
        _ => AppendError::Database(error),
    }
}

/// Writes `streams` with `metadata` on every event, in one statement on `conn`. The events'
/// primary key is the concurrency guard: an aggregate that already has a first event is
/// refused with [`AppendError::Exists`] and nothing is written. Events keep their order,
/// stream after stream, in the feed.
pub async fn append_new<'e>(
    executor: impl PgExecutor<'e>,
    streams: &[NewStream],
    metadata: &HashMap<String, String>,
) -> Result<(), AppendError> {
    let rows = Rows::new(streams, metadata)?;
    rows.bind(sqlx::query(insert_events!("")))
        .execute(executor)
        .await
        .map_err(|error| refused(error, streams))?;
    Ok(())
}

/// A request number to take with a new request's streams: the `value`th of `day`, shown as
/// `number`, for `request_id`.
#[derive(Debug, Clone, Copy)]
pub struct NumberClaim<'a> {
    /// The day it counts in.
    pub day: NaiveDate,
    /// Its place in the day (1 for the first).
    pub value: i32,
    /// Its text (`REQ-YYYYMMDD-NNNNN`).
    pub number: &'a str,
    /// The request it names.
    pub request_id: Uuid,
}

/// Takes `claim` and writes `streams` with it, in one statement (its own transaction, one
/// commit): the day's counter moves from `value - 1` to `value`, the number is recorded for
/// the request, and the events are inserted, or none of it happens. `Ok(false)`: the counter
/// was not at `value - 1` (another writer took that number first); nothing was written.
pub async fn append_numbered<'e>(
    executor: impl PgExecutor<'e>,
    claim: NumberClaim<'_>,
    streams: &[NewStream],
    metadata: &HashMap<String, String>,
) -> Result<bool, AppendError> {
    // The day's first number creates its counter; any other moves it by one from where this
    // writer saw it. In READ COMMITTED a concurrent writer's commit is re-checked, so two
    // writers never both move it from the same value. The number and the events are written
    // only with the counter's row.
    macro_rules! numbered {
        ($counter:literal) => {
            concat!(
                "WITH counter AS (",
                $counter,
                "), allocation AS (\
                   INSERT INTO request_number_allocations (request_number, request_id) \
                   SELECT $10, $11 FROM counter RETURNING request_id) ",
                insert_events!(", allocation")
            )
        };
    }
    let sql = if claim.value == 1 {
        numbered!(
            "INSERT INTO request_number_counters (day, last_value) VALUES ($8, 1) \
             ON CONFLICT (day) DO NOTHING RETURNING last_value, $9::integer"
        )
    } else {
        numbered!(
            "UPDATE request_number_counters SET last_value = $9 \
              WHERE day = $8 AND last_value = $9 - 1 RETURNING last_value"
        )
    };
    let rows = Rows::new(streams, metadata)?;
    let written = rows
        .bind(sqlx::query(sql))
        .bind(claim.day)
        .bind(claim.value)
        .bind(claim.number)
        .bind(claim.request_id)
        .execute(executor)
        .await
        .map_err(|error| refused(error, streams))?;
    Ok(written.rows_affected() > 0)
}
