//! Reading a CSR that a requester pasted or uploaded: PEM (`CERTIFICATE REQUEST` or
//! `NEW CERTIFICATE REQUEST`, LF or CRLF), a valid self-signature, an acceptable key, and
//! names that match the request. Each failure has its own message.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use crate::domain::request::Subject;
use crate::domain::values::KeyAlgorithm;

/// The largest CSR accepted (real ones are 1–4 KiB).
pub const MAX_CSR_BYTES: usize = 16 * 1024;

const OID_EC_P256: &str = "1.2.840.10045.3.1.7";
const OID_EC_P384: &str = "1.3.132.0.34";

/// Why an uploaded CSR was refused; every message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrError {
    /// Too big to be a CSR.
    #[error("the CSR is {0} bytes; a CSR is at most 16 KiB")]
    TooLarge(usize),
    /// No PEM block.
    #[error(
        "that is not a PEM CSR; paste the text from -----BEGIN CERTIFICATE REQUEST----- to \
         -----END CERTIFICATE REQUEST-----"
    )]
    NotPem,
    /// A PEM block of another kind.
    #[error("that PEM block is a {0}, not a certificate request")]
    WrongKind(String),
    /// The DER inside does not parse.
    #[error("the CSR is damaged: its contents cannot be read")]
    Malformed,
    /// The signature does not verify.
    #[error("the CSR's signature does not verify: it was altered, or not signed by its own key")]
    BadSignature,
    /// RSA too small.
    #[error("the CSR has a {0}-bit RSA key; at least 2048 bits are required")]
    WeakRsa(usize),
    /// RSA of a size we do not issue.
    #[error("the CSR has a {0}-bit RSA key; use 2048 or 4096 bits")]
    UnsupportedRsaSize(usize),
    /// EC curve we do not support.
    #[error("the CSR's elliptic curve is not supported; use P-256 or P-384")]
    UnknownCurve,
    /// Some other key type.
    #[error("the CSR's key type is not supported; use RSA (2048/4096) or ECDSA (P-256/P-384)")]
    UnsupportedKey,
    /// No CN.
    #[error("the CSR has no common name (CN)")]
    NoCommonName,
    /// CN differs.
    #[error("the CSR's common name {csr:?} does not match the request's {request:?}")]
    CommonNameMismatch {
        /// In the CSR.
        csr: String,
        /// In the request.
        request: String,
    },
    /// SANs differ.
    #[error("the CSR's DNS names do not match the request: {0}")]
    SanMismatch(String),
    /// Key algorithm differs.
    #[error("the CSR has a {csr} key but the request asks for {request}")]
    KeyMismatch {
        /// In the CSR.
        csr: KeyAlgorithm,
        /// In the request.
        request: KeyAlgorithm,
    },
}

/// A parsed, signature-checked CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedCsr {
    /// The PEM, normalised to LF line endings.
    pub pem: String,
    /// The subject CN.
    pub common_name: Option<String>,
    /// The DNS SANs, lower-cased.
    pub dns_names: Vec<String>,
    /// The key.
    pub key_algorithm: KeyAlgorithm,
}

