//! Generating a key pair and its CSR for a request.

use rcgen::{
    CertificateParams, DistinguishedName, DnType, DnValue, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize, SanType,
};

use crate::domain::request::Subject;
use crate::domain::values::KeyAlgorithm;

/// The PKCS#9 emailAddress attribute (1.2.840.113549.1.9.1).
const EMAIL_ADDRESS_OID: [u64; 7] = [1, 2, 840, 113549, 1, 9, 1];

/// A fresh key pair and CSR. The private key is plaintext: encrypt it (see
/// [`super::envelope`]) before it goes anywhere. `Debug` does not show it.
pub struct GeneratedCsr {
    /// The CSR, PEM.
    pub csr_pem: String,
    /// The private key, PKCS#8 PEM.
    pub private_key_pem: String,
}

impl std::fmt::Debug for GeneratedCsr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCsr")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

impl Drop for GeneratedCsr {
    fn drop(&mut self) {
        // Best effort: overwrite the key text before the allocation is freed.
        let mut bytes = std::mem::take(&mut self.private_key_pem).into_bytes();
        bytes.fill(0);
    }
}

/// Why generation failed.
#[derive(Debug, thiserror::Error)]
#[error("could not generate the key and CSR: {0}")]
pub struct KeygenError(String);

/// Generates a key of `algorithm` and a CSR for `subject` (its SANs as DNS names, and the
/// subject's e-mail address as an rfc822Name SAN).
pub fn generate(subject: &Subject, algorithm: KeyAlgorithm) -> Result<GeneratedCsr, KeygenError> {
    let err = |e: rcgen::Error| KeygenError(e.to_string());
    let key_pair = match algorithm {
        KeyAlgorithm::Rsa2048 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048),
        KeyAlgorithm::Rsa4096 => KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_4096),
        KeyAlgorithm::EccP256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256),
        KeyAlgorithm::EccP384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384),
    }
    .map_err(err)?;

    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.common_name.as_ref());
    if let Some(o) = &subject.organization {
        dn.push(DnType::OrganizationName, o.as_str());
    }
    if let Some(ou) = &subject.organizational_unit {
        dn.push(DnType::OrganizationalUnitName, ou.as_str());
    }
    if let Some(l) = &subject.locality {
        dn.push(DnType::LocalityName, l.as_str());
    }
    if let Some(st) = &subject.state_province {
        dn.push(DnType::StateOrProvinceName, st.as_str());
    }
    if let Some(c) = &subject.country {
        dn.push(DnType::CountryName, c.as_ref());
    }
    if let Some(email) = &subject.email_address {
        let value = rcgen::string::Ia5String::try_from(email.as_ref()).map_err(err)?;
        dn.push(
            DnType::CustomDnType(EMAIL_ADDRESS_OID.to_vec()),
            DnValue::Ia5String(value.clone()),
        );
        params.subject_alt_names.push(SanType::Rfc822Name(value));
    }
    params.distinguished_name = dn;
    for name in &subject.subject_alternative_names {
        let value = rcgen::string::Ia5String::try_from(name.as_ref()).map_err(err)?;
        params.subject_alt_names.push(SanType::DnsName(value));
    }
    let csr = params.serialize_request(&key_pair).map_err(err)?;
    Ok(GeneratedCsr {
        csr_pem: csr.pem().map_err(err)?,
        private_key_pem: key_pair.serialize_pem(),
    })
}
