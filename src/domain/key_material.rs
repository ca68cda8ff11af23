//! A private key the system generated, as it travels in events: encrypted.
//!
//! The key is encrypted with AES-256-GCM under a data key of its own; the data key is stored
//! wrapped by the key-encryption key, outside the event store (see `crate::pki::keys`).
//! Events are immutable, so "deleting" a key after revocation means destroying its data key:
//! the ciphertext left in the events can then never be decrypted again (crypto-shredding).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An encrypted private key (PKCS#8 PEM inside).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedPrivateKey {
    /// The data key that encrypts it (`private_keys.encryption_key_id`).
    pub data_key_id: Uuid,
    /// `AES-256-GCM` (`private_keys.encryption_algorithm`).
    pub algorithm: String,
    /// Base64 of nonce || ciphertext || tag (`private_keys.encrypted_key`).
    pub ciphertext: String,
}

impl std::fmt::Debug for EncryptedPrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptedPrivateKey")
            .field("data_key_id", &self.data_key_id)
            .field("algorithm", &self.algorithm)
            .field(
                "ciphertext",
                &format_args!("[{} bytes]", self.ciphertext.len()),
            )
            .finish()
    }
}
