//! The certificate request aggregate: from draft to issued (or rejected, failed, cancelled,
//! revoked), exactly the life cycle of `certificate_requests.status`.
//!
//! ```text
//! draft ─► pending_approval ─► approved ─► in_progress ─► issued ─► revoked
//!   │            │   │                          │
//!   └► cancelled ◄┘   └► rejected                └► failed
//! ```
//! Cancelling is possible before issuance starts (draft, pending approval, approved), by the
//! requester or an admin.

mod commands;
mod errors;
mod events;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use commands::{Csr, NewRequest, RequestCommand};
pub use errors::RequestError;
pub use events::RequestEvent;

use super::actor::{Actor, Role};
use super::text::Text;
use super::values::{
    CaType, CertificateType, CommonName, Country, DnsName, Email, RequestNumber, ValueError,
    closed_set,
};

closed_set! {
    /// Where a request is in its life (`certificate_requests.status`).
    RequestStatus, "status", "request status" {
        /// Being written.
        Draft = "draft",
        /// Waiting for approvers.
        PendingApproval = "pending_approval" | "pending",
        /// Approved; waiting for the saga.
        Approved = "approved",
        /// With the CA.
        InProgress = "in_progress",
        /// Done: the certificate exists.
        Issued = "issued",
        /// An approver said no.
        Rejected = "rejected",
        /// The CA said no, or issuance gave up.
        Failed = "failed",
        /// Withdrawn.
        Cancelled = "cancelled",
        /// Its certificate was revoked.
        Revoked = "revoked",
    }
}

closed_set! {
    /// Where the CSR came from (`certificate_requests.csr_type`).
    CsrType, "csr_type", "CSR type" {
        /// The service generated the key and CSR.
        Generated = "generated",
        /// The requester pasted or uploaded a CSR.
        Uploaded = "uploaded" | "upload" | "paste",
    }
}

/// The certificate's subject: distinguished-name fields and SANs, bounded to the schema's
/// column widths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// CN.
    pub common_name: CommonName,
    /// O (255).
    pub organization: Option<Text>,
    /// OU (255).
    pub organizational_unit: Option<Text>,
    /// L (100).
    pub locality: Option<Text>,
    /// ST (100).
    pub state_province: Option<Text>,
    /// C.
    pub country: Option<Country>,
    /// E-mail address in the subject (S/MIME).
    pub email_address: Option<Email>,
    /// DNS SANs; for host certificates they include the CN.
    pub subject_alternative_names: Vec<DnsName>,
}

impl Subject {
    /// The subject as it will be certified: for host certificates the CN is also the first
    /// DNS SAN (browsers ignore the CN), and duplicate SANs are dropped.
    pub fn normalized_for(mut self, certificate_type: CertificateType) -> Self {
        if certificate_type.names_hosts()
            && let Some(cn) = self.common_name.as_dns_name()
            && !self.subject_alternative_names.contains(&cn)
        {
            self.subject_alternative_names.insert(0, cn);
        }
        let mut seen = std::collections::HashSet::new();
        self.subject_alternative_names
            .retain(|name| seen.insert(name.clone()));
        self
    }
}

/// Why the certificate is needed and who pays (`certificate_requests` business columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessContext {
    /// Required.
    pub justification: Text,
    /// Department (100).
    pub department: Option<Text>,
    /// Cost centre (50).
    pub cost_center: Option<Text>,
    /// Project code (50).
    pub project_code: Option<Text>,
    /// Anything else (unbounded text column; capped at 4000 characters).
    pub notes: Option<Text>,
}

/// A DNS record a CA waits for before it issues (ACM's DNS validation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationRecord {
    /// The name being validated.
    pub domain: String,
    /// The record's name.
    pub name: String,
    /// Its type (CNAME).
    pub record_type: String,
    /// Its value.
    pub value: String,
    /// The Route 53 zone the service created it in itself, if it did.
    pub created_in: Option<String>,
}

/// At most this many records (ACM validates at most 100 names), each field at most
/// [`MAX_RECORD_FIELD`] characters: what a CA answers is bounded like any input.
pub const MAX_VALIDATION_RECORDS: usize = 100;
/// See [`MAX_VALIDATION_RECORDS`].
pub const MAX_RECORD_FIELD: usize = 512;

