//! The read model built from events: tables and views, durability, concurrency, replay, the
//! audit trail, the auditor role and the named queries.

use std::collections::BTreeMap;

use cert_assistant::commands::{Commands, RequestForm, RevocationForm};
use cert_assistant::domain::notification::{Channel, Message, NotificationType};
use cert_assistant::domain::refusal::{RefusalEvent, RefusedAttempt};
use cert_assistant::feed::Projector;
use cert_assistant::projections::audit::{self, ChainReport};
use cert_assistant::projections::catalog;
use cert_assistant::projections::replay;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::fixtures::{approver, ctx, issued_certificate, service, web_request};
use crate::helpers::TestDb;

async fn catch_up(pool: &PgPool) -> usize {
    Projector::new(pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the projector catches up")
}

/// Moves the read model's checkpoint back to the start: every event comes again.
async fn rewind(pool: &PgPool) {
    sqlx::query(
        "UPDATE projector_checkpoints SET last_tx_id = '0'::xid8, last_global_seq = 0 \
          WHERE name = 'read_model'",
    )
    .execute(pool)
    .await
    .expect("rewind");
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect(sql)
}

/// Builds a varied history: an approved+issued+downloaded+revoked request, a pending one, a
/// rejected one, a cancelled one, a refused self-approval, and a role change.
async fn history(db: &TestDb) -> (Commands, Uuid) {
    let commands = service(db);
    let jane = approver(&commands, "jane@example.com").await;
    catch_up(&db.pool).await;

    let issued = commands
        .submit_request(&ctx("john@example.com"), web_request("app.example.com"))
        .await
        .expect("submitted");
    commands
        .approve(&ctx("john@example.com"), &issued.request_number, None)
        .await
        .expect_err("self-approval is refused");
    commands
        .approve(&jane, &issued.request_number, Some("fine"))
        .await
        .expect("approved");
    commands
        .start_issuance(issued.request_id)
        .await
        .expect("start");
    let john = commands
        .actor(&ctx("john@example.com"))
        .await
        .expect("john");
    let certificate = issued_certificate(&issued, john, "0AB1", 20, true);
    let certificate_id = certificate.certificate_id;
    commands.record_issuance(certificate).await.expect("issued");

    let pending = commands
        .submit_request(&ctx("mary@example.com"), web_request("pending.example.com"))
        .await
        .expect("submitted");
    let rejected = commands
        .submit_request(&ctx("mary@example.com"), web_request("no.example.com"))
        .await
        .expect("submitted");
    commands
        .reject(&jane, &rejected.request_number, "not ours")
        .await
        .expect("rejected");
    let cancelled = commands
        .submit_request(&ctx("mary@example.com"), web_request("gone.example.com"))
        .await
        .expect("submitted");
    commands
        .cancel_request(
            &ctx("mary@example.com"),
            &cancelled.request_number,
            Some("typo"),
        )
        .await
        .expect("cancelled");
    commands
        .set_config(
            &ctx("root@example.com"),
            "approval.escalation.hours",
            "24",
            None,
        )
        .await
        .expect("an admin changes a setting");
    let jane_actor = commands.actor(&jane).await.expect("jane");
    let notification = commands
        .queue_notification(Message {
            recipient: jane_actor,
            notification_type: NotificationType::ApprovalRequested,
            subject: format!("{} needs your approval", pending.request_number),
            body: "pending.example.com, web_server".to_owned(),
            channel: Channel::Email,
            resource_type: Some("request".to_owned()),
            resource_id: Some(pending.request_id),
        })
        .await
        .expect("queued");
    commands
        .record_delivery(notification, Err("SMTP timeout".to_owned()))
        .await
        .expect("failed once");
    commands
        .record_delivery(notification, Ok(Some("ses-123".to_owned())))
        .await
        .expect("sent");
    (commands, certificate_id)
}

#[tokio::test]
async fn the_documented_tables_are_built_from_the_events_with_the_events_times() {
    let db = TestDb::new().await;
    let (commands, certificate_id) = history(&db).await;
    commands
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: "0AB1".to_owned(),
                reason: "key_compromise".to_owned(),
                text: Some("laptop stolen".to_owned()),
            },
        )
        .await
        .expect("revoked");
    let applied = catch_up(&db.pool).await;
    let events = count(&db.pool, "SELECT count(*) FROM events").await;
    assert!(applied > 0);

    // Requests: status and every workflow timestamp copied from the events.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT common_name, status FROM certificate_requests ORDER BY common_name")
            .fetch_all(&db.pool)
            .await
            .expect("requests");
    assert_eq!(
        rows,
        [
            ("app.example.com".to_owned(), "revoked".to_owned()),
            ("gone.example.com".to_owned(), "cancelled".to_owned()),
            ("no.example.com".to_owned(), "rejected".to_owned()),
            (
                "pending.example.com".to_owned(),
                "pending_approval".to_owned()
            ),
        ]
    );
    let row = sqlx::query(
        "SELECT cr.submitted_at, cr.approved_at, cr.issued_at, cr.approver_id, u.email AS approver, \
                cr.subject_alternative_names, cr.csr_type, cr.updated_at \
           FROM certificate_requests cr JOIN users u ON u.id = cr.approver_id \
          WHERE common_name = 'app.example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("request");
    let event_time = |event_type: &'static str| {
        let pool = db.pool.clone();
        async move {
            let at: String = sqlx::query_scalar(
                "SELECT payload -> $1 ->> 'at' FROM events WHERE event_type = $1 ORDER BY global_seq LIMIT 1",
            )
            .bind(event_type)
            .fetch_one(&pool)
            .await
            .expect("event time");
            at.parse::<DateTime<Utc>>().expect("a time")
        }
    };
    let close = |a: DateTime<Utc>, b: DateTime<Utc>| {
        (a - b).num_microseconds().unwrap_or(i64::MAX).abs() <= 1
    };
    assert!(close(
        row.get("submitted_at"),
        event_time("RequestSubmitted").await
    ));
    assert!(close(
        row.get("approved_at"),
        event_time("RequestApproved").await
    ));
    assert!(close(
        row.get("issued_at"),
        event_time("RequestIssued").await
    ));
    assert_eq!(row.get::<String, _>("approver"), "jane@example.com");
    assert_eq!(
        row.get::<Vec<String>, _>("subject_alternative_names"),
        ["app.example.com", "www.app.example.com"]
    );

    // Users with their roles; approvals with decisions; the pending one in the view.
    let roles: Vec<(String, String)> =
        sqlx::query_as("SELECT email, role FROM users ORDER BY email")
            .fetch_all(&db.pool)
            .await
            .expect("users");
    assert!(roles.contains(&("jane@example.com".to_owned(), "approver".to_owned())));
    assert!(roles.contains(&("root@example.com".to_owned(), "admin".to_owned())));
    assert!(roles.contains(&("john@example.com".to_owned(), "user".to_owned())));
    let decisions: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT cr.common_name, a.status, a.decision FROM approvals a \
           JOIN certificate_requests cr ON cr.id = a.request_id ORDER BY cr.common_name, a.status",
    )
    .fetch_all(&db.pool)
    .await
    .expect("approvals");
    assert!(decisions.contains(&(
        "app.example.com".to_owned(),
        "approved".to_owned(),
        Some("approve".to_owned())
    )));
    assert!(decisions.contains(&(
        "no.example.com".to_owned(),
        "rejected".to_owned(),
        Some("reject".to_owned())
    )));
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT common_name FROM v_pending_approvals ORDER BY common_name",
    )
    .fetch_all(&db.pool)
    .await
    .expect("view");
    assert_eq!(pending, ["pending.example.com"]);

    // The certificate, its private key (ciphertext only), its revocation.
    let (status, serial): (String, String) =
        sqlx::query_as("SELECT status, serial_number FROM certificates WHERE id = $1")
            .bind(certificate_id)
            .fetch_one(&db.pool)
            .await
            .expect("certificate");
    assert_eq!((status.as_str(), serial.as_str()), ("revoked", "0AB1"));
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM private_keys WHERE encryption_algorithm = 'AES-256-GCM'"
        )
        .await,
        1
    );
    let (reason, text, by): (String, Option<String>, String) = sqlx::query_as(
        "SELECT r.reason_code, r.reason_text, u.email FROM certificate_revocations r \
           JOIN users u ON u.id = r.user_id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("revocation");
    assert_eq!(
        (reason.as_str(), text.as_deref(), by.as_str()),
        ("key_compromise", Some("laptop stolen"), "john@example.com")
    );
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM v_active_certificates").await,
        0,
        "a revoked certificate is not active"
    );

    // One audit row per event, refusals included as failures.
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM audit_logs").await,
        events
    );
    let refusal: (String, String, String, Option<String>) = sqlx::query_as(
        "SELECT event_type, user_email, result, error_message FROM audit_logs \
          WHERE result = 'failure' AND event_category = 'authorization'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the refused self-approval is audited");
    assert_eq!(refusal.0, "approve_refused");
    assert_eq!(refusal.1, "john@example.com");
    assert_eq!(
        refusal.3.as_deref(),
        Some("you cannot decide on your own request")
    );
    let revoked_severity: String = sqlx::query_scalar(
        "SELECT severity FROM audit_logs WHERE event_type = 'certificate_revoked'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audit");
    assert_eq!(revoked_severity, "critical");
}

