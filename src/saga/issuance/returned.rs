//! What a CA returned, read and checked before anything is stored or recorded. A certificate
//! that cannot be read, or that names anything the request did not state (an ADCS template
//! that builds the subject from the directory, a CA that adds names), is not recorded as the
//! request's: the problem is final, so the saga fails the request and tells the admins,
//! who revoke it at the CA, instead of retrying what can never succeed.

use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};
use x509_parser::prelude::{FromDer, GeneralName, ParsedExtension, X509Certificate};

use crate::domain::request::Subject;
use crate::domain::values::{CommonName, DnsName, SerialNumber};

/// A certificate the CA returned, as it will be recorded.
#[derive(Debug, Clone)]
pub(crate) struct Returned {
    pub serial: SerialNumber,
    pub common_name: CommonName,
    pub subject_dn: String,
    pub issuer_dn: String,
    pub subject_alternative_names: Vec<DnsName>,
    pub valid_from: DateTime<Utc>,
    pub valid_to: DateTime<Utc>,
    pub signature_algorithm: String,
    pub thumbprint_sha1: String,
    pub thumbprint_sha256: String,
}

impl Returned {
    /// Reads `certificate_pem` and checks that it certifies `subject`'s names and no others.
    /// The error says what is wrong, for the requester and the admins.
    pub fn read(certificate_pem: &str, subject: &Subject) -> Result<Self, String> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes())
            .map_err(|e| format!("the certificate is unreadable: {e}"))?;
        let (_, x509) = X509Certificate::from_der(&pem.contents)
            .map_err(|e| format!("the certificate is unreadable: {e}"))?;
        let serial = SerialNumber::from_bytes(x509.raw_serial())
            .map_err(|e| format!("its serial number cannot be recorded: {}", e.message))?;
        let mut names = x509.subject().iter_common_name();
        let common_name = names
            .next()
            .ok_or("it has no common name (a template that builds the subject itself?)")?
            .as_str()
            .map_err(|e| format!("its common name is unreadable: {e}"))?;
        if names.next().is_some() {
            return Err("it has more than one common name".to_owned());
        }
        let common_name = CommonName::parse(common_name)
            .map_err(|e| format!("its common name cannot be recorded: {}", e.message))?;
        if !common_name
            .as_ref()
            .eq_ignore_ascii_case(subject.common_name.as_ref())
        {
            return Err(format!(
                "it is for {common_name}, not for the requested {}",
                subject.common_name
            ));
        }
        let mut sans = Vec::new();
        for extension in x509.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() {
                for name in &san.general_names {
                    match name {
                        GeneralName::DNSName(dns) => {
                            let dns = DnsName::parse(dns).map_err(|e| {
                                format!("its DNS name {dns:?} is not one: {}", e.message)
                            })?;
                            if !subject.subject_alternative_names.contains(&dns)
                                && subject.common_name.as_dns_name().as_ref() != Some(&dns)
                            {
                                return Err(format!("it names {dns}, which was not requested"));
                            }
                            sans.push(dns);
                        }
                        GeneralName::RFC822Name(mail)
                            if subject
                                .email_address
                                .as_ref()
                                .is_some_and(|own| own.as_ref().eq_ignore_ascii_case(mail)) => {}
                        other => {
                            return Err(format!(
                                "it carries the alternative name {other}, which was not requested"
                            ));
                        }
                    }
                }
            }
        }
        let time = |t: x509_parser::time::ASN1Time| {
            Utc.timestamp_opt(t.timestamp(), 0)
                .single()
                .ok_or_else(|| "its validity is out of range".to_owned())
        };
        let signature_algorithm =
            match x509.signature_algorithm.algorithm.to_id_string().as_str() {
                "1.2.840.10045.4.3.2" => "ecdsa-with-SHA256",
                "1.2.840.10045.4.3.3" => "ecdsa-with-SHA384",
                "1.2.840.113549.1.1.11" => "sha256WithRSAEncryption",
                "1.2.840.113549.1.1.12" => "sha384WithRSAEncryption",
                other => other,
            }
            .to_owned();
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let sha1 =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &pem.contents);
        Ok(Self {
            serial,
            common_name,
            subject_dn: x509.subject().to_string(),
            issuer_dn: x509.issuer().to_string(),
            subject_alternative_names: sans,
            valid_from: time(x509.validity().not_before)?,
            valid_to: time(x509.validity().not_after)?,
            signature_algorithm,
            thumbprint_sha1: hex(sha1.as_ref()),
            thumbprint_sha256: hex(&Sha256::digest(&pem.contents)),
        })
    }
}
