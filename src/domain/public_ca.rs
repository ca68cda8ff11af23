//! What a public CA (AWS Certificate Manager) issues, checked before an approver sees the
//! request: TLS certificates for public host names, with a key ACM offers, no longer than the
//! CA/Browser Forum allows on the day, and ACM makes the key (no uploaded CSR).

use chrono::NaiveDate;

use super::recommendation::public_tls_max_validity_days;
use super::request::Subject;
use super::values::{CertificateType, DnsName, KeyAlgorithm, ValidityDays, ValueError};

/// Top-level names that only ever resolve inside an organisation: no public CA certifies them.
const INTERNAL_SUFFIXES: &[&str] = &[
    "local",
    "localhost",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "private",
];

/// Every reason the request cannot go to the public CA, one per field.
pub fn check(
    subject: &Subject,
    certificate_type: CertificateType,
    key_algorithm: Option<KeyAlgorithm>,
    uploaded_csr: bool,
    validity: ValidityDays,
    today: NaiveDate,
) -> Vec<ValueError> {
    let mut errors = Vec::new();
    if !certificate_type.names_hosts() {
        errors.push(ValueError::new(
            "certificate_type",
            format!(
                "the public CA issues TLS certificates for host names; a {certificate_type} \
                 certificate comes from the internal CA"
            ),
        ));
    }
    if let Some(cn) = subject.common_name.as_dns_name()
        && let Err(error) = public_name("common_name", &cn)
    {
        errors.push(error);
    }
    for san in &subject.subject_alternative_names {
        if subject.common_name.as_dns_name().as_ref() == Some(san) {
            continue;
        }
        if let Err(error) = public_name("subject_alternative_names", san) {
            errors.push(error);
        }
    }
    if let Some(algorithm) = key_algorithm
        && !matches!(
            algorithm,
            KeyAlgorithm::EccP256 | KeyAlgorithm::EccP384 | KeyAlgorithm::Rsa2048
        )
    {
        errors.push(ValueError::new(
            "key_algorithm",
            format!("the public CA offers ECC_P256, ECC_P384 and RSA_2048 keys, not {algorithm}"),
        ));
    }
    if uploaded_csr {
        errors.push(ValueError::new(
            "csr",
            "the public CA (AWS Certificate Manager) makes the key itself: leave the CSR empty",
        ));
    }
    let max = public_tls_max_validity_days(today);
    if validity.days() > max {
        errors.push(ValueError::new(
            "validity_days",
            format!(
                "{} days is longer than a public TLS certificate may be valid today (at most \
                 {max}, CA/Browser Forum ballot SC-081)",
                validity.days()
            ),
        ));
    }
    errors
}

/// A name a public CA can certify: at least two labels, not under an internal-only suffix.
fn public_name(field: &'static str, name: &DnsName) -> Result<(), ValueError> {
    let host = name.as_ref().strip_prefix("*.").unwrap_or(name.as_ref());
    let last = host.rsplit('.').next().unwrap_or(host);
    if !host.contains('.') || INTERNAL_SUFFIXES.contains(&last) {
        return Err(ValueError::new(
            field,
            format!(
                "{name} is an internal name; a public CA certifies only names in public DNS \
                 (use the internal CA for it)"
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::host_subject;

    #[test]
    fn only_public_host_names_with_keys_and_lengths_acm_offers_pass() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 1).expect("day");
        let days = |d: &str| ValidityDays::parse(d).expect("days");
        let fine = check(
            &host_subject(
                "shop.example.com",
                &["shop.example.com", "*.shop.example.com"],
            ),
            CertificateType::WebServer,
            Some(KeyAlgorithm::EccP256),
            false,
            days("90"),
            today,
        );
        assert!(fine.is_empty(), "{fine:?}");
        let refused = check(
            &host_subject("db.corp", &["db.corp", "printer", "files.local"]),
            CertificateType::Database,
            Some(KeyAlgorithm::Rsa4096),
            true,
            days("365"),
            today,
        );
        let fields: Vec<&str> = refused.iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "common_name",
                "subject_alternative_names",
                "subject_alternative_names",
                "key_algorithm",
                "csr",
                "validity_days"
            ]
        );
        assert!(refused[0].message.contains("internal name"), "{refused:?}");
        assert!(refused[5].message.contains("at most 200"), "{refused:?}");
        let email = check(
            &host_subject("Jane Doe", &[]),
            CertificateType::Email,
            None,
            false,
            days("90"),
            today,
        );
        assert_eq!(email[0].field, "certificate_type");
    }
}
