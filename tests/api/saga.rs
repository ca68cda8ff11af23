//! The issuance saga with the embedded CA: approved requests become certificates.

use std::sync::Arc;

use cert_assistant::adapters::artifacts::{ArtifactStore, LocalArtifactStore};
use cert_assistant::adapters::ca::embedded::EmbeddedCa;
use cert_assistant::commands::Commands;
use cert_assistant::domain::request::RequestStatus;
use cert_assistant::domain::values::RequestNumber;
use cert_assistant::feed::Projector;
use cert_assistant::pki::envelope::KeyEncryptionKey;
use cert_assistant::saga::issuance::{IssuanceFeed, IssuanceWorker};
use uuid::Uuid;

use crate::fixtures::{KEK, approver, ctx, service, web_request};
use crate::helpers::TestDb;

pub(crate) struct Saga {
    pub(crate) commands: Commands,
    pub(crate) worker: IssuanceWorker,
    pub(crate) store: Arc<LocalArtifactStore>,
    ca: Arc<EmbeddedCa>,
    _dir: tempfile::TempDir,
}

pub(crate) async fn saga(db: &TestDb) -> Saga {
    let commands = service(db);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(LocalArtifactStore::new(dir.path()));
    let ca = Arc::new(
        EmbeddedCa::load_or_create(
            &db.pool,
            &KeyEncryptionKey::from_base64(KEK).expect("kek"),
            "http://127.0.0.1:8080/ca/crl.der",
        )
        .await
        .expect("ca"),
    );
    let worker = IssuanceWorker::new(commands.clone(), ca.clone(), store.clone());
    Saga {
        commands,
        worker,
        store,
        ca,
        _dir: dir,
    }
}

impl Saga {
    /// The directory its artifact store writes to.
    pub(crate) fn files(&self) -> &std::path::Path {
        self._dir.path()
    }
}

/// Submits and approves a request; returns its id and number.
pub(crate) async fn approved(s: &Saga, cn: &str) -> (Uuid, String) {
    let jane = approver(&s.commands, "jane@example.com").await;
    let submitted = s
        .commands
        .submit_request(&ctx("john@example.com"), web_request(cn))
        .await
        .expect("submitted");
    s.commands
        .approve(&jane, &submitted.request_number, None)
        .await
        .expect("approved");
    (submitted.request_id, submitted.request_number.to_string())
}

/// Submits, approves and issues a certificate for `cn`; returns its serial.
pub(crate) async fn issued(db: &TestDb, s: &Saga, cn: &str) -> String {
    approved(s, cn).await;
    feed(db).await;
    s.worker.step().await.expect("issued");
    sqlx::query_scalar(
        "SELECT serial FROM embedded_ca_certificates ORDER BY issued_at DESC LIMIT 1",
    )
    .fetch_one(&db.pool)
    .await
    .expect("serial")
}

pub(crate) async fn feed(db: &TestDb) {
    Projector::for_consumer(db.pool.clone(), IssuanceFeed)
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("the issuance feed catches up");
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&db.pool)
        .await
        .expect(sql)
}

#[tokio::test]
async fn an_approved_request_is_issued_stored_and_projected() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (request_id, number) = approved(&s, "issued.example.com").await;
    feed(&db).await;
    assert_eq!(s.worker.step().await.expect("step"), 1);
    assert_eq!(
        s.commands.request_status(request_id).await.expect("status"),
        Some(RequestStatus::Issued)
    );
    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (serial, bucket, cert_key, chain_key, key_key, sha256, issuer): (
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
    ) = sqlx::query_as(
        "SELECT serial_number, s3_bucket, s3_key_certificate, s3_key_chain, s3_key_private_key, \
                thumbprint_sha256, issuer_dn FROM certificates",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the certificate is in the read model");
    assert_eq!(bucket, "local");
    assert!(
        cert_key.starts_with(&format!("certificates/{number}/")),
        "{cert_key}"
    );
    assert_eq!(sha256.map(|s| s.len()), Some(64));
    assert!(issuer.contains("cert-assistant Issuing CA"), "{issuer}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM private_keys WHERE encryption_algorithm = 'AES-256-GCM'"
        )
        .await,
        1
    );
    let status: String = sqlx::query_scalar("SELECT status FROM certificate_requests")
        .fetch_one(&db.pool)
        .await
        .expect("request");
    assert_eq!(status, "issued");

    // What is stored verifies against the CA, and the key is stored encrypted.
    let certificate = s.store.get(&cert_key).await.expect("certificate");
    let chain = s
        .store
        .get(&chain_key.expect("chain key"))
        .await
        .expect("chain");
    let key = String::from_utf8(s.store.get(&key_key.expect("key key")).await.expect("key"))
        .expect("utf-8");
    assert!(!key.contains("PRIVATE KEY"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        path.display().to_string()
    };
    let root = file("root.pem", s.ca.root_pem().as_bytes());
    let untrusted = file("chain.pem", &chain);
    let leaf = file("leaf.pem", &certificate);
    let output = std::process::Command::new("openssl")
        .args(["verify", "-CAfile", &root, "-untrusted", &untrusted, &leaf])
        .output()
        .expect("openssl");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(serial.len() >= 2);
}

