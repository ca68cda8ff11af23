//! The write side against PostgreSQL: histories stored and reloaded, concurrency, request
//! numbers, key encryption, and the CLI path.

use std::collections::HashSet;

use cert_assistant::commands::{CommandError, Decision, RequestForm, RevocationForm};
use cert_assistant::domain::key_material::EncryptedPrivateKey;
use cert_assistant::domain::request::RequestStatus;
use cert_assistant::domain::values::{CommonName, DnsName, KeyAlgorithm, RequestNumber};
use cert_assistant::pki::envelope::KeyEncryptionKey;
use chrono::Utc;
use sqlx::Row;
use uuid::Uuid;

use crate::fixtures::{KEK, approver, ctx, issued_certificate, service, web_request};
use crate::helpers::TestDb;

async fn event_types(db: &TestDb, aggregate_type: &str, id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
         ORDER BY sequence",
    )
    .bind(aggregate_type)
    .bind(id.to_string())
    .fetch_all(&db.pool)
    .await
    .expect("events")
}

#[tokio::test]
async fn a_full_history_is_stored_and_reloaded() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let jane = approver(&commands, "jane@example.com").await;

    let submitted = commands
        .submit_request(&ctx("john@example.com"), web_request("app.example.com"))
        .await
        .expect("submitted");
    assert_eq!(submitted.required_approvals, 1);
    let number = submitted.request_number.clone();
    assert_eq!(
        commands
            .approve(&jane, &number, Some("looks right"))
            .await
            .expect("approved"),
        Decision::Approved
    );
    commands
        .start_issuance(submitted.request_id)
        .await
        .expect("started");
    let john = commands
        .actor(&ctx("john@example.com"))
        .await
        .expect("john");
    let certificate = issued_certificate(&submitted, john, "7F01", 90, false);
    let certificate_id = certificate.certificate_id;
    commands.record_issuance(certificate).await.expect("issued");
    commands
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: "7f:01".to_owned(),
                reason: "superseded".to_owned(),
                text: Some("replaced".to_owned()),
            },
        )
        .await
        .expect("revoked");

    // A fresh service (as after a restart) reloads the same state from the events.
    let reloaded = service(&db).request(&number).await.expect("reload");
    assert_eq!(reloaded.status, RequestStatus::Revoked);
    assert_eq!(
        event_types(&db, "CertificateRequest", submitted.request_id).await,
        [
            "RequestCreated",
            "RequestSubmitted",
            "RequestApproved",
            "IssuanceStarted",
            "RequestIssued",
            "RequestRevoked"
        ]
    );
    assert_eq!(
        event_types(&db, "Approval", submitted.request_id).await,
        [
            "ApprovalOpened",
            "ApprovalGranted",
            "ApprovalPolicySatisfied"
        ]
    );
    assert_eq!(
        event_types(&db, "Certificate", certificate_id).await,
        ["CertificateIssued", "CertificateRevoked"]
    );
    // Revoking again is refused with a clear message, and nothing is appended.
    let again = service(&db)
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: certificate_id.to_string(),
                reason: "key_compromise".to_owned(),
                text: None,
            },
        )
        .await
        .expect_err("already revoked");
    assert!(again.to_string().contains("already revoked"), "{again}");
    assert_eq!(
        event_types(&db, "Certificate", certificate_id).await.len(),
        2
    );

    // Every event is versioned and carries who, where and which action caused it.
    let rows = sqlx::query(
        "SELECT event_version, metadata::text AS metadata, payload::text AS payload FROM events",
    )
    .fetch_all(&db.pool)
    .await
    .expect("events");
    for row in rows {
        assert_eq!(row.get::<String, _>("event_version"), "1.0");
        let metadata: serde_json::Value =
            serde_json::from_str(&row.get::<String, _>("metadata")).expect("json");
        assert!(metadata["correlation_id"].is_string(), "{metadata}");
        assert!(metadata["platform"].is_string(), "{metadata}");
        // No private key material in clear, ever.
        assert!(!row.get::<String, _>("payload").contains("PRIVATE KEY"));
    }
}

