//! The embedded CA: chains that `openssl verify` accepts, a CRL that rejects revoked ones.

use std::process::Command;

use cert_assistant::adapters::ca::embedded::EmbeddedCa;
use cert_assistant::adapters::ca::{AtCa, CertificateAuthority, Submission};
use cert_assistant::domain::values::{CertificateType, KeyAlgorithm, RevocationReason};
use cert_assistant::pki::envelope::KeyEncryptionKey;

use crate::fixtures::{KEK, ordered};
use crate::helpers::TestDb;

const CRL_URL: &str = "http://127.0.0.1:8080/ca/crl.der";

fn openssl(args: &[&str]) -> (bool, String) {
    let output = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    (
        output.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

async fn ca(db: &TestDb) -> EmbeddedCa {
    EmbeddedCa::load_or_create(
        &db.pool,
        &KeyEncryptionKey::from_base64(KEK).expect("kek"),
        CRL_URL,
    )
    .await
    .expect("the embedded CA")
}

#[tokio::test]
async fn issued_chains_verify_and_revoked_certificates_fail_the_crl_check() {
    let db = TestDb::new().await;
    let ca = ca(&db).await;
    let Submission::Issued {
        ca_request_id,
        certificate_pem,
        chain_pem,
        ..
    } = ca
        .submit(
            ordered("app.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 90),
        )
        .await
        .expect("submitted")
    else {
        panic!("the embedded CA issues at once");
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(path("root.pem"), ca.root_pem()).expect("write");
    let issuing = chain_pem.replace(ca.root_pem(), "");
    std::fs::write(path("issuing.pem"), &issuing).expect("write");
    std::fs::write(path("cert.pem"), &certificate_pem).expect("write");
    let (ok, out) = openssl(&[
        "verify",
        "-CAfile",
        &path("root.pem"),
        "-untrusted",
        &path("issuing.pem"),
        &path("cert.pem"),
    ]);
    assert!(ok, "{out}");
    let (_, text) = openssl(&["x509", "-in", &path("cert.pem"), "-noout", "-text"]);
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    assert!(text.contains(CRL_URL), "{text}");
    assert!(text.contains("DNS:app.example.com"), "{text}");

    // Not revoked yet: the CRL check passes.
    std::fs::write(path("crl.der"), ca.crl_der().await.expect("crl")).expect("write");
    let (ok, out) = openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path("crl.der"),
        "-out",
        &path("crl.pem"),
    ]);
    assert!(ok, "{out}");
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &path("root.pem"),
        "-CRLfile",
        &path("crl.pem"),
        "-untrusted",
        &path("issuing.pem"),
        &path("cert.pem"),
    ]);
    assert!(ok, "{out}");

    ca.revoke(
        AtCa::serial(&ca_request_id),
        RevocationReason::KeyCompromise,
    )
    .await
    .expect("revoked");
    ca.revoke(
        AtCa::serial(&ca_request_id),
        RevocationReason::KeyCompromise,
    )
    .await
    .expect("revoking twice is idempotent");
    assert!(
        matches!(
            ca.revoke(AtCa::serial("0123456789ABCDEF"), RevocationReason::KeyCompromise).await,
            Err(cert_assistant::adapters::ca::CaError::Permanent(message))
                if message.contains("never issued")
        ),
        "an unknown serial is a permanent error"
    );
    std::fs::write(path("crl.der"), ca.crl_der().await.expect("crl")).expect("write");
    openssl(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        &path("crl.der"),
        "-out",
        &path("crl.pem"),
    ]);
    let (ok, out) = openssl(&[
        "verify",
        "-crl_check",
        "-CAfile",
        &path("root.pem"),
        "-CRLfile",
        &path("crl.pem"),
        "-untrusted",
        &path("issuing.pem"),
        &path("cert.pem"),
    ]);
    assert!(!ok, "a revoked certificate must fail: {out}");
    assert!(out.contains("certificate revoked"), "{out}");
}

#[tokio::test]
async fn each_type_gets_its_extended_key_usage_and_the_requested_validity() {
    let db = TestDb::new().await;
    let ca = ca(&db).await;
    for (kind, expected) in [
        (CertificateType::CodeSigning, "Code Signing"),
        (CertificateType::Email, "E-mail Protection"),
        (CertificateType::UserAuth, "TLS Web Client Authentication"),
    ] {
        let Submission::Issued {
            certificate_pem, ..
        } = ca
            .submit(ordered("signer.example.com", KeyAlgorithm::Rsa2048).order(kind, 365))
            .await
            .expect("submitted")
        else {
            panic!("issued");
        };
        let (_, der) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).expect("pem");
        let certificate = der.parse_x509().expect("x509");
        let days = (certificate.validity().not_after.timestamp()
            - certificate.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, 365, "5 minutes of back-dating stay below a day");
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("c.pem");
        std::fs::write(&file, &certificate_pem).expect("write");
        let (_, text) = openssl(&[
            "x509",
            "-in",
            &file.display().to_string(),
            "-noout",
            "-text",
        ]);
        assert!(text.contains(expected), "{kind}: {text}");
    }
}

#[tokio::test]
async fn the_ca_is_created_once_and_garbage_is_denied() {
    let db = TestDb::new().await;
    let first = ca(&db).await;
    let second = ca(&db).await;
    assert_eq!(first.root_pem(), second.root_pem());
    let denied = first
        .submit(cert_assistant::adapters::ca::Order {
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ..ordered("x.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 90)
        })
        .await
        .expect("answered");
    assert!(
        matches!(&denied, Submission::Denied { message } if message.contains("Error Parsing Request")),
        "{denied:?}"
    );
    let unknown = first.retrieve("00FF").await.expect("answered");
    assert!(matches!(unknown, Submission::Denied { .. }));
}

#[tokio::test]
async fn the_crl_is_signed_again_only_when_a_revocation_changes_it() {
    let db = TestDb::new().await;
    let ca = ca(&db).await;
    let Submission::Issued { ca_request_id, .. } = ca
        .submit(
            ordered("crl.example.com", KeyAlgorithm::EccP256).order(CertificateType::WebServer, 90),
        )
        .await
        .expect("submitted")
    else {
        panic!("the embedded CA issues at once");
    };
    let numbered = || async {
        let number: i64 = sqlx::query_scalar("SELECT last_value FROM embedded_ca_crl_number")
            .fetch_one(&db.pool)
            .await
            .expect("sequence");
        number
    };
    // Anyone may fetch it, as often as they like: the same signed CRL, no new number.
    let first = ca.crl_der().await.expect("crl");
    let number = numbered().await;
    let handles: Vec<_> = (0..20).map(|_| ca.crl_der()).collect();
    for again in futures::future::join_all(handles).await {
        assert_eq!(again.expect("crl"), first);
    }
    assert_eq!(numbered().await, number, "not signed again");
    // A revocation makes a new one at once.
    ca.revoke(
        AtCa::serial(&ca_request_id),
        RevocationReason::KeyCompromise,
    )
    .await
    .expect("revoked");
    let after = ca.crl_der().await.expect("crl");
    assert_ne!(after, first);
    assert_eq!(numbered().await, number + 1);
    assert_eq!(ca.crl_der().await.expect("crl"), after);
}
