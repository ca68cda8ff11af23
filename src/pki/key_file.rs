//! The private key as it leaves the service: an encrypted PKCS#8 PEM
//! (`-----BEGIN ENCRYPTED PRIVATE KEY-----`, PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC),
//! which `openssl pkey`, Java's keytool, Windows' certutil (via a `.pfx` made with openssl)
//! and web servers read with the passphrase.

use pkcs8::der::pem::LineEnding;
use pkcs8::pkcs5::pbes2;
use pkcs8::{PrivateKeyInfo, SecretDocument};

/// PBKDF2 iterations. The passphrases are random (128 bits), so this guards against nothing
/// a guess could reach; it follows OWASP's figure for PBKDF2-HMAC-SHA256 anyway.
const ITERATIONS: u32 = 600_000;

/// Why a key could not be protected.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// Not a PKCS#8 private key PEM.
    #[error("the stored private key is not a PKCS#8 PEM")]
    NotPkcs8,
    /// Encryption failed (no randomness, bad parameters).
    #[error("the private key could not be encrypted")]
    Encrypt,
}

/// `pem` (an unencrypted PKCS#8 `PRIVATE KEY`) encrypted under `passphrase`.
pub fn encrypt_pem(pem: &str, passphrase: &str) -> Result<String, KeyFileError> {
    let (label, document) = SecretDocument::from_pem(pem).map_err(|_| KeyFileError::NotPkcs8)?;
    if label != "PRIVATE KEY" {
        return Err(KeyFileError::NotPkcs8);
    }
    let info = PrivateKeyInfo::try_from(document.as_bytes()).map_err(|_| KeyFileError::NotPkcs8)?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    aws_lc_rs::rand::fill(&mut salt).map_err(|_| KeyFileError::Encrypt)?;
    aws_lc_rs::rand::fill(&mut iv).map_err(|_| KeyFileError::Encrypt)?;
    let params = pbes2::Parameters::pbkdf2_sha256_aes256cbc(ITERATIONS, &salt, &iv)
        .map_err(|_| KeyFileError::Encrypt)?;
    let encrypted = info
        .encrypt_with_params(params, passphrase)
        .map_err(|_| KeyFileError::Encrypt)?;
    let pem = encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
        .map_err(|_| KeyFileError::Encrypt)?;
    Ok(pem.to_string())
}

#[cfg(test)]
mod tests {
    use pkcs8::EncryptedPrivateKeyInfo;

    use super::*;

    #[test]
    fn the_key_comes_back_only_with_its_passphrase() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let pem = key.serialize_pem();
        let protected = encrypt_pem(&pem, "4f3c9a1e-77b2d0c8").expect("encrypted");
        assert!(protected.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
        assert!(!protected.contains(&pem[40..80]), "no plaintext inside");
        let (_, document) = SecretDocument::from_pem(&protected).expect("pem");
        let info = EncryptedPrivateKeyInfo::try_from(document.as_bytes()).expect("der");
        assert!(info.decrypt("wrong").is_err());
        let plain = info.decrypt("4f3c9a1e-77b2d0c8").expect("decrypted");
        assert_eq!(plain.as_bytes(), key.serialize_der().as_slice());
    }

    #[test]
    fn anything_but_a_pkcs8_key_is_refused() {
        assert!(matches!(
            encrypt_pem(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "x"
            ),
            Err(KeyFileError::NotPkcs8)
        ));
        assert!(matches!(
            encrypt_pem("garbage", "x"),
            Err(KeyFileError::NotPkcs8)
        ));
    }
}