#[tokio::test]
async fn twenty_concurrent_approvals_yield_exactly_one_decision() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let submitted = commands
        .submit_request(&ctx("john@example.com"), web_request("race.example.com"))
        .await
        .expect("submitted");
    let mut approvers = Vec::new();
    for i in 0..20 {
        approvers.push(approver(&commands, &format!("approver{i}@example.com")).await);
    }
    let mut tasks = Vec::new();
    for approver in approvers {
        let commands = commands.clone();
        let number = submitted.request_number.clone();
        tasks.push(tokio::spawn(async move {
            commands.approve(&approver, &number, None).await
        }));
    }
    let mut approved = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(Decision::Approved) => approved += 1,
            Ok(other) => panic!("unexpected decision {other:?}"),
            Err(CommandError::Refused(message)) => {
                assert!(message.contains("already approved"), "{message}");
            }
            Err(CommandError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(approved, 1);
    let approval_events = event_types(&db, "Approval", submitted.request_id).await;
    assert_eq!(
        approval_events,
        [
            "ApprovalOpened",
            "ApprovalGranted",
            "ApprovalPolicySatisfied"
        ]
    );
    let request_events = event_types(&db, "CertificateRequest", submitted.request_id).await;
    assert_eq!(
        request_events,
        ["RequestCreated", "RequestSubmitted", "RequestApproved"]
    );
    // No gaps: every aggregate's sequence runs 1..=n.
    let gaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT aggregate_id, max(sequence) AS m, count(*) AS c \
           FROM events GROUP BY aggregate_type, aggregate_id) s WHERE m <> c",
    )
    .fetch_one(&db.pool)
    .await
    .expect("gaps");
    assert_eq!(gaps, 0);
}