#[tokio::test]
async fn two_workers_submit_each_request_once() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (request_id, _) = approved(&s, "once.example.com").await;
    feed(&db).await;
    let other = s.worker.clone();
    let (a, b) = tokio::join!(s.worker.step(), other.step());
    assert_eq!(a.expect("a") + b.expect("b"), 1, "one claim between them");
    assert_eq!(
        count(&db, "SELECT count(*) FROM embedded_ca_certificates").await,
        1
    );
    assert_eq!(
        s.commands.request_status(request_id).await.expect("status"),
        Some(RequestStatus::Issued)
    );
    // Nothing left to do, nothing submitted again.
    assert_eq!(s.worker.step().await.expect("step"), 0);
    assert_eq!(
        count(&db, "SELECT count(*) FROM embedded_ca_certificates").await,
        1
    );
}

#[tokio::test]
async fn a_worker_stopped_mid_submission_hands_the_request_to_an_operator() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (request_id, number) = approved(&s, "crash.example.com").await;
    feed(&db).await;
    // As if a worker had marked the submission and died before hearing back.
    s.commands.start_issuance(request_id).await.expect("start");
    sqlx::query("INSERT INTO issuance_submissions (request_id, submitting_at) VALUES ($1, now())")
        .bind(request_id)
        .execute(&db.pool)
        .await
        .expect("simulate");
    assert_eq!(s.worker.step().await.expect("step"), 1);
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT state, last_error FROM jobs WHERE id = $1")
            .bind(request_id)
            .fetch_one(&db.pool)
            .await
            .expect("job");
    assert_eq!(state, "failed", "given up, for an operator");
    assert!(error.is_some_and(|e| e.contains(&number) && e.contains("not submitted again")));
    assert_eq!(
        count(&db, "SELECT count(*) FROM embedded_ca_certificates").await,
        0
    );
    assert_eq!(
        s.commands.request_status(request_id).await.expect("status"),
        Some(RequestStatus::InProgress)
    );
}

#[tokio::test]
async fn a_request_cancelled_after_approval_is_not_issued() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (request_id, number) = approved(&s, "gone.example.com").await;
    s.commands
        .cancel_request(
            &ctx("john@example.com"),
            &number.parse().expect("number"),
            Some("not needed"),
        )
        .await
        .expect("cancelled");
    feed(&db).await;
    s.worker.step().await.expect("step");
    assert_eq!(
        count(&db, "SELECT count(*) FROM embedded_ca_certificates").await,
        0
    );
    assert_eq!(
        s.commands.request_status(request_id).await.expect("status"),
        Some(RequestStatus::Cancelled)
    );
}

#[tokio::test]
async fn the_requester_is_mailed_once_issued_and_a_failing_mailer_holds_nothing_up() {
    use cert_assistant::adapters::mail::LocalMailer;
    use cert_assistant::saga::mail::{MailOutbox, MailWorker};
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (request_id, number) = approved(&s, "mailed.example.com").await;
    feed(&db).await;
    s.worker.step().await.expect("issued");
    let outbox = Projector::for_consumer(db.pool.clone(), MailOutbox);
    outbox
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("outbox");

    // First a mailer that cannot write: the attempt is recorded, the request stays issued.
    let blocked = tempfile::NamedTempFile::new().expect("a file where a directory should be");
    MailWorker::new(
        s.commands.clone(),
        Arc::new(LocalMailer::new(blocked.path().join("mail"))),
    )
    .step()
    .await
    .expect("step");
    assert_eq!(
        s.commands.request_status(request_id).await.expect("status"),
        Some(RequestStatus::Issued)
    );
    sqlx::query("UPDATE jobs SET run_at = now() WHERE kind = 'mail'")
        .execute(&db.pool)
        .await
        .expect("due now");

    let dir = tempfile::tempdir().expect("tempdir");
    MailWorker::new(s.commands.clone(), Arc::new(LocalMailer::new(dir.path())))
        .step()
        .await
        .expect("step");
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .expect("mail dir")
        .filter_map(Result::ok)
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].path()).expect("mail");
    assert!(text.contains("To: john@example.com"), "{text}");
    assert!(
        text.contains(&format!("Subject: Your certificate for {number} is ready")),
        "{text}"
    );

    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (status, retries): (String, Option<i32>) =
        sqlx::query_as("SELECT status, retry_count FROM notifications")
            .fetch_one(&db.pool)
            .await
            .expect("notification");
    assert_eq!((status.as_str(), retries), ("sent", Some(1)));
}

