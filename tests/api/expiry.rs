//! The expiry job with a moved clock: one reminder per threshold, one after a gap, expiry.

use std::sync::Arc;

use cert_assistant::adapters::clock::SettableClock;
use cert_assistant::feed::Projector;
use cert_assistant::saga::expiry::{DUE_CERTIFICATES, ExpiryPass, ExpiryWorker, LOCK_KEY};
use chrono::{Duration, Utc};

use crate::helpers::TestDb;
use crate::saga::{approved, feed, saga};

async fn project(db: &TestDb) {
    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the read model catches up");
}

async fn pass(db: &TestDb, job: &ExpiryWorker) -> (usize, usize) {
    let ExpiryPass {
        reminded, expired, ..
    } = job.step().await.expect("pass").expect("the lease");
    project(db).await;
    (reminded, expired)
}

#[tokio::test]
async fn owners_are_reminded_once_per_threshold_and_certificates_expire() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    approved(&s, "expiring.example.com").await;
    feed(&db).await;
    s.worker.step().await.expect("issued");
    project(&db).await;

    let clock = Arc::new(SettableClock::at(Utc::now()));
    let job = ExpiryWorker::new(s.commands.clone(), clock.clone());
    // A 90-day certificate: the 90-day threshold does not apply at issuance.
    assert_eq!(pass(&db, &job).await, (0, 0));

    clock.advance(Duration::days(31)); // 58 days left
    assert_eq!(pass(&db, &job).await, (1, 0), "60 days");
    assert_eq!(pass(&db, &job).await, (0, 0), "once");

    clock.advance(Duration::days(31)); // 27 days left
    assert_eq!(pass(&db, &job).await, (1, 0), "30 days");

    clock.advance(Duration::days(24)); // 3 days left: 14 was missed, only 7 is sent
    assert_eq!(pass(&db, &job).await, (1, 0), "7 days, after a gap");
    assert_eq!(pass(&db, &job).await, (0, 0));

    let sent: Vec<i32> = sqlx::query_scalar(
        "SELECT (n ->> 'days_before')::int FROM certificates, \
                jsonb_array_elements(expiry_notifications) n ORDER BY 1 DESC",
    )
    .fetch_all(&db.pool)
    .await
    .expect("reminders");
    assert_eq!(sent, [60, 30, 7]);
    let mails: Vec<String> = sqlx::query_scalar(
        "SELECT subject FROM notifications WHERE notification_type = 'certificate_expiring' \
          ORDER BY created_at",
    )
    .fetch_all(&db.pool)
    .await
    .expect("notifications");
    assert_eq!(mails.len(), 3, "{mails:?}");
    assert!(mails[2].ends_with("expires in 3 days"), "{mails:?}");

    clock.advance(Duration::days(4));
    assert_eq!(pass(&db, &job).await, (0, 1), "expired");
    assert_eq!(pass(&db, &job).await, (0, 0));
    let status: String = sqlx::query_scalar("SELECT status FROM certificates")
        .fetch_one(&db.pool)
        .await
        .expect("status");
    assert_eq!(status, "expired");
}

#[tokio::test]
async fn one_replica_runs_a_pass_at_a_time() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let job = ExpiryWorker::new(s.commands.clone(), Arc::new(SettableClock::at(Utc::now())));
    let mut other = db.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *other)
        .await
        .expect("lock");
    assert_eq!(
        job.step().await.expect("step"),
        None,
        "the other replica has it"
    );
    other.rollback().await.expect("release");
    assert!(job.step().await.expect("step").is_some());
}

#[tokio::test]
async fn the_due_query_can_use_the_partial_index() {
    let db = TestDb::new().await;
    let mut conn = db.pool.acquire().await.expect("conn");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("set");
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        DUE_CERTIFICATES.replace("$1", "now() + interval '90 days'")
    ))
    .fetch_all(&mut *conn)
    .await
    .expect("explain");
    let plan = plan.join("\n");
    assert!(plan.contains("idx_certificates_active_expiring"), "{plan}");
}

#[tokio::test]
async fn certificates_are_found_by_request_and_serial_through_their_indexes() {
    use cert_assistant::eventstore::{CERTIFICATE_BY_SERIAL, CERTIFICATE_OF_REQUEST};
    let db = TestDb::new().await;
    // Enough issued certificates that reading them all would be the planner's last choice.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
             payload, metadata) \
         SELECT 'Certificate', gen_random_uuid()::text, 1, 'CertificateIssued', '1.0', \
                json_build_object('CertificateIssued', json_build_object('certificate', \
                    json_build_object('request_id', 'request-' || g, 'serial_number', 'serial-' || g))), \
                '{}'::json \
           FROM generate_series(1, 5000) g",
    )
    .execute(&db.pool)
    .await
    .expect("insert");
    sqlx::query("ANALYZE events")
        .execute(&db.pool)
        .await
        .expect("analyze");
    for (query, key, index) in [
        (
            CERTIFICATE_OF_REQUEST,
            "request-4242",
            "idx_events_issued_request",
        ),
        (
            CERTIFICATE_BY_SERIAL,
            "serial-4242",
            "idx_events_issued_serial",
        ),
    ] {
        let plan: Vec<String> = sqlx::query_scalar(&format!("EXPLAIN {query}"))
            .bind(key)
            .fetch_all(&db.pool)
            .await
            .expect("explain");
        let plan = plan.join("\n");
        assert!(plan.contains(index), "{plan}");
        let found: Option<String> = sqlx::query_scalar(query)
            .bind(key)
            .fetch_optional(&db.pool)
            .await
            .expect("lookup");
        assert!(found.is_some(), "{key} is found");
    }
}
