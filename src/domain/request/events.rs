use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::actor::Actor;
use crate::domain::key_material::EncryptedPrivateKey;
use crate::domain::recommendation::{Answers, Recommendation};
use crate::domain::values::{
    CaType, CertificateType, KeyAlgorithm, RequestNumber, RevocationReason, SerialNumber,
    ValidityDays,
};

use super::{BusinessContext, CsrType, Subject, ValidationRecord};

/// What happened to a certificate request. Each event carries its moment (`at`) and, where
/// a person acted, the actor, so projections and the audit log only copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[expect(
    clippy::large_enum_variant,
    reason = "events are built once and moved into the store; boxing would only add noise"
)]
pub enum RequestEvent {
    /// A request was drafted.
    RequestCreated {
        /// The aggregate id (`certificate_requests.id`).
        request_id: Uuid,
        /// `REQ-YYYYMMDD-XXXXX`.
        request_number: RequestNumber,
        /// Who asked.
        requester: Actor,
        /// Subject fields and SANs.
        subject: Subject,
        /// What it is for.
        certificate_type: CertificateType,
        /// Key algorithm.
        key_algorithm: KeyAlgorithm,
        /// Requested validity.
        validity_days: ValidityDays,
        /// Generated here or uploaded.
        csr_type: CsrType,
        /// The CSR, PEM.
        csr_pem: String,
        /// The generated key, encrypted; `None` for uploaded CSRs.
        private_key: Option<EncryptedPrivateKey>,
        /// Justification and cost allocation.
        business: BusinessContext,
        /// The questionnaire answers, if the requester went through it.
        answers: Option<Answers>,
        /// What the questionnaire recommended.
        recommendation: Option<Recommendation>,
        /// The CA the requester asked for.
        requested_ca_type: CaType,
        /// Whether the public certificate stays in ACM (for AWS services), not exported.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stays_in_acm: bool,
        /// Whether that goes against the recommendation.
        override_requested: bool,
        /// Why, when it does.
        override_reason: Option<String>,
        /// The certificate this request renews (absent in events written before renewals
        /// were linked).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        renews: Option<SerialNumber>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The request went to the approvers.
    RequestSubmitted {
        /// Who submitted.
        by: Actor,
        /// When.
        at: DateTime<Utc>,
    },
    /// The approval policy was met.
    RequestApproved {
        /// Everyone who approved.
        approvers: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// An approver rejected it.
    RequestRejected {
        /// Who rejected.
        by: Actor,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The saga took it up.
    IssuanceStarted {
        /// When.
        at: DateTime<Utc>,
    },
    /// The CA acknowledged the CSR (`adcs_request_id`, `adcs_status`).
    CaRequestRecorded {
        /// The CA's own request id (for ACM, the certificate's ARN).
        ca_request_id: String,
        /// The CA's status (e.g. `pending`, `issued`).
        ca_status: String,
        /// Which CA: the public one's ids are ACM ARNs, not ADCS request ids. Absent in
        /// events recorded before it was stated (all of them for the internal CA).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ca_type: Option<CaType>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The CA waits for these DNS records before it issues (ACM's DNS validation): what the
    /// requester creates, shown in chat and in `request show`.
    ValidationRecordsRequired {
        /// The records.
        records: Vec<ValidationRecord>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A transient CA error; the saga will try again.
    IssuanceRetryScheduled {
        /// Attempts failed so far.
        retry_count: u32,
        /// The CA's message.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The certificate exists.
    RequestIssued {
        /// The certificate aggregate's id.
        certificate_id: Uuid,
        /// Its serial.
        serial_number: SerialNumber,
        /// When.
        at: DateTime<Utc>,
    },
    /// Issuance ended without a certificate.
    IssuanceFailed {
        /// The CA's message or why we gave up.
        error: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The requester (or an admin) withdrew it.
    RequestCancelled {
        /// Who.
        by: Actor,
        /// Why, if given.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Nobody decided in time: the service cancelled it (status `cancelled`).
    RequestExpired {
        /// Whole days it waited.
        waited_days: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Its certificate was revoked.
    RequestRevoked {
        /// The certificate.
        certificate_id: Uuid,
        /// Why.
        reason: RevocationReason,
        /// When.
        at: DateTime<Utc>,
    },
}

impl RequestEvent {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::RequestCreated { at, .. }
            | Self::RequestSubmitted { at, .. }
            | Self::RequestApproved { at, .. }
            | Self::RequestRejected { at, .. }
            | Self::IssuanceStarted { at }
            | Self::CaRequestRecorded { at, .. }
            | Self::ValidationRecordsRequired { at, .. }
            | Self::IssuanceRetryScheduled { at, .. }
            | Self::RequestIssued { at, .. }
            | Self::IssuanceFailed { at, .. }
            | Self::RequestCancelled { at, .. }
            | Self::RequestExpired { at, .. }
            | Self::RequestRevoked { at, .. } => *at,
        }
    }
}

impl DomainEvent for RequestEvent {
    fn event_type(&self) -> String {
        match self {
            Self::RequestCreated { .. } => "RequestCreated",
            Self::RequestSubmitted { .. } => "RequestSubmitted",
            Self::RequestApproved { .. } => "RequestApproved",
            Self::RequestRejected { .. } => "RequestRejected",
            Self::IssuanceStarted { .. } => "IssuanceStarted",
            Self::CaRequestRecorded { .. } => "CaRequestRecorded",
            Self::ValidationRecordsRequired { .. } => "ValidationRecordsRequired",
            Self::IssuanceRetryScheduled { .. } => "IssuanceRetryScheduled",
            Self::RequestIssued { .. } => "RequestIssued",
            Self::IssuanceFailed { .. } => "IssuanceFailed",
            Self::RequestCancelled { .. } => "RequestCancelled",
            Self::RequestExpired { .. } => "RequestExpired",
            Self::RequestRevoked { .. } => "RequestRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
