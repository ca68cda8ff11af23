//! The public CA: requests for it go to AWS Certificate Manager through aws-sdk-acm, over
//! HTTP against moto's ACM; never to the internal CA.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::Credentials;
use cert_assistant::adapters::artifacts::LocalArtifactStore;
use cert_assistant::adapters::ca::CertificateAuthority;
use cert_assistant::adapters::ca::acm::AcmCa;
use cert_assistant::adapters::ca::embedded::EmbeddedCa;
use cert_assistant::commands::{Commands, RequestForm, SubmittedRequest};
use cert_assistant::domain::certificate::Artifact;
use cert_assistant::domain::request::RequestStatus;
use cert_assistant::feed::Projector;
use cert_assistant::pki::envelope::KeyEncryptionKey;
use cert_assistant::saga::issuance::{IssuanceFeed, IssuanceWorker};

use crate::fixtures::{KEK, approver, ctx};
use crate::helpers::TestDb;

fn acm_client(endpoint: &str) -> aws_sdk_acm::Client {
    aws_sdk_acm::Client::from_conf(
        aws_sdk_acm::Config::builder()
            .behavior_version_latest()
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .region(aws_sdk_acm::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .build(),
    )
}

pub(crate) struct Public {
    pub(crate) commands: Commands,
    pub(crate) worker: IssuanceWorker,
    pub(crate) internal: Arc<EmbeddedCa>,
    pub(crate) acm: AcmCa,
    pub(crate) client: aws_sdk_acm::Client,
    pub(crate) store: Arc<LocalArtifactStore>,
    _moto: crate::aws::Moto,
    _dir: tempfile::TempDir,
}

/// The service with ACM as its public CA (moto validates after two seconds).
async fn public(db: &TestDb) -> Public {
    public_with(db, &[]).await
}

/// The same, with more of moto's settings (`MOTO_ACM_NEVER_VALIDATES`).
pub(crate) async fn public_with(db: &TestDb, env: &[(&str, &str)]) -> Public {
    let mut env = env.to_vec();
    if !env
        .iter()
        .any(|(key, _)| *key == "MOTO_ACM_VALIDATION_WAIT")
    {
        env.push(("MOTO_ACM_VALIDATION_WAIT", "2"));
    }
    let moto = crate::aws::moto_with(&env).await;
    let kek = KeyEncryptionKey::from_base64(KEK).expect("kek");
    let commands = Commands::with_public_ca(
        db.pool.clone(),
        KeyEncryptionKey::from_base64(KEK).expect("kek"),
        &["root@example.com".to_owned()],
        true,
    );
    let internal = Arc::new(
        EmbeddedCa::load_or_create(&db.pool, &kek, "http://127.0.0.1:8080/ca/crl.der")
            .await
            .expect("ca"),
    );
    let client = acm_client(&moto.endpoint);
    let acm = AcmCa::from_client(client.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(LocalArtifactStore::new(dir.path()));
    let worker = IssuanceWorker::new(commands.clone(), internal.clone(), store.clone())
        .with_public_ca(Some(Arc::new(acm.clone())));
    Public {
        commands,
        worker,
        internal,
        acm,
        client,
        store,
        _moto: moto,
        _dir: dir,
    }
}

pub(crate) fn shop(cn: &str) -> RequestForm {
    RequestForm {
        common_name: cn.to_owned(),
        subject_alternative_names: vec![format!("www.{cn}")],
        certificate_type: "web_server".to_owned(),
        validity_days: Some("90".to_owned()),
        justification: "Web shop".to_owned(),
        requested_ca_type: Some("public".to_owned()),
        ..RequestForm::default()
    }
}

pub(crate) async fn step_now(db: &TestDb, worker: &IssuanceWorker) {
    sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'queued'")
        .execute(&db.pool)
        .await
        .expect("due now");
    worker.step().await.expect("step");
}

/// John's public request for `cn`, approved by Jane and handed to the issuance saga.
pub(crate) async fn approved(db: &TestDb, p: &Public, cn: &str) -> SubmittedRequest {
    approved_form(db, p, shop(cn)).await
}

/// John's public request as `form` says, approved by Jane and handed to the saga.
pub(crate) async fn approved_form(db: &TestDb, p: &Public, form: RequestForm) -> SubmittedRequest {
    let jane = approver(&p.commands, "jane@example.com").await;
    crate::helpers::project(&db.pool).await;
    let submitted = p
        .commands
        .submit_request(&ctx("john@example.com"), form)
        .await
        .expect("submitted");
    p.commands
        .approve(&jane, &submitted.request_number, None)
        .await
        .expect("approved");
    Projector::for_consumer(db.pool.clone(), IssuanceFeed)
        .catch_up(Duration::from_secs(30))
        .await
        .expect("feed");
    submitted
}

#[tokio::test]
async fn a_public_request_is_validated_issued_and_exported_by_acm_and_never_signed_internally() {
    let db = TestDb::new().await;
    let p = public(&db).await;
    // What ACM would not issue is refused before an approver sees it, per field.
    let mut internal_name = shop("db.corp");
    internal_name.validity_days = Some("365".to_owned());
    let refused = p
        .commands
        .submit_request(&ctx("john@example.com"), internal_name)
        .await
        .expect_err("not for a public CA");
    let shown = refused.to_string();
    assert!(
        shown.contains("db.corp is an internal name") && shown.contains("at most 200"),
        "{shown}"
    );
    let submitted = approved(&db, &p, "shop.example.com").await;
    assert_eq!(submitted.notice, None, "nothing to tell: it goes to ACM");

    // Requested at once; ACM waits for its DNS records.
    step_now(&db, &p.worker).await;
    let id = submitted.request_id;
    assert_eq!(
        p.commands.request_status(id).await.expect("status"),
        Some(RequestStatus::InProgress)
    );
    crate::helpers::project(&db.pool).await;
    // The ARN is in ACM's own table; the ADCS columns stay empty.
    let (arn, ca_status): (String, String) =
        sqlx::query_as("SELECT arn, status FROM acm_certificates WHERE request_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("ACM's record");
    assert!(arn.starts_with("arn:aws:acm:us-east-1:"), "{arn}");
    assert_eq!(ca_status, "pending");
    let adcs: Option<String> =
        sqlx::query_scalar("SELECT adcs_request_id FROM certificate_requests WHERE id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("request");
    assert_eq!(adcs, None, "an ARN is not an ADCS request id");
    // The requester sees where it stands, in chat as in the CLI.
    let status = chat_status(&p, &submitted).await;
    assert!(
        status.contains(&arn) && status.contains("waits for the DNS validation records"),
        "{status}"
    );
    let records = p.acm.validation_records(&arn).await.expect("records");
    let mut domains: Vec<&str> = records.iter().map(|r| r.domain.as_str()).collect();
    domains.sort_unstable();
    assert_eq!(domains, ["shop.example.com", "www.shop.example.com"]);
    assert!(records.iter().all(|r| r.record_type == "CNAME"));
    // The requester is told which records to create, once, however often the saga polls.
    step_now(&db, &p.worker).await;
    crate::helpers::project(&db.pool).await;
    let told: Vec<String> = sqlx::query_scalar(
        "SELECT body FROM notifications WHERE notification_type = 'dns_validation_required' \
            AND recipient_email = 'john@example.com'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("notifications");
    assert_eq!(told.len(), 1, "{told:?}");
    for record in &records {
        assert!(
            told[0].contains(&record.name) && told[0].contains(&record.value),
            "{told:?}"
        );
    }

    // Validated: issued, exported, stored; the key is the certificate's.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    step_now(&db, &p.worker).await;
    assert_eq!(
        p.commands.request_status(id).await.expect("status"),
        Some(RequestStatus::Issued)
    );
    crate::helpers::project(&db.pool).await;
    let (serial, issuer): (String, String) =
        sqlx::query_as("SELECT serial_number, issuer_dn FROM certificates WHERE request_id = $1")
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .expect("certificate");
    assert!(issuer.contains("Amazon"), "{issuer}");
    let (status, recorded_serial): (String, String) = sqlx::query_as(
        "SELECT a.status, a.serial_number FROM acm_certificates a \
           JOIN certificates c ON c.id = a.certificate_id WHERE a.arn = $1",
    )
    .bind(&arn)
    .fetch_one(&db.pool)
    .await
    .expect("ACM's record has the certificate");
    assert_eq!(
        (status.as_str(), recorded_serial.as_str()),
        ("issued", serial.as_str())
    );
    let internal: i64 = sqlx::query_scalar("SELECT count(*) FROM embedded_ca_certificates")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(internal, 0, "nothing was signed by the internal CA");

    let john = ctx("john@example.com");
    let certificate = p
        .commands
        .download(&john, &serial, Artifact::Certificate, p.store.as_ref())
        .await
        .expect("certificate");
    let key = p
        .commands
        .download(&john, &serial, Artifact::PrivateKey, p.store.as_ref())
        .await
        .expect("the key, once");
    let cert_text = openssl_reads(&certificate.pem, &key.pem);
    assert!(cert_text.contains("shop.example.com"), "{cert_text}");
}

/// What John's `/cert status` of `submitted` says in chat.
pub(crate) async fn chat_status(p: &Public, submitted: &SubmittedRequest) -> String {
    cert_assistant::chat::service::ChatService::new(p.commands.clone())
        .handle(
            &ctx("john@example.com"),
            cert_assistant::chat::command::parse(&format!("status {}", submitted.request_number))
                .expect("command"),
        )
        .await
        .plain_text()
}

/// What `openssl x509` reads of `certificate_pem` (subject, serial, public key), having
/// checked with `openssl pkey` that `key_pem` is its private key.
pub(crate) fn openssl_reads(certificate_pem: &str, key_pem: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certificate_pem).expect("write");
    std::fs::write(&key_path, key_pem).expect("write");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cert_path = cert_path.display().to_string();
    let text = openssl(&[
        "x509", "-in", &cert_path, "-noout", "-subject", "-serial", "-pubkey",
    ]);
    let key_public = openssl(&["pkey", "-in", &key_path.display().to_string(), "-pubout"]);
    assert!(
        text.contains(key_public.trim()),
        "the exported key is the certificate's"
    );
    text
}

#[tokio::test]
async fn asking_acm_twice_for_one_request_asks_once_and_keys_it_lacks_are_refused() {
    use cert_assistant::adapters::ca::{CaError, Submission};
    use cert_assistant::domain::values::{CertificateType, KeyAlgorithm};

    let db = TestDb::new().await;
    let p = public(&db).await;
    let ordered = crate::fixtures::ordered("twice.example.com", KeyAlgorithm::EccP256);
    let order = |reference| cert_assistant::adapters::ca::Order {
        reference,
        ..ordered.order(CertificateType::WebServer, 90)
    };
    let arn = |submission: Submission| match submission {
        Submission::Pending { ca_request_id } => ca_request_id,
        other => panic!("pending validation: {other:?}"),
    };
    // A restart, or a second replica, asks again for the same request: the same certificate.
    let first = arn(p.acm.submit(order("request-one")).await.expect("asked"));
    let again = arn(p.acm.submit(order("request-one")).await.expect("asked"));
    assert_eq!(first, again);
    let other = arn(p.acm.submit(order("request-two")).await.expect("asked"));
    assert_ne!(first, other);
    // ACM issues no public certificates for RSA 4096 keys: refused for good, with the reason.
    let big = crate::fixtures::ordered("big.example.com", KeyAlgorithm::Rsa4096);
    let refused = p
        .acm
        .submit(big.order(CertificateType::WebServer, 90))
        .await
        .expect_err("refused");
    assert!(
        matches!(&refused, CaError::Permanent(m) if m.contains("not RSA_4096") || m.contains("RSA 2048 keys")),
        "{refused:?}"
    );
}

/// The binary with the test database, the local stores under `files`, and ACM at `moto`.
fn cert_assistant(db: &TestDb, files: &std::path::Path, moto: &str) -> std::process::Command {
    let mut command = crate::helpers::binary();
    command
        .env("DATABASE_URL", db.url())
        .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", KEK)
        .env("CERT_ASSISTANT_AUTH__ADMINS", "root@example.com")
        .env("CERT_ASSISTANT_STORAGE__LOCAL_DIR", files.join("artifacts"))
        .env("CERT_ASSISTANT_MAIL__LOCAL_DIR", files.join("mail"))
        .env("CERT_ASSISTANT_ACM__ENABLED", "true")
        .env("CERT_ASSISTANT_ACM__REGION", "us-east-1")
        .env("CERT_ASSISTANT_ACM__ENDPOINT", moto)
        // The AWS configuration chain, as on a machine with credentials.
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    command
}

async fn run(mut command: std::process::Command, args: &[&str]) -> String {
    command.args(args);
    let output = crate::helpers::output(command).await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{args:?}: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn serve_issues_a_public_request_through_acm_from_request_to_download() {
    let db = TestDb::new().await;
    let moto = crate::aws::moto_with(&[("MOTO_ACM_VALIDATION_WAIT", "2")]).await;
    // The operator's Route 53 zone for example.com: the service creates the records there.
    let route53 = aws_sdk_route53::Client::from_conf(
        aws_sdk_route53::Config::builder()
            .behavior_version_latest()
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .region(aws_sdk_route53::config::Region::new("us-east-1"))
            .endpoint_url(&moto.endpoint)
            .build(),
    );
    let zone = route53
        .create_hosted_zone()
        .name("example.com.")
        .caller_reference("cert-assistant-test")
        .send()
        .await
        .expect("a hosted zone");
    let zone_id = zone.hosted_zone().expect("zone").id().to_owned();
    let files = tempfile::tempdir().expect("tempdir");
    let cli = || {
        let mut command = cert_assistant(&db, files.path(), &moto.endpoint);
        command
            .env("CERT_ASSISTANT_ACM__ROUTE53_ZONE_IDS", &zone_id)
            .env("CERT_ASSISTANT_ACM__ROUTE53_ENDPOINT", &moto.endpoint);
        command
    };
    // Poll the CA every second (ACM validates in two here).
    run(
        cli(),
        &[
            "config",
            "set",
            "adcs.polling.interval_seconds",
            "1",
            "--as",
            "root@example.com",
            "--type",
            "integer",
        ],
    )
    .await;
    // The service as an operator runs it.
    let mut serve = cli();
    serve
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(files.path().join("serve.log")).expect("log"));
    let mut serve = tokio::process::Command::from(serve)
        .kill_on_drop(true)
        .spawn()
        .expect("serve");

    run(
        cli(),
        &[
            "user",
            "grant",
            "jane@example.com",
            "approver",
            "--as",
            "root@example.com",
        ],
    )
    .await;
    run(cli(), &["projections", "catch-up"]).await;
    let created = run(
        cli(),
        &[
            "request",
            "create",
            "--as",
            "john@example.com",
            "--cn",
            "store.example.com",
            "--why",
            "web shop",
            "--days",
            "90",
            "--ca",
            "public",
        ],
    )
    .await;
    let number = crate::helpers::request_number_in(&created);
    run(
        cli(),
        &["request", "approve", &number, "--as", "jane@example.com"],
    )
    .await;
    let mut shown = String::new();
    for _ in 0..300 {
        shown = run(cli(), &["request", "show", &number]).await;
        if shown.contains("certificate: serial") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(shown.contains("at the CA: arn:aws:acm:"), "{shown}");
    let serial = shown
        .split("certificate: serial ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("issued through ACM: {shown}"))
        .to_owned();
    let out = files.path().join("store.pem");
    run(
        cli(),
        &[
            "certificate",
            "download",
            &serial,
            "--as",
            "john@example.com",
            "--out",
            &out.display().to_string(),
        ],
    )
    .await;
    let x509 = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-subject", "-in"])
        .arg(&out)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&x509.stdout);
    assert!(
        text.contains("Amazon") && text.contains("store.example.com"),
        "{text}"
    );
    let internal: i64 = sqlx::query_scalar("SELECT count(*) FROM embedded_ca_certificates")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(internal, 0, "nothing was signed by the internal CA");
    // The validation records were created in the zone, and the requester was told so.
    let sets = route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .expect("record sets");
    let cnames: Vec<String> = sets
        .resource_record_sets()
        .iter()
        .filter(|set| set.r#type().as_str() == "CNAME")
        .map(|set| set.name().to_owned())
        .collect();
    assert!(
        cnames
            .iter()
            .any(|name| name.ends_with("store.example.com.")),
        "{cnames:?}"
    );
    let mut told = String::new();
    for _ in 0..100 {
        told = std::fs::read_dir(files.path().join("mail"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .find(|mail| mail.contains("DNS records"))
            .unwrap_or_default();
        if !told.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        told.contains("created for you in the Route 53 zone example.com"),
        "{told}"
    );
    serve.start_kill().expect("stop serve");
    let _ = serve.wait().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_asking_acm_asks_again_and_gets_the_same_certificate() {
    let db = TestDb::new().await;
    let p = public(&db).await;
    let submitted = approved(&db, &p, "restart.example.com").await;
    // The worker stopped right after asking ACM, before it recorded ACM's answer: ACM has
    // the request, the service only knows it was being sent.
    let subject: serde_json::Value = sqlx::query_scalar(
        "SELECT payload::jsonb -> 'RequestCreated' FROM events \
          WHERE event_type = 'RequestCreated'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("created");
    let order_subject: cert_assistant::domain::request::Subject =
        serde_json::from_value(subject["subject"].clone()).expect("subject");
    let csr_pem = subject["csr_pem"].as_str().expect("csr").to_owned();
    let reference = submitted.request_id.simple().to_string();
    let first = p
        .acm
        .submit(cert_assistant::adapters::ca::Order {
            csr_pem: &csr_pem,
            subject: &order_subject,
            certificate_type: cert_assistant::domain::values::CertificateType::WebServer,
            validity_days: 90,
            reference: &reference,
            exportable: true,
        })
        .await
        .expect("asked before the crash");
    let cert_assistant::adapters::ca::Submission::Pending {
        ca_request_id: lost,
    } = first
    else {
        panic!("pending validation: {first:?}");
    };
    sqlx::query("INSERT INTO issuance_submissions (request_id, submitting_at) VALUES ($1, now())")
        .bind(submitted.request_id)
        .execute(&db.pool)
        .await
        .expect("interrupted");
    p.commands
        .start_issuance(submitted.request_id)
        .await
        .expect("in progress");

    // After the restart the saga asks again, safely: the same certificate, nothing twice.
    step_now(&db, &p.worker).await;
    crate::helpers::project(&db.pool).await;
    let recorded: Vec<String> =
        sqlx::query_scalar("SELECT arn FROM acm_certificates WHERE request_id = $1")
            .bind(submitted.request_id)
            .fetch_all(&db.pool)
            .await
            .expect("ACM's record");
    assert_eq!(recorded, [lost]);
}
