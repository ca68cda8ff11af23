//! The job runtime: work that keeps failing is given up into a visible state, the admins
//! are told in chat, and `jobs retry` runs it again once the cause is gone.

use std::path::Path;
use std::sync::Arc;

use cert_assistant::adapters::mail::LocalMailer;
use cert_assistant::domain::actor::{Actor, Role, user_id_for};
use cert_assistant::domain::notification::{Channel, Message, NotificationType};
use cert_assistant::domain::values::Email;
use cert_assistant::feed::Projector;
use cert_assistant::saga::mail::{MailOutbox, MailWorker};
use uuid::Uuid;

use crate::fixtures::{approver, service};
use crate::helpers::TestDb;
use crate::slack::{slack_app_on, text_of};

async fn job_state(db: &TestDb, id: Uuid) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT state, attempts, last_error FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .expect("the job")
}

#[tokio::test]
async fn a_job_that_keeps_failing_is_given_up_the_admins_are_told_and_a_retry_finishes_it() {
    let db = TestDb::new().await;
    let t = slack_app_on(TestDb {
        pool: db.pool.clone(),
        name: db.name.clone(),
    })
    .await;
    let commands = service(&db);
    // Root (an admin by configuration) is known to the read model, and so reachable.
    approver(&commands, "jane@example.com").await;
    crate::helpers::project(&db.pool).await;

    let email = Email::parse("john@example.com").expect("email");
    let notification = commands
        .queue_notification(Message {
            recipient: Actor {
                user_id: user_id_for(&email),
                email,
                role: Role::User,
            },
            notification_type: NotificationType::CertificateIssued,
            subject: "Your certificate".to_owned(),
            body: "It is ready.".to_owned(),
            channel: Channel::Email,
            resource_type: None,
            resource_id: None,
        })
        .await
        .expect("queued");
    Projector::for_consumer(db.pool.clone(), MailOutbox)
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the mail outbox");

    // A mailer that cannot write, tried without waiting out the backoff.
    let blocked = tempfile::NamedTempFile::new().expect("a file where a directory should be");
    let broken = MailWorker::new(
        commands.clone(),
        Arc::new(LocalMailer::new(blocked.path().join("mail"))),
    );
    for _ in 0..cert_assistant::jobs::policy::MAIL.max_attempts {
        sqlx::query("UPDATE jobs SET run_at = now() WHERE id = $1")
            .bind(notification)
            .execute(&db.pool)
            .await
            .expect("due now");
        broken.step().await.expect("step");
        let (state, _, _) = job_state(&db, notification).await;
        if state == "failed" {
            break;
        }
        assert_eq!(state, "queued", "retried until it is given up");
    }
    let (state, attempts, error) = job_state(&db, notification).await;
    assert_eq!(state, "failed");
    assert!(attempts >= 1, "{attempts}");
    assert!(
        error.as_deref().is_some_and(|e| e.contains("mail")),
        "{error:?}"
    );

    // The admins hear about it in Slack, once.
    assert_eq!(t.workers.alerts.step().await.expect("alerts"), 1);
    assert_eq!(t.workers.alerts.step().await.expect("alerts"), 0);
    crate::helpers::deliver(&db.pool, &t.workers.outbox, [t.notifier()]).await;
    let alerts: Vec<_> = t
        .calls_to("chat.postMessage")
        .into_iter()
        .filter(|m| m["channel"] == "D-UROOT" && text_of(m).contains("given up"))
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(text_of(&alerts[0]).contains(&notification.to_string()));
    assert!(text_of(&alerts[0]).contains("jobs retry"));

    // Fixed: retried, it is sent by the service's own mailer.
    assert_eq!(
        cert_assistant::jobs::retry_failed(&db.pool, Some(notification))
            .await
            .expect("retry"),
        1
    );
    t.workers.mail.step().await.expect("step");
    let (state, _, _) = job_state(&db, notification).await;
    assert_eq!(state, "done");
}

