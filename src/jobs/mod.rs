//! The job runtime: durable background work, written once for every kind of job.
//!
//! A job is a row of `jobs` with a kind, a typed payload (serde) and, optionally, an
//! ordering key: jobs sharing a key run one after the other in the order they were queued
//! (a chat decision never overtakes the ask it updates). Feed consumers [`enqueue`] jobs in
//! the transaction that moves their checkpoint, so a job exists exactly when its event was
//! consumed. A [`JobWorker`] describes one kind — its payload type, its [`Policy`] and its
//! work — and [`step`] does the rest: claim due jobs with `FOR UPDATE SKIP LOCKED` and a
//! lease (several replicas never run one job at once; a crashed worker's lease runs out),
//! run each with no transaction open, and record what happened: done, later (the job waits
//! on someone else, e.g. a CA that holds the request), retried with exponential backoff
//! and jitter, or given up into the visible `failed` state, logged as an error and reported
//! to the admins (see [`failed_unreported`]). Work is idempotent by contract: a lease that
//! ran out means a job may run twice.

pub mod policy;
mod schedule;

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sqlx::{FromRow as _, PgConnection, PgPool, Row};
use tokio::sync::watch::Receiver;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::telemetry::metrics::{JobOutcome, instruments};

pub use policy::Policy;
pub use schedule::{every, try_lease};

/// A claimed job, its payload decoded.
#[derive(Debug, Clone)]
pub struct Claimed<P> {
    /// The job's id (stable: derived from what caused it).
    pub id: Uuid,
    /// What to do.
    pub payload: P,
    /// Claims so far, this one included (a poll that waits does not count as a failure,
    /// but resets nothing either: see [`Outcome::Later`]).
    pub attempts: i32,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// What became of a job that ran without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// Not finished, through no failure: run it again after a while (a CA that holds the
    /// request). Its attempts start over.
    Later {
        /// When to look again.
        after: Duration,
        /// Why, shown in `last_error` until then.
        note: String,
    },
}

/// Why a job did not finish.
#[derive(Debug)]
pub enum JobError {
    /// Worth trying again (a platform or CA that did not answer, a database restart).
    Transient(anyhow::Error),
    /// Trying again cannot help: the job is given up at once.
    Permanent(anyhow::Error),
}

impl JobError {
    /// A permanent failure with this message.
    pub fn permanent(message: impl std::fmt::Display) -> Self {
        Self::Permanent(anyhow::anyhow!("{message}"))
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transient(error) | Self::Permanent(error) => write!(f, "{error:#}"),
        }
    }
}

impl From<anyhow::Error> for JobError {
    fn from(error: anyhow::Error) -> Self {
        Self::Transient(error)
    }
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(error.into())
    }
}

/// One kind of job: its payload, its policy and its work.
pub trait JobWorker: Send + Sync {
    /// What a job of this kind carries.
    type Payload: Serialize + DeserializeOwned + Send + Sync;

    /// The kind, as stored in `jobs.kind`.
    fn kind(&self) -> &'static str;

    /// How it is claimed, retried and given up (one of [`policy`]'s).
    fn policy(&self) -> &'static Policy;

    /// Does the work of one job. Called with no transaction open.
    fn perform<'a>(
        &'a self,
        job: &'a Claimed<Self::Payload>,
    ) -> impl Future<Output = Result<Outcome, JobError>> + Send + 'a;
}

/// A job to queue.
#[derive(Debug)]
pub struct NewJob<'a, P> {
    /// Its id: derive it from what causes the job, so queueing twice queues once.
    pub id: Uuid,
    /// Its kind (the worker's [`JobWorker::kind`]).
    pub kind: &'a str,
    /// Jobs with the same key run in queue order, one at a time.
    pub ordering_key: Option<String>,
    /// What to do.
    pub payload: &'a P,
    /// The trace it continues: the `traceparent` of the event that causes it
    /// ([`crate::feed::StoredEvent::traceparent`]).
    pub traceparent: Option<&'a str>,
}

/// Queues a job in the caller's transaction; a job with the same id is left as it is.
pub async fn enqueue<P: Serialize>(
    conn: &mut PgConnection,
    job: NewJob<'_, P>,
) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, kind, ordering_key, payload, traceparent) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(job.id)
    .bind(job.kind)
    .bind(job.ordering_key)
    .bind(serde_json::to_value(job.payload)?)
    // Only a well-formed one is kept (an event's metadata is not bounded).
    .bind(job.traceparent.filter(|t| t.len() == 55))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Claims the due jobs of `worker`'s kind, runs them and records each outcome; returns how
