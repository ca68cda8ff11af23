//! The job runtime: work that keeps failing is given up into a visible state, the admins
//! are told in chat, and `jobs retry` runs it again once the cause is gone.

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
