//! Generating a key pair and its CSR for a request.

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_RSA_SHA256, RsaKeySize};

use crate::domain::request::Subject;
use crate::domain::values::KeyAlgorithm;

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

    let params = super::names::params(subject).map_err(err)?;
    let csr = params.serialize_request(&key_pair).map_err(err)?;
    Ok(GeneratedCsr {
        csr_pem: csr.pem().map_err(err)?,
        private_key_pem: key_pair.serialize_pem(),
    })
}