/// The state rebuilt from events. `None` until created.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertificateRequest {
    state: Option<RequestState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RequestState {
    request_id: Uuid,
    number: RequestNumber,
    requester: Actor,
    certificate_type: CertificateType,
    status: RequestStatus,
    retry_count: u32,
    certificate_id: Option<Uuid>,
    /// The CA's id for the request and its last status, once it answered.
    #[serde(default)]
    at_ca: Option<(String, String)>,
    /// Why issuance failed, once it did.
    #[serde(default)]
    failure: Option<String>,
    /// The CA it asked for.
    #[serde(default)]
    ca_type: Option<CaType>,
    /// The DNS records the CA waits for, while it does.
    #[serde(default)]
    validation_records: Vec<ValidationRecord>,
}

impl CertificateRequest {
    /// The request's id, if it exists.
    pub fn id(&self) -> Option<Uuid> {
        self.state.as_ref().map(|s| s.request_id)
    }

    /// The status, if the request exists.
    pub fn status(&self) -> Option<RequestStatus> {
        self.state.as_ref().map(|s| s.status)
    }

    /// The request number, if the request exists.
    pub fn number(&self) -> Option<&RequestNumber> {
        self.state.as_ref().map(|s| &s.number)
    }

    /// The requester, if the request exists.
    pub fn requester(&self) -> Option<&Actor> {
        self.state.as_ref().map(|s| &s.requester)
    }

    /// What the certificate is for, if the request exists.
    pub fn certificate_type(&self) -> Option<CertificateType> {
        self.state.as_ref().map(|s| s.certificate_type)
    }

    /// The CA's id for the request and its last status (`pending`, `issued`), once the CA
    /// answered.
    pub fn at_ca(&self) -> Option<(&str, &str)> {
        let (id, status) = self.state.as_ref()?.at_ca.as_ref()?;
        Some((id, status))
    }

    /// The DNS records the CA waits for before it issues, until it does.
    pub fn validation_records(&self) -> &[ValidationRecord] {
        self.state
            .as_ref()
            .filter(|s| s.status == RequestStatus::InProgress)
            .map_or(&[], |s| s.validation_records.as_slice())
    }

    /// Why issuance failed, if it did.
    pub fn failure(&self) -> Option<&str> {
        self.state.as_ref()?.failure.as_deref()
    }

    /// Failed attempts so far.
    pub fn retry_count(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.retry_count)
    }

    fn existing(&self) -> Result<&RequestState, RequestError> {
        self.state.as_ref().ok_or(RequestError::NotFound)
    }

    /// Refuses unless the status is one of `allowed`.
    fn expect_status(
        &self,
        action: &'static str,
        allowed: &[RequestStatus],
    ) -> Result<&RequestState, RequestError> {
        let state = self.existing()?;
        if allowed.contains(&state.status) {
            Ok(state)
        } else {
            Err(RequestError::WrongStatus {
                number: state.number.to_string(),
                status: state.status,
                action,
                allowed: allowed
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" or "),
            })
        }
    }

    fn create(request: NewRequest, at: DateTime<Utc>) -> Result<RequestEvent, RequestError> {
        let NewRequest {
            request_id,
            request_number,
            requester,
            mut subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr,
            business,
            answers,
            recommendation,
            requested_ca_type,
            override_reason,
            renews,
            stays_in_acm,
        } = request;
        if requester.role == Role::Auditor {
            return Err(RequestError::NotAllowed(
                "auditors have read-only access and cannot request certificates".to_owned(),
            ));
        }
        if certificate_type.names_hosts() && subject.common_name.as_dns_name().is_none() {
            return Err(ValueError::new(
                "common_name",
                format!(
                    "for a {certificate_type} certificate the common name must be a host name \
                     such as app.example.com, not {:?}",
                    subject.common_name.as_ref()
                ),
            )
            .into());
        }
        subject = subject.normalized_for(certificate_type);
        if certificate_type == CertificateType::Email && subject.email_address.is_none() {
            return Err(ValueError::new(
                "email_address",
                "an e-mail certificate needs the e-mail address it protects",
            )
            .into());
        }
        // The address becomes an e-mail name of the certificate: it is the requester's own,
        // unless an admin asks for another (the approvers are shown whose it is).
        if let Some(address) = &subject.email_address
            && !address.same_person(&requester.email)
            && requester.role != Role::Admin
        {
            return Err(ValueError::new(
                "email_address",
                format!(
                    "the e-mail address must be your own ({}): a certificate for {address} \
                     lets its holder sign and read mail as that person; only an admin asks \
                     for another address",
                    requester.email
                ),
            )
            .into());
        }
        if subject.subject_alternative_names.len() > 100 {
            return Err(ValueError::new(
                "subject_alternative_names",
                "at most 100 subject alternative names are allowed",
            )
            .into());
        }
        if csr.csr_type == CsrType::Generated && csr.private_key.is_none() {
            return Err(ValueError::new(
                "csr",
                "a generated CSR must come with its encrypted private key",
            )
            .into());
        }
        if csr.csr_type == CsrType::Uploaded && csr.private_key.is_some() {
            return Err(
                ValueError::new("csr", "an uploaded CSR has no private key on our side").into(),
            );
        }
        let override_requested = recommendation
            .as_ref()
            .is_some_and(|r| r.ca_type != requested_ca_type);
        if override_requested && override_reason.is_none() {
            let recommended = recommendation
                .as_ref()
                .map_or("another", |r| r.ca_type.as_str());
            return Err(ValueError::new(
                "override_reason",
                format!(
                    "the {recommended} CA was recommended; say why you need the \
                     {requested_ca_type} CA instead"
                ),
            )
            .into());
        }
        if stays_in_acm && requested_ca_type != CaType::Public {
            return Err(ValueError::new(
                "export",
                "only a public certificate (from AWS Certificate Manager) can stay in ACM; an \
                 internal one is always handed out",
            )
            .into());
        }
        let recommended = recommendation.is_some();
        Ok(RequestEvent::RequestCreated {
            request_id,
            request_number,
            requester,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr_type: csr.csr_type,
            csr_pem: csr.pem,
            private_key: csr.private_key,
            business,
            answers,
            recommendation,
            requested_ca_type,
            stays_in_acm,
            override_requested,
            // Why this CA: against the recommendation, or, without one, why this CA at all
            // (where an admin's policy chose it); a follower of the recommendation has none.
            override_reason: if override_requested || !recommended {
                override_reason.map(|r| r.to_string())
            } else {
                None
            },
            renews,
            at,
        })
    }
}

