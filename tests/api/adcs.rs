//! The ADCS Web Enrollment client against the certsrv emulator, over HTTP; and the saga
//! through it: pending, denied, retries, budgets.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cert_assistant::adapters::artifacts::LocalArtifactStore;
use cert_assistant::adapters::ca::adcs::{AdcsClient, AdcsSettings, Authentication};
use cert_assistant::adapters::ca::{CaError, CertificateAuthority, Submission};
use cert_assistant::dev::adcs_emulator::{Emulator, Logins};
use cert_assistant::domain::request::RequestStatus;
use cert_assistant::domain::values::{CertificateType, KeyAlgorithm};
use cert_assistant::feed::Projector;
use cert_assistant::saga::issuance::{IssuanceFeed, IssuanceWorker};
use uuid::Uuid;

use crate::fixtures::{approver, ctx, ordered, service, web_request};
use crate::helpers::TestDb;

struct Certsrv {
    url: String,
    root_pem: String,
    http: reqwest::Client,
    login: Authentication,
}

/// A certsrv that takes Basic only, as the client logs in by default.
async fn certsrv() -> Certsrv {
    certsrv_taking(Authentication::Basic, 0).await
}

/// A certsrv that takes only `login` (NTLM: as ADCS is installed), whose CA certificate was
/// renewed `renewals` times.
async fn certsrv_taking(login: Authentication, renewals: u32) -> Certsrv {
    let logins = match login {
        Authentication::Basic => Logins::Basic,
        Authentication::Ntlm => Logins::Windows,
    };
    let emulator = Emulator::new("EXAMPLE\\enroll", "s3cret")
        .expect("emulator")
        .with_logins(logins)
        .with_renewals(renewals);
    let root_pem = emulator.root_pem().to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(emulator.serve(listener, std::future::pending()));
    Certsrv {
        url,
        root_pem,
        http: reqwest::Client::new(),
        login,
    }
}

impl Certsrv {
    fn client(&self, password: &str, templates: &[(&str, &str)]) -> AdcsClient {
        self.client_logging_in(self.login, password, templates)
    }

    fn client_logging_in(
        &self,
        login: Authentication,
        password: &str,
        templates: &[(&str, &str)],
    ) -> AdcsClient {
        AdcsClient::new(AdcsSettings {
            url: self.url.clone(),
            authentication: login,
            username: "EXAMPLE\\enroll".to_owned(),
            password: password.to_owned().into(),
            ca_bundle_pem: None,
            client_identity_pem: None,
            timeout: Duration::from_secs(5),
            templates: templates
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            revoke_hook: None,
        })
        .expect("client")
    }

    /// How many logins certsrv refused.
    async fn failed_logins(&self) -> u32 {
        self.http
            .get(format!("{}/admin/failed-logins", self.url))
            .basic_auth("EXAMPLE\\enroll", Some("s3cret"))
            .send()
            .await
            .expect("failed logins")
            .json()
            .await
            .expect("json")
    }

    /// The CSR hashes of every submission the emulator accepted, in order.
    async fn submissions(&self) -> Vec<String> {
        self.http
            .get(format!("{}/admin/submissions", self.url))
            .basic_auth("EXAMPLE\\enroll", Some("s3cret"))
            .send()
            .await
            .expect("submissions")
            .json()
            .await
            .expect("json")
    }

    async fn admin(&self, path: &str) {
        let response = self
            .http
            .post(format!("{}{path}", self.url))
            .basic_auth("EXAMPLE\\enroll", Some("s3cret"))
            .send()
            .await
            .expect("admin");
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
    }
}

/// Whether `leaf` verifies with only the last certificate of `chain` (its root) trusted.
fn verifies_with_the_root_alone(chain: &str, leaf: &str) -> bool {
    let start = chain.rfind("-----BEGIN CERTIFICATE-----").expect("a root");
    verifies(&chain[start..], &chain[..start], leaf)
}

fn verifies(root: &str, chain: &str, leaf: &str) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let (root, chain, leaf) = (
        file("r.pem", root),
        file("c.pem", chain),
        file("l.pem", leaf),
    );
    std::process::Command::new("openssl")
        .args(["verify", "-CAfile", &root, "-untrusted", &chain, &leaf])
        .output()
        .expect("openssl")
        .status
        .success()
}