#[tokio::test]
async fn configuration_and_notifications_are_projected_from_their_events() {
    let db = TestDb::new().await;
    let (commands, _) = history(&db).await;
    let refused = commands
        .set_config(
            &ctx("jane@example.com"),
            "approval.escalation.hours",
            "1",
            None,
        )
        .await
        .expect_err("approvers do not configure");
    assert_eq!(
        refused.to_string(),
        "only admins can change the configuration"
    );
    let invalid = commands
        .set_config(
            &ctx("root@example.com"),
            "expiry.notification.days",
            "[]",
            None,
        )
        .await
        .expect_err("an empty list is refused");
    assert!(invalid.to_string().contains("[90,60,30,14,7]"), "{invalid}");
    catch_up(&db.pool).await;

    let (value, updated_by): (String, Option<String>) = sqlx::query_as(
        "SELECT c.config_value, u.email FROM system_config c LEFT JOIN users u ON u.id = c.updated_by \
          WHERE c.config_key = 'approval.escalation.hours'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("setting");
    assert_eq!(
        (value.as_str(), updated_by.as_deref()),
        ("24", Some("root@example.com"))
    );
    let change: serde_json::Value = sqlx::query_scalar(
        "SELECT metadata -> 'details' FROM audit_logs WHERE event_type = 'config_changed'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audited");
    assert_eq!(change["value"], "24");
    assert_eq!(change["previous_value"], serde_json::Value::Null);
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM audit_logs WHERE event_type = 'configure_refused'"
        )
        .await,
        1
    );

    let (status, retries, error, external): (String, Option<i32>, Option<String>, Option<String>) =
        sqlx::query_as(
            "SELECT status, retry_count, error_message, external_message_id FROM notifications",
        )
        .fetch_one(&db.pool)
        .await
        .expect("notification");
    assert_eq!(status, "sent");
    assert_eq!(retries, Some(1));
    assert_eq!(error.as_deref(), Some("SMTP timeout"));
    assert_eq!(external.as_deref(), Some("ses-123"));
}

#[tokio::test]
async fn events_appended_while_the_projector_is_down_are_applied_when_it_returns() {
    let db = TestDb::new().await;
    let commands = service(&db);
    catch_up(&db.pool).await;
    // "Down": nothing projects while these commit.
    for i in 0..5 {
        commands
            .submit_request(
                &ctx("john@example.com"),
                web_request(&format!("h{i}.example.com")),
            )
            .await
            .expect("submitted");
    }
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM certificate_requests").await,
        0
    );
    catch_up(&db.pool).await;
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM certificate_requests").await,
        5
    );
    // Nothing to do the second time: the checkpoint moved with the rows.
    assert_eq!(catch_up(&db.pool).await, 0);
}

fn refusal_payload(i: usize) -> String {
    serde_json::to_string(&RefusalEvent::AttemptRefused(RefusedAttempt {
        actor: None,
        action: "approve".to_owned(),
        resource_type: "request".to_owned(),
        resource_id: None,
        resource_identifier: Some(format!("probe-{i}")),
        reason: "test".to_owned(),
        at: Utc::now(),
    }))
    .expect("json")
}