/// many were claimed.
pub async fn step<W: JobWorker>(pool: &PgPool, worker: &W) -> anyhow::Result<usize> {
    let policy = worker.policy();
    let rows = sqlx::query(
        "UPDATE jobs SET locked_until = now() + make_interval(secs => $2), \
                attempts = attempts + 1 \
          WHERE id IN (SELECT id FROM jobs j \
                        WHERE kind = $1 AND state = 'queued' AND run_at <= now() \
                          AND (locked_until IS NULL OR locked_until < now()) \
                          AND (ordering_key IS NULL OR NOT EXISTS (SELECT 1 FROM jobs e \
                                WHERE e.ordering_key = j.ordering_key \
                                  AND e.state = 'queued' AND e.seq < j.seq)) \
                        ORDER BY run_at, seq LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING id, payload, attempts, created_at, traceparent",
    )
    .bind(worker.kind())
    .bind(policy.lease.as_secs_f64())
    .bind(policy.batch)
    .fetch_all(pool)
    .await?;
    let claimed = rows.len();
    for row in rows {
        let id: Uuid = row.try_get("id")?;
        let attempts: i32 = row.try_get("attempts")?;
        let created_at: DateTime<Utc> = row.try_get("created_at")?;
        let span = tracing::info_span!(
            "job",
            otel.name = %format!("job {}", worker.kind()),
            otel.status_code = tracing::field::Empty,
            job.kind = worker.kind(),
            job.id = %id,
            job.attempt = attempts,
        );
        if crate::telemetry::trace::exporting() {
            let traceparent: Option<String> = row.try_get("traceparent")?;
            crate::telemetry::trace::continue_from(&span, traceparent.as_deref());
        }
        let outcome = match serde_json::from_value(row.try_get("payload")?) {
            Err(error) => Err(JobError::Permanent(
                anyhow::Error::new(error).context("the job's payload is unreadable"),
            )),
            Ok(_) if policy.expired(created_at) => Err(JobError::permanent(
                "stale: too old to be worth doing any more",
            )),
            Ok(payload) => {
                let job = Claimed {
                    id,
                    payload,
                    attempts,
                    created_at,
                };
                worker.perform(&job).instrument(span.clone()).await
            }
        };
        if outcome.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        finish(pool, worker.kind(), policy, id, attempts, outcome)
            .instrument(span)
            .await?;
    }
    Ok(claimed)
}

