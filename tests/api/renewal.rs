//! Renewal: a new request like the original, with a fresh key, then the old one superseded.

use cert_assistant::commands::RevocationForm;
use cert_assistant::feed::Projector;

use crate::fixtures::{approver, ctx};
use crate::saga::{feed, issued, saga};

#[tokio::test]
async fn a_renewal_copies_the_request_gets_a_fresh_key_and_supersedes_the_old_one() {
    let db = crate::helpers::TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "renew.example.com").await;

    let refused = s.commands.renew(&ctx("mallory@example.com"), &serial).await;
    assert!(
        refused.is_err_and(|e| e.to_string().contains("owner or an admin")),
        "only the owner or an admin renews"
    );

    let renewal = s
        .commands
        .renew(&ctx("john@example.com"), &serial)
        .await
        .expect("renewal submitted");
    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (cn, why, csr_type, days): (String, String, String, i32) = sqlx::query_as(
        "SELECT common_name, business_justification, csr_type, validity_period_days \
           FROM certificate_requests WHERE request_number = $1",
    )
    .bind(renewal.request_number.to_string())
    .fetch_one(&db.pool)
    .await
    .expect("the renewal request");
    assert_eq!(cn, "renew.example.com");
    assert!(
        why.starts_with(&format!("Renewal of certificate {serial}")),
        "{why}"
    );
    assert_eq!((csr_type.as_str(), days), ("generated", 90));

    let jane = approver(&s.commands, "jane@example.com").await;
    s.commands
        .approve(&jane, &renewal.request_number, None)
        .await
        .expect("approved");
    feed(&db).await;
    s.worker.step().await.expect("renewal issued");
    let view = s
        .commands
        .request(&renewal.request_number)
        .await
        .expect("view");
    let new_serial = view.certificate.expect("the renewal is issued").serial;
    assert_ne!(new_serial.to_string(), serial);

    s.commands
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: serial.clone(),
                reason: "superseded".to_owned(),
                text: None,
            },
        )
        .await
        .expect("the old one is superseded");
}
