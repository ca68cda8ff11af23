//! Retention of the audit trail: monthly partitions created ahead of time, and an archive job
//! that exports old rows to the artifact store as JSON Lines before deleting them.
//!
//! The archive never deletes what it did not export: it writes a file, reads it back and
//! compares, and then deletes exactly the exported rows, and only those whose content is
//! still what was exported. Chain entries go with their rows; the file keeps both, so the
//! archived part of the chain stays verifiable.

use std::fmt::Write as _;

use anyhow::Context;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, Utc};
use sqlx::{Connection, PgPool, Row};
use uuid::Uuid;

use crate::adapters::artifacts::ArtifactStore;

/// Creates the monthly partitions of `audit_logs` from this month to `months_ahead` months
/// ahead, if missing. Returns the partitions it created. Safe to run on every replica.
pub async fn ensure_partitions(pool: &PgPool, months_ahead: u32) -> anyhow::Result<Vec<String>> {
    let mut created = Vec::new();
    let this_month = first_of_month(Utc::now().date_naive());
    for offset in 0..=months_ahead {
        let Some(from) = this_month.checked_add_months(Months::new(offset)) else {
            continue;
        };
        let Some(to) = from.checked_add_months(Months::new(1)) else {
            continue;
        };
        let name = format!("audit_logs_{}", from.format("%Y_%m"));
        let mut tx = pool.begin().await?;
        // One creator at a time across replicas.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cert-assistant audit partitions'))")
            .execute(&mut *tx)
            .await?;
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *tx)
            .await?;
        if exists {
            continue;
        }
        let sql = format!(
            "CREATE TABLE {name} PARTITION OF audit_logs FOR VALUES FROM ('{from}') TO ('{to}')"
        );
        match sqlx::query(&sql).execute(&mut *tx).await {
            Ok(_) => {
                tx.commit().await?;
                created.push(name);
            }
            Err(error) => {
                // Rows of that month already sit in the default partition (clock skew, an
                // import): they stay there and are archived from there in time.
                tracing::warn!(partition = %name, %error, "could not create an audit partition");
            }
        }
    }
    Ok(created)
}

fn first_of_month(day: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(day.year(), day.month(), 1).unwrap_or(day)
}

/// `audit.retention.days` from the configuration (default 365).
pub async fn retention_days(pool: &PgPool) -> anyhow::Result<i64> {
    let value = crate::db::setting(pool, "audit.retention.days").await?;
    Ok(value
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|days| *days > 0)
        .unwrap_or(365))
}

/// What an archive run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveReport {
    /// Rows exported and deleted.
    pub rows_archived: usize,
    /// Files written.
    pub files: Vec<String>,
    /// Rows exported but not deleted because they changed in between (left in place).
    pub rows_changed: usize,
    /// Empty monthly partitions dropped.
    pub partitions_dropped: Vec<String>,
    /// Another replica was archiving; this run did nothing.
    pub busy: bool,
}

/// Archives audit rows older than `cutoff`, `batch` rows per file.
pub async fn archive(
    pool: &PgPool,
    store: &dyn ArtifactStore,
    cutoff: DateTime<Utc>,
    batch: i64,
) -> anyhow::Result<ArchiveReport> {
    let mut report = ArchiveReport::default();
    // A session lock on a connection of its own: one archiver at a time, and no transaction
    // stays open while files are written.
    let mut lock = pool.acquire().await?.detach();
    let locked: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('cert-assistant audit archive'))")
            .fetch_one(&mut lock)
            .await?;
    if !locked {
        report.busy = true;
        return Ok(report);
    }
    let result = archive_locked(pool, store, cutoff, batch, &mut report).await;
    let _ = lock.close().await;
    result.map(|()| report)
}

