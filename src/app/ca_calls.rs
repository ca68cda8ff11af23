//! The CAs' calls as operators look them up: `ca_calls` keeps, by CA and operation, how many
//! there were, how many failed, when one last worked and when one last failed and why.
//! Every replica's [`Measured`](crate::adapters::ca::measured::Measured) CAs write it as
//! their calls end, without waiting on the database.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::adapters::ca::measured::CallLog;

/// The longest failure message kept.
const MAX_FAILURE: usize = 500;

/// Records each call in `ca_calls`.
#[derive(Debug, Clone)]
pub struct CaCalls {
    pool: PgPool,
}

impl CaCalls {
    /// A log over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

impl CallLog for CaCalls {
    fn record(&self, ca: &'static str, operation: &'static str, failure: Option<String>) {
        let pool = self.pool.clone();
        let failure = failure.map(|message| {
            let mut end = message.len().min(MAX_FAILURE);
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message[..end].to_owned()
        });
        tokio::spawn(async move {
            let recorded = sqlx::query(
                "INSERT INTO ca_calls AS c (ca, operation, calls, failures, last_success_at, \
                                            last_failure_at, last_failure) \
                 VALUES ($1, $2, 1, CASE WHEN $3::text IS NULL THEN 0 ELSE 1 END, \
                         CASE WHEN $3::text IS NULL THEN now() END, \
                         CASE WHEN $3::text IS NOT NULL THEN now() END, $3) \
                 ON CONFLICT (ca, operation) DO UPDATE SET \
                     calls = c.calls + 1, \
                     failures = c.failures + excluded.failures, \
                     last_success_at = coalesce(excluded.last_success_at, c.last_success_at), \
                     last_failure_at = coalesce(excluded.last_failure_at, c.last_failure_at), \
                     last_failure = coalesce(excluded.last_failure, c.last_failure)",
            )
            .bind(ca)
            .bind(operation)
            .bind(failure)
            .execute(&pool)
            .await;
            if let Err(error) = recorded {
                tracing::debug!(%error, ca, operation, "a CA call could not be recorded");
            }
        });
    }
}

/// One CA operation's record.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct CaCallStatus {
    /// `embedded`, `adcs`, `acm`.
    pub ca: String,
    /// `submit`, `retrieve`, `revoke`, ….
    pub operation: String,
    /// Calls so far.
    pub calls: i64,
    /// Of which failed.
    pub failures: i64,
    /// When one last worked.
    pub last_success_at: Option<DateTime<Utc>>,
    /// When one last failed.
    pub last_failure_at: Option<DateTime<Utc>>,
    /// Why it last failed.
    pub last_failure: Option<String>,
}

/// Every CA operation's record, by CA and operation.
pub async fn ca_calls(pool: &PgPool) -> Result<Vec<CaCallStatus>, sqlx::Error> {
    sqlx::query_as(
        "SELECT ca, operation, calls, failures, last_success_at, last_failure_at, last_failure \
           FROM ca_calls ORDER BY ca, operation",
    )
    .fetch_all(pool)
    .await
}