async fn append_refusal(conn: &mut sqlx::PgConnection, i: usize) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Refusal', $1, 1, 'AttemptRefused', '1.0', $2::json, '{}')",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(refusal_payload(i))
    .execute(conn)
    .await
    .expect("append");
}

#[tokio::test]
async fn two_projectors_never_apply_an_event_twice_or_skip_one_even_when_a_writer_commits_late() {
    let db = TestDb::new().await;
    // A writer that takes its transaction id now but commits only after others have
    // committed and been projected: the gap case.
    let mut late = db.pool.begin().await.expect("late writer");
    append_refusal(&mut late, 9999).await;

    let writers: Vec<_> = (0..4)
        .map(|w| {
            let pool = db.pool.clone();
            tokio::spawn(async move {
                for i in 0..50 {
                    let mut conn = pool.acquire().await.expect("conn");
                    append_refusal(&mut conn, w * 1000 + i).await;
                }
            })
        })
        .collect();
    let projectors: Vec<_> = (0..2)
        .map(|_| {
            let projector = Projector::new(db.pool.clone()).with_batch_size(7);
            tokio::spawn(async move {
                let mut applied = 0;
                for _ in 0..400 {
                    applied += projector.run_until_idle().await.expect("step");
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
                applied
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    // While the late transaction is open, nothing after it may be applied out of order; once
    // it commits, it must still be applied.
    late.commit().await.expect("late commit");
    let mut applied = 0;
    for projector in projectors {
        applied += projector.await.expect("projector");
    }
    applied += catch_up(&db.pool).await;
    assert_eq!(applied, 201, "every event applied exactly once");
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM audit_logs").await,
        201
    );
    assert_eq!(
        count(
            &db.pool,
            "SELECT count(*) FROM audit_logs WHERE resource_identifier = 'probe-9999'"
        )
        .await,
        1,
        "the late writer's event was not skipped"
    );
    assert!(matches!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { rows: 201 }
    ));
}

#[tokio::test]
async fn the_feed_follows_transaction_ids_numerically_not_as_text() {
    let db = TestDb::new().await;
    // Transaction ids 9 and 10: as text "10" sorts before "9", which would skip an event.
    for (tx, i) in [("10", 10), ("9", 9)] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                 payload, metadata, tx_id) \
             VALUES ('Refusal', $1, 1, 'AttemptRefused', '1.0', $2::json, '{}', $3::text::xid8)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(refusal_payload(i))
        .bind(tx)
        .execute(&db.pool)
        .await
        .expect("append");
    }
    let applied = Projector::new(db.pool.clone())
        .with_batch_size(1)
        .run_until_idle()
        .await
        .expect("project");
    assert_eq!(applied, 2);
    let order: Vec<String> = sqlx::query_scalar(
        "SELECT a.resource_identifier FROM audit_log_chain c JOIN audit_logs a ON a.id = c.audit_id \
          ORDER BY c.position",
    )
    .fetch_all(&db.pool)
    .await
    .expect("chain");
    assert_eq!(order, ["probe-9", "probe-10"]);
}

/// Every projected table as JSON text, ordered, for comparison.
async fn snapshot(pool: &PgPool) -> BTreeMap<&'static str, Vec<String>> {
    let mut tables = BTreeMap::new();
    for table in [
        "users",
        "certificate_requests",
        "recommendation_answers",
        "approvals",
        "certificates",
        "certificate_revocations",
        "audit_logs",
        "audit_log_chain",
        "notifications",
        "system_config",
        "private_keys",
    ] {
        let rows: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT to_jsonb(t)::text FROM {table} t ORDER BY to_jsonb(t)::text"
        ))
        .fetch_all(pool)
        .await
        .expect(table);
        tables.insert(table, rows);
    }
    tables
}

#[tokio::test]
async fn a_replay_rebuilds_tables_equal_to_the_live_ones_row_for_row() {
    let db = TestDb::new().await;
    let (commands, _) = history(&db).await;
    let mut form = web_request("answers.example.com");
    form.answers = Some(cert_assistant::domain::recommendation::Answers {
        service_type: cert_assistant::domain::recommendation::ServiceType::Api,
        publicly_accessible: cert_assistant::domain::recommendation::Exposure::No,
        expected_lifespan: cert_assistant::domain::recommendation::Lifespan::Under90,
        browser_trust_required: cert_assistant::domain::recommendation::BrowserTrust::No,
        environment_type: cert_assistant::domain::recommendation::Environment::Production,
        certificate_count: cert_assistant::domain::recommendation::CertificateCount::Single,
        domain_type: cert_assistant::domain::recommendation::DomainType::Single,
        criticality_level: cert_assistant::domain::recommendation::Criticality::Critical,
        compliance_requirements: [cert_assistant::domain::recommendation::Compliance::PciDss]
            .into(),
        renewal_preference: cert_assistant::domain::recommendation::RenewalPreference::Manual,
    });
    let submitted = commands
        .submit_request(&ctx("john@example.com"), form)
        .await
        .expect("submitted with answers");
    assert_eq!(
        submitted.required_approvals, 2,
        "critical needs two approvals"
    );
    catch_up(&db.pool).await;
    assert_eq!(
        count(&db.pool, "SELECT count(*) FROM recommendation_answers").await,
        1
    );
    let live = snapshot(&db.pool).await;

    let report = replay::replay(&db.pool, 5).await.expect("replay");
    // A replay applies what lies below the commit horizon; anything a concurrent transaction
    // elsewhere on the server still holds back is left to the live projector.
    let rest = catch_up(&db.pool).await;
    assert_eq!(
        i64::try_from(report.events + rest).expect("count"),
        count(&db.pool, "SELECT count(*) FROM events").await
    );
    let rebuilt = snapshot(&db.pool).await;
    for (table, rows) in &live {
        assert_eq!(rows, &rebuilt[table], "{table} differs after replay");
    }
}