#[tokio::test]
async fn a_revocation_reaches_the_ca_and_its_crl() {
    use cert_assistant::commands::RevocationForm;
    use cert_assistant::saga::revocation::{RevocationFeed, RevocationWorker};
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (_, number) = approved(&s, "revoked.example.com").await;
    feed(&db).await;
    s.worker.step().await.expect("issued");
    let serial: String = sqlx::query_scalar("SELECT serial FROM embedded_ca_certificates")
        .fetch_one(&db.pool)
        .await
        .expect("serial");
    s.commands
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: serial.clone(),
                reason: "key_compromise".to_owned(),
                text: Some("laptop stolen".to_owned()),
            },
        )
        .await
        .expect("revoked");
    let view = s
        .commands
        .request(&RequestNumber::parse(&number).expect("number"))
        .await
        .expect("view");
    let summary = view.certificate.expect("the issued certificate is shown");
    assert_eq!(summary.serial.to_string(), serial);
    assert_eq!(summary.status.to_string(), "revoked");
    Projector::for_consumer(db.pool.clone(), RevocationFeed)
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("feed");
    let worker = RevocationWorker::new(s.commands.clone(), s.ca.clone());
    assert_eq!(worker.step().await.expect("step"), 1);
    assert_eq!(worker.step().await.expect("step"), 0, "done once");

    let dir = tempfile::tempdir().expect("tempdir");
    let crl = dir.path().join("crl.der");
    std::fs::write(&crl, s.ca.crl_der().await.expect("crl")).expect("write");
    let text = std::process::Command::new("openssl")
        .args(["crl", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&crl)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains(&format!("Serial Number: {serial}")), "{text}");
    assert!(text.contains("Key Compromise"), "{text}");

    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (status, crl_updated): (Option<String>, bool) = sqlx::query_as(
        "SELECT adcs_status, crl_updated_at IS NOT NULL FROM certificate_revocations",
    )
    .fetch_one(&db.pool)
    .await
    .expect("revocation row");
    assert_eq!((status.as_deref(), crl_updated), (Some("revoked"), true));
    // The generated private key is crypto-shredded after revocation (the default policy).
    let (shredded, key_row_deleted): (bool, bool) = sqlx::query_as(
        "SELECT (SELECT bool_and(wrapped_key IS NULL AND destroyed_at IS NOT NULL) \
                   FROM data_keys WHERE id IN (SELECT (payload -> 'CertificateIssued' -> \
                     'certificate' -> 'private_key' ->> 'data_key_id')::uuid FROM events \
                     WHERE event_type = 'CertificateIssued')), \
                (SELECT deleted_at IS NOT NULL FROM private_keys)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("key state");
    assert_eq!((shredded, key_row_deleted), (true, true));
    let key = s
        .commands
        .download(
            &ctx("john@example.com"),
            &serial,
            cert_assistant::domain::certificate::Artifact::PrivateKey,
            s.store.as_ref(),
        )
        .await;
    assert!(
        key.is_err_and(|e| e.to_string().contains("destroyed")),
        "a destroyed key is refused clearly"
    );
    let views: i64 = sqlx::query_scalar("SELECT count(*) FROM v_active_certificates")
        .fetch_one(&db.pool)
        .await
        .expect("view");
    assert_eq!(views, 0);
}

#[tokio::test]
async fn a_request_for_the_public_ca_is_never_signed_by_the_internal_one() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let (request_id, number) = approved(&s, "shop.example.com").await;
    // As stored before public requests were refused at submission (the event store is
    // append-only: the test lifts that for one statement).
    let mut tx = db.pool.begin().await.expect("tx");
    sqlx::query("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete")
        .execute(&mut *tx)
        .await
        .expect("lift");
    sqlx::query(
        "UPDATE events SET payload = jsonb_set(payload::jsonb, \
             '{RequestCreated,requested_ca_type}', '\"public\"')::json \
          WHERE aggregate_id = $1 AND event_type = 'RequestCreated'",
    )
    .bind(request_id.to_string())
    .execute(&mut *tx)
    .await
    .expect("an old public request");
    sqlx::query("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete")
        .execute(&mut *tx)
        .await
        .expect("restore");
    tx.commit().await.expect("commit");
    feed(&db).await;
    s.worker.step().await.expect("step");
    assert_eq!(
        s.commands.request_status(request_id).await.expect("status"),
        Some(RequestStatus::Failed)
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM embedded_ca_certificates").await,
        0,
        "nothing was signed"
    );
    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let why: Option<String> =
        sqlx::query_scalar("SELECT adcs_error_message FROM certificate_requests WHERE id = $1")
            .bind(request_id)
            .fetch_one(&db.pool)
            .await
            .expect("request");
    assert!(
        why.as_deref()
            .is_some_and(|w| w.contains("is for a public certificate")),
        "{why:?}"
    );
    // The requester sees why (`/cert status`, `request show`).
    let view = s
        .commands
        .request(&RequestNumber::parse(&number).expect("number"))
        .await
        .expect("view");
    assert_eq!(view.failure, why);
}