#[tokio::test]
async fn request_numbers_stay_unique_under_concurrent_creation() {
    let db = TestDb::new().await;
    let day = Utc::now().date_naive();
    // Four replicas submitting ten at once each: every number of the day once, no gaps.
    let replicas: Vec<_> = (0..4).map(|_| service(&db)).collect();
    let mut tasks = Vec::new();
    for (r, commands) in replicas.iter().enumerate() {
        for i in 0..10 {
            let commands = commands.clone();
            tasks.push(tokio::spawn(async move {
                commands
                    .submit_request(
                        &ctx(&format!("user{r}-{i}@example.com")),
                        web_request(&format!("host{r}-{i}.example.com")),
                    )
                    .await
            }));
        }
    }
    let mut numbers = HashSet::new();
    for task in tasks {
        let number = task.await.expect("task").expect("submitted").request_number;
        assert!(numbers.insert(number.to_string()), "duplicate {number}");
    }
    let expected: HashSet<String> = (1..=40)
        .map(|n| RequestNumber::new(day, n).expect("number").to_string())
        .collect();
    assert_eq!(numbers, expected);
    let allocated: i64 = sqlx::query_scalar("SELECT count(*) FROM request_number_allocations")
        .fetch_one(&db.pool)
        .await
        .expect("allocations");
    assert_eq!(allocated, 40);

    // And through the whole submission path.
    let commands = service(&db);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let commands = commands.clone();
        tasks.push(tokio::spawn(async move {
            commands
                .submit_request(
                    &ctx(&format!("user{i}@example.com")),
                    web_request(&format!("host{i}.example.com")),
                )
                .await
        }));
    }
    let mut submitted = HashSet::new();
    for task in tasks {
        let request = task.await.expect("task").expect("submitted");
        assert!(submitted.insert(request.request_number.to_string()));
    }
    assert_eq!(submitted.len(), 8);

    // Once the day's numbers run out (another replica took the last), a submission is
    // refused, saying why, and nothing is written.
    sqlx::query("UPDATE request_number_counters SET last_value = 99999")
        .execute(&db.pool)
        .await
        .expect("counter");
    let refused = replicas[0]
        .submit_request(&ctx("late@example.com"), web_request("late.example.com"))
        .await;
    match refused {
        Err(CommandError::Refused(message)) => {
            assert!(message.contains("no request numbers left"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let requests: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT aggregate_id) FROM events WHERE aggregate_type = 'CertificateRequest'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("requests");
    assert_eq!(requests, 48);
}

#[tokio::test]
async fn code_signing_needs_two_approvers() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let jane = approver(&commands, "jane@example.com").await;
    let olga = approver(&commands, "olga@example.com").await;
    let form = RequestForm {
        common_name: "Build Signing".to_owned(),
        certificate_type: "code_signing".to_owned(),
        key_algorithm: Some("RSA_2048".to_owned()),
        justification: "Release builds".to_owned(),
        ..RequestForm::default()
    };
    let submitted = commands
        .submit_request(&ctx("john@example.com"), form)
        .await
        .expect("submitted");
    assert_eq!(submitted.required_approvals, 2);
    let number = submitted.request_number;
    assert_eq!(
        commands.approve(&jane, &number, None).await.expect("first"),
        Decision::Recorded {
            approvals: 1,
            required: 2
        }
    );
    assert_eq!(
        commands.request(&number).await.expect("view").status,
        RequestStatus::PendingApproval
    );
    assert_eq!(
        commands
            .approve(&olga, &number, None)
            .await
            .expect("second"),
        Decision::Approved
    );
    assert_eq!(
        commands.request(&number).await.expect("view").status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn a_rejection_rejects_the_request_and_later_clicks_learn_who_decided() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let jane = approver(&commands, "jane@example.com").await;
    let olga = approver(&commands, "olga@example.com").await;
    let submitted = commands
        .submit_request(&ctx("john@example.com"), web_request("no.example.com"))
        .await
        .expect("submitted");
    let number = submitted.request_number;
    let missing = commands
        .reject(&jane, &number, "  ")
        .await
        .expect_err("a reason is required");
    assert_eq!(missing.to_string(), "a rejection needs a reason");
    commands
        .reject(&jane, &number, "wrong team")
        .await
        .expect("rejected");
    assert_eq!(
        commands.request(&number).await.expect("view").status,
        RequestStatus::Rejected
    );
    let late = commands
        .approve(&olga, &number, None)
        .await
        .expect_err("final");
    assert!(
        late.to_string()
            .contains("already rejected by jane@example.com"),
        "{late}"
    );
}

#[tokio::test]
async fn invalid_forms_report_every_bad_field() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let form = RequestForm {
        common_name: "not a host".to_owned(),
        subject_alternative_names: vec!["ok.example.com, bad..name".to_owned()],
        country: Some("UK".to_owned()),
        certificate_type: "web_server".to_owned(),
        validity_days: Some("400".to_owned()),
        justification: " ".to_owned(),
        ..RequestForm::default()
    };
    let Err(CommandError::Invalid(errors)) = commands
        .submit_request(&ctx("john@example.com"), form)
        .await
    else {
        panic!("the form is refused field by field");
    };
    let fields: Vec<&str> = errors.iter().map(|e| e.field).collect();
    for field in [
        "subject_alternative_names",
        "country",
        "validity_days",
        "business_justification",
        "common_name",
    ] {
        assert!(fields.contains(&field), "{field} missing from {fields:?}");
    }
    let count: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'CertificateRequest'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count");
    assert_eq!(count, 0, "a refused form records nothing");
}

#[tokio::test]
async fn a_generated_key_is_stored_encrypted_and_can_be_destroyed_for_good() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let submitted = commands
        .submit_request(&ctx("john@example.com"), web_request("keys.example.com"))
        .await
        .expect("submitted");
    let payload: serde_json::Value = sqlx::query_scalar(
        "SELECT payload::jsonb FROM events WHERE aggregate_type = 'CertificateRequest' \
           AND aggregate_id = $1 AND event_type = 'RequestCreated'",
    )
    .bind(submitted.request_id.to_string())
    .fetch_one(&db.pool)
    .await
    .expect("created");
    let created = &payload["RequestCreated"];
    assert_eq!(created["csr_type"], "generated");
    assert!(
        created["csr_pem"]
            .as_str()
            .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE REQUEST"))
    );
    let encrypted: EncryptedPrivateKey =
        serde_json::from_value(created["private_key"].clone()).expect("encrypted key");
    let kek = KeyEncryptionKey::from_base64(KEK).expect("kek");
    let wrapped = cert_assistant::pki::key_store::load_data_key(&db.pool, encrypted.data_key_id)
        .await
        .expect("load")
        .expect("the data key exists");
    let pem = kek
        .unwrap(&wrapped)
        .expect("unwrap")
        .decrypt(&encrypted)
        .expect("decrypt");
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));

    assert!(
        cert_assistant::pki::key_store::destroy_data_key(&db.pool, encrypted.data_key_id)
            .await
            .expect("destroy")
    );
    assert!(
        cert_assistant::pki::key_store::load_data_key(&db.pool, encrypted.data_key_id)
            .await
            .expect("load")
            .is_none(),
        "a destroyed key can no longer be unwrapped"
    );
}

