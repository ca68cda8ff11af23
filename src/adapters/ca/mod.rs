//! Certificate authorities behind one port: the internal ones (the embedded CA, the default,
//! and ADCS Web Enrollment) and the public one (AWS Certificate Manager).

pub mod acm;
pub mod adcs;
pub mod embedded;
pub mod measured;
pub mod revoke_hook;

use crate::domain::request::Subject;
use crate::domain::values::{CertificateType, RevocationReason};
use crate::ports::BoxFuture;

/// What a CA is asked to certify: the request's CSR (its key, and its names already checked
/// against the subject) and the request's subject, the names that were checked and shown.
#[derive(Debug, Clone, Copy)]
pub struct Order<'a> {
    /// The CSR, PEM.
    pub csr_pem: &'a str,
    /// The names to certify.
    pub subject: &'a Subject,
    /// What it is for.
    pub certificate_type: CertificateType,
    /// How long it is valid.
    pub validity_days: u32,
    /// The request it is for (its id): what makes asking twice ask once, where the CA
    /// supports that (ACM's idempotency token).
    pub reference: &'a str,
    /// Whether the certificate and its key are handed out; false for an ACM certificate that
    /// stays in ACM for AWS services (the internal CAs always hand it out).
    pub exportable: bool,
}

/// A private key the CA made and handed over (ACM's export), PEM, unencrypted: the saga
/// seals it under the key-encryption key at once. Never shown in logs.
#[derive(Clone)]
pub struct HandedKey(pub secrecy::SecretString);

impl std::fmt::Debug for HandedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandedKey([redacted])")
    }
}

impl PartialEq for HandedKey {
    fn eq(&self, other: &Self) -> bool {
        use secrecy::ExposeSecret as _;
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for HandedKey {}

/// What the CA did with a CSR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submission {
    /// Issued at once.
    Issued {
        /// The CA's id for the request.
        ca_request_id: String,
        /// The certificate, PEM.
        certificate_pem: String,
        /// The issuing chain, PEM, leaf's issuer first.
        chain_pem: String,
        /// The private key, when the CA made it (ACM); otherwise the key is the request's.
        private_key: Option<HandedKey>,
    },
    /// Held for a CA officer; ask again later with the id.
    Pending {
        /// The CA's id for the request.
        ca_request_id: String,
    },
    /// Refused for good.
    Denied {
        /// The CA's words.
        message: String,
    },
}

/// Why the CA could not be asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CaError {
    /// Worth retrying: connection, timeout, 5xx.
    #[error("the CA is unavailable: {0}")]
    Transient(String),
    /// Not worth retrying.
    #[error("the CA refused: {0}")]
    Permanent(String),
}

/// An issued certificate as its CA knows it: by serial (the internal CAs), and by the id the
/// CA gave it where it has one (ACM's ARN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtCa<'a> {
    /// The serial, upper-case hex.
    pub serial: &'a str,
    /// The CA's id for it, when it has one.
    pub ca_request_id: Option<&'a str>,
}

impl<'a> AtCa<'a> {
    /// A certificate known by its serial alone.
    pub fn serial(serial: &'a str) -> Self {
        Self {
            serial,
            ca_request_id: None,
        }
    }
}

/// A certificate the CA renewed by itself under the same id (ACM's managed renewal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Renewed {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The issuing chain, PEM.
    pub chain_pem: String,
    /// Its private key, when the CA hands it out (an exported ACM certificate).
    pub private_key: Option<HandedKey>,
}

pub use crate::domain::request::ValidationRecord;

/// A certificate authority.
pub trait CertificateAuthority: Send + Sync + std::fmt::Debug {
    /// Submits an order.
    fn submit<'a>(&'a self, order: Order<'a>) -> BoxFuture<'a, Result<Submission, CaError>>;

    /// Asks again about a pending request.
    fn retrieve<'a>(&'a self, ca_request_id: &'a str)
    -> BoxFuture<'a, Result<Submission, CaError>>;

    /// The CA's certificate chain (PEM, issuing CA first), for relying parties.
    fn ca_chain(&self) -> BoxFuture<'_, Result<String, CaError>>;

    /// Revokes a certificate.
    fn revoke<'a>(
        &'a self,
        certificate: AtCa<'a>,
        reason: RevocationReason,
    ) -> BoxFuture<'a, Result<(), CaError>>;

    /// A name for messages and logs.
    fn name(&self) -> String;

    /// Whether submitting the same order again is safe after a crash left it unknown whether
    /// the CA received it (ACM's idempotency token makes it so for an hour); otherwise an
    /// operator checks the CA.
    fn resubmits_safely(&self) -> bool {
        false
    }

    /// The certificate the CA renewed by itself under `ca_request_id`, if it holds one valid
    /// past `valid_to` (the end of the one recorded here); none for CAs that do not renew.
    fn renewal<'a>(
        &'a self,
        _ca_request_id: &'a str,
        _valid_to: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<Option<Renewed>, CaError>> {
        Box::pin(async { Ok(None) })
    }

    /// The DNS records the CA waits for before it issues `ca_request_id` (ACM), created
    /// where the service can (Route 53 zones it is given); none for CAs that do not validate
    /// names themselves.
    fn validation_records<'a>(
        &'a self,
        _ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, CaError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}
