//! What is certified is what was checked and shown: the names in a certificate, the
//! identities of the people who ask and decide, and answers meant for one person.

use cert_assistant::adapters::ca::embedded::EmbeddedCa;
use cert_assistant::adapters::ca::{CertificateAuthority, Order, Submission};
use cert_assistant::domain::values::{CertificateType, KeyAlgorithm};
use cert_assistant::pki::envelope::KeyEncryptionKey;
use x509_parser::prelude::{GeneralName, ParsedExtension};

use crate::fixtures::{KEK, ordered};
use crate::helpers::TestDb;

/// CSRs made with `openssl req` for CN app.example.com that name more than that.
const SMUGGLING: [(&str, &str, &str); 3] = [
    (
        "second_cn.csr",
        include_str!("../../src/pki/testdata/second_cn.csr"),
        "names CN more than once",
    ),
    (
        "ip_and_uri.csr",
        include_str!("../../src/pki/testdata/ip_and_uri.csr"),
        "the IP address 10.0.0.5",
    ),
    (
        "system_masters.csr",
        include_str!("../../src/pki/testdata/system_masters.csr"),
        "O=\"system:masters\"",
    ),
];

#[tokio::test]
async fn a_csr_that_names_more_than_the_request_is_refused_and_nothing_is_recorded() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, pem, named) in SMUGGLING {
        let path = dir.path().join(file);
        std::fs::write(&path, pem).expect("write");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
        command
            .args(["request", "create", "--as", "john@example.com"])
            .args(["--cn", "app.example.com", "--why", "names test", "--csr"])
            .arg(&path)
            .env("DATABASE_URL", db.url())
            .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", KEK)
            .env_remove("RUST_LOG");
        let output = crate::helpers::output(command).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{file} was accepted");
        assert!(stderr.contains(named), "{file}: {stderr}");
    }
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'RequestCreated'")
            .fetch_one(&db.pool)
            .await
            .expect("events");
    assert_eq!(created, 0);
}

/// The subject DN (attribute abbreviation, value) and SANs of a PEM certificate.
fn names_of(certificate_pem: &str) -> (Vec<(String, String)>, Vec<String>) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).expect("pem");
    let certificate = pem.parse_x509().expect("x509");
    let subject = certificate
        .subject()
        .iter_attributes()
        .map(|attribute| {
            (
                x509_parser::objects::oid2abbrev(
                    attribute.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .map(str::to_owned)
                .unwrap_or_else(|_| attribute.attr_type().to_id_string()),
                attribute.as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    let mut sans = Vec::new();
    for extension in certificate.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
            sans.extend(san.general_names.iter().map(|name| match name {
                GeneralName::DNSName(dns) => format!("DNS:{dns}"),
                other => format!("{other:?}"),
            }));
        }
    }
    (subject, sans)
}

#[tokio::test]
async fn the_embedded_ca_signs_the_requests_names_and_takes_only_the_key_from_the_csr() {
    let db = TestDb::new().await;
    let kek = KeyEncryptionKey::from_base64(KEK).expect("kek");
    let ca = EmbeddedCa::load_or_create(&db.pool, &kek, "http://127.0.0.1:8080/ca/crl.der")
        .await
        .expect("the embedded CA");
    let stated = ordered("app.example.com", KeyAlgorithm::EccP256).subject;
    for (file, pem, _) in SMUGGLING {
        let Submission::Issued {
            certificate_pem, ..
        } = ca
            .submit(Order {
                csr_pem: pem,
                subject: &stated,
                certificate_type: CertificateType::Other,
                validity_days: 30,
                reference: "names",
                exportable: true,
            })
            .await
            .expect("answered")
        else {
            panic!("{file}: issued");
        };
        let (subject, sans) = names_of(&certificate_pem);
        assert_eq!(
            subject,
            [("CN".to_owned(), "app.example.com".to_owned())],
            "{file}"
        );
        assert_eq!(sans, ["DNS:app.example.com"], "{file}");
    }
}

#[tokio::test]
async fn one_person_under_a_sub_address_cannot_approve_their_own_request() {
    let db = TestDb::new().await;
    let commands = crate::fixtures::service(&db);
    crate::fixtures::approver(&commands, "john@example.com").await;
    crate::fixtures::approver(&commands, "jane@example.com").await;
    crate::helpers::project(&db.pool).await;
    // John asks as john+req (a link to Discord, say) and decides as john from Slack.
    let submitted = commands
        .submit_request(
            &crate::fixtures::ctx("John+req@example.com"),
            crate::fixtures::web_request("self.example.com"),
        )
        .await
        .expect("submitted");
    crate::helpers::project(&db.pool).await;
    let error = commands
        .approve(
            &crate::fixtures::ctx("john@example.com"),
            &submitted.request_number,
            None,
        )
        .await
        .expect_err("his own request");
    assert!(error.to_string().contains("your own request"), "{error}");
    // Jane, another person, may.
    commands
        .approve(
            &crate::fixtures::ctx("jane@example.com"),
            &submitted.request_number,
            None,
        )
        .await
        .expect("approved by another person");
}
