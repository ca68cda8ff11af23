//! Envelope encryption of private keys, designed so a key can be destroyed for good although
//! events are immutable.
//!
//! - Every private key gets a **data key** of its own (256 random bits). The key's PEM is
//!   encrypted with AES-256-GCM under that data key; the result travels in events and in
//!   `private_keys.encrypted_key`. The associated data binds it to the data key's id.
//! - The data key itself is stored **wrapped** (AES-256-GCM under the key-encryption key from
//!   configuration) in the `data_keys` table, outside the event store.
//! - Destroying a key = deleting its wrapped data key. The ciphertext left in the events can
//!   then never be decrypted again (crypto-shredding), and no event had to change.

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::key_material::EncryptedPrivateKey;

/// The algorithm name recorded with every encrypted key.
pub const ALGORITHM: &str = "AES-256-GCM";

/// Why encryption or decryption failed. Deliberately vague: details would help an attacker.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The configured key-encryption key is not 32 bytes of base64.
    #[error(
        "the key-encryption key must be 32 random bytes in base64 (for example the output of \
         `openssl rand -base64 32`)"
    )]
    BadKeyEncryptionKey,
    /// Wrong key, wrong data key, or tampered ciphertext.
    #[error("the encrypted key could not be decrypted (wrong key or damaged data)")]
    Decrypt,
    /// The system's random generator failed.
    #[error("could not encrypt: {0}")]
    Encrypt(&'static str),
}