#[tokio::test]
async fn a_template_that_issues_at_once_returns_a_certificate_and_its_chain() {
    for login in [Authentication::Basic, Authentication::Ntlm] {
        issues_at_once_with_the_whole_chain(login).await;
    }
}

async fn issues_at_once_with_the_whole_chain(login: Authentication) {
    // The CA certificate was renewed: only the current renewal's chain verifies.
    let ca = certsrv_taking(login, 2).await;
    let client = ca.client("s3cret", &[]);
    let Submission::Issued {
        ca_request_id,
        certificate_pem,
        chain_pem,
        ..
    } = client
        .submit(
            ordered("adcs.example.com", KeyAlgorithm::EccP256)
                .order(CertificateType::WebServer, 365),
        )
        .await
        .expect("submitted")
    else {
        panic!("issued at once");
    };
    assert!(ca_request_id.parse::<u32>().is_ok());
    // The issuing CA, then the offline root: the whole chain, from certnew.p7b.
    assert_eq!(
        chain_pem.matches("BEGIN CERTIFICATE").count(),
        2,
        "{login:?}"
    );
    assert!(
        chain_pem.trim_end().ends_with(ca.root_pem.trim_end()),
        "{login:?}"
    );
    assert!(verifies(&ca.root_pem, &chain_pem, &certificate_pem));
    assert!(verifies_with_the_root_alone(&chain_pem, &certificate_pem));
    // The CA's chain, as relying parties would fetch it.
    let ca_chain = client.ca_chain().await.expect("chain");
    assert!(verifies(&ca.root_pem, &ca_chain, &certificate_pem));
    // Retrieving again gives the same certificate.
    assert!(matches!(
        client.retrieve(&ca_request_id).await.expect("retrieved"),
        Submission::Issued { certificate_pem: again, .. } if again == certificate_pem
    ));
}

#[tokio::test]
async fn a_held_request_is_pending_until_the_ca_officer_decides() {
    for login in [Authentication::Basic, Authentication::Ntlm] {
        held_until_the_officer_decides(login).await;
    }
}

