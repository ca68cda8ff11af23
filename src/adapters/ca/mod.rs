//! Certificate authorities behind one port: the embedded CA (default) and, later, ADCS Web
//! Enrollment.

pub mod adcs;
pub mod embedded;
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
}

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

/// A certificate authority.
pub trait CertificateAuthority: Send + Sync + std::fmt::Debug {
    /// Submits an order.
    fn submit<'a>(&'a self, order: Order<'a>) -> BoxFuture<'a, Result<Submission, CaError>>;

    /// Asks again about a pending request.
    fn retrieve<'a>(&'a self, ca_request_id: &'a str)
    -> BoxFuture<'a, Result<Submission, CaError>>;

    /// The CA's certificate chain (PEM, issuing CA first), for relying parties.
    fn ca_chain(&self) -> BoxFuture<'_, Result<String, CaError>>;

    /// Revokes a certificate by serial (upper-case hex).
    fn revoke<'a>(
        &'a self,
        serial: &'a str,
        reason: RevocationReason,
    ) -> BoxFuture<'a, Result<(), CaError>>;

    /// A name for messages and logs.
    fn name(&self) -> String;
}