/// What the catalog says the audit trail is made of: `audit_logs`' partitions and their
/// bounds, every index of it, of its partitions (with which parent index each is attached
/// to, and whether it is valid) and of `audit_log_chain`, every constraint on them, and the
/// grants.
async fn audit_trail_shape(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "WITH tables AS ( \
             SELECT 'audit_logs'::regclass AS oid \
             UNION ALL SELECT 'audit_log_chain'::regclass \
             UNION ALL SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_logs'::regclass) \
         SELECT 'grants ' || c.oid::regclass || ' ' || coalesce(c.relacl::text, '') \
           FROM tables t JOIN pg_class c ON c.oid = t.oid \
         UNION ALL \
         SELECT 'partition ' || c.relnamespace::regnamespace || '.' || c.relname || ' ' \
                || coalesce(pg_get_expr(c.relpartbound, c.oid), '') \
           FROM tables t JOIN pg_class c ON c.oid = t.oid \
         UNION ALL \
         SELECT 'index ' || x.indexrelid::regclass || ' valid ' || i.indisvalid || ' of ' \
                || coalesce(p.inhparent::regclass::text, '-') || ': ' \
                || pg_get_indexdef(x.indexrelid) \
           FROM tables t JOIN pg_index x ON x.indrelid = t.oid \
           JOIN pg_index i ON i.indexrelid = x.indexrelid \
           LEFT JOIN pg_inherits p ON p.inhrelid = x.indexrelid \
         UNION ALL \
         SELECT 'constraint ' || k.conrelid::regclass || ' ' || k.conname || ' ' \
                || k.conislocal || ' ' || pg_get_constraintdef(k.oid) \
           FROM tables t JOIN pg_constraint k ON k.conrelid = t.oid \
         UNION ALL \
         SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname IN ('cert_rebuild', 'cert_retired') \
         ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("the audit trail's shape")
}

#[tokio::test]
async fn a_replay_swaps_in_an_audit_trail_of_the_same_shape_which_the_projector_keeps_using() {
    let db = TestDb::new().await;
    history(&db).await;
    catch_up(&db.pool).await;
    let shape = audit_trail_shape(&db.pool).await;
    assert!(
        shape
            .iter()
            .filter(|line| line.starts_with("partition "))
            .count()
            >= 3
            && shape
                .iter()
                .any(|line| line.contains("idx_audit_logs_metadata"))
            && shape
                .iter()
                .any(|line| line.contains("audit_logs_user_id_fkey"))
            && shape
                .iter()
                .any(|line| line.contains("idx_audit_log_chain_audit"))
            && shape.iter().any(|line| {
                line.starts_with("grants audit_log_chain ")
                    && line.contains("cert_assistant_auditor=r")
            }),
        "the live trail is partitioned, indexed and keyed: {shape:#?}"
    );
    let before = snapshot(&db.pool).await;

    replay::replay(&db.pool, 4).await.expect("replayed");
    assert_eq!(
        audit_trail_shape(&db.pool).await,
        shape,
        "the rebuilt trail has the live one's partitions, indexes and keys, and nothing is left beside it"
    );
    let rebuilt = snapshot(&db.pool).await;
    assert_eq!(before["audit_logs"], rebuilt["audit_logs"]);

    // The swapped-in partitions are the live trail now: every event read again is skipped
    // by its key, the chain verifies, and new events land in them.
    rewind(&db.pool).await;
    catch_up(&db.pool).await;
    assert_eq!(
        snapshot(&db.pool).await["audit_logs"],
        rebuilt["audit_logs"]
    );
    let commands = service(&db);
    commands
        .submit_request(&ctx("john@example.com"), web_request("after.example.com"))
        .await
        .expect("submitted after the replay");
    catch_up(&db.pool).await;
    let rows = count(&db.pool, "SELECT count(*) FROM audit_logs").await;
    assert!(rows > i64::try_from(before["audit_logs"].len()).expect("count"));
    assert_eq!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { rows }
    );
    let mut conn = db.pool.acquire().await.expect("a connection");
    sqlx::query("SET enable_seqscan = off")
        .execute(&mut *conn)
        .await
        .expect("prefer indexes");
    let plan: Vec<String> =
        sqlx::query_scalar("EXPLAIN SELECT * FROM audit_logs WHERE resource_identifier = 'REQ-1'")
            .fetch_all(&mut *conn)
            .await
            .expect("plan");
    assert!(
        plan.iter()
            .any(|line| line.contains("Index") || line.contains("Bitmap")),
        "the rebuilt partitions' indexes are used: {plan:#?}"
    );
}

#[tokio::test]
async fn a_replay_that_could_not_carry_a_trigger_over_refuses_and_changes_nothing() {
    let db = TestDb::new().await;
    history(&db).await;
    catch_up(&db.pool).await;
    sqlx::raw_sql(
        "CREATE FUNCTION chain_noticed() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RETURN NEW; END $$; \
         CREATE TRIGGER chain_noticed AFTER INSERT ON audit_log_chain \
             FOR EACH ROW EXECUTE FUNCTION chain_noticed();",
    )
    .execute(&db.pool)
    .await
    .expect("a trigger an operator added");
    let before = snapshot(&db.pool).await;
    let shape = audit_trail_shape(&db.pool).await;

    let error = replay::replay(&db.pool, 50)
        .await
        .expect_err("the rebuilt chain would lose the trigger");
    assert!(
        format!("{error:#}").contains("audit_log_chain has the trigger chain_noticed"),
        "{error:#}"
    );
    assert_eq!(snapshot(&db.pool).await, before);
    assert_eq!(audit_trail_shape(&db.pool).await, shape);
}

#[tokio::test]
async fn events_read_again_change_nothing_and_the_chain_stays_whole() {
    let db = TestDb::new().await;
    history(&db).await;
    catch_up(&db.pool).await;
    let before = snapshot(&db.pool).await;

    // Rewind the checkpoint: every event comes again, in batches that mix applied events
    // with each other, and the position guard must skip all of them.
    rewind(&db.pool).await;
    let reread = Projector::new(db.pool.clone())
        .with_batch_size(7)
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("read again");
    assert_eq!(
        i64::try_from(reread).expect("count"),
        count(&db.pool, "SELECT count(*) FROM events").await
    );
    let after = snapshot(&db.pool).await;
    for (table, rows) in &before {
        assert_eq!(
            rows, &after[table],
            "{table} changed when events came again"
        );
    }
    let rows = count(&db.pool, "SELECT count(*) FROM audit_logs").await;
    assert_eq!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { rows }
    );
}