async fn held_until_the_officer_decides(login: Authentication) {
    let ca = certsrv_taking(login, 0).await;
    let client = ca.client("s3cret", &[("web_server", "ManualApproval")]);
    let Submission::Pending { ca_request_id } = client
        .submit(
            ordered("held.example.com", KeyAlgorithm::EccP256)
                .order(CertificateType::WebServer, 365),
        )
        .await
        .expect("submitted")
    else {
        panic!("pending");
    };
    assert!(matches!(
        client.retrieve(&ca_request_id).await.expect("retrieved"),
        Submission::Pending { .. }
    ));
    ca.admin(&format!("/admin/requests/{ca_request_id}/approve"))
        .await;
    assert!(matches!(
        client.retrieve(&ca_request_id).await.expect("retrieved"),
        Submission::Issued { .. }
    ));

    let Submission::Pending { ca_request_id } = client
        .submit(
            ordered("no.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 365),
        )
        .await
        .expect("submitted")
    else {
        panic!("pending");
    };
    ca.admin(&format!("/admin/requests/{ca_request_id}/deny"))
        .await;
    assert_eq!(
        client.retrieve(&ca_request_id).await.expect("retrieved"),
        Submission::Denied {
            message: "Denied by Officer. 0x80094012".to_owned()
        }
    );
}

#[tokio::test]
async fn denials_bad_credentials_and_outages_are_told_apart() {
    let ca = certsrv().await;
    let unknown = ca.client("s3cret", &[("web_server", "NoSuchTemplate")]);
    let denied = unknown
        .submit(
            ordered("x.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 365),
        )
        .await
        .expect("answered");
    assert!(
        matches!(&denied, Submission::Denied { message } if message.contains("Denied by Policy Module") && message.contains("NoSuchTemplate")),
        "{denied:?}"
    );
    let garbage = ca
        .client("s3cret", &[])
        .submit(cert_assistant::adapters::ca::Order {
            csr_pem: "not a CSR",
            ..ordered("x.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 365)
        })
        .await
        .expect("answered");
    assert!(
        matches!(&garbage, Submission::Denied { message } if message.contains("Error Parsing Request")),
        "{garbage:?}"
    );
    let wrong = ca
        .client("wrong", &[])
        .submit(
            ordered("x.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 365),
        )
        .await;
    assert!(matches!(wrong, Err(CaError::Permanent(m)) if m.contains("credentials")));
    ca.admin("/admin/fail-next/1").await;
    let down = ca
        .client("s3cret", &[])
        .submit(
            ordered("x.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 365),
        )
        .await;
    assert!(matches!(down, Err(CaError::Transient(m)) if m.contains("503")));
    let nowhere = AdcsClient::new(AdcsSettings {
        url: "http://127.0.0.1:9".to_owned(),
        authentication: Authentication::Basic,
        username: "u".to_owned(),
        password: "p".to_owned().into(),
        ca_bundle_pem: None,
        client_identity_pem: None,
        timeout: Duration::from_secs(2),
        templates: BTreeMap::new(),
        revoke_hook: None,
    })
    .expect("client");
    assert!(matches!(
        nowhere
            .submit(
                ordered("x.example.com", KeyAlgorithm::EccP256)
                    .order(CertificateType::WebServer, 365)
            )
            .await,
        Err(CaError::Transient(_))
    ));
    assert_eq!(
        ca.client("s3cret", &[])
            .retrieve("999999")
            .await
            .expect("answered"),
        Submission::Denied {
            message: "The requested property value is empty. 0x80094004".to_owned()
        }
    );
}

struct SagaOverAdcs {
    db: TestDb,
    ca: Certsrv,
    worker: IssuanceWorker,
    _dir: tempfile::TempDir,
}

async fn saga_over_adcs(templates: &[(&str, &str)]) -> SagaOverAdcs {
    saga_over_adcs_logging_in(Authentication::Basic, templates).await
}

async fn saga_over_adcs_logging_in(
    login: Authentication,
    templates: &[(&str, &str)],
) -> SagaOverAdcs {
    let db = TestDb::new().await;
    let ca = certsrv_taking(login, 0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let worker = IssuanceWorker::new(
        service(&db),
        Arc::new(ca.client("s3cret", templates)),
        Arc::new(LocalArtifactStore::new(dir.path())),
    );
    SagaOverAdcs {
        db,
        ca,
        worker,
        _dir: dir,
    }
}

/// A request for `cn` submitted by John and approved by Jane, its issuance job queued.
async fn approved(db: &TestDb, cn: &str) -> Uuid {
    let commands = service(db);
    let jane = approver(&commands, "jane@example.com").await;
    let submitted = commands
        .submit_request(&ctx("john@example.com"), web_request(cn))
        .await
        .expect("submitted");
    commands
        .approve(&jane, &submitted.request_number, None)
        .await
        .expect("approved");
    Projector::for_consumer(db.pool.clone(), IssuanceFeed)
        .catch_up(Duration::from_secs(30))
        .await
        .expect("feed");
    submitted.request_id
}

impl SagaOverAdcs {
    async fn approved(&self, cn: &str) -> Uuid {
        approved(&self.db, cn).await
    }

    /// One worker step, without waiting out backoff or polling delays.
    async fn step_now(&self) {
        sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'queued'")
            .execute(&self.db.pool)
            .await
            .expect("due now");
        self.worker.step().await.expect("step");
    }

    async fn request(&self, id: Uuid) -> (RequestStatus, serde_json::Value) {
        let status = service(&self.db)
            .request_status(id)
            .await
            .expect("status")
            .expect("exists");
        Projector::new(self.db.pool.clone())
            .catch_up(Duration::from_secs(30))
            .await
            .expect("projected");
        let row: serde_json::Value =
            sqlx::query_scalar("SELECT to_jsonb(r) FROM certificate_requests r WHERE id = $1")
                .bind(id)
                .fetch_one(&self.db.pool)
                .await
                .expect("row");
        (status, row)
    }
}

#[tokio::test]
async fn two_outages_then_success_issue_with_two_retries_counted() {
    let s = saga_over_adcs(&[]).await;
    let id = s.approved("retry.example.com").await;
    s.ca.admin("/admin/fail-next/2").await;
    for _ in 0..3 {
        s.step_now().await;
    }
    let (status, row) = s.request(id).await;
    assert_eq!(status, RequestStatus::Issued);
    assert_eq!(row["retry_count"], 2);
    assert_eq!(row["adcs_status"], "issued");
    assert!(row["adcs_request_id"].is_string());
}

#[tokio::test]
async fn an_outage_past_the_budget_fails_the_request_with_the_reason() {
    let s = saga_over_adcs(&[]).await;
    sqlx::query(
        "UPDATE system_config SET config_value = '1' WHERE config_key = 'issuance.max_retries'",
    )
    .execute(&s.db.pool)
    .await
    .expect("budget");
    let id = s.approved("down.example.com").await;
    s.ca.admin("/admin/fail-next/10").await;
    for _ in 0..3 {
        s.step_now().await;
    }
    let (status, row) = s.request(id).await;
    assert_eq!(status, RequestStatus::Failed);
    assert!(
        row["adcs_error_message"]
            .as_str()
            .is_some_and(|m| m.contains("gave up after 2 attempts") && m.contains("503")),
        "{row}"
    );
}

#[tokio::test]
async fn a_denial_fails_the_request_with_the_cas_message() {
    let s = saga_over_adcs(&[("web_server", "Retired")]).await;
    let id = s.approved("denied.example.com").await;
    s.step_now().await;
    let (status, row) = s.request(id).await;
    assert_eq!(status, RequestStatus::Failed);
    assert!(
        row["adcs_error_message"]
            .as_str()
            .is_some_and(|m| m.contains("Denied by Policy Module")),
        "{row}"
    );
}

#[tokio::test]
async fn a_certificate_that_is_not_what_was_approved_fails_the_request_once_and_for_all() {
    // The template builds the subject itself (subject name format "None"): the CA issues,
    // but not the approved common name. That is final: no retries, nothing recorded as
    // the request's, the requester told why and the admins told to revoke it at the CA.
    let template = cert_assistant::dev::adcs_emulator::NO_SUBJECT_TEMPLATE;
    let s = saga_over_adcs(&[("web_server", template)]).await;
    let id = s.approved("nameless.example.com").await;
    for _ in 0..3 {
        s.step_now().await;
    }
    let (status, row) = s.request(id).await;
    assert_eq!(status, RequestStatus::Failed);
    let why = row["adcs_error_message"].as_str().unwrap_or_default();
    assert!(
        why.contains("has no common name") && why.contains("revoked at the CA"),
        "{row}"
    );
    let certificates: i64 =
        sqlx::query_scalar("SELECT count(*) FROM certificates WHERE request_id = $1")
            .bind(id)
            .fetch_one(&s.db.pool)
            .await
            .expect("count");
    assert_eq!(certificates, 0, "not recorded as the request's certificate");
    let (state, attempts): (String, i32) =
        sqlx::query_as("SELECT state, attempts FROM jobs WHERE kind = 'issuance'")
            .fetch_one(&s.db.pool)
            .await
            .expect("job");
    assert_eq!(
        (state.as_str(), attempts),
        ("failed", 1),
        "given up at once, for the admins"
    );
    let submissions = s.ca.submissions().await;
    assert_eq!(submissions.len(), 1, "submitted once");
}

#[tokio::test]
async fn a_held_request_is_issued_after_polling_once_the_officer_approves() {
    for login in [Authentication::Basic, Authentication::Ntlm] {
        issued_after_polling(login).await;
    }
}

async fn issued_after_polling(login: Authentication) {
    let s = saga_over_adcs_logging_in(login, &[("web_server", "ManualApproval")]).await;
    let id = s.approved("polled.example.com").await;
    s.step_now().await;
    let (status, row) = s.request(id).await;
    assert_eq!(status, RequestStatus::InProgress);
    assert_eq!(row["adcs_status"], "pending");
    let ca_id = row["adcs_request_id"]
        .as_str()
        .expect("CA id recorded at once")
        .to_owned();
    s.step_now().await;
    assert_eq!(
        s.request(id).await.0,
        RequestStatus::InProgress,
        "still held"
    );
    s.ca.admin(&format!("/admin/requests/{ca_id}/approve"))
        .await;
    s.step_now().await;
    let (status, row) = s.request(id).await;
    assert_eq!(status, RequestStatus::Issued);
    assert_eq!(
        row["adcs_request_id"],
        ca_id.as_str(),
        "no second submission"
    );
}

/// Issues a certificate over ADCS, revokes it, and runs the revocation worker with `hook`.
async fn revoked_over_adcs(
    s: &SagaOverAdcs,
    cn: &str,
    hook: Option<cert_assistant::adapters::ca::revoke_hook::RevokeHook>,
) -> (String, serde_json::Value) {
    use cert_assistant::commands::RevocationForm;
    use cert_assistant::saga::revocation::{RevocationFeed, RevocationWorker};

    let id = s.approved(cn).await;
    s.step_now().await;
    assert_eq!(s.request(id).await.0, RequestStatus::Issued);
    let commands = service(&s.db);
    let serial: String =
        sqlx::query_scalar("SELECT serial_number FROM certificates WHERE request_id = $1")
            .bind(id)
            .fetch_one(&s.db.pool)
            .await
            .expect("serial");
    commands
        .revoke(
            &ctx("john@example.com"),
            RevocationForm {
                certificate: serial.clone(),
                reason: "key_compromise".to_owned(),
                text: None,
            },
        )
        .await
        .expect("revoked");
    Projector::for_consumer(s.db.pool.clone(), RevocationFeed)
        .catch_up(Duration::from_secs(30))
        .await
        .expect("feed");
    let mut client = s.ca.client("s3cret", &[]);
    if let Some(hook) = hook {
        client = AdcsClient::new(AdcsSettings {
            authentication: Authentication::Basic,
            url: s.ca.url.clone(),
            username: "EXAMPLE\\enroll".to_owned(),
            password: "s3cret".to_owned().into(),
            ca_bundle_pem: None,
            client_identity_pem: None,
            timeout: Duration::from_secs(5),
            templates: BTreeMap::new(),
            revoke_hook: Some(hook),
        })
        .expect("client");
    }
    RevocationWorker::new(commands, Arc::new(client))
        .step()
        .await
        .expect("revocation step");
    let row = revocation_row(s, &serial).await;
    (serial, row)
}

async fn revocation_row(s: &SagaOverAdcs, serial: &str) -> serde_json::Value {
    Projector::new(s.db.pool.clone())
        .catch_up(Duration::from_secs(30))
        .await
        .expect("projected");
    sqlx::query_scalar(
        "SELECT to_jsonb(r) FROM certificate_revocations r \
           JOIN certificates c ON c.id = r.certificate_id WHERE c.serial_number = $1",
    )
    .bind(serial)
    .fetch_one(&s.db.pool)
    .await
    .expect("revocation row")
}

#[tokio::test]
async fn the_configured_revoke_command_revokes_at_adcs_with_serial_and_reason_code() {
    use cert_assistant::adapters::ca::revoke_hook::RevokeHook;

    let s = saga_over_adcs(&[]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("certutil.log");
    let hook = RevokeHook::new(
        vec![
            "sh".to_owned(),
            "-c".to_owned(),
            format!("echo certutil -revoke \"$0\" \"$1\" >> {}", log.display()),
            "{serial}".to_owned(),
            "{reason}".to_owned(),
        ],
        Duration::from_secs(10),
    );
    let (serial, row) = revoked_over_adcs(&s, "hooked.example.com", hook).await;
    let ran = std::fs::read_to_string(&log).expect("the command ran");
    assert_eq!(ran.trim(), format!("certutil -revoke {serial} 1"));
    assert_eq!(row["adcs_status"], "revoked");
    assert!(row["crl_updated_at"].is_string(), "{row}");
    assert!(row["adcs_error_message"].is_null(), "{row}");
}

#[tokio::test]
async fn without_a_revoke_command_an_admin_confirms_the_operator_task() {
    let s = saga_over_adcs(&[]).await;
    let (serial, row) = revoked_over_adcs(&s, "manual.example.com", None).await;
    assert_eq!(row["adcs_status"], "failed");
    assert!(row["crl_updated_at"].is_null());
    let task = row["adcs_error_message"].as_str().unwrap_or_default();
    assert!(
        task.contains(&format!("certutil -revoke {serial} 1")),
        "{task}"
    );
    assert!(task.contains("confirm-revocation"), "{task}");

    let commands = service(&s.db);
    let john = commands
        .confirm_ca_revocation(&ctx("john@example.com"), &serial)
        .await
        .expect_err("only admins confirm");
    assert!(john.to_string().contains("only an admin"), "{john}");
    commands
        .confirm_ca_revocation(&ctx("root@example.com"), &serial)
        .await
        .expect("confirmed");
    let row = revocation_row(&s, &serial).await;
    assert_eq!(row["adcs_status"], "revoked");
    assert!(row["crl_updated_at"].is_string(), "{row}");
    let again = commands
        .confirm_ca_revocation(&ctx("root@example.com"), &serial)
        .await
        .expect_err("once");
    assert!(again.to_string().contains("already revoked"), "{again}");
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE event_type = 'ca_revocation_recorded' \
            AND user_email = 'root@example.com'",
    )
    .fetch_one(&s.db.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn two_replicas_against_a_flaky_ca_issue_every_request_and_submit_none_twice() {
    for login in [Authentication::Basic, Authentication::Ntlm] {
        two_replicas_against_a_flaky_ca(login).await;
    }
}

async fn two_replicas_against_a_flaky_ca(login: Authentication) {
    let s = saga_over_adcs_logging_in(login, &[]).await;
    // A second replica: its own worker and its own client, on the same database.
    let other = IssuanceWorker::new(
        service(&s.db),
        Arc::new(s.ca.client("s3cret", &[])),
        Arc::new(LocalArtifactStore::new(s._dir.path())),
    );
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(s.approved(&format!("replica{i}.example.com")).await);
    }
    // The CA fails now and then while both replicas work.
    for round in 0..40 {
        if round % 3 == 0 {
            s.ca.admin("/admin/fail-next/2").await;
        }
        sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'queued'")
            .execute(&s.db.pool)
            .await
            .expect("due now");
        let (a, b) = tokio::join!(s.worker.step(), other.step());
        a.expect("replica a");
        b.expect("replica b");
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE state = 'queued'")
            .fetch_one(&s.db.pool)
            .await
            .expect("open jobs");
        if open == 0 {
            break;
        }
    }
    for id in &ids {
        let (status, _) = s.request(*id).await;
        assert_eq!(status, RequestStatus::Issued, "request {id}");
    }
    let submitted = s.ca.submissions().await;
    let mut distinct = submitted.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        submitted.len(),
        ids.len(),
        "one accepted submission per request: {submitted:?}"
    );
    assert_eq!(distinct.len(), ids.len(), "no CSR was submitted twice");
}

#[tokio::test]
async fn with_windows_authentication_the_saga_issues_a_certificate_that_verifies_from_the_root() {
    let s = saga_over_adcs_logging_in(Authentication::Ntlm, &[]).await;
    let id = s.approved("ntlm.example.com").await;
    s.step_now().await;
    let (status, _) = s.request(id).await;
    assert_eq!(status, RequestStatus::Issued);
    // What the saga stored: certificates/<number>/<serial>.pem and .chain.pem.
    let number_dir = std::fs::read_dir(s._dir.path().join("certificates"))
        .expect("stored")
        .next()
        .expect("the request's folder")
        .expect("entry")
        .path();
    let chain_file = std::fs::read_dir(&number_dir)
        .expect("stored")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.to_string_lossy().ends_with(".chain.pem"))
        .expect("the chain");
    let chain = std::fs::read_to_string(&chain_file).expect("chain");
    let certificate =
        std::fs::read_to_string(chain_file.to_string_lossy().replace(".chain.pem", ".pem"))
            .expect("certificate");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(verifies_with_the_root_alone(&chain, &certificate));
    assert_eq!(s.ca.failed_logins().await, 0);
}

#[tokio::test]
async fn a_wrong_password_is_refused_once_and_not_tried_again_so_the_account_is_not_locked() {
    let ca = certsrv_taking(Authentication::Ntlm, 0).await;
    let client = ca.client("wrong", &[]);
    let csr = ordered("x.example.com", KeyAlgorithm::EccP256);
    let order = || csr.order(CertificateType::WebServer, 365);
    let first = client.submit(order()).await;
    assert!(
        matches!(&first, Err(CaError::Permanent(m)) if m.contains("refused the credentials")),
        "{first:?}"
    );
    assert_eq!(ca.failed_logins().await, 1);
    let again = client.submit(order()).await;
    assert!(
        matches!(&again, Err(CaError::Permanent(m)) if m.contains("not tried again")),
        "{again:?}"
    );
    assert_eq!(ca.failed_logins().await, 1, "no second failed login");
    assert!(ca.submissions().await.is_empty(), "nothing reached the CA");

    // Basic against a certsrv that takes only Windows authentication says what to set.
    let basic = ca.client_logging_in(Authentication::Basic, "s3cret", &[]);
    let refused = basic.submit(order()).await;
    assert!(
        matches!(&refused, Err(CaError::Permanent(m)) if m.contains("adcs.auth = \"ntlm\"")),
        "{refused:?}"
    );
    // And NTLM against one that takes only Basic.
    let basic_only = certsrv_taking(Authentication::Basic, 0).await;
    let ntlm = basic_only.client_logging_in(Authentication::Ntlm, "s3cret", &[]);
    let refused = ntlm.submit(order()).await;
    assert!(
        matches!(&refused, Err(CaError::Permanent(m)) if m.contains("does not offer Windows authentication")),
        "{refused:?}"
    );
}

#[tokio::test]
async fn the_welcome_page_asks_for_windows_authentication_as_iis_does() {
    let ca = certsrv_taking(Authentication::Ntlm, 0).await;
    let anonymous = ca
        .http
        .get(format!("{}/certsrv/", ca.url))
        .send()
        .await
        .expect("answered");
    assert_eq!(anonymous.status(), 401);
    let offers: Vec<&str> = anonymous
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(offers, ["Negotiate", "NTLM"]);
    let basic = ca
        .http
        .get(format!("{}/certsrv/", ca.url))
        .basic_auth("EXAMPLE\\enroll", Some("s3cret"))
        .send()
        .await
        .expect("answered");
    assert_eq!(basic.status(), 401, "Basic is off");
    // A client logged in with NTLM reads the pages behind it.
    let chain = ca.client("s3cret", &[]).ca_chain().await.expect("chain");
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
}

/// `cert-assistant adcs check` with the environment's settings replaced by `env`.
async fn adcs_check(env: &[(&str, &str)]) -> (bool, String) {
    let mut command = crate::helpers::binary();
    command.args(["adcs", "check"]).envs(env.iter().copied());
    let output = crate::helpers::output(command).await;
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

#[tokio::test]
async fn adcs_check_says_in_plain_words_what_works_and_what_is_wrong() {
    let ca = certsrv_taking(Authentication::Ntlm, 1).await;
    let settings = |auth: &'static str, password: &'static str| {
        [
            ("CERT_ASSISTANT_ADCS__URL", ca.url.clone()),
            ("CERT_ASSISTANT_ADCS__AUTH", auth.to_owned()),
            (
                "CERT_ASSISTANT_ADCS__USERNAME",
                "EXAMPLE\\enroll".to_owned(),
            ),
            ("CERT_ASSISTANT_ADCS__PASSWORD", password.to_owned()),
        ]
    };
    let run = |pairs: [(&'static str, String); 4]| async move {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        adcs_check(&pairs).await
    };
    let (ok, said) = run(settings("ntlm", "s3cret")).await;
    assert!(ok, "{said}");
    assert!(
        said.contains("ok      login: certsrv answered and took the NTLM login"),
        "{said}"
    );
    assert!(said.contains("ok      CA chain: 2 certificates"), "{said}");

    let (ok, said) = run(settings("ntlm", "wrong")).await;
    assert!(!ok);
    assert!(
        said.contains("FAILED  login") && said.contains("refused the credentials"),
        "{said}"
    );
    assert!(
        !said.contains("wrong"),
        "the password is never shown: {said}"
    );

    let (ok, said) = run(settings("basic", "s3cret")).await;
    assert!(!ok);
    assert!(said.contains("set adcs.auth = \"ntlm\""), "{said}");

    let (ok, said) = adcs_check(&[
        ("CERT_ASSISTANT_ADCS__URL", "http://127.0.0.1:9"),
        ("CERT_ASSISTANT_ADCS__USERNAME", "u"),
        ("CERT_ASSISTANT_ADCS__PASSWORD", "p"),
    ])
    .await;
    assert!(!ok);
    assert!(said.contains("cannot connect to ADCS"), "{said}");
}

#[tokio::test]
async fn projections_status_shows_when_the_ca_last_worked_and_last_failed_and_why() {
    let db = TestDb::new().await;
    let ca = certsrv_taking(Authentication::Ntlm, 0).await;
    let files = crate::helpers::test_files();
    let mut config = crate::helpers::test_config(files.path());
    config.adcs.url = Some(ca.url.clone());
    config.adcs.auth = cert_assistant::config::AdcsAuth::Ntlm;
    config.adcs.username = Some("EXAMPLE\\enroll".to_owned());
    config.adcs.password = Some("s3cret".to_owned().into());
    // The service as serve builds it: its CA is the composition root's.
    let (_, workers) = crate::helpers::serve(&db.pool, &config).await;
    for (cn, outage) in [("down.example.com", true), ("up.example.com", false)] {
        if outage {
            ca.admin("/admin/fail-next/1").await;
        }
        approved(&db, cn).await;
        sqlx::query("UPDATE jobs SET run_at = now() WHERE state = 'queued'")
            .execute(&db.pool)
            .await
            .expect("due");
        workers.issuance.step().await.expect("step");
    }
    crate::helpers::eventually("both calls recorded", Duration::from_secs(10), || {
        let pool = db.pool.clone();
        async move {
            cert_assistant::app::ca_calls(&pool)
                .await
                .expect("calls")
                .iter()
                .any(|c| c.operation == "submit" && c.calls == 3)
        }
    })
    .await;

    let mut status = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
    status
        .args(["projections", "status"])
        .env("DATABASE_URL", db.url());
    let output = crate::helpers::output(status).await;
    assert!(output.status.success(), "{output:?}");
    let said = String::from_utf8_lossy(&output.stdout);
    let line = said
        .lines()
        .find(|line| line.starts_with("CA adcs submit:"))
        .unwrap_or_else(|| panic!("{said}"));
    // The first submission met the outage; the second step submitted it again, and the other.
    assert!(line.contains("3 calls, 1 failed"), "{line}");
    assert!(
        !line.contains("last worked never") && !line.contains("last failed never"),
        "{line}"
    );
    assert!(line.contains("503"), "why it failed: {line}");
    assert!(!said.contains("s3cret"), "{said}");
}

#[tokio::test]
async fn over_https_with_extended_protection_both_logins_issue_and_a_stranger_server_is_refused() {
    // certsrv's TLS certificate, signed by nobody the web trusts: adcs.ca_bundle names it.
    let tls = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("tls");
    let (certificate_pem, key_pem) = (tls.cert.pem(), tls.signing_key.serialize_pem());
    for login in [Authentication::Basic, Authentication::Ntlm] {
        // Hardened as Microsoft advises: NTLM logins bound to their TLS connection.
        let emulator = Emulator::new("EXAMPLE\\enroll", "s3cret")
            .expect("emulator")
            .with_logins(match login {
                Authentication::Basic => Logins::Basic,
                Authentication::Ntlm => Logins::Windows,
            })
            .with_extended_protection_required();
        let root_pem = emulator.root_pem().to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("https://{}", listener.local_addr().expect("addr"));
        let (served_certificate, served_key) = (certificate_pem.clone(), key_pem.clone());
        tokio::spawn(async move {
            emulator
                .serve_tls(
                    listener,
                    &served_certificate,
                    &served_key,
                    std::future::pending(),
                )
                .await
        });
        let client = |bundle: Option<String>| {
            AdcsClient::new(AdcsSettings {
                url: url.clone(),
                authentication: login,
                username: "EXAMPLE\\enroll".to_owned(),
                password: "s3cret".to_owned().into(),
                ca_bundle_pem: bundle,
                client_identity_pem: None,
                timeout: Duration::from_secs(5),
                templates: BTreeMap::new(),
                revoke_hook: None,
            })
            .expect("client")
        };
        let csr = ordered("tls.example.com", KeyAlgorithm::EccP256);
        let Submission::Issued {
            certificate_pem: issued,
            chain_pem,
            ..
        } = client(Some(certificate_pem.clone()))
            .submit(csr.order(CertificateType::WebServer, 365))
            .await
            .unwrap_or_else(|e| panic!("{login:?} over https: {e}"))
        else {
            panic!("issued at once");
        };
        assert!(verifies(&root_pem, &chain_pem, &issued), "{login:?}");
        // Without the bundle the server's certificate does not verify: no login is tried.
        let stranger = client(None)
            .submit(csr.order(CertificateType::WebServer, 365))
            .await;
        assert!(
            matches!(&stranger, Err(CaError::Transient(m)) if m.contains("cannot connect to ADCS") && m.contains("invalid peer certificate")),
            "{login:?}: {stranger:?}"
        );
    }
}