/// The key-encryption key (KEK). Its `Debug` never shows the key.
pub struct KeyEncryptionKey {
    key: RandomizedNonceKey,
    id: String,
    /// An HMAC key derived from the KEK for signing download links (never the KEK itself).
    links: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A data key wrapped under the KEK, as stored in `data_keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// The data key's id.
    pub id: Uuid,
    /// Which KEK wrapped it (a fingerprint, not the key).
    pub kek_id: String,
    /// nonce || ciphertext || tag.
    pub wrapped: Vec<u8>,
}

/// A data key in memory, used for one private key.
pub struct DataKey {
    id: Uuid,
    key: RandomizedNonceKey,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl KeyEncryptionKey {
    /// From 32 bytes in standard base64.
    pub fn from_base64(text: &str) -> Result<Self, EnvelopeError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| EnvelopeError::BadKeyEncryptionKey)?;
        Self::from_bytes(&bytes)
    }

    /// From 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.len() != 32 {
            return Err(EnvelopeError::BadKeyEncryptionKey);
        }
        let key = RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map_err(|_| EnvelopeError::BadKeyEncryptionKey)?;
        let digest = Sha256::digest(bytes);
        let id = format!("kek-{}", hex(&digest[..6]));
        let derived = aws_lc_rs::hmac::sign(
            &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, bytes),
            b"cert-assistant download links v1",
        );
        let links = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, derived.as_ref());
        Ok(Self { key, id, links })
    }

    /// 32 fresh random bytes in base64, for a new installation.
    pub fn generate_base64() -> Result<String, EnvelopeError> {
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| EnvelopeError::Encrypt("no randomness"))?;
        Ok(BASE64.encode(bytes))
    }

    /// A fingerprint of the KEK (safe to store and log).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A new data key, and the form to store it in.
    pub fn new_data_key(&self) -> Result<(DataKey, WrappedDataKey), EnvelopeError> {
        let id = Uuid::new_v4();
        let mut bytes = [0u8; 32];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| EnvelopeError::Encrypt("no randomness"))?;
        let data_key = DataKey {
            id,
            key: RandomizedNonceKey::new(&AES_256_GCM, &bytes)
                .map_err(|_| EnvelopeError::Encrypt("bad data key"))?,
        };
        let wrapped = seal(&self.key, &wrap_aad(id, &self.id), bytes.to_vec())?;
        bytes.fill(0);
        Ok((
            data_key,
            WrappedDataKey {
                id,
                kek_id: self.id.clone(),
                wrapped,
            },
        ))
    }

    /// Signs a download link's payload.
    pub fn sign_link(&self, payload: &[u8]) -> Vec<u8> {
        aws_lc_rs::hmac::sign(&self.links, payload)
            .as_ref()
            .to_vec()
    }

    /// The one-time passphrase of a private-key download link: derived from the link by the
    /// service's secret, so the link alone (in a proxy log, say) opens nothing, and nothing
    /// needs storing. 128 bits, as four groups of eight hex digits.
    pub fn link_passphrase(&self, token: &str) -> String {
        let tag = aws_lc_rs::hmac::sign(&self.links, format!("passphrase\0{token}").as_bytes());
        let hex: String = tag.as_ref()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!(
            "{}-{}-{}-{}",
            &hex[..8],
            &hex[8..16],
            &hex[16..24],
            &hex[24..]
        )
    }

    /// Whether `tag` is this service's signature of `payload` (constant time).
    pub fn verify_link(&self, payload: &[u8], tag: &[u8]) -> bool {
        aws_lc_rs::hmac::verify(&self.links, payload, tag).is_ok()
    }

    /// The data key of a stored, wrapped one.
    pub fn unwrap(&self, stored: &WrappedDataKey) -> Result<DataKey, EnvelopeError> {
        let mut bytes = open(
            &self.key,
            &wrap_aad(stored.id, &stored.kek_id),
            &stored.wrapped,
        )?;
        let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| EnvelopeError::Decrypt);
        bytes.fill(0);
        Ok(DataKey {
            id: stored.id,
            key: key?,
        })
    }
}

impl DataKey {
    /// The data key's id.
    pub fn id(&self) -> Uuid {
        self.id
    }

    /// Encrypts a private key (PEM).
    pub fn encrypt(&self, private_key_pem: &str) -> Result<EncryptedPrivateKey, EnvelopeError> {
        let sealed = seal(
            &self.key,
            self.id.as_bytes(),
            private_key_pem.as_bytes().to_vec(),
        )?;
        Ok(EncryptedPrivateKey {
            data_key_id: self.id,
            algorithm: ALGORITHM.to_owned(),
            ciphertext: BASE64.encode(sealed),
        })
    }

    /// Decrypts a private key this data key encrypted.
    pub fn decrypt(&self, encrypted: &EncryptedPrivateKey) -> Result<String, EnvelopeError> {
        if encrypted.data_key_id != self.id || encrypted.algorithm != ALGORITHM {
            return Err(EnvelopeError::Decrypt);
        }
        let sealed = BASE64
            .decode(&encrypted.ciphertext)
            .map_err(|_| EnvelopeError::Decrypt)?;
        let plain = open(&self.key, self.id.as_bytes(), &sealed)?;
        String::from_utf8(plain).map_err(|_| EnvelopeError::Decrypt)
    }
}

fn wrap_aad(id: Uuid, kek_id: &str) -> Vec<u8> {
    let mut aad = id.as_bytes().to_vec();
    aad.extend_from_slice(kek_id.as_bytes());
    aad
}

fn seal(key: &RandomizedNonceKey, aad: &[u8], mut data: Vec<u8>) -> Result<Vec<u8>, EnvelopeError> {
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad), &mut data)
        .map_err(|_| EnvelopeError::Encrypt("sealing failed"))?;
    let mut out = nonce.as_ref().to_vec();
    out.extend_from_slice(&data);
    data.fill(0);
    Ok(out)
}

fn open(key: &RandomizedNonceKey, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
    if sealed.len() < NONCE_LEN {
        return Err(EnvelopeError::Decrypt);
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| EnvelopeError::Decrypt)?;
    let mut buffer = body.to_vec();
    let plain_len = key
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .map_err(|_| EnvelopeError::Decrypt)?
        .len();
    buffer.truncate(plain_len);
    Ok(buffer)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek() -> KeyEncryptionKey {
        KeyEncryptionKey::from_base64(&KeyEncryptionKey::generate_base64().expect("random"))
            .expect("kek")
    }

    #[test]
    fn a_key_round_trips_through_a_wrapped_data_key() {
        let kek = kek();
        let (data_key, stored) = kek.new_data_key().expect("data key");
        let encrypted = data_key
            .encrypt("-----BEGIN PRIVATE KEY-----\nabc\n")
            .expect("encrypt");
        assert!(!encrypted.ciphertext.contains("PRIVATE KEY"));
        let again = kek.unwrap(&stored).expect("unwrap");
        assert_eq!(
            again.decrypt(&encrypted).expect("decrypt"),
            "-----BEGIN PRIVATE KEY-----\nabc\n"
        );
    }

    #[test]
    fn another_kek_or_another_data_key_cannot_decrypt() {
        let kek = kek();
        let (data_key, stored) = kek.new_data_key().expect("data key");
        let encrypted = data_key.encrypt("secret").expect("encrypt");
        assert!(matches!(
            self::kek().unwrap(&stored),
            Err(EnvelopeError::Decrypt)
        ));
        let (other, _) = kek.new_data_key().expect("data key");
        assert!(other.decrypt(&encrypted).is_err());
        // Claiming another data key id in the ciphertext is detected by the AAD.
        let mut swapped = encrypted.clone();
        swapped.data_key_id = other.id();
        assert!(other.decrypt(&swapped).is_err());
    }

    #[test]
    fn tampering_is_detected() {
        let kek = kek();
        let (data_key, _) = kek.new_data_key().expect("data key");
        let mut encrypted = data_key.encrypt("secret").expect("encrypt");
        let mut raw = BASE64.decode(&encrypted.ciphertext).expect("b64");
        if let Some(last) = raw.last_mut() {
            *last ^= 1;
        }
        encrypted.ciphertext = BASE64.encode(raw);
        assert!(data_key.decrypt(&encrypted).is_err());
    }

    #[test]
    fn a_bad_kek_is_refused_and_never_printed() {
        assert!(KeyEncryptionKey::from_base64("c2hvcnQ=").is_err());
        assert!(KeyEncryptionKey::from_base64("not base64!").is_err());
        let printed = format!("{:?}", kek());
        assert!(
            printed.starts_with("KeyEncryptionKey { id: \"kek-"),
            "{printed}"
        );
    }
}
