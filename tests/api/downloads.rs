//! Downloads: certificate and chain to the owner (counted, audited), the generated private
//! key once to the owner only, nothing to strangers.

use cert_assistant::domain::certificate::Artifact;
use cert_assistant::feed::Projector;

use crate::fixtures::ctx;
use crate::helpers::TestDb;
use crate::saga::{issued, saga};

#[tokio::test]
async fn owners_download_the_certificate_and_their_key_once() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "download.example.com").await;
    let john = ctx("john@example.com");
    let download = |who, what| {
        let commands = s.commands.clone();
        let serial = serial.clone();
        let store = s.store.clone();
        async move { commands.download(&who, &serial, what, store.as_ref()).await }
    };

    let certificate = download(john.clone(), Artifact::Certificate)
        .await
        .expect("the certificate");
    assert!(certificate.pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        certificate.filename,
        format!("download.example.com-{serial}.pem")
    );
    let chain = download(john.clone(), Artifact::Chain)
        .await
        .expect("chain");
    assert!(chain.pem.contains("BEGIN CERTIFICATE"));

    let stranger = download(ctx("mallory@example.com"), Artifact::Certificate).await;
    assert!(
        stranger.is_err_and(|e| e.to_string().contains("only the owner")),
        "strangers get nothing"
    );
    let theirs = download(ctx("mallory@example.com"), Artifact::PrivateKey).await;
    assert!(theirs.is_err_and(|e| e.to_string().contains("only the owner")));

    let key = download(john.clone(), Artifact::PrivateKey)
        .await
        .expect("the key, once");
    assert!(key.pem.contains("PRIVATE KEY"));
    assert!(
        !format!("{key:?}").contains("PRIVATE KEY"),
        "Debug hides it"
    );
    let again = download(john.clone(), Artifact::PrivateKey).await;
    assert!(
        again.is_err_and(|e| e.to_string().contains("already downloaded")),
        "the key is handed out once"
    );

    Projector::new(db.pool.clone())
        .catch_up(std::time::Duration::from_secs(30))
        .await
        .expect("projected");
    let (count, key_downloaded): (i32, bool) = sqlx::query_as(
        "SELECT c.download_count, k.downloaded FROM certificates c \
               JOIN private_keys k ON k.certificate_id = c.id",
    )
    .fetch_one(&db.pool)
    .await
    .expect("certificate row");
    assert_eq!((count, key_downloaded), (1, true));
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM audit_logs WHERE event_type = 'certificate_downloaded'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("audit");
    assert_eq!(audited, 3, "certificate, chain and key");
}

/// The service, on port 0, over the saga's artifact store; returns its base URL.
pub(crate) async fn serve_downloads(db: &TestDb, s: &crate::saga::Saga) -> String {
    let mut config = crate::helpers::test_config(s.files());
    config.storage.local_dir = Some(s.files().to_owned());
    crate::helpers::serve(&db.pool, &config).await.0
}