#[tokio::test]
async fn jobs_of_one_ordering_key_run_in_order_and_others_do_not_wait_for_them() {
    let db = TestDb::new().await;
    let t = slack_app_on(TestDb {
        pool: db.pool.clone(),
        name: db.name.clone(),
    })
    .await;
    let subject = Uuid::new_v4();
    let other = Uuid::new_v4();
    let mut conn = db.pool.acquire().await.expect("conn");
    for (cause, about) in [
        ("first", subject),
        ("second", subject),
        ("elsewhere", other),
    ] {
        t.workers
            .outbox
            .queue(
                &mut conn,
                cause,
                None,
                &cert_assistant::chat::outbound::ChatJob {
                    subject: about,
                    message: cert_assistant::chat::outbound::ChatMessage::AlertAdmins {
                        text: cause.to_owned(),
                    },
                },
            )
            .await
            .expect("queued");
    }
    drop(conn);
    // One step claims the first of each key only.
    assert_eq!(t.notifier().step().await.expect("step"), 2);
    assert_eq!(t.notifier().step().await.expect("step"), 1);
    assert_eq!(t.notifier().step().await.expect("step"), 0);
}

/// Inserts an event as postgres-es would have stored it.
async fn stored_event(
    db: &TestDb,
    aggregate_type: &str,
    id: Uuid,
    sequence: i64,
    event: &impl serde::Serialize,
) {
    let payload = serde_json::to_value(event).expect("json");
    let event_type = payload
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("a tagged event");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
                             payload, metadata) VALUES ($1, $2, $3, $4, '1.0', $5::json, '{}')",
    )
    .bind(aggregate_type)
    .bind(id.to_string())
    .bind(sequence)
    .bind(event_type)
    .bind(payload)
    .execute(&db.pool)
    .await
    .expect("event");
}