async fn archive_locked(
    pool: &PgPool,
    store: &dyn ArtifactStore,
    cutoff: DateTime<Utc>,
    batch: i64,
    report: &mut ArchiveReport,
) -> anyhow::Result<()> {
    loop {
        let rows = sqlx::query(
            "SELECT a.id, a.\"timestamp\", to_jsonb(a)::text AS row_json, \
                    md5(audit_log_content(a)) AS digest, c.position, c.prev_hash, c.hash \
               FROM audit_logs a \
               LEFT JOIN audit_log_chain c ON c.audit_id = a.id AND c.audit_timestamp = a.\"timestamp\" \
              WHERE a.\"timestamp\" < $1 \
              ORDER BY a.\"timestamp\", c.position NULLS LAST \
              LIMIT $2",
        )
        .bind(cutoff)
        .bind(batch.max(1))
        .fetch_all(pool)
        .await
        .context("reading audit rows to archive")?;
        if rows.is_empty() {
            break;
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut timestamps = Vec::with_capacity(rows.len());
        let mut digests = Vec::with_capacity(rows.len());
        let mut file = String::new();
        for row in &rows {
            let id: Uuid = row.try_get("id")?;
            let timestamp: DateTime<Utc> = row.try_get("timestamp")?;
            let row_json: String = row.try_get("row_json")?;
            let position: Option<i64> = row.try_get("position")?;
            let prev_hash: Option<Vec<u8>> = row.try_get("prev_hash")?;
            let hash: Option<Vec<u8>> = row.try_get("hash")?;
            let audit: serde_json::Value = serde_json::from_str(&row_json)?;
            let line = serde_json::json!({
                "audit": audit,
                "chain": {
                    "position": position,
                    "prev_hash": prev_hash.as_deref().map(hex),
                    "hash": hash.as_deref().map(hex),
                },
            });
            writeln!(file, "{line}")?;
            ids.push(id);
            timestamps.push(timestamp);
            digests.push(row.try_get::<String, _>("digest")?);
        }
        let (first, last) = (timestamps[0], timestamps[timestamps.len() - 1]);
        let key = format!(
            "audit-logs/{}/audit-logs-{}-{}-{}.jsonl",
            first.format("%Y/%m"),
            first.format("%Y%m%dT%H%M%SZ"),
            last.format("%Y%m%dT%H%M%SZ"),
            Uuid::new_v4().simple()
        );
        let bytes = file.into_bytes();
        store
            .put(&key, bytes.clone())
            .await
            .with_context(|| format!("exporting audit rows to {}", store.location()))?;
        let stored = store
            .get(&key)
            .await
            .with_context(|| format!("reading back {key}"))?;
        anyhow::ensure!(
            stored == bytes,
            "the archive {key} does not read back as written; nothing was deleted"
        );
        let mut tx = pool.begin().await?;
        let deleted: i64 = sqlx::query_scalar(
            "WITH gone AS ( \
                 DELETE FROM audit_logs a \
                  USING unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS x(id, ts, digest) \
                  WHERE a.id = x.id AND a.\"timestamp\" = x.ts \
                    AND md5(audit_log_content(a)) = x.digest \
                 RETURNING a.id, a.\"timestamp\"), \
             unchained AS ( \
                 DELETE FROM audit_log_chain c USING gone \
                  WHERE c.audit_id = gone.id AND c.audit_timestamp = gone.\"timestamp\") \
             SELECT count(*) FROM gone",
        )
        .bind(&ids)
        .bind(&timestamps)
        .bind(&digests)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let deleted = usize::try_from(deleted).unwrap_or(0);
        report.rows_archived += deleted;
        report.files.push(format!("{}/{key}", store.location()));
        tracing::info!(file = %key, rows = deleted, "audit rows archived");
        if deleted < rows.len() {
            // Rows changed between export and delete: leave them (they are in the file as
            // they were) and stop, rather than loop over them again.
            report.rows_changed += rows.len() - deleted;
            tracing::warn!(
                rows = rows.len() - deleted,
                "audit rows changed while being archived; they were kept"
            );
            break;
        }
    }
    report.partitions_dropped = drop_empty_partitions(pool, cutoff).await?;
    Ok(())
}

/// Drops monthly partitions that end before `cutoff`'s month and hold no rows.
async fn drop_empty_partitions(
    pool: &PgPool,
    cutoff: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let cutoff_month = first_of_month(cutoff.date_naive());
    let partitions: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i \
           JOIN pg_class c ON c.oid = i.inhrelid \
          WHERE i.inhparent = 'audit_logs'::regclass AND c.relname ~ '^audit_logs_[0-9]{4}_[0-9]{2}$' \
          ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let mut dropped = Vec::new();
    for name in partitions {
        let Some(month) = NaiveDate::parse_from_str(
            &format!("{}_01", name.trim_start_matches("audit_logs_")),
            "%Y_%m_%d",
        )
        .ok() else {
            continue;
        };
        let Some(end) = month.checked_add_months(Months::new(1)) else {
            continue;
        };
        if end > cutoff_month {
            continue;
        }
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let empty: bool = sqlx::query_scalar(&format!("SELECT NOT EXISTS (SELECT 1 FROM {name})"))
            .fetch_one(&mut *tx)
            .await?;
        if empty {
            sqlx::query(&format!("DROP TABLE {name}"))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            dropped.push(name);
        }
    }
    Ok(dropped)
}

/// The cutoff for `days` of retention.
pub fn cutoff_for(days: i64) -> DateTime<Utc> {
    Utc::now() - Duration::days(days)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
