//! The durable feed runner: a loop around one testable step, safe with several replicas.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use tokio::sync::watch;
use tracing::{Instrument as _, Span};

use sqlx::PgConnection;

use super::StoredEvent;
use super::parking::{self, ParkedStream};

/// Something that follows the event feed durably: the read model, the chat outbox, ….
/// Each has its own checkpoint row (its name) in `projector_checkpoints`; `apply` runs in
/// the transaction that moves that checkpoint, so it must only write to the database.
pub trait FeedConsumer: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// Its checkpoint's name.
    fn name(&self) -> &'static str;

    /// Called once per batch, before the first `apply`.
    fn begin<'a>(
        &'a self,
        _conn: &'a mut PgConnection,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        async { Ok(()) }
    }

    /// Applies one event.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a StoredEvent,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a;

    /// Applies a batch in feed order; by default one event after the other.
    fn apply_batch<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        events: &'a [StoredEvent],
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        async move {
            for event in events {
                self.apply(conn, event).await.with_context(|| {
                    format!(
                        "applying {} #{} of {} {}",
                        event.event_type, event.sequence, event.aggregate_type, event.aggregate_id
                    )
                })?;
            }
            Ok(())
        }
    }
}

/// How long to sleep when idle and no notification arrives (NOTIFY is not durable).
const POLL: Duration = Duration::from_millis(500);

/// Where a consumer stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumerStatus {
    /// Its name.
    pub name: String,
    /// Events applied so far.
    pub events_applied: i64,
    /// The global position of the last applied event.
    pub last_global_seq: i64,
    /// Events in the store it has not applied yet.
    pub lag_events: i64,
    /// The age of the oldest event it has not applied, if any.
    pub lag_seconds: Option<f64>,
    /// When it last moved.
    pub updated_at: DateTime<Utc>,
}

/// What a retry of a parked stream did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Its waiting events were applied; it flows again.
    Resumed {
        /// The stream.
        stream: ParkedStream,
        /// How many events were applied.
        events: usize,
    },
    /// It still fails; it stays parked.
    StillFailing {
        /// The stream.
        stream: ParkedStream,
        /// Why, this time.
        error: String,
    },
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Applied this many events (a full batch means there may be more).
    Applied(usize),
    /// Nothing to do.
    Idle,
    /// Another worker holds the lease.
    Busy,
}

/// Applies the event feed to a consumer.
#[derive(Debug, Clone)]
pub struct Projector<C> {
    pool: PgPool,
    batch_size: i64,
    consumer: C,
}

impl<C: FeedConsumer> Projector<C> {
    /// A projector feeding `consumer`, up to 500 events per transaction.
    pub fn for_consumer(pool: PgPool, consumer: C) -> Self {
        Self {
            pool,
            batch_size: 500,
            consumer,
        }
    }