#[tokio::test]
async fn the_audit_chain_detects_a_changed_or_deleted_row() {
    let db = TestDb::new().await;
    history(&db).await;
    catch_up(&db.pool).await;
    assert!(matches!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { .. }
    ));
    let (position, id): (i64, Uuid) = sqlx::query_as(
        "SELECT position, audit_id FROM audit_log_chain ORDER BY position OFFSET 3 LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("row");
    sqlx::query("UPDATE audit_logs SET result = 'success', action = 'read' WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .expect("tamper");
    assert_eq!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Broken {
            position,
            audit_id: Some(id),
            problem: "the audit row was changed after it was written".to_owned()
        }
    );
    sqlx::query("DELETE FROM audit_log_chain WHERE position > $1")
        .bind(position)
        .execute(&db.pool)
        .await
        .expect("cut the chain");
    let report = audit::verify(&db.pool).await.expect("verify");
    assert!(matches!(report, ChainReport::Broken { .. }), "{report:?}");
}

#[tokio::test]
async fn the_auditor_role_reads_the_read_model_and_nothing_else() {
    let db = TestDb::new().await;
    history(&db).await;
    catch_up(&db.pool).await;
    let mut conn = db.pool.acquire().await.expect("conn");
    sqlx::query("SET ROLE cert_assistant_auditor")
        .execute(&mut *conn)
        .await
        .expect("become the auditor");
    for readable in [
        "SELECT count(*) FROM users",
        "SELECT count(*) FROM certificate_requests",
        "SELECT count(*) FROM audit_logs",
        "SELECT count(*) FROM v_active_certificates",
        "SELECT count(*) FROM v_pending_approvals",
        "SELECT count(*) FROM v_request_summary",
        "SELECT certificate_id, encryption_algorithm FROM private_keys",
    ] {
        sqlx::query(readable)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_else(|e| panic!("{readable}: {e}"));
    }
    for forbidden in [
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM snapshots",
        "SELECT count(*) FROM data_keys",
        "SELECT encrypted_key FROM private_keys",
        "UPDATE certificate_requests SET status = 'approved'",
        "DELETE FROM audit_logs",
        "INSERT INTO users (email) VALUES ('x@example.com')",
        "UPDATE system_config SET config_value = '1'",
    ] {
        let error = sqlx::query(forbidden)
            .execute(&mut *conn)
            .await
            .expect_err(forbidden);
        assert_eq!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("42501"),
            "{forbidden}: {error}"
        );
    }
}

#[tokio::test]
async fn every_named_query_runs_and_answers_on_sample_data() {
    let db = TestDb::new().await;
    history(&db).await;
    catch_up(&db.pool).await;
    let mut answers = BTreeMap::new();
    for query in catalog::catalog() {
        let mut values = BTreeMap::new();
        if query.name == "audit-trail" {
            values.insert("resource".to_owned(), "0ab1".to_owned());
        }
        let result = query
            .run(&db.pool, &values)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", query.name));
        answers.insert(query.name.clone(), result);
    }
    assert_eq!(answers.len(), 7);
    let column = |name: &str, col: &str| -> Vec<Option<String>> {
        let result = &answers[name];
        let index = result
            .columns
            .iter()
            .position(|c| c == col)
            .unwrap_or_else(|| panic!("{name} has no column {col}"));
        result.rows.iter().map(|r| r[index].clone()).collect()
    };
    // Both approvers known at submission were asked.
    assert_eq!(
        column("pending-approvals", "common_name"),
        [
            Some("pending.example.com".to_owned()),
            Some("pending.example.com".to_owned())
        ]
    );
    let mut asked = column("pending-approvals", "approver_email");
    asked.sort();
    assert_eq!(
        asked,
        [
            Some("jane@example.com".to_owned()),
            Some("root@example.com".to_owned())
        ]
    );
    assert_eq!(
        column("expiring-certificates", "serial_number"),
        [Some("0AB1".to_owned())]
    );
    assert_eq!(
        column("request-summary", "total_requests"),
        [Some("4".to_owned())]
    );
    let trail = column("audit-trail", "event_type");
    for expected in [
        "request_created",
        "approve_refused",
        "approval_granted",
        "certificate_issued",
    ] {
        assert!(
            trail.contains(&Some(expected.to_owned())),
            "{expected} missing from {trail:?}"
        );
    }
    assert_eq!(
        column("certificates-by-owner", "owner_email"),
        [Some("john@example.com".to_owned())]
    );
    assert!(answers["revocations"].rows.is_empty());
    assert!(answers["failed-issuances"].rows.is_empty());

    // Parameters are checked: unknown names and bad values get clear errors.
    let expiring = catalog::find("expiring-certificates").expect("query");
    let bad = BTreeMap::from([("days".to_owned(), "soon".to_owned())]);
    let error = expiring.run(&db.pool, &bad).await.expect_err("bad value");
    assert!(
        error
            .to_string()
            .contains("invalid input syntax for type integer"),
        "{error}"
    );
    let unknown = BTreeMap::from([("weeks".to_owned(), "2".to_owned())]);
    assert!(expiring.run(&db.pool, &unknown).await.is_err());
    assert!(catalog::find("drop-tables").is_err());
}

#[test]
fn the_catalog_embeds_every_file_of_the_projections_directory() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("projections");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("projections/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = catalog::embedded_files()
        .into_iter()
        .map(str::to_owned)
        .collect();
    embedded.sort();
    assert_eq!(on_disk, embedded);
}

#[tokio::test]
async fn projections_status_reports_the_lag() {
    let db = TestDb::new().await;
    let commands = service(&db);
    commands
        .submit_request(&ctx("john@example.com"), web_request("lag.example.com"))
        .await
        .expect("submitted");
    let read_model = |all: Vec<cert_assistant::feed::ConsumerStatus>| {
        all.into_iter()
            .find(|c| c.name == "read_model")
            .expect("the read model's consumer")
    };
    let all = Projector::status(&db.pool).await.expect("status");
    let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "chat_outbox",
            "issuance",
            "mail_outbox",
            "read_model",
            "revocation"
        ]
    );
    let before = read_model(all);
    assert!(before.lag_events > 0);
    assert!(before.lag_seconds.is_some());
    catch_up(&db.pool).await;
    let after = read_model(Projector::status(&db.pool).await.expect("status"));
    assert_eq!(after.lag_events, 0);
    assert_eq!(after.lag_seconds, None);
    assert_eq!(
        after.events_applied,
        count(&db.pool, "SELECT count(*) FROM events").await
    );
}