#[tokio::test]
async fn an_uploaded_csr_must_match_the_request() {
    let db = TestDb::new().await;
    let commands = service(&db);
    let subject = cert_assistant::domain::request::Subject {
        common_name: CommonName::parse("api.example.com").expect("cn"),
        organization: None,
        organizational_unit: None,
        locality: None,
        state_province: None,
        country: None,
        email_address: None,
        subject_alternative_names: vec![DnsName::parse("api.example.com").expect("san")],
    };
    let csr = cert_assistant::pki::keygen::generate(&subject, KeyAlgorithm::EccP384)
        .expect("csr")
        .csr_pem
        .clone();
    let mut form = web_request("other.example.com");
    form.subject_alternative_names.clear();
    form.csr_pem = Some(csr.clone());
    let error = commands
        .submit_request(&ctx("john@example.com"), form)
        .await
        .expect_err("mismatch");
    assert!(error.to_string().contains("does not match"), "{error}");

    let mut form = web_request("api.example.com");
    form.subject_alternative_names.clear();
    form.csr_pem = Some(csr.replace('\n', "\r\n"));
    let submitted = commands
        .submit_request(&ctx("john@example.com"), form)
        .await
        .expect("a matching CSR is accepted");
    let created: serde_json::Value = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'RequestCreated' FROM events WHERE aggregate_id = $1 \
           AND event_type = 'RequestCreated'",
    )
    .bind(submitted.request_id.to_string())
    .fetch_one(&db.pool)
    .await
    .expect("created");
    assert_eq!(created["csr_type"], "uploaded");
    assert_eq!(created["key_algorithm"], "ECC_P384");
    assert!(created["private_key"].is_null());
}

#[tokio::test]
async fn the_cli_creates_and_approves_a_request() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"))
            .args(args)
            .env("DATABASE_URL", db.url())
            .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", KEK)
            .env(
                "CERT_ASSISTANT_KEYS__ENCRYPTION_KEY_FILE",
                dir.path().join("kek"),
            )
            .env("CERT_ASSISTANT_AUTH__ADMINS", "root@example.com")
            .env_remove("RUST_LOG")
            .output()
            .expect("run");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, out, err) = run(&[
        "request",
        "create",
        "--as",
        "john@example.com",
        "--cn",
        "cli.example.com",
        "--why",
        "CLI test",
        "--days",
        "90",
    ]);
    assert!(ok, "{err}");
    let number = out
        .split_whitespace()
        .next()
        .expect("the number is printed first")
        .to_owned();
    assert!(RequestNumber::parse(&number).is_ok(), "{out}");

    let (ok, _, err) = run(&["request", "approve", &number, "--as", "john@example.com"]);
    assert!(!ok);
    assert!(err.contains("your own request"), "{err}");

    let (ok, _, err) = run(&[
        "user",
        "grant",
        "jane@example.com",
        "approver",
        "--as",
        "root@example.com",
    ]);
    assert!(ok, "{err}");
    let (ok, out, err) = run(&["request", "approve", &number, "--as", "jane@example.com"]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), format!("{number} approved."));
    let (ok, out, _) = run(&["request", "show", &number]);
    assert!(ok);
    assert!(out.contains("approved"), "{out}");
    assert!(out.contains("jane@example.com"), "{out}");

    let (ok, _, err) = run(&[
        "certificate",
        "revoke",
        "0A1B2C3D4E5F",
        "--as",
        "john@example.com",
        "--reason",
        "key_compromise",
    ]);
    assert!(!ok);
    assert!(
        err.contains("no certificate with serial 0A1B2C3D4E5F"),
        "{err}"
    );
    let (ok, _, err) = run(&[
        "certificate",
        "revoke",
        "0A1B2C3D4E5F",
        "--as",
        "john@example.com",
        "--reason",
        "bored",
    ]);
    assert!(!ok);
    assert!(
        err.contains("key_compromise"),
        "the choices are listed: {err}"
    );
}
