//! A public certificate's life after ACM issued it: revoked in ACM (never at the internal
//! CA), renewed by ACM itself and taken in by the expiry job, and a request whose names ACM
//! could never validate failing with ACM's reason. Over HTTP against moto's ACM.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_acm::types::{CertificateStatus, RevocationReason};
use cert_assistant::adapters::clock::SettableClock;
use cert_assistant::commands::RevocationForm;
use cert_assistant::domain::certificate::Artifact;
use cert_assistant::domain::request::RequestStatus;
use cert_assistant::feed::Projector;
use cert_assistant::saga::ca_renewal::CaRenewals;
use cert_assistant::saga::expiry::ExpiryWorker;
use cert_assistant::saga::revocation::{RevocationFeed, RevocationWorker};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::acm::{Public, approved, approved_form, public_with, shop, step_now};
use crate::fixtures::ctx;
use crate::helpers::TestDb;

/// A public certificate for `cn`, requested, validated and issued by ACM.
struct Issued {
    certificate_id: Uuid,
    serial: String,
    arn: String,
    valid_to: DateTime<Utc>,
}

async fn issued(db: &TestDb, p: &Public, cn: &str) -> Issued {
    issued_form(db, p, shop(cn)).await
}

/// The same, for the public request `form` describes.
async fn issued_form(
    db: &TestDb,
    p: &Public,
    form: cert_assistant::commands::RequestForm,
) -> Issued {
    let submitted = approved_form(db, p, form).await;
    step_now(db, &p.worker).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    step_now(db, &p.worker).await;
    assert_eq!(
        p.commands
            .request_status(submitted.request_id)
            .await
            .expect("status"),
        Some(RequestStatus::Issued)
    );
    crate::helpers::project(&db.pool).await;
    let (certificate_id, serial, arn, valid_to) = sqlx::query_as(
        "SELECT c.id, c.serial_number, a.arn, c.valid_to FROM certificates c \
           JOIN acm_certificates a ON a.certificate_id = c.id WHERE c.request_id = $1",
    )
    .bind(submitted.request_id)
    .fetch_one(&db.pool)
    .await
    .expect("issued by ACM");
    Issued {
        certificate_id,
        serial,
        arn,
        valid_to,
    }
}

/// John revokes `cert` for `reason`; the revocation feed makes the job for it.
async fn revoke(db: &TestDb, p: &Public, cert: &Issued, reason: &str) {
    p.commands
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: cert.serial.clone(),
                reason: reason.to_owned(),
                text: None,
            },
        )
        .await
        .expect("revoked");
    Projector::for_consumer(db.pool.clone(), RevocationFeed)
        .catch_up(Duration::from_secs(30))
        .await
        .expect("feed");
}

#[tokio::test]
async fn a_public_certificate_is_revoked_in_acm_and_never_at_the_internal_ca() {
    let db = TestDb::new().await;
    let p = public_with(&db, &[]).await;
    let cert = issued(&db, &p, "revoked.example.com").await;

    revoke(&db, &p, &cert, "key_compromise").await;
    let worker = RevocationWorker::new(p.commands.clone(), p.internal.clone())
        .with_public_ca(Some(Arc::new(p.acm.clone())));
    assert_eq!(worker.step().await.expect("step"), 1);

    let described = p
        .client
        .describe_certificate()
        .certificate_arn(&cert.arn)
        .send()
        .await
        .expect("described")
        .certificate
        .expect("certificate");
    assert_eq!(described.status(), Some(&CertificateStatus::Revoked));
    assert_eq!(
        described.revocation_reason(),
        Some(&RevocationReason::KeyCompromise)
    );
    let internal: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM embedded_ca_certificates WHERE revoked_at IS NOT NULL",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(internal, 0, "the internal CA was not asked");
    assert!(
        p.commands
            .certificate(cert.certificate_id)
            .await
            .expect("certificate")
            .revoked_at_ca()
    );
    crate::helpers::project(&db.pool).await;
    let (acm_status, ca_status): (String, String) = sqlx::query_as(
        "SELECT a.status, r.adcs_status FROM acm_certificates a \
           JOIN certificate_revocations r ON r.certificate_id = a.certificate_id \
          WHERE a.arn = $1",
    )
    .bind(&cert.arn)
    .fetch_one(&db.pool)
    .await
    .expect("recorded");
    assert_eq!(
        (acm_status.as_str(), ca_status.as_str()),
        ("revoked", "revoked")
    );

    // Without ACM configured the operator is told how to revoke it there, not at ADCS.
    let db = TestDb::new().await;
    let p = public_with(&db, &[]).await;
    let cert = issued(&db, &p, "orphan.example.com").await;
    revoke(&db, &p, &cert, "superseded").await;
    RevocationWorker::new(p.commands.clone(), p.internal.clone())
        .step()
        .await
        .expect("step");
    crate::helpers::project(&db.pool).await;
    let task: String = sqlx::query_scalar(
        "SELECT adcs_error_message FROM certificate_revocations WHERE certificate_id = $1",
    )
    .bind(cert.certificate_id)
    .fetch_one(&db.pool)
    .await
    .expect("task");
    assert!(
        task.contains("aws acm revoke-certificate")
            && task.contains(&cert.arn)
            && task.contains("SUPERSEDED")
            && !task.contains("certutil"),
        "{task}"
    );
}