#[tokio::test]
async fn work_queued_before_the_job_runtime_carries_over_typed_when_the_migration_runs() {
    use cert_assistant::chat::outbound::{ChatJob, ChatMessage};
    use cert_assistant::domain::certificate::CertificateEvent;
    use cert_assistant::domain::notification::NotificationEvent;
    use cert_assistant::domain::values::{RequestNumber, RevocationReason};
    use cert_assistant::saga::issuance::IssuanceJob;
    use cert_assistant::saga::mail::MailJob;
    use cert_assistant::saga::revocation::RevocationJob;

    // A database as the previous version left it: every migration up to the job runtime.
    let (name, options) = TestDb::empty().await;
    let earlier = tempfile::tempdir().expect("tempdir");
    let migrations = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for entry in std::fs::read_dir(&migrations).expect("migrations") {
        let path = entry.expect("entry").path();
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if file.as_str() < "20261201000018" {
            std::fs::copy(&path, earlier.path().join(&file)).expect("copy");
        }
    }
    let pool = sqlx::PgPool::connect_with(options).await.expect("connect");
    sqlx::migrate::Migrator::new(earlier.path())
        .await
        .expect("the earlier migrations")
        .run(&pool)
        .await
        .expect("applied");
    let db = TestDb { pool, name };

    // Pending work in each of the four old job tables.
    let email = Email::parse("john@example.com").expect("email");
    let john = Actor {
        user_id: user_id_for(&email),
        email,
        role: Role::User,
    };
    let message = Message {
        recipient: john.clone(),
        notification_type: NotificationType::CertificateIssued,
        subject: "Ready".to_owned(),
        body: "Your certificate is ready.".to_owned(),
        channel: Channel::Email,
        resource_type: None,
        resource_id: None,
    };
    let notification = Uuid::new_v4();
    stored_event(
        &db,
        "Notification",
        notification,
        1,
        &NotificationEvent::NotificationQueued {
            message: Box::new(message.clone()),
            at: chrono::Utc::now(),
        },
    )
    .await;
    let request = cert_assistant::commands::SubmittedRequest {
        request_id: Uuid::new_v4(),
        request_number: RequestNumber::parse("REQ-20261130-00001").expect("number"),
        required_approvals: 1,
        recommendation: None,
        notice: None,
    };
    let certificate =
        crate::fixtures::issued_certificate(&request, john.clone(), "0a1b2c", 90, false);
    let certificate_id = certificate.certificate_id;
    stored_event(
        &db,
        "Certificate",
        certificate_id,
        1,
        &CertificateEvent::CertificateIssued {
            certificate: Box::new(certificate),
            at: chrono::Utc::now(),
        },
    )
    .await;
    stored_event(
        &db,
        "Certificate",
        certificate_id,
        2,
        &CertificateEvent::CertificateRevoked {
            by: john.clone(),
            reason: RevocationReason::KeyCompromise,
            text: None,
            approval_required: false,
            approved_by: None,
            at: chrono::Utc::now(),
        },
    )
    .await;
    let (submitting, stuck) = (Uuid::new_v4(), Uuid::new_v4());
    sqlx::raw_sql(&format!(
        "INSERT INTO issuance_jobs (request_id, state, submitting_at, ca_request_id) \
              VALUES ('{submitting}', 'pending', now(), '42'); \
         INSERT INTO issuance_jobs (request_id, state, done_at, last_error) \
              VALUES ('{stuck}', 'needs_operator', now(), 'unknown whether the CA got it'); \
         INSERT INTO mail_jobs (notification_id, attempts) VALUES ('{notification}', 2); \
         INSERT INTO revocation_jobs (certificate_id) VALUES ('{certificate_id}'); \
         INSERT INTO chat_jobs (id, platform, kind, request_id, payload) \
              VALUES (gen_random_uuid(), 'slack', 'ask_approvers', '{}', \
                      '{{\"approvers\": [\"jane@example.com\"]}}'); \
         INSERT INTO mail_jobs (notification_id, done_at) VALUES (gen_random_uuid(), now());",
        request.request_id
    ))
    .execute(&db.pool)
    .await
    .expect("old jobs");

    cert_assistant::db::migrate(&db.pool)
        .await
        .expect("migrated");

    let jobs: Vec<(String, String, serde_json::Value, i32)> =
        sqlx::query_as("SELECT kind, state, payload, attempts FROM jobs ORDER BY kind, state")
            .fetch_all(&db.pool)
            .await
            .expect("jobs");
    let kinds: Vec<(&str, &str)> = jobs
        .iter()
        .map(|(kind, state, _, _)| (kind.as_str(), state.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("chat:slack", "queued"),
            ("issuance", "failed"),
            ("issuance", "queued"),
            ("mail", "queued"),
            ("revocation", "queued"),
        ],
        "finished work is not carried over; everything else is"
    );
    let payload = |kind: &str, state: &str| {
        jobs.iter()
            .find(|(k, s, _, _)| k == kind && s == state)
            .map(|(_, _, payload, _)| payload.clone())
            .expect("the job")
    };
    let chat: ChatJob = serde_json::from_value(payload("chat:slack", "queued")).expect("chat");
    assert_eq!(chat.subject, request.request_id);
    assert!(matches!(chat.message, ChatMessage::AskApprovers { .. }));
    let issuance: IssuanceJob =
        serde_json::from_value(payload("issuance", "queued")).expect("issuance");
    assert_eq!(issuance.request_id, submitting);
    let mail: MailJob = serde_json::from_value(payload("mail", "queued")).expect("mail");
    assert_eq!(mail.message, message, "the mail job carries its message");
    let revocation: RevocationJob =
        serde_json::from_value(payload("revocation", "queued")).expect("revocation");
    assert_eq!(revocation.serial.to_string(), "0A1B2C");
    assert_eq!(revocation.reason, RevocationReason::KeyCompromise);
    let progress: (Option<chrono::DateTime<chrono::Utc>>, Option<String>) = sqlx::query_as(
        "SELECT submitting_at, ca_request_id FROM issuance_submissions WHERE request_id = $1",
    )
    .bind(submitting)
    .fetch_one(&db.pool)
    .await
    .expect("the submission's progress");
    assert!(progress.0.is_some());
    assert_eq!(progress.1.as_deref(), Some("42"));
}