/// The `cert-assistant` binary against `db`, as an operator runs it; (success, stdout).
async fn operator(db: &TestDb, args: &[&str]) -> (bool, String) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
    command
        .args(args)
        .env("DATABASE_URL", crate::helpers::database_url(&db.name))
        .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", crate::fixtures::KEK);
    let output = crate::helpers::output(command).await;
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// Transactions of this test's database left open, counted from another thread while the
/// test's own (current-thread) runtime stands still, as it does during a blocking call.
fn open_transactions_seen_from_outside(db: &TestDb) -> i64 {
    let url = db.url();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(async {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
                sqlx::query_scalar(
                    "SELECT count(*) FROM pg_stat_activity \
                      WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
                )
                .fetch_one(&mut connection)
                .await
                .expect("activity")
            })
    })
    .join()
    .expect("the observer")
}

#[tokio::test]
async fn a_step_with_nothing_to_do_ends_its_transaction_before_it_returns() {
    let db = TestDb::new().await;
    let projector = Projector::new(db.pool.clone());
    // Idle: the lease was taken, nothing was there.
    assert_eq!(projector.run_until_idle().await.expect("step"), 0);
    assert_eq!(open_transactions_seen_from_outside(&db), 0, "idle");
    // Busy: another holds the lease.
    let mut holder = db.pool.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM projector_checkpoints WHERE name = 'read_model' FOR UPDATE")
        .execute(&mut *holder)
        .await
        .expect("lease");
    assert_eq!(projector.run_until_idle().await.expect("step"), 0);
    assert_eq!(
        open_transactions_seen_from_outside(&db),
        1,
        "only the holder's"
    );
    // A scheduled pass another replica holds.
    let _pass = cert_assistant::jobs::try_lease(&db.pool, 42)
        .await
        .expect("lease")
        .expect("ours");
    assert!(
        cert_assistant::jobs::try_lease(&db.pool, 42)
            .await
            .expect("lease")
            .is_none()
    );
    assert_eq!(
        open_transactions_seen_from_outside(&db),
        2,
        "the two holders' only"
    );
    holder.rollback().await.expect("rollback");
}

async fn requests_named(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT common_name FROM certificate_requests ORDER BY common_name")
        .fetch_all(pool)
        .await
        .expect("requests")
}

#[tokio::test]
async fn an_event_that_cannot_be_applied_parks_its_stream_and_the_rest_keeps_flowing() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let john = ctx("john@example.com");
    approver(&commands, "jane@example.com").await;
    crate::helpers::project(&db.pool).await;
    // A permanent failure for one request only: the read model cannot write its row.
    sqlx::query(
        "ALTER TABLE certificate_requests ADD CONSTRAINT injected_failure \
         CHECK (common_name <> 'poison.example.com')",
    )
    .execute(&db.pool)
    .await
    .expect("inject");
    for cn in [
        "before.example.com",
        "poison.example.com",
        "after.example.com",
    ] {
        commands
            .submit_request(&john, web_request(cn))
            .await
            .expect("submitted");
    }

    // The projector does not stall: every other request is there, and nothing is behind.
    crate::helpers::project(&db.pool).await;
    assert_eq!(
        requests_named(&db.pool).await,
        ["after.example.com", "before.example.com"]
    );
    let (ok, status) = operator(&db, &["projections", "status"]).await;
    assert!(ok, "{status}");
    assert!(
        status.contains("read_model: ") && status.contains(" 0 behind"),
        "{status}"
    );
    assert!(
        status.contains("PARKED read_model: CertificateRequest")
            && status.contains("injected_failure")
            && status.contains("projections retry"),
        "{status}"
    );

    // The admins are told, once, on every configured platform.
    let alerts = cert_assistant::chat::outbound::alerts::FailedJobAlerts::new(
        db.pool.clone(),
        cert_assistant::chat::outbound::ChatOutbox::new(["slack", "teams"]),
    );
    assert_eq!(
        alerts.step().await.expect("alerts"),
        2,
        "the request and its approval"
    );
    assert_eq!(alerts.step().await.expect("alerts"), 0);
    let told: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload FROM jobs WHERE kind IN ('chat:slack', 'chat:teams')")
            .fetch_all(&db.pool)
            .await
            .expect("alerts");
    assert_eq!(told.len(), 4, "{told:?}");
    assert!(
        told.iter().all(|job| job["kind"] == "alert_admins"
            && job["text"]
                .as_str()
                .is_some_and(|t| t.contains("projections retry"))),
        "{told:?}"
    );

    // Events of the parked request that come later wait; others flow.
    let later = commands
        .submit_request(&john, web_request("later.example.com"))
        .await
        .expect("submitted");
    crate::helpers::project(&db.pool).await;
    assert!(
        requests_named(&db.pool)
            .await
            .contains(&"later.example.com".to_owned())
    );
    let _ = later;

    // A rebuild does not stop at it either: it reports the stream parked.
    let (ok, out) = operator(&db, &["replay"]).await;
    assert!(ok, "{out}");
    assert!(
        out.contains("2 stream(s) could not be applied"),
        "the request and its approval: {out}"
    );

    // While the cause is there a retry says so and changes nothing.
    let (ok, out) = operator(&db, &["projections", "retry"]).await;
    assert!(!ok, "{out}");
    assert!(out.contains("still fails"), "{out}");

    // The cause removed, a retry applies the stream in order and unparks it.
    sqlx::query("ALTER TABLE certificate_requests DROP CONSTRAINT injected_failure")
        .execute(&db.pool)
        .await
        .expect("fix");
    let (ok, out) = operator(&db, &["projections", "retry"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("applied again"), "{out}");
    assert!(
        requests_named(&db.pool)
            .await
            .contains(&"poison.example.com".to_owned())
    );
    let (_, status) = operator(&db, &["projections", "status"]).await;
    assert!(!status.contains("PARKED"), "{status}");
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM approvals a JOIN certificate_requests r ON r.id = a.request_id \
          WHERE r.common_name = 'poison.example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("approvals");
    assert!(pending >= 1, "its approval came along");
    assert!(matches!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { .. }
    ));
}

/// `n` characters of text that is hard on every layer: multi-byte letters, an emoji (four
/// bytes), a right-to-left override, a combining accent, quotes and a backslash.
fn hostile(n: usize) -> String {
    "Ä🔐\u{202E}e\u{301}\"'\\<>&名"
        .chars()
        .cycle()
        .take(n)
        .collect()
}