/// Parses and verifies an uploaded CSR.
pub fn parse(text: &str) -> Result<UploadedCsr, CsrError> {
    if text.len() > MAX_CSR_BYTES {
        return Err(CsrError::TooLarge(text.len()));
    }
    let normalized = text.replace("\r\n", "\n");
    let start = normalized.find("-----BEGIN ").ok_or(CsrError::NotPem)?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&normalized.as_bytes()[start..])
        .map_err(|_| CsrError::NotPem)?;
    if pem.label != "CERTIFICATE REQUEST" && pem.label != "NEW CERTIFICATE REQUEST" {
        return Err(CsrError::WrongKind(pem.label.to_lowercase()));
    }
    let (_, csr) =
        X509CertificationRequest::from_der(&pem.contents).map_err(|_| CsrError::Malformed)?;
    let info = &csr.certification_request_info;
    let key_algorithm = match info.subject_pki.parsed() {
        Ok(PublicKey::RSA(rsa)) => match rsa.key_size() {
            bits if bits < 2048 => return Err(CsrError::WeakRsa(bits)),
            2048 => KeyAlgorithm::Rsa2048,
            4096 => KeyAlgorithm::Rsa4096,
            bits => return Err(CsrError::UnsupportedRsaSize(bits)),
        },
        Ok(PublicKey::EC(_)) => {
            let curve = info
                .subject_pki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some(OID_EC_P256) => KeyAlgorithm::EccP256,
                Some(OID_EC_P384) => KeyAlgorithm::EccP384,
                _ => return Err(CsrError::UnknownCurve),
            }
        }
        _ => return Err(CsrError::UnsupportedKey),
    };
    // After the key checks: a weak key is the more useful message, and the verifier refuses
    // to check signatures made with keys it considers too weak.
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
    let common_name = info
        .subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    let mut dns_names = Vec::new();
    if let Some(extensions) = csr.requested_extensions() {
        for extension in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = extension {
                for name in &san.general_names {
                    if let GeneralName::DNSName(dns) = name {
                        dns_names.push(dns.to_ascii_lowercase());
                    }
                }
            }
        }
    }
    // Keep the exact PEM block the requester sent (LF endings), nothing around it.
    let end_marker = format!("-----END {}-----", pem.label);
    let pem_text = normalized[start..]
        .find(&end_marker)
        .map(|end| format!("{}\n", &normalized[start..start + end + end_marker.len()]))
        .unwrap_or_else(|| normalized[start..].to_owned());
    Ok(UploadedCsr {
        pem: pem_text,
        common_name,
        dns_names,
        key_algorithm,
    })
}

