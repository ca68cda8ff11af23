//! Reading a CSR that a requester pasted or uploaded: PEM (`CERTIFICATE REQUEST` or
//! `NEW CERTIFICATE REQUEST`, LF or CRLF), a valid self-signature, an acceptable key, and
//! names that match the request: every subject attribute and every alternative name the CSR
//! carries must be one the request states, so a CA that honours the CSR's names (ADCS with
//! a "supply in request" template) certifies nothing the approver did not see. Each failure
//! has its own message.

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::objects::{oid_registry, oid2abbrev};
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
    /// A subject attribute the request does not state, or states otherwise.
    #[error(
        "the CSR's subject {0}; a certificate names only what the request states, so make a \
         CSR with the request's subject only"
    )]
    SubjectMismatch(String),
    /// An alternative name of a kind the request cannot state.
    #[error(
        "the CSR asks for {0}, which the request does not state; a certificate here names \
         only DNS names (and, for e-mail certificates, the request's address)"
    )]
    UnrequestedName(String),
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
    /// Every subject attribute in order: its abbreviation (`CN`, `O`, `OU`, `L`, `ST`, `C`,
    /// `Email`, `DC`, …, or the dotted OID) and its value (`None` when it is not text).
    pub subject: Vec<(String, Option<String>)>,
    /// Every subject alternative name.
    pub alternative_names: Vec<AltName>,
    /// The key.
    pub key_algorithm: KeyAlgorithm,
}

/// A subject alternative name of a CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AltName {
    /// A DNS name, lower-cased.
    Dns(String),
    /// An rfc822Name (e-mail address).
    Email(String),
    /// Any other kind (IP address, URI, UPN and other names, directory names, …), described
    /// for a person: "the IP address 10.0.0.5".
    Other(String),
}

impl UploadedCsr {
    /// The first CN.
    pub fn common_name(&self) -> Option<&str> {
        self.attribute("CN").next().flatten()
    }

    /// The values of the subject attribute `abbreviation`.
    fn attribute<'a>(&'a self, abbreviation: &'a str) -> impl Iterator<Item = Option<&'a str>> {
        self.subject
            .iter()
            .filter(move |(name, _)| name == abbreviation)
            .map(|(_, value)| value.as_deref())
    }

    /// The DNS SANs.
    pub fn dns_names(&self) -> impl Iterator<Item = &str> {
        self.alternative_names.iter().filter_map(|name| match name {
            AltName::Dns(dns) => Some(dns.as_str()),
            _ => None,
        })
    }
}

/// A SAN as the check sees it.
fn alt_name(name: &GeneralName<'_>) -> AltName {
    let other = match name {
        GeneralName::DNSName(dns) => return AltName::Dns(dns.to_ascii_lowercase()),
        GeneralName::RFC822Name(email) => return AltName::Email((*email).to_owned()),
        GeneralName::URI(uri) => format!("the URI {uri}"),
        GeneralName::IPAddress(bytes) => match <[u8; 4]>::try_from(*bytes) {
            Ok(v4) => format!("the IP address {}", std::net::Ipv4Addr::from(v4)),
            Err(_) => match <[u8; 16]>::try_from(*bytes) {
                Ok(v6) => format!("the IP address {}", std::net::Ipv6Addr::from(v6)),
                Err(_) => "an IP address".to_owned(),
            },
        },
        GeneralName::OtherName(oid, _) if oid.to_id_string() == OID_UPN => {
            "a Windows user principal name (UPN)".to_owned()
        }
        GeneralName::OtherName(oid, _) => format!("an other name ({oid})"),
        GeneralName::DirectoryName(name) => format!("the directory name {name}"),
        GeneralName::RegisteredID(oid) => format!("the registered id {oid}"),
        GeneralName::X400Address(_) => "an X.400 address".to_owned(),
        GeneralName::EDIPartyName(_) => "an EDI party name".to_owned(),
        GeneralName::Invalid(..) => "an unreadable alternative name".to_owned(),
    };
    AltName::Other(other)
}

