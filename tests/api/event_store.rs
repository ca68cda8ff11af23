//! The event store postgres-es writes to, and the guarantees the projector relies on.

use sqlx::postgres::PgListener;
use sqlx::{PgPool, Row};

use crate::helpers::TestDb;

async fn append(pool: &PgPool, aggregate_id: &str, sequence: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('CertificateRequest', $1, $2, 'RequestSubmitted', '1.0', '{}', '{}')",
    )
    .bind(aggregate_id)
    .bind(sequence)
    .execute(pool)
    .await
    .expect("append");
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|c| c.into_owned())
}

#[tokio::test]
async fn events_can_be_appended_but_never_updated_deleted_or_truncated() {
    let db = TestDb::new().await;
    append(&db.pool, "a-1", 1).await;
    for statement in [
        "UPDATE events SET payload = '{\"forged\": true}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let error = sqlx::query(statement)
            .execute(&db.pool)
            .await
            .expect_err(statement);
        assert_eq!(sqlstate(&error).as_deref(), Some("42501"), "{statement}");
        assert!(error.to_string().contains("append-only"), "{error}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_sequence_number_is_taken_once_per_aggregate() {
    let db = TestDb::new().await;
    append(&db.pool, "a-1", 1).await;
    let error = sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('CertificateRequest', 'a-1', 1, 'RequestSubmitted', '1.0', '{}', '{}')",
    )
    .execute(&db.pool)
    .await
    .expect_err("a duplicate sequence is an optimistic-lock conflict");
    assert_eq!(sqlstate(&error).as_deref(), Some("23505"));
}

#[tokio::test]
async fn appended_events_get_a_global_position_transaction_id_and_time() {
    let db = TestDb::new().await;
    append(&db.pool, "a-1", 1).await;
    append(&db.pool, "a-2", 1).await;
    let rows = sqlx::query(
        "SELECT global_seq, tx_id::text AS tx, recorded_at > now() - interval '1 minute' AS recent \
           FROM events ORDER BY global_seq",
    )
    .fetch_all(&db.pool)
    .await
    .expect("events");
    let first: i64 = rows[0].get("global_seq");
    let second: i64 = rows[1].get("global_seq");
    assert!(second > first);
    let tx1: String = rows[0].get("tx");
    let tx2: String = rows[1].get("tx");
    assert_ne!(tx1, tx2, "separate transactions have separate ids");
    assert!(rows.iter().all(|r| r.get::<bool, _>("recent")));
    let error = sqlx::query("UPDATE events SET global_seq = 0")
        .execute(&db.pool)
        .await
        .expect_err("identity is generated always");
    assert!(sqlstate(&error).is_some());
}

#[tokio::test]
async fn appending_notifies_listeners() {
    let db = TestDb::new().await;
    let mut listener = PgListener::connect_with(&db.pool).await.expect("listener");
    listener.listen("events").await.expect("listen");
    append(&db.pool, "a-1", 1).await;
    let notification = tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv())
        .await
        .expect("a notification within 5 s")
        .expect("a notification");
    assert_eq!(notification.channel(), "events");
}

