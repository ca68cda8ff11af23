//! Shared fixtures: the command service on a test database, people, and typical requests.

use cert_assistant::commands::{CommandContext, Commands, RequestForm, SubmittedRequest};
use cert_assistant::domain::actor::Actor;
use cert_assistant::domain::actor::{Platform, Role};
use cert_assistant::domain::certificate::{IssuedCertificate, StorageKeys};
use cert_assistant::domain::key_material::EncryptedPrivateKey;
use cert_assistant::domain::values::Email;
use cert_assistant::domain::values::{CommonName, DnsName, KeyAlgorithm, SerialNumber};
use cert_assistant::pki::envelope::KeyEncryptionKey;
use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::helpers::TestDb;

pub const KEK: &str = "q9Yc4r1b6a3M0x7tZpWmVfQhKjLnE2uS8dG5yB1cA0o=";

pub fn ctx(email: &str) -> CommandContext {
    CommandContext::new(Email::parse(email).expect("email"), Platform::Cli)
}

pub fn service(db: &TestDb) -> Commands {
    Commands::new(
        db.pool.clone(),
        KeyEncryptionKey::from_base64(KEK).expect("kek"),
        &["root@example.com".to_owned()],
    )
}

pub fn web_request(cn: &str) -> RequestForm {
    RequestForm {
        common_name: cn.to_owned(),
        subject_alternative_names: vec![format!("www.{cn}")],
        certificate_type: "web_server".to_owned(),
        validity_days: Some("90".to_owned()),
        justification: "Customer portal".to_owned(),
        ..RequestForm::default()
    }
}

pub async fn approver(commands: &Commands, email: &str) -> CommandContext {
    granted(commands, email, Role::Approver).await
}

/// `email` given `role` by the root admin; returns their context.
pub async fn granted(commands: &Commands, email: &str, role: Role) -> CommandContext {
    commands
        .grant_role(
            &ctx("root@example.com"),
            &Email::parse(email).expect("email"),
            role,
        )
        .await
        .expect("grant");
    ctx(email)
}

/// A certificate for `app.example.com` as the issuance saga would record it: valid for
/// `days`, with an encrypted key when `with_key`.
pub fn issued_certificate(
    request: &SubmittedRequest,
    owner: Actor,
    serial: &str,
    days: i64,
    with_key: bool,
) -> IssuedCertificate {
    let private_key = with_key.then(|| EncryptedPrivateKey {
        data_key_id: Uuid::new_v4(),
        algorithm: "AES-256-GCM".to_owned(),
        ciphertext: "Y2lwaGVydGV4dA==".to_owned(),
    });
    IssuedCertificate {
        certificate_id: Uuid::new_v4(),
        request_id: request.request_id,
        request_number: request.request_number.clone(),
        owner,
        serial_number: SerialNumber::parse(serial).expect("serial"),
        thumbprint_sha1: "ab".repeat(20),
        thumbprint_sha256: "cd".repeat(32),
        common_name: CommonName::parse("app.example.com").expect("cn"),
        subject_dn: "CN=app.example.com".to_owned(),
        issuer_dn: "CN=cert-assistant Issuing CA".to_owned(),
        subject_alternative_names: vec![DnsName::parse("app.example.com").expect("san")],
        valid_from: Utc::now(),
        valid_to: Utc::now() + Duration::days(days),
        key_algorithm: KeyAlgorithm::EccP256,
        key_size: 256,
        signature_algorithm: "ecdsa-with-SHA256".to_owned(),
        storage: StorageKeys {
            bucket: "local".to_owned(),
            certificate: format!("certs/{serial}.pem"),
            chain: Some(format!("certs/{serial}.chain.pem")),
            private_key: private_key.as_ref().map(|_| format!("keys/{serial}.enc")),
        },
        private_key,
        acm: None,
    }
}

/// A fresh key's CSR for `cn` (also its one DNS name) and the subject it names.
pub struct Ordered {
    /// The CSR, PEM.
    pub csr_pem: String,
    /// What the request states.
    pub subject: cert_assistant::domain::request::Subject,
}

/// A CSR for `cn` with a key of `algorithm`, and its subject.
pub fn ordered(cn: &str, algorithm: KeyAlgorithm) -> Ordered {
    let subject = cert_assistant::domain::request::Subject {
        common_name: CommonName::parse(cn).expect("cn"),
        organization: None,
        organizational_unit: None,
        locality: None,
        state_province: None,
        country: None,
        email_address: None,
        subject_alternative_names: vec![DnsName::parse(cn).expect("san")],
    };
    let csr_pem = cert_assistant::pki::keygen::generate(&subject, algorithm)
        .expect("csr")
        .csr_pem
        .clone();
    Ordered { csr_pem, subject }
}

impl Ordered {
    /// The order for a certificate of `kind` valid `days`.
    pub fn order(
        &self,
        kind: cert_assistant::domain::values::CertificateType,
        days: u32,
    ) -> cert_assistant::adapters::ca::Order<'_> {
        cert_assistant::adapters::ca::Order {
            csr_pem: &self.csr_pem,
            subject: &self.subject,
            certificate_type: kind,
            validity_days: days,
            reference: "fixture",
            exportable: true,
        }
    }
}