/// Checks that the CSR asks for what the request says: the same CN (case-insensitive), the
/// same DNS names (in any order; the CN counts among them for host certificates), and, when the
/// request names one, the same key algorithm.
pub fn check_matches(
    csr: &UploadedCsr,
    subject: &Subject,
    key_algorithm: Option<KeyAlgorithm>,
) -> Result<(), CsrError> {
    let csr_cn = csr.common_name.as_deref().ok_or(CsrError::NoCommonName)?;
    let request_cn = subject.common_name.as_ref();
    if !csr_cn.eq_ignore_ascii_case(request_cn) {
        return Err(CsrError::CommonNameMismatch {
            csr: csr_cn.to_owned(),
            request: request_cn.to_owned(),
        });
    }
    let cn_as_dns = subject.common_name.as_dns_name().map(String::from);
    let mut wanted: Vec<String> = subject
        .subject_alternative_names
        .iter()
        .map(|n| n.as_ref().to_owned())
        .collect();
    let mut offered = csr.dns_names.clone();
    // A CSR whose only name is its CN (no SAN extension) matches a request for that name.
    if let Some(cn) = &cn_as_dns {
        for list in [&mut wanted, &mut offered] {
            if !list.contains(cn) {
                list.push(cn.clone());
            }
        }
    }
    wanted.sort();
    wanted.dedup();
    offered.sort();
    offered.dedup();
    if wanted != offered {
        let missing: Vec<&str> = wanted
            .iter()
            .filter(|n| !offered.contains(n))
            .map(String::as_str)
            .collect();
        let extra: Vec<&str> = offered
            .iter()
            .filter(|n| !wanted.contains(n))
            .map(String::as_str)
            .collect();
        let mut parts = Vec::new();
        if !missing.is_empty() {
            parts.push(format!("missing {}", missing.join(", ")));
        }
        if !extra.is_empty() {
            parts.push(format!("not requested {}", extra.join(", ")));
        }
        return Err(CsrError::SanMismatch(parts.join("; ")));
    }
    if let Some(requested) = key_algorithm
        && requested != csr.key_algorithm
    {
        return Err(CsrError::KeyMismatch {
            csr: csr.key_algorithm,
            request: requested,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::request::Subject;
    use crate::domain::values::{CommonName, DnsName};
    use crate::pki::keygen;

    fn subject(cn: &str, sans: &[&str]) -> Subject {
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

    fn generated(algorithm: KeyAlgorithm) -> String {
        keygen::generate(
            &subject("app.example.com", &["app.example.com", "www.example.com"]),
            algorithm,
        )
        .expect("generate")
        .csr_pem
        .clone()
    }

    #[test]
    fn generated_csrs_of_every_algorithm_parse_and_match() {
        for algorithm in KeyAlgorithm::ALL.iter().copied() {
            let csr = parse(&generated(algorithm)).expect("parses");
            assert_eq!(csr.key_algorithm, algorithm);
            assert_eq!(csr.common_name.as_deref(), Some("app.example.com"));
            check_matches(
                &csr,
                &subject("APP.example.com", &["www.example.com"]),
                Some(algorithm),
            )
            .expect("matches");
        }
    }

    #[test]
    fn crlf_and_the_old_header_are_accepted() {
        let pem = generated(KeyAlgorithm::EccP256);
        let old = pem
            .replace("BEGIN CERTIFICATE REQUEST", "BEGIN NEW CERTIFICATE REQUEST")
            .replace("END CERTIFICATE REQUEST", "END NEW CERTIFICATE REQUEST")
            .replace('\n', "\r\n");
        let csr = parse(&format!("Here is my CSR:\r\n{old}\r\nthanks")).expect("parses");
        assert!(
            csr.pem
                .starts_with("-----BEGIN NEW CERTIFICATE REQUEST-----\n")
        );
        assert!(csr.pem.ends_with("-----END NEW CERTIFICATE REQUEST-----\n"));
        assert!(!csr.pem.contains('\r'));
    }

    #[test]
    fn every_failure_has_its_own_message() {
        assert_eq!(parse("hello"), Err(CsrError::NotPem));
        assert!(matches!(
            parse(&"A".repeat(MAX_CSR_BYTES + 1)),
            Err(CsrError::TooLarge(_))
        ));
        let cert_label =
            generated(KeyAlgorithm::EccP256).replace("CERTIFICATE REQUEST", "CERTIFICATE");
        assert_eq!(
            parse(&cert_label),
            Err(CsrError::WrongKind("certificate".to_owned()))
        );
        let garbage =
            "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
        assert_eq!(parse(garbage), Err(CsrError::Malformed));
    }

    #[test]
    fn weak_and_unsupported_keys_are_refused() {
        // Made with `openssl req -new -newkey <kind> -subj /CN=app.example.com`.
        assert_eq!(
            parse(include_str!("testdata/rsa1024.csr")),
            Err(CsrError::WeakRsa(1024))
        );
        assert_eq!(
            parse(include_str!("testdata/rsa3072.csr")),
            Err(CsrError::UnsupportedRsaSize(3072))
        );
        assert_eq!(
            parse(include_str!("testdata/p521.csr")),
            Err(CsrError::UnknownCurve)
        );
        assert_eq!(
            parse(include_str!("testdata/ed25519.csr")),
            Err(CsrError::UnsupportedKey)
        );
    }

    #[test]
    fn a_tampered_csr_fails_its_signature_check() {
        use base64::Engine as _;
        let pem = generated(KeyAlgorithm::EccP256);
        let (_, block) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        let mut der = block.contents.clone();
        // Flip a byte inside the subject's CN ("app" -> "bpp").
        let at = der
            .windows(3)
            .position(|w| w == b"app")
            .expect("the CN is in the DER");
        der[at] = b'b';
        let body = base64::engine::general_purpose::STANDARD.encode(&der);
        let tampered = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"
        );
        assert_eq!(parse(&tampered), Err(CsrError::BadSignature));
    }

    #[test]
    fn names_and_keys_must_match_the_request() {
        let csr = parse(&generated(KeyAlgorithm::EccP256)).expect("parses");
        assert!(matches!(
            check_matches(
                &csr,
                &subject("other.example.com", &["www.example.com"]),
                None
            ),
            Err(CsrError::CommonNameMismatch { .. })
        ));
        let error = check_matches(
            &csr,
            &subject("app.example.com", &["api.example.com"]),
            None,
        )
        .expect_err("SANs differ");
        assert_eq!(
            error.to_string(),
            "the CSR's DNS names do not match the request: missing api.example.com; not \
             requested www.example.com"
        );
        assert_eq!(
            check_matches(
                &csr,
                &subject("app.example.com", &["www.example.com"]),
                Some(KeyAlgorithm::Rsa2048)
            ),
            Err(CsrError::KeyMismatch {
                csr: KeyAlgorithm::EccP256,
                request: KeyAlgorithm::Rsa2048
            })
        );
    }

    #[test]
    fn no_uploaded_text_makes_the_csr_parser_panic() {
        let valid = include_str!("testdata/rsa3072.csr");
        let mut inputs = crate::fuzz::Inputs::new(0x5eed_0002);
        for _ in 0..3_000 {
            for text in [inputs.mutate(valid), inputs.text(20)] {
                if let Err(error) = parse(&text) {
                    assert!(!error.to_string().is_empty());
                }
            }
        }
    }
}
