//! The people and settings the command service keeps in memory: current on every replica
//! once the change's notification arrives, current at once for the replica that made it,
//! and never answered from memory once a change may have been missed.

use std::time::Duration;

use cert_assistant::commands::Commands;
use cert_assistant::domain::actor::Role;

use crate::fixtures::{approver, ctx, service, web_request};
use crate::helpers::{TestDb, eventually};

const WITHIN: Duration = Duration::from_secs(30);

async fn role_on(commands: &Commands, email: &str) -> Role {
    commands.actor(&ctx(email)).await.expect("actor").role
}

async fn until_remembering(commands: &Commands) {
    commands.settings().await.expect("settings");
    eventually("the directory answers from memory", WITHIN, || async {
        commands.remembers()
    })
    .await;
}

#[tokio::test]
async fn people_and_settings_follow_every_replica_and_memory_never_outlives_its_listener() {
    let db = TestDb::new().await;
    let a = service(&db);
    role_on(&a, "carol@example.com").await;
    let b = service(&db);
    until_remembering(&a).await;
    until_remembering(&b).await;

    // The replica that makes a change answers with it at once.
    approver(&a, "dave@example.com").await;
    assert_eq!(role_on(&a, "dave@example.com").await, Role::Approver);
    a.set_config(
        &ctx("root@example.com"),
        "certificate.default_validity_days",
        "90",
        None,
    )
    .await
    .expect("set");
    let settings = a.settings().await.expect("settings");
    assert_eq!(
        settings.get("certificate.default_validity_days"),
        Some("90")
    );
    let submitted = a
        .submit_request(&ctx("erin@example.com"), web_request("app.example.com"))
        .await
        .expect("submitted");
    let shown = a.request(&submitted.request_number).await.expect("shown");
    assert_eq!(shown.requester.email.as_ref(), "erin@example.com");

    // Another replica follows by notification.
    eventually("b knows dave as an approver", WITHIN, || async {
        role_on(&b, "dave@example.com").await == Role::Approver
    })
    .await;
    eventually("b has the new default validity", WITHIN, || async {
        b.settings()
            .await
            .expect("settings")
            .get("certificate.default_validity_days")
            == Some("90")
    })
    .await;

    // Memory really answers: with the notifications off, b keeps what it knew...
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_notify_directory_after_insert")
        .execute(&db.pool)
        .await
        .expect("disable");
    approver(&a, "carol@example.com").await;
    assert_eq!(role_on(&b, "carol@example.com").await, Role::User);
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_notify_directory_after_insert")
        .execute(&db.pool)
        .await
        .expect("enable");

    // ...and once its listener's connection is lost (notifications sent meanwhile would be
    // lost too), it stops answering from memory, reconnects and reloads everything.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = current_database() AND query ILIKE 'LISTEN%directory%'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("terminate");
    assert_eq!(terminated, vec![true, true], "one listener per replica");
    eventually("b reads carol's new role", WITHIN, || async {
        role_on(&b, "carol@example.com").await == Role::Approver
    })
    .await;
    until_remembering(&b).await;
    assert_eq!(role_on(&b, "carol@example.com").await, Role::Approver);
    approver(&a, "frank@example.com").await;
    eventually("b follows changes again", WITHIN, || async {
        role_on(&b, "frank@example.com").await == Role::Approver
    })
    .await;
}
