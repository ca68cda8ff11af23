//! The authorization matrix: every chat command, as every role (and as someone never seen
//! before). Allowed ones do what they say; refused ones say why, change nothing, and are
//! audited as refused attempts.

use cert_assistant::chat::command;
use cert_assistant::chat::service::ChatService;
use cert_assistant::domain::actor::Role;
use cert_assistant::domain::values::Email;
use cert_assistant::feed::Projector;

use crate::fixtures::{ctx, service, web_request};
use crate::helpers::TestDb;

/// The owner of the requests and certificates (the saga helpers issue to john).
const OWNER: &str = "john@example.com";
const PEOPLE: [(&str, &str); 5] = [
    ("user", "user@example.com"),
    ("approver", "approver@example.com"),
    ("admin", "root@example.com"),
    ("auditor", "auditor@example.com"),
    ("stranger", "stranger@example.com"),
];

async fn project(db: &TestDb) {
    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
}

#[tokio::test]
async fn every_command_as_every_role_is_allowed_or_refused_and_audited() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let root = ctx("root@example.com");
    for (role, email) in [
        ("approver", PEOPLE[1].1),
        ("auditor", PEOPLE[3].1),
        ("user", PEOPLE[0].1),
    ] {
        commands
            .grant_role(
                &root,
                &Email::parse(email).expect("email"),
                Role::parse(role).expect("role"),
            )
            .await
            .expect("grant");
    }
    let s = crate::saga::saga(&db).await;
    project(&db).await;
    let chat = ChatService::new(commands.clone());

    // (command, who may, what a refusal says). `{req}` is a fresh request of the owner's,
    // `{serial}` a fresh certificate of the owner's, for every attempt.
    let matrix: [(&str, &[&str], &str); 13] = [
        ("approvals", &["approver", "admin"], "only approvers"),
        (
            "status {req}",
            &["approver", "admin", "auditor"],
            "its approvers, admins and auditors may see it",
        ),
        ("approve {req}", &["approver", "admin"], "only approvers"),
        (
            "reject {req} not needed",
            &["approver", "admin"],
            "only approvers",
        ),
        ("cancel {req}", &["admin"], "only the requester or an admin"),
        ("audit", &["auditor", "admin"], "only auditors"),
        (
            "config get approval.escalation.hours",
            &["admin"],
            "only admins",
        ),
        (
            "grant someone@example.com approver",
            &["admin"],
            "only admins",
        ),
        (
            "request cn=matrix.example.com why=testing days=90",
            &["user", "approver", "admin", "stranger"],
            "auditors have read-only access",
        ),
        (
            "revoke {serial} superseded",
            &["admin"],
            "only the certificate's owner or an admin",
        ),
        (
            "renew {serial}",
            &["admin"],
            "only the certificate's owner or an admin",
        ),
        ("download {serial} private_key", &[], "only the owner"),
        ("confirm-revocation {revoked}", &["admin"], "only an admin"),
    ];
    let mut refusals: Vec<(String, String)> = Vec::new();
    for (template, allowed, refusal) in matrix {
        for (role, email) in PEOPLE {
            let mut text = template.to_owned();
            if text.contains("{req}") {
                let submitted = commands
                    .submit_request(&ctx(OWNER), web_request("owned.example.com"))
                    .await
                    .expect("submitted");
                text = text.replace("{req}", submitted.request_number.as_ref());
            }
            if text.contains("{revoked}") {
                // Revoked by its owner; the CA could not be told (an operator's task).
                let serial = crate::saga::issued(&db, &s, "matrix-revoked.example.com").await;
                let revoked = commands
                    .revoke(
                        &ctx(OWNER),
                        cert_assistant::commands::RevocationForm {
                            certificate: serial.clone(),
                            reason: "superseded".to_owned(),
                            text: None,
                        },
                    )
                    .await
                    .expect("revoked");
                let cert_assistant::commands::Revocation::Revoked { certificate_id, .. } = revoked
                else {
                    panic!("revoked at once");
                };
                commands
                    .record_ca_revocation(certificate_id, Err("revoke it by hand".to_owned()))
                    .await
                    .expect("operator task");
                text = text.replace("{revoked}", &serial);
            }
            if text.contains("{serial}") {
                let serial = crate::saga::issued(&db, &s, "matrix-cert.example.com").await;
                text = text.replace("{serial}", &serial);
            }
            let parsed = command::parse(&text).expect("a valid command");
            let answer = chat.handle(&ctx(email), parsed).await.plain_text();
            let refused = answer.contains(refusal);
            if allowed.contains(&role) {
                assert!(!refused, "{role} may `{text}`, but: {answer}");
                assert!(
                    !answer.contains(":warning:"),
                    "{role} `{text}` failed: {answer}"
                );
            } else {
                assert!(refused, "{role} may not `{text}`, but got: {answer}");
                refusals.push((email.to_owned(), text));
            }
        }
    }
    // Every refusal is in the audit trail under the person who tried.
    project(&db).await;
    for (email, text) in &refusals {
        let audited: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM audit_logs WHERE user_email = $1 AND result = 'failure'",
        )
        .bind(email)
        .fetch_one(&db.pool)
        .await
        .expect("audit");
        assert!(
            audited > 0,
            "the refusal of `{text}` for {email} is not audited"
        );
    }
    let expected = refusals
        .iter()
        .filter(|(e, _)| e == "user@example.com")
        .count();
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE user_email = 'user@example.com' AND result = 'failure'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audit");
    let actions: Vec<String> = sqlx::query_scalar(
        "SELECT event_type FROM audit_logs WHERE user_email = 'user@example.com' \
            AND result = 'failure' ORDER BY timestamp",
    )
    .fetch_all(&db.pool)
    .await
    .expect("audit");
    assert_eq!(
        usize::try_from(audited).unwrap_or_default(),
        expected,
        "one audited refusal per refused attempt: {actions:?} for {:?}",
        refusals
            .iter()
            .filter(|(e, _)| e == "user@example.com")
            .map(|(_, t)| t)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_refused_grant_creates_no_user_and_no_one_revokes_for_remove_from_crl() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let s = crate::saga::saga(&db).await;
    let chat = ChatService::new(commands.clone());

    // A plain user tries to make a never-seen address an admin: refused, audited, and the
    // address is not registered as a side effect.
    let answer = chat
        .handle(
            &ctx("user@example.com"),
            command::parse("grant newcomer@example.com admin").expect("a valid command"),
        )
        .await
        .plain_text();
    assert!(answer.contains("only admins"), "{answer}");
    project(&db).await;
    let registered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'newcomer@example.com'")
            .fetch_one(&db.pool)
            .await
            .expect("users");
    assert_eq!(registered, 0, "a refused grant registered its target");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE user_email = 'user@example.com' \
            AND event_type = 'grant_role_refused' AND result = 'failure'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 1);

    // remove_from_crl takes a certificate off hold; it is no reason to revoke one, not even
    // for its owner or an admin.
    let serial = crate::saga::issued(&db, &s, "offhold.example.com").await;
    for who in [OWNER, "root@example.com"] {
        let answer = chat
            .handle(
                &ctx(who),
                command::parse(&format!("revoke {serial} remove_from_crl")).expect("command"),
            )
            .await
            .plain_text();
        assert!(answer.contains("not a reason to revoke"), "{who}: {answer}");
    }
    project(&db).await;
    let status: String =
        sqlx::query_scalar("SELECT status FROM certificates WHERE serial_number = $1")
            .bind(&serial)
            .fetch_one(&db.pool)
            .await
            .expect("certificate");
    assert_eq!(status, "active");
}
