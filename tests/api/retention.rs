//! Retention of the audit trail: partitions ahead, archives that lose nothing.

use cert_assistant::adapters::artifacts::{ArtifactStore, LocalArtifactStore};
use cert_assistant::domain::refusal::{RefusalEvent, RefusedAttempt};
use cert_assistant::feed::Projector;
use cert_assistant::ports::BoxFuture;
use cert_assistant::projections::audit::{self, ChainReport};
use cert_assistant::projections::retention;
use chrono::{Datelike, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::TestDb;

/// Appends a refused attempt that says it happened `days_ago`.
async fn refusal(pool: &PgPool, days_ago: i64, label: &str) {
    let payload = serde_json::to_string(&RefusalEvent::AttemptRefused(RefusedAttempt {
        actor: None,
        action: "approve".to_owned(),
        resource_type: "request".to_owned(),
        resource_id: None,
        resource_identifier: Some(label.to_owned()),
        reason: "test".to_owned(),
        at: Utc::now() - Duration::days(days_ago),
    }))
    .expect("json");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Refusal', $1, 1, 'AttemptRefused', '1.0', $2::json, '{}')",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(payload)
    .execute(pool)
    .await
    .expect("append");
}

async fn labels(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT resource_identifier FROM audit_logs ORDER BY resource_identifier")
        .fetch_all(pool)
        .await
        .expect("labels")
}

async fn project(pool: &PgPool) {
    Projector::new(pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
}

#[tokio::test]
async fn partitions_are_kept_months_ahead_and_creating_them_is_idempotent() {
    let db = TestDb::new().await;
    retention::ensure_partitions(&db.pool, 5)
        .await
        .expect("ensure");
    let again = retention::ensure_partitions(&db.pool, 5)
        .await
        .expect("ensure");
    assert!(again.is_empty(), "{again:?}");
    let today = Utc::now().date_naive();
    for offset in 0..=5 {
        let month = today
            .with_day(1)
            .and_then(|d| d.checked_add_months(chrono::Months::new(offset)))
            .expect("month");
        let name = format!("audit_logs_{}", month.format("%Y_%m"));
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&db.pool)
            .await
            .expect("lookup");
        assert!(exists, "{name} is missing");
    }
    // A row of this month lands in this month's partition, not the default one.
    refusal(&db.pool, 0, "now").await;
    project(&db.pool).await;
    let partition: String = sqlx::query_scalar("SELECT tableoid::regclass::text FROM audit_logs")
        .fetch_one(&db.pool)
        .await
        .expect("partition");
    assert_eq!(partition, format!("audit_logs_{}", today.format("%Y_%m")));
}

#[tokio::test]
async fn old_rows_are_exported_as_json_lines_then_deleted_and_the_rest_stays_verifiable() {
    let db = TestDb::new().await;
    for i in 0..3 {
        refusal(&db.pool, 400 + i, &format!("old-{i}")).await;
    }
    refusal(&db.pool, 10, "recent").await;
    project(&db.pool).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalArtifactStore::new(dir.path());

    let report = retention::archive(&db.pool, &store, retention::cutoff_for(365), 2)
        .await
        .expect("archive");
    assert_eq!(report.rows_archived, 3);
    assert_eq!(report.files.len(), 2, "two rows per file");
    assert_eq!(report.rows_changed, 0);
    assert_eq!(labels(&db.pool).await, ["recent"]);

    let mut exported = Vec::new();
    for file in &report.files {
        let key = file
            .split_once(&format!("{}/", store.location()))
            .map(|(_, key)| key)
            .expect("a key in the store");
        let text = String::from_utf8(store.get(key).await.expect("read")).expect("utf-8");
        for line in text.lines() {
            let entry: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(entry["chain"]["hash"].is_string(), "{entry}");
            exported.push(
                entry["audit"]["resource_identifier"]
                    .as_str()
                    .map(str::to_owned),
            );
        }
    }
    exported.sort();
    assert_eq!(
        exported,
        [
            Some("old-0".to_owned()),
            Some("old-1".to_owned()),
            Some("old-2".to_owned())
        ]
    );
    assert!(matches!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { rows: 1 }
    ));
    // Nothing left to do.
    let again = retention::archive(&db.pool, &store, retention::cutoff_for(365), 2)
        .await
        .expect("archive");
    assert_eq!(again.rows_archived, 0);
}

/// A store that loses writes: it accepts them and then reads back something else.
#[derive(Debug)]
struct LossyStore;

impl ArtifactStore for LossyStore {
    fn put<'a>(&'a self, _key: &'a str, _bytes: Vec<u8>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn get<'a>(&'a self, _key: &'a str) -> BoxFuture<'a, anyhow::Result<Vec<u8>>> {
        Box::pin(async { Ok(b"truncated".to_vec()) })
    }
    fn location(&self) -> String {
        "lossy:".to_owned()
    }
    fn bucket(&self) -> String {
        "lossy".to_owned()
    }
}

#[tokio::test]
async fn nothing_is_deleted_unless_its_export_reads_back_intact() {
    let db = TestDb::new().await;
    refusal(&db.pool, 500, "old").await;
    project(&db.pool).await;

    let error = retention::archive(&db.pool, &LossyStore, retention::cutoff_for(365), 100)
        .await
        .expect_err("a lossy store fails the archive");
    assert!(
        error.to_string().contains("nothing was deleted"),
        "{error:#}"
    );
    assert_eq!(labels(&db.pool).await, ["old"]);

    // An unwritable directory fails before anything is deleted, too.
    let file = tempfile::NamedTempFile::new().expect("a file where a directory should be");
    let blocked = LocalArtifactStore::new(file.path().join("archive"));
    assert!(
        retention::archive(&db.pool, &blocked, retention::cutoff_for(365), 100)
            .await
            .is_err()
    );
    assert_eq!(labels(&db.pool).await, ["old"]);
}