#[tokio::test]
async fn the_longest_and_most_hostile_values_reach_every_consumer_and_none_parks() {
    use cert_assistant::chat::outbound::ChatOutbox;
    use cert_assistant::saga::issuance::IssuanceFeed;
    use cert_assistant::saga::mail::MailOutbox;
    use cert_assistant::saga::revocation::RevocationFeed;

    let db = TestDb::new().await;
    let commands = service(&db);
    let jane = approver(&commands, "jane@example.com").await;
    approver(&commands, "ops@example.com").await;
    crate::helpers::project(&db.pool).await;
    // A person whose platform reports an absurd name, NUL and controls included.
    let mut hostile_person = ctx("hostile@example.com");
    hostile_person.display_name = Some(format!("{}\u{0}\u{7}{}", hostile(150), hostile(150)));
    hostile_person.user_agent = Some(hostile(5_000));

    let form = |cn: &str| RequestForm {
        common_name: cn.to_owned(),
        subject_alternative_names: (0..20)
            .map(|i| format!("{}.{i}.{cn}", "a".repeat(63)))
            .collect(),
        organization: Some(hostile(255)),
        organizational_unit: Some(hostile(255)),
        locality: Some(hostile(100)),
        state_province: Some(hostile(100)),
        certificate_type: "web_server".to_owned(),
        validity_days: Some("90".to_owned()),
        justification: hostile(4000),
        department: Some(hostile(100)),
        cost_center: Some(hostile(50)),
        project_code: Some(hostile(50)),
        notes: Some(hostile(4000)),
        ..RequestForm::default()
    };
    let mut numbers = Vec::new();
    let mut submissions = Vec::new();
    for cn in [
        "a.example.com",
        "b.example.com",
        "c.example.com",
        "d.example.com",
    ] {
        let submitted = commands
            .submit_request(&hostile_person, form(cn))
            .await
            .unwrap_or_else(|e| panic!("the longest accepted values are accepted: {e}"));
        numbers.push(submitted.request_number.clone());
        submissions.push(submitted);
    }
    commands
        .approve(&jane, &numbers[0], Some(&hostile(2000)))
        .await
        .expect("approved");
    commands
        .reject(&jane, &numbers[1], &hostile(2000))
        .await
        .expect("rejected");
    commands
        .delegate(
            &jane,
            &numbers[2],
            &cert_assistant::domain::values::Email::parse("ops@example.com").expect("email"),
            &hostile(2000),
        )
        .await
        .expect("delegated");
    commands
        .cancel_request(&hostile_person, &numbers[3], Some(&hostile(2000)))
        .await
        .expect("cancelled");
    // A chat account linked with the longest id.
    commands
        .link_chat_account(
            &hostile_person,
            cert_assistant::domain::actor::Platform::Discord,
            &"9".repeat(100),
        )
        .await
        .expect("linked");
    // The certificate's life: issued, revoked with the longest reason text, the CA's
    // longest failure text recorded as an operator task.
    commands
        .start_issuance(submissions[0].request_id)
        .await
        .expect("started");
    let owner = commands.actor(&hostile_person).await.expect("the owner");
    let certificate = issued_certificate(&submissions[0], owner.clone(), "0A1B2C3D", 90, true);
    let certificate_id = certificate.certificate_id;
    commands.record_issuance(certificate).await.expect("issued");
    commands
        .revoke(
            &hostile_person,
            RevocationForm {
                certificate: "0A1B2C3D".to_owned(),
                reason: "key_compromise".to_owned(),
                text: Some(hostile(2000)),
            },
        )
        .await
        .expect("revoked");
    commands
        .record_ca_revocation(certificate_id, Err(hostile(20_000)))
        .await
        .expect("the CA's failure");
    // A notification with the longest subject and a long body, and a failed delivery
    // whose error is longer still.
    let notification = commands
        .queue_notification(Message {
            recipient: owner,
            notification_type: NotificationType::CertificateIssued,
            subject: hostile(255),
            body: hostile(20_000),
            channel: Channel::Email,
            resource_type: Some("certificate".to_owned()),
            resource_id: Some(certificate_id),
        })
        .await
        .expect("queued");
    commands
        .record_delivery(notification, Err(hostile(20_000)))
        .await
        .expect("a failed delivery");
    // Values past every limit are refused where they are parsed, with the limit.
    let mut too_long = form("e.example.com");
    too_long.justification = hostile(4001);
    let refused = commands
        .submit_request(&hostile_person, too_long)
        .await
        .expect_err("too long");
    assert!(refused.to_string().contains("at most 4000"), "{refused}");

    // Every consumer applies all of it; nothing parks.
    crate::helpers::project(&db.pool).await;
    let wait = std::time::Duration::from_secs(30);
    let outbox = ChatOutbox::new(["slack", "discord", "teams"]);
    Projector::for_consumer(db.pool.clone(), outbox)
        .catch_up(wait)
        .await
        .expect("chat outbox");
    Projector::for_consumer(db.pool.clone(), IssuanceFeed)
        .catch_up(wait)
        .await
        .expect("issuance");
    Projector::for_consumer(db.pool.clone(), MailOutbox)
        .catch_up(wait)
        .await
        .expect("mail");
    Projector::for_consumer(db.pool.clone(), RevocationFeed)
        .catch_up(wait)
        .await
        .expect("revocation");
    let parked = cert_assistant::feed::parking::list(&db.pool)
        .await
        .expect("parked");
    assert!(parked.is_empty(), "{parked:?}");
    let name: Option<String> =
        sqlx::query_scalar("SELECT display_name FROM users WHERE email = 'hostile@example.com'")
            .fetch_one(&db.pool)
            .await
            .expect("the person");
    let name = name.expect("a name");
    assert_eq!(name.chars().count(), 200, "cut to the column");
    assert!(!name.contains('\u{0}'));
    let justification: String = sqlx::query_scalar(
        "SELECT business_justification FROM certificate_requests WHERE common_name = 'a.example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the request");
    assert_eq!(justification, hostile(4000), "kept exactly");
    let chat_jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind LIKE 'chat:%'")
        .fetch_one(&db.pool)
        .await
        .expect("jobs");
    assert!(chat_jobs >= 3 * 5, "{chat_jobs} chat jobs");
}