impl Aggregate for CertificateRequest {
    const TYPE: &'static str = "CertificateRequest";
    type Command = RequestCommand;
    type Event = RequestEvent;
    type Error = RequestError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        use RequestStatus as S;
        let events = match command {
            RequestCommand::Create {
                request,
                submit,
                at,
            } => {
                if let Some(state) = &self.state {
                    return Err(RequestError::AlreadyExists(state.number.to_string()));
                }
                let by = request.requester.clone();
                let mut events = vec![Self::create(*request, at)?];
                if submit {
                    events.push(RequestEvent::RequestSubmitted { by, at });
                }
                events
            }
            RequestCommand::Submit { by, at } => {
                let state = self.expect_status("submitting", &[S::Draft])?;
                if !by.is(&state.requester) && by.role != Role::Admin {
                    return Err(RequestError::NotAllowed(
                        "only the requester or an admin can submit a request".to_owned(),
                    ));
                }
                vec![RequestEvent::RequestSubmitted { by, at }]
            }
            RequestCommand::Approve { approvers, at } => {
                self.expect_status("approving", &[S::PendingApproval])?;
                vec![RequestEvent::RequestApproved { approvers, at }]
            }
            RequestCommand::Reject { by, reason, at } => {
                self.expect_status("rejecting", &[S::PendingApproval])?;
                vec![RequestEvent::RequestRejected {
                    by,
                    reason: reason.to_string(),
                    at,
                }]
            }
            RequestCommand::StartIssuance { at } => {
                self.expect_status("starting issuance", &[S::Approved])?;
                vec![RequestEvent::IssuanceStarted { at }]
            }
            RequestCommand::RecordCaRequest {
                ca_request_id,
                ca_status,
                at,
            } => {
                let state = self.expect_status("recording the CA's answer", &[S::InProgress])?;
                vec![RequestEvent::CaRequestRecorded {
                    ca_request_id,
                    ca_status,
                    ca_type: state.ca_type,
                    at,
                }]
            }
            RequestCommand::RecordValidationRecords { records, at } => {
                self.expect_status(
                    "recording the DNS records the CA waits for",
                    &[S::InProgress],
                )?;
                let too_long = |r: &ValidationRecord| {
                    [&r.domain, &r.name, &r.record_type, &r.value]
                        .into_iter()
                        .chain(r.created_in.as_ref())
                        .any(|field| field.chars().count() > MAX_RECORD_FIELD)
                };
                if records.is_empty()
                    || records.len() > MAX_VALIDATION_RECORDS
                    || records.iter().any(too_long)
                {
                    return Err(RequestError::InvalidCaAnswer(format!(
                        "the CA named {} DNS records; 1 to {MAX_VALIDATION_RECORDS} of at most \
                         {MAX_RECORD_FIELD} characters each are recorded",
                        records.len()
                    )));
                }
                vec![RequestEvent::ValidationRecordsRequired { records, at }]
            }
            RequestCommand::ScheduleRetry { error, at } => {
                let state = self.expect_status("retrying", &[S::InProgress])?;
                vec![RequestEvent::IssuanceRetryScheduled {
                    retry_count: state.retry_count + 1,
                    error,
                    at,
                }]
            }
            RequestCommand::MarkIssued {
                certificate_id,
                serial_number,
                at,
            } => {
                self.expect_status("marking issued", &[S::InProgress])?;
                vec![RequestEvent::RequestIssued {
                    certificate_id,
                    serial_number,
                    at,
                }]
            }
            RequestCommand::Fail { error, at } => {
                self.expect_status("failing", &[S::Approved, S::InProgress])?;
                vec![RequestEvent::IssuanceFailed { error, at }]
            }
            RequestCommand::Cancel { by, reason, at } => {
                let state = self.existing()?;
                if !by.is(&state.requester) && by.role != Role::Admin {
                    return Err(RequestError::NotAllowed(
                        "only the requester or an admin can cancel a request".to_owned(),
                    ));
                }
                self.expect_status("cancelling", &[S::Draft, S::PendingApproval, S::Approved])?;
                vec![RequestEvent::RequestCancelled {
                    by,
                    reason: reason.map(|r| r.to_string()),
                    at,
                }]
            }
            RequestCommand::Expire { waited_days, at } => {
                self.expect_status("expiring", &[S::PendingApproval])?;
                vec![RequestEvent::RequestExpired { waited_days, at }]
            }
            RequestCommand::MarkRevoked {
                certificate_id,
                reason,
                at,
            } => {
                let state = self.expect_status("marking revoked", &[S::Issued])?;
                if state.certificate_id != Some(certificate_id) {
                    return Err(RequestError::NotAllowed(
                        "that certificate was not issued from this request".to_owned(),
                    ));
                }
                vec![RequestEvent::RequestRevoked {
                    certificate_id,
                    reason,
                    at,
                }]
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        use RequestStatus as S;
        if let RequestEvent::RequestCreated {
            request_id,
            request_number,
            requester,
            certificate_type,
            requested_ca_type,
            ..
        } = &event
        {
            self.state = Some(RequestState {
                request_id: *request_id,
                number: request_number.clone(),
                requester: requester.clone(),
                certificate_type: *certificate_type,
                status: S::Draft,
                retry_count: 0,
                certificate_id: None,
                at_ca: None,
                failure: None,
                ca_type: Some(*requested_ca_type),
                validation_records: Vec::new(),
            });
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            RequestEvent::RequestCreated { .. } => {}
            RequestEvent::RequestSubmitted { .. } => state.status = S::PendingApproval,
            RequestEvent::RequestApproved { .. } => state.status = S::Approved,
            RequestEvent::RequestRejected { .. } => state.status = S::Rejected,
            RequestEvent::IssuanceStarted { .. } => state.status = S::InProgress,
            RequestEvent::CaRequestRecorded {
                ca_request_id,
                ca_status,
                ..
            } => state.at_ca = Some((ca_request_id, ca_status)),
            RequestEvent::ValidationRecordsRequired { records, .. } => {
                state.validation_records = records;
            }
            RequestEvent::IssuanceRetryScheduled { retry_count, .. } => {
                state.retry_count = retry_count;
            }
            RequestEvent::RequestIssued { certificate_id, .. } => {
                state.status = S::Issued;
                state.certificate_id = Some(certificate_id);
            }
            RequestEvent::IssuanceFailed { error, .. } => {
                state.status = S::Failed;
                state.failure = Some(error);
            }
            RequestEvent::RequestCancelled { .. } | RequestEvent::RequestExpired { .. } => {
                state.status = S::Cancelled;
            }
            RequestEvent::RequestRevoked { .. } => state.status = S::Revoked,
        }
    }
}
