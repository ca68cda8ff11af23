//! The escalation job with a moved clock: approvers reminded, then admins told, then quiet.

use std::sync::Arc;

use cert_assistant::adapters::clock::SettableClock;
use cert_assistant::domain::actor::Role;
use cert_assistant::domain::approval::escalation::Nudge;
use cert_assistant::domain::values::Email;
use cert_assistant::feed::Projector;
use cert_assistant::saga::escalation::EscalationWorker;
use chrono::{Duration, Utc};

use crate::fixtures::{approver, ctx, service, web_request};
use crate::helpers::TestDb;

async fn project(db: &TestDb) {
    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the read model catches up");
}

async fn pass(db: &TestDb, job: &EscalationWorker) -> Vec<Nudge> {
    let sent = job.step().await.expect("pass").expect("the lease");
    project(db).await;
    sent.nudged.into_iter().map(|(_, nudge)| nudge).collect()
}

#[tokio::test]
async fn slow_approvals_are_reminded_then_escalated_to_admins_then_left_alone() {
    let db = TestDb::new().await;
    let commands = service(&db);
    approver(&commands, "jane@example.com").await;
    project(&db).await;
    let submitted = commands
        .submit_request(&ctx("john@example.com"), web_request("slow.example.com"))
        .await
        .expect("submitted");
    // An admin who is not among the request's approvers hears of it only on escalation.
    commands
        .grant_role(
            &ctx("root@example.com"),
            &Email::parse("boss@example.com").expect("email"),
            Role::Admin,
        )
        .await
        .expect("grant");
    project(&db).await;

    let clock = Arc::new(SettableClock::at(Utc::now()));
    let job = EscalationWorker::new(commands.clone(), clock.clone());
    clock.advance(Duration::hours(47));
    assert_eq!(pass(&db, &job).await, []);
    clock.advance(Duration::hours(2));
    assert_eq!(pass(&db, &job).await, [Nudge::Remind]);
    assert_eq!(pass(&db, &job).await, [], "once");
    clock.advance(Duration::hours(48));
    assert_eq!(pass(&db, &job).await, [Nudge::Escalate]);

    let (count, last): (i32, bool) = sqlx::query_as(
        "SELECT reminder_count, last_reminder_at IS NOT NULL FROM approvals \
          WHERE status = 'pending'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("approval row");
    assert_eq!((count, last), (2, true));
    let mails: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.email, n.subject FROM notifications n JOIN users u ON u.id = n.user_id \
          WHERE n.notification_type = 'approval_reminder' ORDER BY u.email, n.created_at",
    )
    .fetch_all(&db.pool)
    .await
    .expect("notifications");
    let to: Vec<&str> = mails.iter().map(|(email, _)| email.as_str()).collect();
    assert_eq!(
        to,
        [
            "boss@example.com",
            "jane@example.com",
            "jane@example.com",
            "root@example.com",
            "root@example.com"
        ],
        "{mails:?}"
    );
    assert!(mails[0].1.starts_with("Escalation:"), "{mails:?}");
    assert!(mails[1].1.starts_with("Reminder:"), "{mails:?}");

    // A decided request is never nudged again.
    commands
        .approve(&ctx("jane@example.com"), &submitted.request_number, None)
        .await
        .expect("approved");
    project(&db).await;
    clock.advance(Duration::hours(500));
    assert_eq!(pass(&db, &job).await, []);
}

#[tokio::test]
async fn a_request_nobody_can_approve_goes_straight_to_the_admins() {
    let db = TestDb::new().await;
    let commands = service(&db);
    // Submitted before any approver is known (the read model is empty).
    commands
        .submit_request(&ctx("john@example.com"), web_request("orphan.example.com"))
        .await
        .expect("submitted");
    commands
        .grant_role(
            &ctx("root@example.com"),
            &Email::parse("boss@example.com").expect("email"),
            Role::Admin,
        )
        .await
        .expect("grant");
    project(&db).await;
    let clock = Arc::new(SettableClock::at(Utc::now() + Duration::hours(49)));
    let job = EscalationWorker::new(commands.clone(), clock);
    assert_eq!(pass(&db, &job).await, [Nudge::Escalate]);
    let to: Vec<String> = sqlx::query_scalar(
        "SELECT u.email FROM notifications n JOIN users u ON u.id = n.user_id \
          WHERE n.notification_type = 'approval_reminder' ORDER BY u.email",
    )
    .fetch_all(&db.pool)
    .await
    .expect("notifications");
    assert_eq!(to, ["boss@example.com", "root@example.com"]);
}

#[tokio::test]
async fn a_request_nobody_decides_on_is_cancelled_after_the_stale_days_and_its_requester_told() {
    let db = TestDb::new().await;
    let commands = service(&db);
    approver(&commands, "jane@example.com").await;
    project(&db).await;
    let stale = commands
        .submit_request(&ctx("john@example.com"), web_request("stale.example.com"))
        .await
        .expect("submitted");
    let clock = Arc::new(SettableClock::at(Utc::now()));
    let job = EscalationWorker::new(commands.clone(), clock.clone());

    // Off (0): nothing is cancelled, however long it waits.
    commands
        .set_config(
            &ctx("root@example.com"),
            "approval.stale_request.days",
            "0",
            None,
        )
        .await
        .expect("config");
    project(&db).await;
    clock.advance(Duration::days(20));
    let pass = job.step().await.expect("pass").expect("lease");
    assert!(pass.expired.is_empty(), "{pass:?}");

    commands
        .set_config(
            &ctx("root@example.com"),
            "approval.stale_request.days",
            "14",
            None,
        )
        .await
        .expect("config");
    project(&db).await;
    let pass = job.step().await.expect("pass").expect("lease");
    assert_eq!(pass.expired, [stale.request_number.to_string()]);
    project(&db).await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM certificate_requests WHERE id = $1")
            .bind(stale.request_id)
            .fetch_one(&db.pool)
            .await
            .expect("request row");
    assert_eq!(status, "cancelled");
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM approvals WHERE request_id = $1 AND status = 'pending'",
    )
    .bind(stale.request_id)
    .fetch_one(&db.pool)
    .await
    .expect("approvals");
    assert_eq!(pending, 0, "nothing waits on the approvers any more");
    let told: Vec<(String, String)> = sqlx::query_as(
        "SELECT u.email, n.subject FROM notifications n JOIN users u ON u.id = n.user_id \
          WHERE n.resource_id = $1 AND n.subject LIKE '%cancelled%'",
    )
    .bind(stale.request_id)
    .fetch_all(&db.pool)
    .await
    .expect("notifications");
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(told[0].0, "john@example.com");
    assert!(told[0].1.contains("no decision within 20 days"), "{told:?}");
    let audit: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE event_type = 'request_expired' AND resource_id = $1",
    )
    .bind(stale.request_id)
    .fetch_one(&db.pool)
    .await
    .expect("audit");
    assert_eq!(audit, 1);

    // Once cancelled it is neither cancelled again nor approvable.
    let pass = job.step().await.expect("pass").expect("lease");
    assert!(
        pass.expired.is_empty() && pass.nudged.is_empty(),
        "{pass:?}"
    );
    let late = commands
        .approve(&ctx("jane@example.com"), &stale.request_number, None)
        .await
        .expect_err("too late");
    assert!(
        late.to_string().contains("cancelled") || late.to_string().contains("withdrawn"),
        "{late}"
    );
}