/// The Microsoft UPN other-name.
const OID_UPN: &str = "1.3.6.1.4.1.311.20.2.3";

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
    let subject = info
        .subject
        .iter_attributes()
        .map(|attribute| {
            let oid = attribute.attr_type();
            let name = oid2abbrev(oid, oid_registry())
                .map(str::to_owned)
                .unwrap_or_else(|_| oid.to_id_string());
            (name, attribute.as_str().ok().map(str::to_owned))
        })
        .collect();
    let mut alternative_names = Vec::new();
    if let Some(extensions) = csr.requested_extensions() {
        for extension in extensions {
            if let ParsedExtension::SubjectAlternativeName(san) = extension {
                alternative_names.extend(san.general_names.iter().map(alt_name));
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
        subject,
        alternative_names,
        key_algorithm,
    })
}

/// Checks that the CSR asks for what the request says and nothing more: the same CN
/// (case-insensitive), once; no other subject attribute than the request's O, OU, L, ST, C
/// and e-mail address, each once and equal to it; the same DNS names (in any order; the CN
/// counts among them for host certificates); no e-mail name but the request's address and no
/// other kind of name; and, when the request names one, the same key algorithm.
pub fn check_matches(
    csr: &UploadedCsr,
    subject: &Subject,
    key_algorithm: Option<KeyAlgorithm>,
) -> Result<(), CsrError> {
    let csr_cn = csr.common_name().ok_or(CsrError::NoCommonName)?;
    let request_cn = subject.common_name.as_ref();
    if !csr_cn.eq_ignore_ascii_case(request_cn) {
        return Err(CsrError::CommonNameMismatch {
            csr: csr_cn.to_owned(),
            request: request_cn.to_owned(),
        });
    }
    check_subject(csr, subject)?;
    let email = subject.email_address.as_ref().map(|e| e.as_ref());
    for name in &csr.alternative_names {
        match name {
            AltName::Dns(_) => {}
            AltName::Email(address) if email.is_some_and(|e| e.eq_ignore_ascii_case(address)) => {}
            AltName::Email(address) => {
                return Err(CsrError::UnrequestedName(format!(
                    "the e-mail address {address}"
                )));
            }
            AltName::Other(described) => {
                return Err(CsrError::UnrequestedName(described.clone()));
            }
        }
    }
    let cn_as_dns = subject.common_name.as_dns_name().map(String::from);
    let mut wanted: Vec<String> = subject
        .subject_alternative_names
        .iter()
        .map(|n| n.as_ref().to_owned())
        .collect();
    let mut offered: Vec<String> = csr.dns_names().map(str::to_owned).collect();
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

/// The subject attributes besides the CN: each one the request states, once, with the
/// request's value.
fn check_subject(csr: &UploadedCsr, subject: &Subject) -> Result<(), CsrError> {
    let stated: [(&str, Option<&str>); 6] = [
        ("O", subject.organization.as_ref().map(|t| t.as_str())),
        (
            "OU",
            subject.organizational_unit.as_ref().map(|t| t.as_str()),
        ),
        ("L", subject.locality.as_ref().map(|t| t.as_str())),
        ("ST", subject.state_province.as_ref().map(|t| t.as_str())),
        ("C", subject.country.as_ref().map(|c| c.as_ref())),
        ("Email", subject.email_address.as_ref().map(|e| e.as_ref())),
    ];
    let mut seen = std::collections::HashSet::new();
    for (name, value) in &csr.subject {
        if !seen.insert(name.as_str()) {
            return Err(CsrError::SubjectMismatch(format!(
                "names {name} more than once"
            )));
        }
        if name == "CN" {
            continue;
        }
        let shown = value.as_deref().unwrap_or("(a value that is not text)");
        let Some((_, wanted)) = stated.iter().find(|(abbreviation, _)| abbreviation == name) else {
            return Err(CsrError::SubjectMismatch(format!(
                "has {name}={shown:?}, which a request cannot state"
            )));
        };
        let same = match (wanted, value.as_deref()) {
            (Some(wanted), Some(value)) if matches!(name.as_str(), "C" | "Email") => {
                wanted.eq_ignore_ascii_case(value)
            }
            (Some(wanted), Some(value)) => *wanted == value,
            _ => false,
        };
        if !same {
            return Err(CsrError::SubjectMismatch(match wanted {
                Some(wanted) => format!("has {name}={shown:?} where the request states {wanted:?}"),
                None => format!("has {name}={shown:?}, which the request does not state"),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::host_subject as subject;
    use crate::pki::keygen;

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
            assert_eq!(csr.common_name(), Some("app.example.com"));
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
    fn a_csr_naming_anything_the_request_does_not_state_is_refused_and_says_what() {
        // Made with `openssl req -new -newkey ec … -subj … -addext subjectAltName=…`, each
        // for a request of CN app.example.com with no other names.
        let request = subject("app.example.com", &[]);
        for (file, expected) in [
            (
                include_str!("testdata/second_cn.csr"),
                "the CSR's subject names CN more than once",
            ),
            (
                include_str!("testdata/system_masters.csr"),
                "the CSR's subject has O=\"system:masters\", which the request does not state",
            ),
            (
                include_str!("testdata/directory_attrs.csr"),
                "the CSR's subject has DC=\"corp\", which a request cannot state",
            ),
            (
                include_str!("testdata/ip_and_uri.csr"),
                "the CSR asks for the IP address 10.0.0.5, which the request does not state",
            ),
            (
                include_str!("testdata/email_san.csr"),
                "the CSR asks for the e-mail address ceo@example.com, which the request",
            ),
            (
                include_str!("testdata/upn.csr"),
                "the CSR asks for a Windows user principal name (UPN), which the request",
            ),
        ] {
            let csr = parse(file).expect("parses");
            let error = check_matches(&csr, &request, None).expect_err(expected);
            assert!(error.to_string().starts_with(expected), "{error}");
        }
        // The URI is named too once the IP address is gone from the list.
        let csr = parse(include_str!("testdata/ip_and_uri.csr")).expect("parses");
        assert!(
            csr.alternative_names
                .contains(&AltName::Other("the URI spiffe://prod/admin".to_owned())),
            "{:?}",
            csr.alternative_names
        );
    }

    #[test]
    fn the_subject_attributes_a_request_states_match_when_equal() {
        let mut request = subject("app.example.com", &[]);
        request.organization = Some(crate::domain::text::Text::parse("o", "Acme", 255).expect("o"));
        request.country = Some(crate::domain::values::Country::parse("DE").expect("c"));
        let generated = keygen::generate(&request, KeyAlgorithm::EccP256).expect("csr");
        let csr = parse(&generated.csr_pem).expect("parses");
        check_matches(&csr, &request, None).expect("the same names");
        request.organization =
            Some(crate::domain::text::Text::parse("o", "Other", 255).expect("o"));
        assert_eq!(
            check_matches(&csr, &request, None)
                .expect_err("O differs")
                .to_string(),
            "the CSR's subject has O=\"Acme\" where the request states \"Other\"; a \
             certificate names only what the request states, so make a CSR with the \
             request's subject only"
        );
        // An e-mail certificate's own address is its one e-mail name.
        let mut email = subject("Jane Doe", &[]);
        email.email_address =
            Some(crate::domain::values::Email::parse("jane@example.com").expect("email"));
        let generated = keygen::generate(&email, KeyAlgorithm::EccP256).expect("csr");
        let csr = parse(&generated.csr_pem).expect("parses");
        check_matches(&csr, &email, None).expect("its own address");
        email.email_address =
            Some(crate::domain::values::Email::parse("ceo@example.com").expect("email"));
        assert!(check_matches(&csr, &email, None).is_err());
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