#[tokio::test]
async fn readers_keep_reading_the_old_tables_while_a_replay_runs_and_see_the_new_ones_after() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let jane = approver(&commands, "jane@example.com").await;
    crate::helpers::project(&db.pool).await;
    let john = ctx("john@example.com");
    for i in 0..100 {
        let submitted = commands
            .submit_request(&john, web_request(&format!("r{i}.example.com")))
            .await
            .expect("submitted");
        if i % 2 == 0 {
            commands
                .approve(&jane, &submitted.request_number, None)
                .await
                .expect("approved");
        }
    }
    crate::helpers::project(&db.pool).await;
    let count = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT (SELECT count(*) FROM certificate_requests) \
                  + (SELECT count(*) FROM audit_logs) + (SELECT count(*) FROM users)",
        )
        .fetch_one(&pool)
        .await
        .expect("a reader's query")
    };
    let before = count(db.pool.clone()).await;

    // A reader keeps reading while the rebuild (small batches: it takes a while) runs.
    let (done, mut stop) = tokio::sync::watch::channel(false);
    let pool = db.pool.clone();
    let reader = tokio::spawn(async move {
        let (mut longest, mut reads, mut torn) = (std::time::Duration::ZERO, 0, Vec::new());
        while !*stop.borrow_and_update() {
            let started = std::time::Instant::now();
            let seen = count(pool.clone()).await;
            longest = longest.max(started.elapsed());
            reads += 1;
            if seen != before && !*stop.borrow() {
                torn.push(seen);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (longest, reads, torn)
    });
    let report = replay::replay(&db.pool, 1).await.expect("replayed");
    done.send(true).expect("stop the reader");
    let (longest, reads, torn) = reader.await.expect("the reader");
    assert!(
        longest < std::time::Duration::from_secs(1),
        "the longest read during the replay of {} events took {longest:?}",
        report.events
    );
    assert!(
        reads > 3,
        "the rebuild took long enough to be read during ({reads} reads)"
    );
    assert!(torn.is_empty(), "readers saw half-built tables: {torn:?}");
    assert_eq!(
        count(db.pool.clone()).await,
        before,
        "and the new ones after"
    );
}

#[tokio::test]
async fn a_csv_export_shows_a_typed_formula_as_text() {
    let db = TestDb::new().await;
    let commands = service(&db);
    approver(&commands, "jane@example.com").await;
    catch_up(&db.pool).await;
    // An e-mail certificate's common name is free text: a person's name, or a formula.
    let formula = "=HYPERLINK(\"https://evil.example\",\"open\")";
    commands
        .submit_request(
            &ctx("john@example.com"),
            RequestForm {
                common_name: formula.to_owned(),
                certificate_type: "email".to_owned(),
                email_address: Some("john@example.com".to_owned()),
                validity_days: Some("365".to_owned()),
                justification: "@SUM(1+1) mail".to_owned(),
                ..RequestForm::default()
            },
        )
        .await
        .expect("submitted");
    catch_up(&db.pool).await;
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
    command
        .args(["query", "pending-approvals", "--format", "csv"])
        .env("DATABASE_URL", db.url())
        .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", crate::fixtures::KEK)
        .env_remove("RUST_LOG");
    let output = crate::helpers::output(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let cn = headers
        .iter()
        .position(|h| h == "common_name")
        .expect("a common_name column");
    let cells: Vec<String> = reader
        .records()
        .map(|r| r.expect("record")[cn].to_owned())
        .collect();
    assert!(!cells.is_empty(), "{stdout}");
    for cell in cells {
        assert_eq!(cell, format!("'{formula}"), "{stdout}");
    }
}

/// The chain's hashes are computed in the service, over the text PostgreSQL's
/// `audit_log_content` gives; `audit verify` recomputes them in SQL. Whatever the metadata
/// holds (addresses in every form, escapes, controls, numbers, far-off times), both agree.
#[tokio::test]
async fn the_chain_hashed_in_the_service_verifies_in_sql_whatever_the_rows_hold() {
    let db = TestDb::new().await;
    let addresses = [
        "192.0.2.1",
        "::1",
        "2001:db8::1",
        "2001:DB8:0:0:1:0:0:1",
        "::ffff:192.0.2.1",
        "::192.0.2.1",
        "fe80::1:2:3:4",
        "not an address",
    ];
    let agents = [
        "Mozilla/5.0 \"quoted\" \\ back\\slash",
        "tab\tnew\nline\rcarriage\u{8}\u{c}\u{1}\u{1f}\u{7f}",
        "ünïcødé ✓ 証明書 \u{2028}",
        "",
    ];
    let actor = Uuid::new_v4();
    for (i, (address, agent)) in addresses.iter().zip(agents.iter().cycle()).enumerate() {
        let at = match i % 3 {
            0 => "2026-12-03T06:00:00.123456789Z",
            1 => "0999-01-01T00:00:00Z",
            _ => "+12345-01-01T00:00:00Z",
        };
        let mut payload: serde_json::Value =
            serde_json::from_str(&refusal_payload(i)).expect("json");
        payload["AttemptRefused"]["at"] = serde_json::json!(at);
        payload["AttemptRefused"]["reason"] = serde_json::json!(format!("{agent} {i}"));
        let metadata = serde_json::json!({
            "ip_address": address,
            "user_agent": agent,
            "correlation_id": format!("corr-{agent}"),
            "platform": "slack",
            "actor_id": actor,
            "actor_email": "Ópera@example.com",
            "actor_role": "user",
        });
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) \
             VALUES ('Refusal', $1, 1, 'AttemptRefused', '1.0', $2, $3)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&payload)
        .bind(&metadata)
        .execute(&db.pool)
        .await
        .expect("append");
    }
    catch_up(&db.pool).await;
    let parked: Vec<String> = sqlx::query_scalar("SELECT error FROM parked_streams")
        .fetch_all(&db.pool)
        .await
        .expect("parked");
    assert_eq!(parked, Vec::<String>::new());
    let rows = count(&db.pool, "SELECT count(*) FROM audit_logs").await;
    assert_eq!(rows, i64::try_from(addresses.len()).expect("count"));
    assert_eq!(
        audit::verify(&db.pool).await.expect("verify"),
        ChainReport::Intact { rows }
    );
}