#[tokio::test]
async fn log_certificate_download_counts_and_audits_a_download() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let user: uuid::Uuid =
        sqlx::query_scalar("INSERT INTO users (email) VALUES ('d@example.com') RETURNING id")
            .fetch_one(pool)
            .await
            .expect("user");
    let request: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO certificate_requests (request_number, user_id, common_name, certificate_type, \
             key_algorithm, validity_period_days, csr_type, csr_content, business_justification) \
         VALUES ('REQ-20261127-00001', $1, 'd.example.com', 'web_server', 'RSA_2048', 90, \
             'generated', 'csr', 'why') RETURNING id",
    )
    .bind(user)
    .fetch_one(pool)
    .await
    .expect("request");
    let certificate: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO certificates (request_id, user_id, serial_number, common_name, subject_dn, \
             issuer_dn, valid_from, valid_to, key_algorithm, key_size, s3_bucket, s3_key_certificate) \
         VALUES ($1, $2, '0A1B', 'd.example.com', 'CN=d.example.com', 'CN=CA', now(), \
             now() + interval '90 days', 'RSA_2048', 2048, 'b', 'k') RETURNING id",
    )
    .bind(request)
    .bind(user)
    .fetch_one(pool)
    .await
    .expect("certificate");
    // The schema documents the function, not when it fires; attach it as a download would.
    sqlx::query(
        "CREATE TRIGGER test_download BEFORE UPDATE OF last_downloaded_at ON certificates \
         FOR EACH ROW EXECUTE FUNCTION log_certificate_download()",
    )
    .execute(pool)
    .await
    .expect("trigger");
    for _ in 0..2 {
        sqlx::query("UPDATE certificates SET last_downloaded_at = NULL WHERE id = $1")
            .bind(certificate)
            .execute(pool)
            .await
            .expect("download");
    }
    let row = sqlx::query(
        "SELECT download_count, first_downloaded_at IS NOT NULL AS first, \
                last_downloaded_at >= first_downloaded_at AS ordered FROM certificates WHERE id = $1",
    )
    .bind(certificate)
    .fetch_one(pool)
    .await
    .expect("certificate");
    assert_eq!(row.get::<Option<i32>, _>("download_count"), Some(2));
    assert!(row.get::<bool, _>("first"));
    assert!(row.get::<bool, _>("ordered"));
    let audits: Vec<(String, String, String, String, String)> = sqlx::query_as(
        "SELECT event_type, event_category, resource_identifier, action, result FROM audit_logs \
          WHERE resource_id = $1 AND user_id = $2",
    )
    .bind(certificate)
    .bind(user)
    .fetch_all(pool)
    .await
    .expect("audit");
    assert_eq!(audits.len(), 2);
    assert_eq!(
        audits[0],
        (
            "certificate_downloaded".to_owned(),
            "certificate".to_owned(),
            "0A1B".to_owned(),
            "download".to_owned(),
            "success".to_owned()
        )
    );
}

#[tokio::test]
async fn new_streams_are_written_together_or_not_at_all_in_the_store_s_own_format() {
    use cert_assistant::domain::actor::{Actor, Role};
    use cert_assistant::domain::config::{Config, ConfigEvent, Setting, ValueType};
    use cert_assistant::domain::values::Email;
    use cert_assistant::eventstore::{AppendError, NewStream, append_new};
    use cqrs_es::persist::PersistedEventStore;
    use cqrs_es::{AggregateContext as _, EventStore as _};

    let db = TestDb::new().await;
    let set = |value: &str| ConfigEvent::ConfigValueSet {
        setting: Setting::parse("approval.escalation.hours", value, ValueType::Integer)
            .expect("setting"),
        previous_value: None,
        by: Actor::new(
            Email::parse("root@example.com").expect("email"),
            Role::Admin,
        ),
        at: chrono::Utc::now(),
    };
    let (x, y) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let metadata = std::collections::HashMap::from([("platform".to_owned(), "cli".to_owned())]);
    let written = [set("24"), set("12")];
    let first = NewStream::new::<Config>(x, &written).expect("stream");
    append_new(&db.pool, std::slice::from_ref(&first), &metadata)
        .await
        .expect("appended");

    // What cqrs-es loads is what was written, in order, with the metadata.
    let store = PersistedEventStore::<_, Config>::new_event_store(
        postgres_es::PostgresEventRepository::new(db.pool.clone()),
    );
    let events = store.load_events(&x.to_string()).await.expect("load");
    assert_eq!(
        events.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        events.iter().map(|e| e.payload.clone()).collect::<Vec<_>>(),
        written.to_vec()
    );
    assert!(events.iter().all(|e| e.metadata == metadata));
    let types: Vec<(String, String)> = sqlx::query_as(
        "SELECT event_type, event_version FROM events WHERE aggregate_id = $1 ORDER BY global_seq",
    )
    .bind(x.to_string())
    .fetch_all(&db.pool)
    .await
    .expect("types");
    assert_eq!(types, vec![("ConfigValueSet".into(), "1.0".into()); 2]);
    let mut context = store
        .load_aggregate(&x.to_string())
        .await
        .expect("aggregate");
    let mut expected = Config::default();
    for event in written {
        cqrs_es::Aggregate::apply(&mut expected, event);
    }
    assert_eq!(context.aggregate(), &expected);

    // A second stream written with one that exists: refused, and neither is touched.
    let second = NewStream::new::<Config>(y, &[set("6")]).expect("stream");
    let refused = append_new(&db.pool, &[second, first], &metadata).await;
    assert!(
        matches!(refused, Err(AppendError::Exists(_))),
        "{refused:?}"
    );
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*) FROM events GROUP BY aggregate_id ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("counts");
    assert_eq!(counts, vec![(x.to_string(), 2)]);
}