    /// Changes the batch size.
    pub fn with_batch_size(mut self, batch_size: i64) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// One step: take the lease, apply the next batch, move the checkpoint, commit — all in
    /// one transaction, so a crash at any point leaves rows and checkpoint consistent.
    /// Events of parked streams are left for [`Projector::retry_parked`]; a batch that
    /// fails for a reason other than a passing fault is applied event by event, and the
    /// streams of the events that fail on their own are parked.
    pub async fn step(&self) -> anyhow::Result<Step> {
        let name = self.consumer.name();
        let mut tx = self.pool.begin().await?;
        let lease = sqlx::query(
            "SELECT last_tx_id::text AS tx, last_global_seq FROM projector_checkpoints \
              WHERE name = $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        // Every path ends the transaction itself: a dropped one is rolled back only when
        // its connection next runs on the runtime, and until then it holds the lease and
        // pins the server's commit horizon.
        let Some(lease) = lease else {
            tx.rollback().await?;
            return Ok(Step::Busy);
        };
        let after_tx: String = lease.try_get("tx")?;
        let after_seq: i64 = lease.try_get("last_global_seq")?;
        let events = super::next_batch(&mut tx, &after_tx, after_seq, self.batch_size).await?;
        let Some(last) = events.last() else {
            tx.rollback().await?;
            return Ok(Step::Idle);
        };
        let (last_tx, last_seq) = (last.tx_id.clone(), last.global_seq);
        // The batch is a step of every trace its events belong to.
        let spans = crate::telemetry::trace::per_trace(
            events.iter().map(StoredEvent::traceparent),
            || tracing::info_span!("feed batch", otel.name = %format!("feed {name}"), consumer = name, events = events.len()),
        );
        let mut parked = parking::parked(&mut tx, name).await?;
        self.consumer.begin(&mut tx).await?;
        parking::apply_or_park(&self.consumer, &mut tx, &events, &mut parked)
            .instrument(spans.first().cloned().unwrap_or_else(Span::none))
            .await
            .with_context(|| name)?;
        sqlx::query(
            "UPDATE projector_checkpoints \
                SET last_tx_id = $2::text::xid8, last_global_seq = $3, \
                    events_applied = events_applied + $4, updated_at = now() \
              WHERE name = $1",
        )
        .bind(name)
        .bind(&last_tx)
        .bind(last_seq)
        .bind(i64::try_from(events.len()).unwrap_or(i64::MAX))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        drop(spans);
        Ok(Step::Applied(events.len()))
    }

    /// Applies the waiting events of this consumer's parked streams (all, or the one whose
    /// first failed event is at global position `only`) and unparks each stream that now
    /// applies; a stream that still fails stays parked with the new error.
    pub async fn retry_parked(&self, only: Option<i64>) -> anyhow::Result<Vec<Retried>> {
        let name = self.consumer.name();
        let mut outcomes = Vec::new();
        for stream in parking::list(&self.pool).await? {
            if stream.consumer != name || only.is_some_and(|seq| seq != stream.first_global_seq) {
                continue;
            }
            let mut tx = self.pool.begin().await?;
            // Wait for the live runner's batch: nothing of this consumer interleaves.
            let (upto_tx, upto_seq): (String, i64) = sqlx::query_as(
                "SELECT last_tx_id::text, last_global_seq FROM projector_checkpoints \
                  WHERE name = $1 FOR UPDATE",
            )
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
            let events = parking::waiting_events(&mut tx, &stream, (&upto_tx, upto_seq)).await?;
            self.consumer.begin(&mut tx).await?;
            match parking::try_apply(&self.consumer, &mut tx, &events).await {
                Ok(()) => {
                    parking::unpark(&mut tx, &stream).await?;
                    tx.commit().await?;
                    tracing::info!(consumer = name, aggregate_id = %stream.aggregate_id,
                        events = events.len(), "a parked stream is applied again");
                    outcomes.push(Retried::Resumed {
                        stream,
                        events: events.len(),
                    });
                }
                Err(error) => {
                    tx.rollback().await?;
                    let error = format!("{error:#}");
                    parking::failed_again(&self.pool, &stream, &error).await?;
                    outcomes.push(Retried::StillFailing { stream, error });
                }
            }
        }
        Ok(outcomes)
    }

    /// Steps until there is nothing left (or another worker holds the lease). For tests
    /// and for catching up before answering.
    pub async fn run_until_idle(&self) -> anyhow::Result<usize> {
        let mut total = 0;
        loop {
            match self.step().await? {
                Step::Applied(n) => total += n,
                Step::Idle | Step::Busy => return Ok(total),
            }
        }
    }

    /// Applies every event committed before the call, waiting (up to `timeout`) while an
    /// older transaction anywhere on the server still holds the horizon back. Tests and
    /// one-shot commands use it to read their own writes.
    pub async fn catch_up(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = tokio::time::Instant::now() + timeout;
        let target: Option<(String, i64)> = sqlx::query_as(
            "SELECT e.tx_id::text AS tx_text, e.global_seq FROM events e \
              ORDER BY e.tx_id DESC, e.global_seq DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        let Some((target_tx, target_seq)) = target else {
            return Ok(0);
        };
        let mut total = 0;
        loop {
            total += self.run_until_idle().await?;
            let reached: bool = sqlx::query_scalar(
                "SELECT (last_tx_id, last_global_seq) >= ($2::text::xid8, $3) \
                   FROM projector_checkpoints WHERE name = $1",
            )
            .bind(self.consumer.name())
            .bind(&target_tx)
            .bind(target_seq)
            .fetch_one(&self.pool)
            .await?;
            if reached {
                return Ok(total);
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!(
                    "the projector could not catch up within {timeout:?}: a long-running \
                     transaction on the server is holding back the commit horizon"
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Runs until `shutdown` completes: steps while there is work, then waits for a
    /// notification from `wakeups` or the poll interval. Errors are logged and retried
    /// with a pause.
    pub async fn run(self, mut wakeups: Wakeups, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        tracing::info!(consumer = self.consumer.name(), "projector started");
        loop {
            let pause = match self.step().await {
                Ok(Step::Applied(n)) if i64::try_from(n).unwrap_or(0) >= self.batch_size => {
                    continue;
                }
                Ok(Step::Applied(_) | Step::Idle | Step::Busy) => POLL,
                Err(error) => {
                    tracing::error!(
                        error = format!("{error:#}"),
                        "projector step failed; retrying"
                    );
                    Duration::from_secs(2)
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
                () = wakeups.next() => {}
            }
        }
        tracing::info!(consumer = self.consumer.name(), "projector stopped");
    }
}

/// Wake-ups for the consumers of one process when events are committed: one `LISTEN
/// events` connection, shared, instead of one per consumer. A wake-up is never lost (each
/// consumer sees that the count moved since it last looked); NOTIFY is not durable, so the
/// consumers also poll.
#[derive(Debug, Clone)]
pub struct Wakeups {
    seen: watch::Receiver<u64>,
}

impl Wakeups {
    /// Starts listening on a connection of its own, until `shutdown` completes.
    pub fn listen(pool: &PgPool, shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (count, seen) = watch::channel(0_u64);
        let pool = pool.clone();
        tokio::spawn(async move {
            tokio::pin!(shutdown);
            let mut listener = loop {
                match crate::db::listen(&pool, "events").await {
                    Ok(listener) => break listener,
                    Err(error) => {
                        tracing::warn!(%error, "feed: LISTEN failed; polling only for now");
                    }
                }
                tokio::select! {
                    () = &mut shutdown => return,
                    () = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            };
            loop {
                tokio::select! {
                    () = &mut shutdown => return,
                    received = listener.recv() => {
                        // A lost connection is re-established by recv itself.
                        if received.is_ok() {
                            count.send_modify(|n| *n = n.wrapping_add(1));
                        }
                    }
                }
            }
        });
        Self { seen }
    }

    /// No wake-ups at all: the consumer only polls.
    pub fn none() -> Self {
        let (_, seen) = watch::channel(0_u64);
        Self { seen }
    }

    /// Completes at the next wake-up (never, once listening has stopped).
    async fn next(&mut self) {
        if self.seen.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// Every consumer's checkpoint and lag.
pub async fn consumer_status(pool: &PgPool) -> anyhow::Result<Vec<ConsumerStatus>> {
    let rows = sqlx::query(
        "SELECT c.name, c.events_applied, c.last_global_seq, c.updated_at, \
                (SELECT count(*) FROM events e \
                  WHERE (e.tx_id, e.global_seq) > (c.last_tx_id, c.last_global_seq)) AS lag_events, \
                (SELECT extract(epoch FROM now() - min(e.recorded_at))::float8 FROM events e \
                  WHERE (e.tx_id, e.global_seq) > (c.last_tx_id, c.last_global_seq)) AS lag_seconds \
           FROM projector_checkpoints c ORDER BY c.name",
    )
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(ConsumerStatus {
                name: row.try_get("name")?,
                events_applied: row.try_get("events_applied")?,
                last_global_seq: row.try_get("last_global_seq")?,
                lag_events: row.try_get("lag_events")?,
                lag_seconds: row.try_get("lag_seconds")?,
                updated_at: row.try_get("updated_at")?,
            })
        })
        .collect()
}