#[tokio::test]
async fn signed_links_download_over_http_once_for_the_key_and_refuse_forgeries() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "link.example.com").await;
    let base = serve_downloads(&db, &s).await;
    let http = reqwest::Client::new();
    let john = ctx("john@example.com");

    let link = s
        .commands
        .download_link(&john, &serial, Artifact::Certificate)
        .await
        .expect("link");
    assert!(
        link.passphrase.is_none(),
        "a certificate needs no passphrase"
    );
    let token = link.token;
    let response = http
        .get(format!("{base}/downloads/{token}"))
        .send()
        .await
        .expect("get");
    assert_eq!(response.status(), 200);
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .expect("header")
        .to_owned();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"link.example.com-{serial}.pem\"")
    );
    let pem = response.text().await.expect("body");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");

    // Someone else's key: refused when asking, not only when downloading.
    let theirs = s
        .commands
        .download_link(&ctx("mallory@example.com"), &serial, Artifact::PrivateKey)
        .await;
    assert!(theirs.is_err_and(|e| e.to_string().contains("only the owner")));

    let key_link = s
        .commands
        .download_link(&john, &serial, Artifact::PrivateKey)
        .await
        .expect("key link");
    let key = key_link.token.clone();
    let passphrase = key_link.passphrase.clone().expect("a one-time passphrase");
    assert!(
        !key.contains(&passphrase),
        "the link does not carry its passphrase"
    );
    // Link previews and scanners (HEAD, GET) see a page, never the key, and spend nothing.
    let head = http
        .head(format!("{base}/downloads/{key}"))
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    for _ in 0..2 {
        let page = http
            .get(format!("{base}/downloads/{key}"))
            .send()
            .await
            .expect("get");
        assert_eq!(page.status(), 200);
        assert!(
            page.headers()["content-type"]
                .to_str()
                .is_ok_and(|t| t.starts_with("text/html"))
        );
        let page = page.text().await.expect("page");
        assert!(page.contains("<form method=\"post\">"), "{page}");
        assert!(!page.contains("PRIVATE KEY-----"), "{page}");
    }
    // The page's button (a POST) fetches it.
    let first = http
        .post(format!("{base}/downloads/{key}"))
        .send()
        .await
        .expect("post");
    assert_eq!(first.status(), 200);
    let encrypted = first.text().await.expect("body");
    assert!(
        encrypted.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"),
        "{encrypted}"
    );
    // openssl opens it with the passphrase (and not without), and it is the certificate's key.
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&key_file, &encrypted).expect("write");
    let public_of_key = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-passin"])
        .arg(format!("pass:{passphrase}"))
        .arg("-in")
        .arg(&key_file)
        .output()
        .expect("openssl pkey");
    assert!(public_of_key.status.success(), "{public_of_key:?}");
    let wrong = std::process::Command::new("openssl")
        .args(["pkey", "-pubout", "-passin", "pass:not-it", "-in"])
        .arg(&key_file)
        .output()
        .expect("openssl pkey");
    assert!(!wrong.status.success(), "a wrong passphrase opens nothing");
    let certificate = http
        .get(format!("{base}/downloads/{token}"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("certificate");
    let cert_file = dir.path().join("cert.pem");
    std::fs::write(&cert_file, certificate).expect("write");
    let public_of_cert = std::process::Command::new("openssl")
        .args(["x509", "-pubkey", "-noout", "-in"])
        .arg(&cert_file)
        .output()
        .expect("openssl x509");
    assert_eq!(
        public_of_key.stdout, public_of_cert.stdout,
        "the key matches the certificate"
    );
    // The spent key is refused before anything is decrypted or re-encrypted (the costly
    // part): with its data key gone, the answer is still that it was downloaded.
    sqlx::query("DELETE FROM data_keys WHERE id NOT IN (SELECT key_data_key FROM embedded_ca)")
        .execute(&db.pool)
        .await
        .expect("data keys");
    let second = http
        .post(format!("{base}/downloads/{key}"))
        .send()
        .await
        .expect("post");
    assert_eq!(second.status(), 403);
    assert!(
        second
            .text()
            .await
            .expect("body")
            .contains("already downloaded")
    );

    // Once downloaded, no new link for the key is made.
    let again = s
        .commands
        .download_link(&john, &serial, Artifact::PrivateKey)
        .await;
    assert!(
        again.is_err_and(|e| e.to_string().contains("already downloaded")),
        "a link for a spent key"
    );

    // A forged link (altered payload) and an expired one.
    let (payload, tag) = token.split_once('.').expect("token");
    let mut altered = payload.to_owned();
    altered.replace_range(0..1, if payload.starts_with('e') { "f" } else { "e" });
    let forged = http
        .get(format!("{base}/downloads/{altered}.{tag}"))
        .send()
        .await
        .expect("get");
    assert_eq!(forged.status(), 403);
    let later = chrono::Utc::now() + chrono::Duration::minutes(16);
    assert_eq!(
        s.commands.open_download_link(&token, later),
        Err(cert_assistant::commands::LinkError::Expired)
    );
}

#[tokio::test]
async fn the_cli_writes_the_key_before_its_one_download_is_used_up() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "cli-key.example.com").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let download = async |out: &std::path::Path| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
        command
            .args([
                "certificate",
                "download",
                &serial,
                "--as",
                "john@example.com",
            ])
            .args(["--artifact", "private_key", "--out"])
            .arg(out)
            .env("DATABASE_URL", db.url())
            .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", crate::fixtures::KEK)
            .env("CERT_ASSISTANT_STORAGE__LOCAL_DIR", s.files())
            .env_remove("RUST_LOG");
        let output = crate::helpers::output(command).await;
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    // A directory that does not exist: refused, and the key is still there to have.
    let (ok, err) = download(&dir.path().join("missing").join("k.pem")).await;
    assert!(!ok);
    assert!(err.contains("could not write"), "{err}");
    let key = dir.path().join("k.pem");
    let (ok, err) = download(&key).await;
    assert!(ok, "{err}");
    let written = std::fs::read_to_string(&key).expect("the key file");
    assert!(written.starts_with("-----BEGIN PRIVATE KEY-----"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    // Spent: a second download is refused and leaves no file behind.
    let (ok, err) = download(&dir.path().join("again.pem")).await;
    assert!(!ok);
    assert!(err.contains("already downloaded"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["k.pem"], "no partial or second file");
}

#[tokio::test]
async fn one_person_gets_a_bounded_number_of_download_links_an_hour() {
    let db = TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "links.example.com").await;
    let limit = cert_assistant::commands::LINKS_PER_HOUR;
    // Concurrent asks cannot slip past the count.
    let asks: Vec<_> = (0..limit + 5)
        .map(|_| {
            let commands = s.commands.clone();
            let serial = serial.clone();
            tokio::spawn(async move {
                commands
                    .download_link(&ctx("john@example.com"), &serial, Artifact::Certificate)
                    .await
            })
        })
        .collect();
    let mut made = 0;
    let mut refused = Vec::new();
    for ask in asks {
        match ask.await.expect("joined") {
            Ok(_) => made += 1,
            Err(error) => refused.push(error.to_string()),
        }
    }
    assert_eq!(made, limit);
    assert_eq!(refused.len(), 5);
    assert!(
        refused[0].contains("download links in the last hour") && refused[0].contains("UTC"),
        "{refused:?}"
    );
    // The same person under a sub-address is the same person.
    assert!(
        s.commands
            .download_link(&ctx("john+other@example.com"), &serial, Artifact::Chain)
            .await
            .is_err()
    );
    // Someone else is not affected.
    s.commands
        .download_link(&ctx("root@example.com"), &serial, Artifact::Certificate)
        .await
        .expect("another person's link");
}

/// `request show` and `/cert status` read a request, its approval and its certificate in one
/// statement; the certificate from its latest snapshot and the events after it. That state
/// is the one cqrs-es loads, snapshot or not, and it is current the moment a command returns.
#[tokio::test]
async fn a_request_read_in_one_statement_is_the_state_its_aggregates_load() {
    use cert_assistant::domain::certificate::{Certificate, CertificateStatus};
    use cqrs_es::persist::PersistedEventStore;
    use cqrs_es::{AggregateContext as _, EventStore as _};
    use postgres_es::PostgresEventRepository;

    let db = TestDb::new().await;
    let s = saga(&db).await;
    let serial = issued(&db, &s, "state.example.com").await;
    let john = ctx("john@example.com");
    // 45 downloads: snapshots after 20 and 40 events, five events after the last one.
    for _ in 0..45 {
        s.commands
            .download(&john, &serial, Artifact::Certificate, s.store.as_ref())
            .await
            .expect("download");
    }
    let number: String =
        sqlx::query_scalar("SELECT request_number FROM request_number_allocations")
            .fetch_one(&db.pool)
            .await
            .expect("number");
    let snapshots: i64 =
        sqlx::query_scalar("SELECT count(*) FROM snapshots WHERE aggregate_type = 'Certificate'")
            .fetch_one(&db.pool)
            .await
            .expect("snapshots");
    assert_eq!(snapshots, 1, "the certificate has a snapshot");

    let state = cert_assistant::eventstore::request_state(&db.pool, &number)
        .await
        .expect("read")
        .expect("the request");
    let (certificate_id, certificate) = state.certificate.expect("its certificate");
    let id = certificate_id.to_string();
    let from_snapshot = PersistedEventStore::<_, Certificate>::new_snapshot_store(
        PostgresEventRepository::new(db.pool.clone()),
        20,
    )
    .load_aggregate(&id)
    .await
    .expect("loaded")
    .aggregate()
    .clone();
    let from_events = PersistedEventStore::<_, Certificate>::new_event_store(
        PostgresEventRepository::new(db.pool.clone()),
    )
    .load_aggregate(&id)
    .await
    .expect("loaded")
    .aggregate()
    .clone();
    assert_eq!(certificate, from_snapshot);
    assert_eq!(certificate, from_events);

    // Revoked: the view says so at once, before any projection has run.
    s.commands
        .revoke(
            &john,
            cert_assistant::commands::RevocationForm {
                certificate: serial.clone(),
                reason: "superseded".to_owned(),
                text: None,
            },
        )
        .await
        .expect("revoked");
    let view = s
        .commands
        .request(&cert_assistant::domain::values::RequestNumber::parse(&number).expect("number"))
        .await
        .expect("view");
    let summary = view.certificate.expect("certificate summary");
    assert_eq!(summary.serial.to_string(), serial);
    assert_eq!(summary.status, CertificateStatus::Revoked);
    assert!(view.approval_outcome.is_some(), "the approval is decided");

    let nothing = cert_assistant::eventstore::request_state(&db.pool, "REQ-20260101-99999")
        .await
        .expect("read");
    assert!(nothing.is_none(), "no such number");
}
