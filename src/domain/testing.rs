//! Fixtures for the aggregate tests.

use chrono::{DateTime, TimeZone, Utc};
use uuid::Uuid;

use super::actor::{Actor, Role};
use super::key_material::EncryptedPrivateKey;
use super::request::{BusinessContext, Csr, CsrType, NewRequest, Subject};
use super::text::Text;
use super::values::{
    CaType, CertificateType, CommonName, DnsName, Email, KeyAlgorithm, RequestNumber, ValidityDays,
};

pub fn at(minute: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 10, minute, 0)
        .single()
        .expect("a valid time")
}

pub fn actor(name: &str, role: Role) -> Actor {
    Actor::new(
        Email::parse(&format!("{name}@example.com")).expect("email"),
        role,
    )
}

pub fn requester() -> Actor {
    actor("john", Role::User)
}

pub fn text(s: &str) -> Text {
    Text::parse("text", s, 4000).expect("text")
}

/// A subject naming hosts: common name `cn`, DNS names `sans`, nothing else.
pub fn host_subject(cn: &str, sans: &[&str]) -> Subject {
    Subject {
        common_name: CommonName::parse(cn).expect("cn"),
        organization: None,
        organizational_unit: None,
        locality: None,
        state_province: None,
        country: None,
        email_address: None,
        subject_alternative_names: sans
            .iter()
            .map(|s| DnsName::parse(s).expect("san"))
            .collect(),
    }
}

pub fn request_id() -> Uuid {
    Uuid::from_u128(0x1234)
}

pub fn new_request() -> NewRequest {
    NewRequest {
        request_id: request_id(),
        request_number: RequestNumber::parse("REQ-20261127-00001").expect("number"),
        requester: requester(),
        subject: Subject {
            common_name: CommonName::parse("app.example.com").expect("cn"),
            organization: Some(text("Example Corp")),
            organizational_unit: None,
            locality: None,
            state_province: None,
            country: None,
            email_address: None,
            subject_alternative_names: vec![DnsName::parse("www.example.com").expect("san")],
        },
        certificate_type: CertificateType::WebServer,
        key_algorithm: KeyAlgorithm::EccP256,
        validity_days: ValidityDays::try_from(90).expect("validity"),
        csr: Csr {
            csr_type: CsrType::Generated,
            pem: "-----BEGIN CERTIFICATE REQUEST-----".to_owned(),
            private_key: Some(EncryptedPrivateKey {
                data_key_id: Uuid::from_u128(0x99),
                algorithm: "AES-256-GCM".to_owned(),
                ciphertext: "c2VjcmV0".to_owned(),
            }),
        },
        business: BusinessContext {
            justification: text("Customer portal"),
            department: None,
            cost_center: None,
            project_code: None,
            notes: None,
        },
        answers: None,
        recommendation: None,
        requested_ca_type: CaType::Internal,
        override_reason: None,
        renews: None,
        stays_in_acm: false,
    }
}