#[tokio::test]
async fn a_renewal_by_acm_is_taken_in_by_the_expiry_job_and_downloaded_anew() {
    let db = TestDb::new().await;
    let p = public_with(&db, &[]).await;
    let cert = issued(&db, &p, "renewed.example.com").await;
    let john = ctx("john@example.com");
    let first = p
        .commands
        .download(&john, &cert.serial, Artifact::Certificate, p.store.as_ref())
        .await
        .expect("certificate");
    p.commands
        .download(&john, &cert.serial, Artifact::PrivateKey, p.store.as_ref())
        .await
        .expect("the first key");

    // 50 days before it expires, nothing renewed yet: the reminder says ACM renews it.
    let clock = Arc::new(SettableClock::at(
        cert.valid_to - chrono::Duration::days(50),
    ));
    let expiry = ExpiryWorker::new(p.commands.clone(), clock.clone()).with_ca_renewals(Some(
        CaRenewals::new(p.commands.clone(), Arc::new(p.acm.clone()), p.store.clone()),
    ));
    let pass = expiry.step().await.expect("pass").expect("lease");
    assert_eq!((pass.renewed, pass.reminded), (0, 1));
    crate::helpers::project(&db.pool).await;
    let reminder: String = sqlx::query_scalar(
        "SELECT body FROM notifications WHERE notification_type = 'certificate_expiring'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("reminded");
    assert!(
        reminder.contains("AWS Certificate Manager renews it by itself")
            && reminder.contains("DNS validation records")
            && !reminder.contains("/cert renew"),
        "{reminder}"
    );

    // ACM renews it (the managed renewal, asked for now): the next pass takes it in.
    p.client
        .renew_certificate()
        .certificate_arn(&cert.arn)
        .send()
        .await
        .expect("renewed at ACM");
    clock.advance(chrono::Duration::days(1));
    let pass = expiry.step().await.expect("pass").expect("lease");
    assert_eq!((pass.renewed, pass.reminded), (1, 0));
    let state = p
        .commands
        .certificate(cert.certificate_id)
        .await
        .expect("certificate");
    let serial = state.serial().expect("serial").to_string();
    assert_ne!(serial, cert.serial, "a new serial");
    assert!(state.valid_to().expect("valid to") > cert.valid_to);
    assert!(state.reminders().is_empty());

    // The new certificate, found by its new serial (and its old one), with its own key.
    let renewed = p
        .commands
        .download(&john, &serial, Artifact::Certificate, p.store.as_ref())
        .await
        .expect("the renewed certificate");
    assert_ne!(renewed.pem, first.pem);
    let by_old = p
        .commands
        .download(&john, &cert.serial, Artifact::Certificate, p.store.as_ref())
        .await
        .expect("found by the old serial too");
    assert_eq!(by_old.pem, renewed.pem);
    let key = p
        .commands
        .download(&john, &serial, Artifact::PrivateKey, p.store.as_ref())
        .await
        .expect("the renewed key, once");
    let text = crate::acm::openssl_reads(&renewed.pem, &key.pem);
    assert!(
        text.to_ascii_uppercase()
            .contains(&serial.to_ascii_uppercase()),
        "{text}"
    );

    crate::helpers::project(&db.pool).await;
    let (recorded, renewals, reminders): (String, i32, serde_json::Value) = sqlx::query_as(
        "SELECT c.serial_number, a.renewals, c.expiry_notifications FROM certificates c \
           JOIN acm_certificates a ON a.certificate_id = c.id WHERE c.id = $1",
    )
    .bind(cert.certificate_id)
    .fetch_one(&db.pool)
    .await
    .expect("projected");
    assert_eq!((recorded.as_str(), renewals), (serial.as_str(), 1));
    assert_eq!(reminders, serde_json::json!([]), "reminders start anew");
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM notifications WHERE subject LIKE '%was renewed' \
            AND recipient_email = 'john@example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("told");
    assert_eq!(told, 1);

    // Nothing newer at ACM: no second renewal.
    let pass = expiry.step().await.expect("pass").expect("lease");
    assert_eq!(pass.renewed, 0);
}

#[tokio::test]
async fn names_acm_cannot_validate_fail_the_request_with_acms_reason() {
    let db = TestDb::new().await;
    let p = public_with(&db, &[("MOTO_ACM_NEVER_VALIDATES", "stuck.example.com")]).await;
    let submitted = approved(&db, &p, "stuck.example.com").await;
    step_now(&db, &p.worker).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    step_now(&db, &p.worker).await;
    let view = p
        .commands
        .request(&submitted.request_number)
        .await
        .expect("view");
    assert_eq!(view.status, RequestStatus::Failed);
    let failure = view.failure.expect("why");
    assert!(
        failure.contains("VALIDATION_TIMED_OUT") && failure.contains("DNS validation records"),
        "{failure}"
    );
    crate::helpers::project(&db.pool).await;
    let told: String = sqlx::query_scalar(
        "SELECT body FROM notifications WHERE notification_type = 'issuance_failed' \
            AND recipient_email = 'john@example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("told");
    assert!(told.contains("VALIDATION_TIMED_OUT"), "{told}");
}

#[tokio::test]
async fn the_requester_is_reminded_of_missing_validation_records_once_a_day() {
    let db = TestDb::new().await;
    let p = public_with(&db, &[("MOTO_ACM_VALIDATION_WAIT", "3600")]).await;
    let submitted = approved(&db, &p, "slow.example.com").await;
    let asked = async || {
        crate::helpers::project(&db.pool).await;
        sqlx::query_as::<_, (String, String)>(
            "SELECT subject, body FROM notifications \
              WHERE notification_type = 'dns_validation_required' ORDER BY created_at",
        )
        .fetch_all(&db.pool)
        .await
        .expect("notifications")
    };
    step_now(&db, &p.worker).await;
    step_now(&db, &p.worker).await;
    assert_eq!(asked().await.len(), 1, "told once on the first day");
    // The records are on the request too: in chat and in the CLI's view.
    let status = crate::acm::chat_status(&p, &submitted).await;
    assert!(
        status.contains("DNS record for www.slow.example.com")
            && status.contains("_d930b28be6c5927595552b219965053e.slow.example.com. CNAME"),
        "{status}"
    );
    let view = p
        .commands
        .request(&submitted.request_number)
        .await
        .expect("view");
    assert_eq!(view.validation_records.len(), 2, "{view:?}");

    // A day later it still waits: one reminder, however often the saga polls that day.
    sqlx::query(
        "UPDATE issuance_submissions SET submitting_at = now() - interval '25 hours' \
          WHERE request_id = $1",
    )
    .bind(submitted.request_id)
    .execute(&db.pool)
    .await
    .expect("a day ago");
    step_now(&db, &p.worker).await;
    step_now(&db, &p.worker).await;
    let told = asked().await;
    assert_eq!(told.len(), 2, "{told:?}");
    let (subject, body) = &told[1];
    assert!(subject.contains("still missing"), "{subject}");
    assert!(
        body.contains("waiting for a day")
            && body.contains("72 hours")
            && body.contains("_d930b28be6c5927595552b219965053e.slow.example.com"),
        "{body}"
    );
}

#[tokio::test]
async fn in_slack_a_public_request_goes_from_request_to_download_through_acm() {
    use cert_assistant::app::Outbound;

    use crate::slack::text_of;

    let moto = crate::aws::moto_with(&[("MOTO_ACM_VALIDATION_WAIT", "2")]).await;
    let endpoint = moto.endpoint.clone();
    // The service as `serve` builds it, with ACM configured; only the AWS credentials are
    // handed over rather than read from the environment.
    let t = crate::slack::slack_app_outbound(
        TestDb::new().await,
        |config| {
            config.acm.enabled = true;
            config.acm.region = Some("us-east-1".to_owned());
            config.acm.endpoint = Some(endpoint);
        },
        Outbound {
            aws_credentials: Some(aws_sdk_acm::config::Credentials::new(
                "testing", "testing", None, None, "test",
            )),
            ..Outbound::default()
        },
    )
    .await;
    let commands = crate::fixtures::service(&t.db);
    crate::fixtures::approver(&commands, "jane@example.com").await;
    crate::helpers::project(&t.db.pool).await;
    let deliver = || crate::helpers::deliver(&t.db.pool, &t.workers.outbox, [t.notifier()]);
    let dms_to = |channel: &str| {
        t.calls_to("chat.postMessage")
            .into_iter()
            .filter(|m| m["channel"] == channel)
            .map(|m| text_of(&m) + &m["blocks"].to_string())
            .collect::<Vec<_>>()
    };
    let issue = async || {
        Projector::for_consumer(
            t.db.pool.clone(),
            cert_assistant::saga::issuance::IssuanceFeed,
        )
        .catch_up(Duration::from_secs(30))
        .await
        .expect("feed");
        sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'queued'")
            .execute(&t.db.pool)
            .await
            .expect("due now");
        t.workers.issuance.step().await.expect("step");
    };

    let reply = t
        .cert(
            "UJOHN",
            "request cn=slack.example.com san=www.slack.example.com days=90 ca=public \
             why=\"Web shop\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    deliver().await;
    let asked = dms_to("D-UJANE").join("\n");
    assert!(
        asked.contains("public"),
        "the approver sees the CA: {asked}"
    );
    let approved = text_of(&t.cert("UJANE", &format!("approve {number}")).await);
    assert!(approved.contains("approved"), "{approved}");

    // ACM waits: John and Jane's approval message show the records to create.
    issue().await;
    crate::helpers::project(&t.db.pool).await;
    deliver().await;
    let record = "_d930b28be6c5927595552b219965053e.www.slack.example.com.";
    assert!(
        dms_to("D-UJOHN").iter().any(|m| m.contains(record)),
        "{:?}",
        dms_to("D-UJOHN")
    );
    let updated = t
        .calls_to("chat.update")
        .last()
        .map(|m| text_of(m) + &m["blocks"].to_string())
        .unwrap_or_default();
    assert!(
        updated.contains("Approved by jane@example.com") && updated.contains(record),
        "{updated}"
    );

    // Validated: issued by ACM, announced, downloaded from the link.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    issue().await;
    deliver().await;
    crate::helpers::project(&t.db.pool).await;
    let (serial, issuer): (String, String) = sqlx::query_as(
        "SELECT c.serial_number, c.issuer_dn FROM certificates c \
           JOIN acm_certificates a ON a.certificate_id = c.id",
    )
    .fetch_one(&t.db.pool)
    .await
    .expect("issued by ACM");
    assert!(issuer.contains("Amazon"), "{issuer}");
    assert!(
        dms_to("D-UJOHN")
            .iter()
            .any(|m| m.contains("is issued (serial") && m.contains(&serial)),
        "{:?}",
        dms_to("D-UJOHN")
    );
    let link = text_of(&t.cert("UJOHN", &format!("download {serial}")).await);
    let token = crate::helpers::download_token_in(&link);
    let pem = reqwest::get(format!("{}/downloads/{token}", t.app))
        .await
        .expect("download")
        .text()
        .await
        .expect("body");
    assert!(pem.contains("BEGIN CERTIFICATE"), "{pem}");
}

#[tokio::test]
async fn a_certificate_for_aws_services_stays_in_acm_with_nothing_to_download_or_revoke_here() {
    let db = TestDb::new().await;
    let p = public_with(&db, &[]).await;
    // Only a public certificate can stay in ACM.
    let mut internal = shop("intranet.example.com");
    internal.requested_ca_type = Some("internal".to_owned());
    internal.export = Some("no".to_owned());
    let refused = p
        .commands
        .submit_request(&ctx("john@example.com"), internal)
        .await
        .expect_err("refused");
    assert!(
        refused.to_string().contains("only a public certificate"),
        "{refused}"
    );

    let mut form = shop("alb.example.com");
    form.export = Some("no".to_owned());
    let Issued { serial, arn, .. } = issued_form(&db, &p, form).await;
    let exported: bool = sqlx::query_scalar("SELECT exported FROM acm_certificates WHERE arn = $1")
        .bind(&arn)
        .fetch_one(&db.pool)
        .await
        .expect("ACM's record");
    assert!(!exported);
    let described = p
        .client
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await
        .expect("described")
        .certificate
        .expect("certificate");
    assert_eq!(
        described.options().and_then(|o| o.export()),
        Some(&aws_sdk_acm::types::CertificateExport::Disabled),
        "requested not exportable"
    );
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM private_keys")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(
        keys, 0,
        "no key is kept: the generated one is not the certificate's"
    );

    // The certificate itself is public: readable here; the key is not, and never was.
    let john = ctx("john@example.com");
    let certificate = p
        .commands
        .download(&john, &serial, Artifact::Certificate, p.store.as_ref())
        .await
        .expect("the certificate");
    assert!(certificate.pem.contains("BEGIN CERTIFICATE"));
    let key = p
        .commands
        .download(&john, &serial, Artifact::PrivateKey, p.store.as_ref())
        .await
        .expect_err("no key");
    assert!(
        key.to_string().contains("stays in AWS Certificate Manager")
            && key.to_string().contains(&arn),
        "{key}"
    );
    // ACM revokes only exported certificates: refused with what to do instead.
    let revoked = p
        .commands
        .revoke(
            &john,
            RevocationForm {
                certificate: serial.clone(),
                reason: "superseded".to_owned(),
                text: None,
            },
        )
        .await
        .expect_err("refused");
    assert!(
        revoked.to_string().contains("aws acm delete-certificate"),
        "{revoked}"
    );
}