/// Records what became of a job.
async fn finish(
    pool: &PgPool,
    kind: &'static str,
    policy: &Policy,
    id: Uuid,
    attempts: i32,
    outcome: Result<Outcome, JobError>,
) -> anyhow::Result<()> {
    let (state, delay, attempts_after, error, ran) = match outcome {
        Ok(Outcome::Done) => ("done", Duration::ZERO, attempts, None, JobOutcome::Done),
        Ok(Outcome::Later { after, note }) => ("queued", after, 0, Some(note), JobOutcome::Later),
        Err(JobError::Transient(error)) if attempts < policy.max_attempts => {
            let delay = policy.backoff(attempts, rand_unit(id, attempts));
            tracing::warn!(
                job = %id, kind, attempts, retry_in_s = delay.as_secs(),
                error = format!("{error:#}"),
                "a job failed; it will be retried"
            );
            (
                "queued",
                delay,
                attempts,
                Some(format!("{error:#}")),
                JobOutcome::Retry,
            )
        }
        Err(error) => {
            tracing::error!(
                job = %id, kind, attempts, error = %error,
                "a job was given up; the admins are told"
            );
            (
                "failed",
                Duration::ZERO,
                attempts,
                Some(error.to_string()),
                JobOutcome::Failed,
            )
        }
    };
    instruments().job_ran(kind, ran);
    sqlx::query(
        "UPDATE jobs SET state = $2, locked_until = NULL, attempts = $3, last_error = $4, \
             run_at = now() + make_interval(secs => $5), \
             finished_at = CASE WHEN $2 = 'queued' THEN NULL ELSE now() END \
          WHERE id = $1",
    )
    .bind(id)
    .bind(state)
    .bind(attempts_after)
    .bind(error)
    .bind(delay.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// A number in [0, 1) that differs per job and attempt: the jitter that keeps replicas and
/// jobs that failed together from retrying in lockstep.
fn rand_unit(id: Uuid, attempts: i32) -> f64 {
    let mixed = Uuid::new_v5(&id, &attempts.to_be_bytes());
    f64::from(mixed.as_bytes()[0]) / 256.0
}

/// Runs `step` (which claims at most `batch` jobs and says how many) until `stopped`: at
/// once again after a full batch, after a second when idle, after five after an error.
pub async fn poll<F, Fut>(name: &str, batch: i64, mut stopped: Receiver<bool>, step: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    tracing::info!("{name} started");
    loop {
        let pause = match step().await {
            Ok(claimed) if i64::try_from(claimed).unwrap_or(i64::MAX) >= batch => Duration::ZERO,
            Ok(_) => Duration::from_secs(1),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "{name} step failed");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!("{name} stopped");
}

/// Runs `worker` until `stopped`.
pub async fn run<W: JobWorker>(pool: &PgPool, worker: &W, stopped: Receiver<bool>) {
    // Step again at once after any work: the next job of an ordering key becomes claimable
    // only when the one before it is done.
    let batch = if worker.policy().ordered {
        1
    } else {
        worker.policy().batch
    };
    poll(worker.kind(), batch, stopped, || step(pool, worker)).await;
}

/// A job that was given up.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Failure {
    /// The job.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// How often it was tried.
    pub attempts: i32,
    /// Why it failed the last time.
    #[sqlx(rename = "last_error")]
    pub error: String,
}

/// Failed jobs nobody was told about yet, with their payloads, marked told in `conn`'s
/// transaction (so a reporter that crashes before committing reports them again).
pub async fn failed_unreported(
    conn: &mut PgConnection,
    limit: i64,
) -> anyhow::Result<Vec<(Failure, serde_json::Value)>> {
    let rows = sqlx::query(
        "UPDATE jobs SET reported_at = now() WHERE id IN ( \
             SELECT id FROM jobs WHERE state = 'failed' AND reported_at IS NULL \
              ORDER BY finished_at LIMIT $1 FOR UPDATE SKIP LOCKED) \
         RETURNING id, kind, attempts, coalesce(last_error, '') AS last_error, payload",
    )
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|row| Ok((Failure::from_row(&row)?, row.try_get("payload")?)))
        .collect()
}

/// How many jobs of each kind are in each state, for `projections status`.
pub async fn counts(pool: &PgPool) -> anyhow::Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(pool)
    .await?)
}

/// Puts failed jobs back in the queue (all, or the one with `id`); returns how many.
pub async fn retry_failed(pool: &PgPool, id: Option<Uuid>) -> anyhow::Result<u64> {
    let result = sqlx::query(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_at = now(), finished_at = NULL, \
                reported_at = NULL \
          WHERE state = 'failed' AND ($1::uuid IS NULL OR id = $1)",
    )
    .bind(id)
    .execute(pool)
    .await?;
    Ok(result.rows_affected())
}

/// The jobs given up, newest first (at most `limit`).
pub async fn failed(pool: &PgPool, limit: i64) -> anyhow::Result<Vec<Failure>> {
    let rows = sqlx::query(
        "SELECT id, kind, attempts, coalesce(last_error, '') AS last_error FROM jobs \
          WHERE state = 'failed' ORDER BY finished_at DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .iter()
        .map(Failure::from_row)
        .collect::<Result<_, _>>()?)
}

/// Jobs of one kind in one state that are not done, for `/metrics`.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Backlog {
    /// The kind.
    pub kind: String,
    /// `queued` or `failed`.
    pub state: String,
    /// How many.
    pub jobs: i64,
    /// For queued jobs, how long the oldest due one has waited (seconds), if one is due.
    pub oldest_due_seconds: Option<f64>,
}

/// The jobs not done, by kind and state (finished ones are counted as they finish, in the
/// process's instruments). Reads only the queued and failed rows, through their indexes.
pub async fn backlog(pool: &PgPool) -> Result<Vec<Backlog>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, state, count(*) AS jobs, \
                extract(epoch FROM now() - min(run_at) FILTER (WHERE run_at <= now()))::float8 \
                  AS oldest_due_seconds \
           FROM jobs WHERE state IN ('queued', 'failed') \
          GROUP BY kind, state ORDER BY kind, state",
    )
    .fetch_all(pool)
    .await
}
