use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::key_material::EncryptedPrivateKey;
use crate::domain::recommendation::{Answers, Recommendation};
use crate::domain::text::Text;
use crate::domain::values::{
    CaType, CertificateType, KeyAlgorithm, RequestNumber, RevocationReason, SerialNumber,
    ValidityDays,
};

use super::{BusinessContext, CsrType, Subject, ValidationRecord};

/// Everything a new request holds; each field already parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    /// The aggregate id.
    pub request_id: Uuid,
    /// Allocated by the store.
    pub request_number: RequestNumber,
    /// Who asks.
    pub requester: Actor,
    /// Subject fields and SANs.
    pub subject: Subject,
    /// What it is for.
    pub certificate_type: CertificateType,
    /// Key algorithm.
    pub key_algorithm: KeyAlgorithm,
    /// Validity.
    pub validity_days: ValidityDays,
    /// The CSR (already verified by `crate::pki`).
    pub csr: Csr,
    /// Justification and cost allocation.
    pub business: BusinessContext,
    /// The questionnaire, if answered.
    pub answers: Option<Answers>,
    /// Its recommendation.
    pub recommendation: Option<Recommendation>,
    /// The CA asked for.
    pub requested_ca_type: CaType,
    /// Why, when going against the recommendation.
    pub override_reason: Option<Text>,
    /// The certificate this one renews, if it is a renewal.
    pub renews: Option<SerialNumber>,
    /// Whether a public certificate stays in ACM (for AWS services) rather than being
    /// exported.
    pub stays_in_acm: bool,
}

/// A CSR that `crate::pki` parsed, verified and matched against the subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Csr {
    /// Generated or uploaded.
    pub csr_type: CsrType,
    /// PEM text.
    pub pem: String,
    /// The encrypted key, for generated CSRs.
    pub private_key: Option<EncryptedPrivateKey>,
}

/// What can be asked of a certificate request.
#[derive(Debug, Clone, PartialEq)]
pub enum RequestCommand {
    /// Draft a request; with `submit`, hand it to the approvers at once.
    Create {
        /// The request.
        request: Box<NewRequest>,
        /// Submit it too.
        submit: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// Hand a draft to the approvers.
    Submit {
        /// Who.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record that the approval policy was met.
    Approve {
        /// Everyone who approved.
        approvers: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record a rejection.
    Reject {
        /// Who.
        by: Actor,
        /// Why.
        reason: Text,
        /// When.
        at: DateTime<Utc>,
    },
    /// The saga starts issuing.
    StartIssuance {
        /// When.
        at: DateTime<Utc>,
    },
    /// The CA answered with its request id.
    RecordCaRequest {
        /// The CA's id.
        ca_request_id: String,
        /// The CA's status.
        ca_status: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The CA named the DNS records it waits for.
    RecordValidationRecords {
        /// The records.
        records: Vec<ValidationRecord>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A transient failure; will retry.
    ScheduleRetry {
        /// The CA's message.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The certificate was issued.
    MarkIssued {
        /// The certificate.
        certificate_id: Uuid,
        /// Its serial.
        serial_number: SerialNumber,
        /// When.
        at: DateTime<Utc>,
    },
    /// Issuance failed for good.
    Fail {
        /// Why.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdraw the request.
    Cancel {
        /// Who (the requester or an admin).
        by: Actor,
        /// Why.
        reason: Option<Text>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Cancel a request that waited too long for a decision (the stale-request job).
    Expire {
        /// Whole days it waited (`approval.stale_request.days` or more).
        waited_days: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Its certificate was revoked.
    MarkRevoked {
        /// The certificate.
        certificate_id: Uuid,
        /// Why.
        reason: RevocationReason,
        /// When.
        at: DateTime<Utc>,
    },
}
