//! The CA chain as ADCS hands it out: `certnew.p7b?ReqID=CACert&Renewal=N&Enc=b64`, a
//! certificates-only PKCS#7 (CMS SignedData) in base64, usually inside "CERTIFICATE" armour,
//! holding the issuing CA and the CAs above it (a two-tier PKI's offline root) in no
//! particular order. Read (and, for the emulator, written) with RustCrypto's CMS types.

use base64::Engine as _;
use cms::cert::CertificateChoices;
use cms::cert::x509::Certificate;
use cms::cert::x509::der::asn1::SetOfVec;
use cms::cert::x509::der::{Any, Decode as _, Encode as _};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, DigestAlgorithmIdentifiers, EncapsulatedContentInfo, SignedData, SignerInfos,
};
use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};

/// The certificates (DER) of a PKCS#7 given as base64, with or without PEM armour.
pub fn certificates(body: &str) -> Result<Vec<Vec<u8>>, String> {
    let base64: String = body
        .lines()
        .filter(|line| !line.trim_start().starts_with("-----"))
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(base64)
        .map_err(|_| "the chain is not base64".to_owned())?;
    let info = ContentInfo::from_der(&der).map_err(|e| format!("not PKCS#7: {e}"))?;
    if info.content_type != ID_SIGNED_DATA {
        return Err("the PKCS#7 is not signed data".to_owned());
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|e| format!("unreadable PKCS#7 signed data: {e}"))?;
    signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(certificate) => Some(certificate.to_der()),
            CertificateChoices::Other(_) => None,
        })
        .collect::<Result<_, _>>()
        .map_err(|e| format!("unreadable certificate in the PKCS#7: {e}"))
}

/// A certificates-only PKCS#7 of `certificates` (DER), as certsrv serves the chain.
pub fn pkcs7(certificates: &[Vec<u8>]) -> anyhow::Result<Vec<u8>> {
    let choices = certificates
        .iter()
        .map(|der| Ok(CertificateChoices::Certificate(Certificate::from_der(der)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: DigestAlgorithmIdentifiers::new(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(SetOfVec::try_from(choices)?)),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::new()),
    };
    Ok(ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed)?,
    }
    .to_der()?)
}

/// `certificates` in chain order as PEM: the one that issued `leaf` (or, without a leaf, the
/// one that issued none of the others) first, then each one's issuer up to the root.
/// Certificates that are not on that path are left out.
pub fn ordered_pem(leaf: Option<&[u8]>, certificates: &[Vec<u8>]) -> String {
    let parsed: Vec<(&[u8], Vec<u8>, Vec<u8>)> = certificates
        .iter()
        .filter_map(|der| {
            let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
            Some((
                der.as_slice(),
                certificate.subject().as_raw().to_vec(),
                certificate.issuer().as_raw().to_vec(),
            ))
        })
        .collect();
    let mut issuer = match leaf.and_then(|der| x509_parser::parse_x509_certificate(der).ok()) {
        Some((_, leaf)) => leaf.issuer().as_raw().to_vec(),
        None => match parsed.iter().find(|(_, subject, _)| {
            !parsed.iter().any(|(_, other_subject, other_issuer)| {
                other_issuer == subject && other_subject != subject
            })
        }) {
            Some((_, subject, _)) => subject.clone(),
            None => return String::new(),
        },
    };
    let mut chain = Vec::new();
    while let Some((der, subject, next)) = parsed.iter().find(|(_, subject, _)| *subject == issuer)
    {
        if chain.len() == parsed.len() || chain.contains(der) {
            break;
        }
        chain.push(*der);
        if next == subject {
            break;
        }
        issuer = next.clone();
    }
    chain.iter().map(|der| pem(der)).collect()
}

/// DER in "CERTIFICATE" armour, lines of 64 (certsrv puts its PKCS#7 in this armour too).
pub fn pem(der: &[u8]) -> String {
    ::pem::encode_config(
        &::pem::Pem::new("CERTIFICATE", der),
        ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF),
    )
}
