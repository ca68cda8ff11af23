//! Submitting, viewing and cancelling certificate requests.

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate as _;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Attempt, CommandContext, CommandError, Commands, PublicRequests, numbers};
use crate::domain::actor::{Actor, Role};
use crate::domain::approval::{Approval, ApprovalCommand, Outcome, Part};
use crate::domain::certificate::CertificateStatus;
use crate::domain::key_material::EncryptedPrivateKey;
use crate::domain::recommendation::{self, Answers, Recommendation};
use crate::domain::request::{
    BusinessContext, CertificateRequest, Csr, CsrType, NewRequest, RequestCommand, RequestStatus,
    Subject, ValidationRecord,
};
use crate::domain::text::Text;
use crate::domain::values::{
    CaType, CertificateType, CommonName, Country, DnsName, Email, KeyAlgorithm, RequestNumber,
    SerialNumber, ValidityDays, ValueError,
};
use crate::pki::{csr, keygen};

/// A request as people type it (chat form, one-line command, CLI). Everything is text;
/// [`Commands::submit_request`] parses it and reports every bad field at once.
#[derive(Debug, Clone, Default)]
pub struct RequestForm {
    /// CN (required).
    pub common_name: String,
    /// DNS SANs.
    pub subject_alternative_names: Vec<String>,
    /// O.
    pub organization: Option<String>,
    /// OU.
    pub organizational_unit: Option<String>,
    /// L.
    pub locality: Option<String>,
    /// ST.
    pub state_province: Option<String>,
    /// C (ISO 3166 alpha-2).
    pub country: Option<String>,
    /// Subject e-mail (S/MIME).
    pub email_address: Option<String>,
    /// Certificate type (required).
    pub certificate_type: String,
    /// Key algorithm; default: the uploaded CSR's, or ECC_P256.
    pub key_algorithm: Option<String>,
    /// 90, 365 or 730; default: `certificate.default_validity_days`.
    pub validity_days: Option<String>,
    /// An uploaded CSR (PEM); none: the service generates key and CSR.
    pub csr_pem: Option<String>,
    /// Business justification (required).
    pub justification: String,
    /// Department.
    pub department: Option<String>,
    /// Cost centre.
    pub cost_center: Option<String>,
    /// Project code.
    pub project_code: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// The questionnaire, if answered.
    pub answers: Option<Answers>,
    /// `public` or `internal`; default: the recommendation's, else internal.
    pub requested_ca_type: Option<String>,
    /// Why, when going against the recommendation.
    pub override_reason: Option<String>,
    /// Whether a public certificate is exported (`yes`, the default: for servers anywhere)
    /// or stays in ACM (`no`: for AWS load balancers, CloudFront, API Gateway).
    pub export: Option<String>,
}

/// The answer to a successful submission.
#[derive(Debug, Clone)]
pub struct SubmittedRequest {
    /// The request's id.
    pub request_id: Uuid,
    /// Its number.
    pub request_number: RequestNumber,
    /// Approvals it needs.
    pub required_approvals: u8,
    /// The questionnaire's recommendation, if answered.
    pub recommendation: Option<Recommendation>,
    /// Something the requester must know about how it will be handled.
    pub notice: Option<String>,
}

impl SubmittedRequest {
    /// What the requester is told: the number, the approvals it needs, and any notice.
    pub fn confirmation(&self) -> String {
        let mut text = format!(
            "{} is submitted and needs {} approval(s).",
            self.request_number, self.required_approvals
        );
        if let Some(notice) = &self.notice {
            text.push(' ');
            text.push_str(notice);
        }
        text
    }
}

impl Commands {
    /// What a requester should know about the public CA before choosing it: nothing when
    /// one is configured; otherwise that a request for it is refused, or goes internal.
    pub async fn public_ca_note(&self) -> Result<Option<&'static str>, CommandError> {
        if self.inner.public_ca {
            return Ok(None);
        }
        Ok(Some(match self.settings().await?.public_requests() {
            PublicRequests::Refuse => {
                "No public CA is configured here: a request for the public CA is refused. \
                 Choose the internal CA and say why below, or ask an admin."
            }
            PublicRequests::Internal => {
                "No public CA is configured here: a request for the public CA goes to the \
                 internal CA (browsers outside the organisation will not trust it)."
            }
        }))
    }
}

/// Why a request for the public CA is refused while none is configured.
pub const PUBLIC_CA_NOT_CONFIGURED: &str = "the public CA (AWS Certificate Manager) is not \
     configured in this installation (an operator sets `acm.enabled`), so a public \
     certificate cannot be issued: choose the internal CA, or ask an admin to let public \
     requests go to the internal CA (`config set certificate.public_requests internal`)";

/// What requester and approvers are told when a public request goes to the internal CA.
pub const PUBLIC_TO_INTERNAL: &str = "It goes to the internal CA: no public CA is configured \
     here, and an admin set public requests to go to the internal CA (browsers outside the \
     organisation will not trust it).";

/// What `status` shows about a request.
#[derive(Debug, Clone)]
pub struct RequestView {
    /// Its id.
    pub request_id: Uuid,
    /// Its number.
    pub request_number: RequestNumber,
    /// Its status.
    pub status: RequestStatus,
    /// Who asked.
    pub requester: Actor,
    /// Who did what in the approval so far.
    pub approval_parts: Vec<(Actor, Part)>,
    /// The approval's outcome, once decided.
    pub approval_outcome: Option<Outcome>,
    /// The certificate issued for it, once there is one.
    pub certificate: Option<CertificateSummary>,
    /// The CA's id for it and its last status there, once the CA answered.
    pub at_ca: Option<(String, String)>,
    /// Why issuance failed, if it did.
    pub failure: Option<String>,
    /// The DNS records the CA waits for before it issues, while it does.
    pub validation_records: Vec<ValidationRecord>,
}

impl RequestView {
    /// The view of request `number` from its aggregates' state (`None` before it was
    /// created).
    pub fn from_state(
        number: &RequestNumber,
        state: crate::eventstore::RequestState,
    ) -> Option<Self> {
        let crate::eventstore::RequestState {
            request_id,
            request,
            approval,
            certificate,
        } = state;
        let (Some(status), Some(requester)) = (request.status(), request.requester().cloned())
        else {
            return None;
        };
        let certificate = certificate.and_then(|(certificate_id, certificate)| {
            match (
                certificate.serial(),
                certificate.status(),
                certificate.valid_to(),
            ) {
                (Some(serial), Some(status), Some(valid_to)) => Some(CertificateSummary {
                    certificate_id,
                    serial: serial.clone(),
                    status,
                    valid_to,
                }),
                _ => None,
            }
        });
        Some(Self {
            request_id,
            request_number: number.clone(),
            status,
            requester,
            approval_parts: approval.parts(),
            approval_outcome: approval.outcome().cloned(),
            certificate,
            at_ca: request
                .at_ca()
                .map(|(id, status)| (id.to_owned(), status.to_owned())),
            failure: request.failure().map(str::to_owned),
            validation_records: request.validation_records().to_vec(),
        })
    }

    /// Each approver asked, with their part in words as the request stands now: one who had
    /// not acted when the request was decided (approved, rejected) or withdrawn is "no longer
    /// needed", not still "waiting". What chat and the CLI both show.
    pub fn approval_lines(&self) -> Vec<(&Actor, &'static str)> {
        let settled = self.approval_outcome.is_some()
            || !matches!(
                self.status,
                RequestStatus::Draft | RequestStatus::PendingApproval
            );
        self.approval_parts
            .iter()
            .map(|(actor, part)| {
                let part = match part {
                    Part::Pending if settled => "no longer needed",
                    Part::Pending => "waiting",
                    Part::Approved => "approved",
                    Part::Rejected => "rejected",
                    Part::Delegated => "delegated",
                };
                (actor, part)
            })
            .collect()
    }
}

/// What a person needs to know about an issued certificate to act on it.
#[derive(Debug, Clone)]
pub struct CertificateSummary {
    /// Its id.
    pub certificate_id: Uuid,
    /// Its serial number (what `/cert revoke` takes).
    pub serial: SerialNumber,
    /// Active, expired or revoked.
    pub status: CertificateStatus,
    /// The end of its validity.
    pub valid_to: DateTime<Utc>,
}

/// Collects field errors so a form can show all of them at once.
#[derive(Default)]
struct Fields {
    errors: Vec<ValueError>,
}

impl Fields {
    fn take<T>(&mut self, result: Result<T, ValueError>) -> Option<T> {
        result.map_err(|e| self.errors.push(e)).ok()
    }

    /// Optional free text: `Some(None)` when empty, `None` when invalid.
    fn text(
        &mut self,
        field: &'static str,
        value: Option<&str>,
        max: usize,
    ) -> Option<Option<Text>> {
        self.take(Text::optional(field, value, max))
    }

    /// An optional value: `Some(None)` when empty, `None` when invalid.
    fn optional<T>(
        &mut self,
        value: Option<&str>,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
    ) -> Option<Option<T>> {
        match value.map(str::trim) {
            None | Some("") => Some(None),
            Some(text) => self.take(parse(text)).map(Some),
        }
    }
}

impl Commands {
    /// Parses the form, makes (or checks) the CSR, allocates a number, records the request
    /// as submitted, and opens its approval.
    pub async fn submit_request(
        &self,
        ctx: &CommandContext,
        form: RequestForm,
    ) -> Result<SubmittedRequest, CommandError> {
        self.submit(ctx, form, None).await
    }

    /// [`submit_request`](Self::submit_request), recording which certificate it renews.
    pub(super) async fn submit(
        &self,
        ctx: &CommandContext,
        form: RequestForm,
        renews: Option<SerialNumber>,
    ) -> Result<SubmittedRequest, CommandError> {
        let requester = self.actor(ctx).await?;
        let today = Utc::now().date_naive();
        let settings = self.settings().await?;
        let default_days = settings.default_validity_days().map(str::to_owned);

        let mut f = Fields::default();
        let common_name = f.take(CommonName::parse(&form.common_name));
        let sans: Vec<DnsName> = form
            .subject_alternative_names
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .filter_map(|s| f.take(DnsName::parse_field(s, "subject_alternative_names")))
            .collect();
        let organization = f.text("organization", form.organization.as_deref(), 255);
        let organizational_unit = f.text(
            "organizational_unit",
            form.organizational_unit.as_deref(),
            255,
        );
        let locality = f.text("locality", form.locality.as_deref(), 100);
        let state_province = f.text("state_province", form.state_province.as_deref(), 100);
        let country = f.optional(form.country.as_deref(), Country::parse);
        let email_address = f.optional(form.email_address.as_deref(), |e| {
            Email::parse(e).map_err(|e| ValueError::new("email_address", e.message))
        });
        let certificate_type = f.take(CertificateType::parse(&form.certificate_type));
        let key_algorithm = f.optional(form.key_algorithm.as_deref(), KeyAlgorithm::parse);
        let validity_text = form
            .validity_days
            .clone()
            .filter(|v| !v.trim().is_empty())
            .or(default_days)
            .unwrap_or_else(|| "365".to_owned());
        let validity_days = f.take(ValidityDays::parse(&validity_text));
        let justification = f.take(Text::parse(
            "business_justification",
            &form.justification,
            4000,
        ));
        let department = f.text("department", form.department.as_deref(), 100);
        let cost_center = f.text("cost_center", form.cost_center.as_deref(), 50);
        let project_code = f.text("project_code", form.project_code.as_deref(), 50);
        let notes = f.text("notes", form.notes.as_deref(), 4000);
        let override_reason = f.text("override_reason", form.override_reason.as_deref(), 2000);
        let requested_ca = f.optional(form.requested_ca_type.as_deref(), CaType::parse);

        if let (Some(cn), Some(kind)) = (&common_name, certificate_type)
            && kind.names_hosts()
            && cn.as_dns_name().is_none()
        {
            f.errors.push(ValueError::new(
                "common_name",
                format!(
                    "for a {kind} certificate the common name must be a host name such as \
                     app.example.com, not {:?}",
                    cn.as_ref()
                ),
            ));
        }

        // Each value is present exactly when its field had no error.
        macro_rules! all_present {
            ($($name:ident),+ $(,)?) => {
                let ($(Some($name),)+) = ($($name,)+) else {
                    return Err(CommandError::Invalid(f.errors));
                };
            };
        }
        all_present!(
            common_name,
            organization,
            organizational_unit,
            locality,
            state_province,
            country,
            email_address,
            certificate_type,
            key_algorithm,
            validity_days,
            justification,
            department,
            cost_center,
            project_code,
            notes,
            override_reason,
            requested_ca,
        );
        if !f.errors.is_empty() {
            return Err(CommandError::Invalid(f.errors));
        }

        let subject = Subject {
            common_name,
            organization,
            organizational_unit,
            locality,
            state_province,
            country,
            email_address,
            subject_alternative_names: sans,
        }
        .normalized_for(certificate_type);
        let recommendation = form
            .answers
            .as_ref()
            .map(|answers| recommendation::recommend(answers, today));
        let requested_ca_type = requested_ca
            .or(recommendation.as_ref().map(|r| r.ca_type))
            .unwrap_or(CaType::Internal);
        // Without a public CA (ACM) configured, a request for one is refused, or goes to the
        // internal CA where an admin said so, and everyone is told. It is never issued by the
        // internal CA as if it were public.
        let (requested_ca_type, override_reason, notice) =
            if requested_ca_type == CaType::Public && !self.inner.public_ca {
                match settings.public_requests() {
                    PublicRequests::Refuse => {
                        return Err(CommandError::Invalid(vec![ValueError::new(
                            "requested_ca_type",
                            PUBLIC_CA_NOT_CONFIGURED,
                        )]));
                    }
                    PublicRequests::Internal => (
                        CaType::Internal,
                        Some(Text::parse("override_reason", PUBLIC_TO_INTERNAL, 2000)?),
                        Some(PUBLIC_TO_INTERNAL.to_owned()),
                    ),
                }
            } else {
                (requested_ca_type, override_reason, None)
            };
        let stays_in_acm = match form.export.as_deref().map(str::trim) {
            None | Some("") | Some("yes" | "true") => false,
            Some("no" | "false") => true,
            Some(other) => {
                return Err(CommandError::Invalid(vec![ValueError::new(
                    "export",
                    format!(
                        "export is yes (the certificate and key are exported, for servers \
                         anywhere) or no (it stays in ACM, for AWS load balancers, CloudFront \
                         and API Gateway), not {other:?}"
                    ),
                )]));
            }
        };
        // What the public CA issues, checked before an approver sees the request.
        if requested_ca_type == CaType::Public {
            let uploaded = form
                .csr_pem
                .as_deref()
                .is_some_and(|p| !p.trim().is_empty());
            let refused = crate::domain::public_ca::check(
                &subject,
                certificate_type,
                key_algorithm,
                uploaded,
                validity_days,
                today,
            );
            if !refused.is_empty() {
                return Err(CommandError::Invalid(refused));
            }
        }
        // Every name the certificate will carry, and its validity, within the names policy.
        let rule = settings.names_policy()?.rule_for(certificate_type);
        let mut outside = Vec::new();
        if let Some(cn) = subject.common_name.as_dns_name()
            && certificate_type.names_hosts()
            && let Err(error) = rule.check_name("common_name", &cn, requested_ca_type)
        {
            outside.push(error);
        }
        for san in &subject.subject_alternative_names {
            if subject.common_name.as_dns_name().as_ref() == Some(san) {
                continue;
            }
            if let Err(error) = rule.check_name("subject_alternative_names", san, requested_ca_type)
            {
                outside.push(error);
            }
        }
        if let Err(error) = rule.check_validity(validity_days) {
            outside.push(error);
        }
        if !outside.is_empty() {
            return Err(CommandError::Invalid(outside));
        }

        let (csr, key_algorithm) = match form.csr_pem.as_deref().map(str::trim) {
            Some(pem) if !pem.is_empty() => {
                let uploaded =
                    csr::parse(pem).map_err(|e| ValueError::new("csr", e.to_string()))?;
                csr::check_matches(&uploaded, &subject, key_algorithm)
                    .map_err(|e| ValueError::new("csr", e.to_string()))?;
                let algorithm = uploaded.key_algorithm;
                (
                    Csr {
                        csr_type: CsrType::Uploaded,
                        pem: uploaded.pem,
                        private_key: None,
                    },
                    algorithm,
                )
            }
            _ => {
                let algorithm = key_algorithm.unwrap_or(KeyAlgorithm::EccP256);
                (self.generate_csr(&subject, algorithm).await?, algorithm)
            }
        };

        let criticality = form.answers.as_ref().map(|a| a.criticality_level.as_str());
        let required_approvals = settings.required_approvals(certificate_type, criticality)?;
        let approvers = self.inner.directory.approvers().await?;

        // One commit: the number, the request and its approval are written together or not
        // at all (no number without a request, no request without an approval).
        let request_id = Uuid::new_v4();
        let metadata = ctx.metadata(Some(&requester));
        let at = Utc::now();
        let business = BusinessContext {
            justification,
            department,
            cost_center,
            project_code,
            notes,
        };
        let streams = |number: RequestNumber| {
            let request = RequestCommand::Create {
                request: Box::new(NewRequest {
                    request_id,
                    request_number: number.clone(),
                    requester: requester.clone(),
                    subject: subject.clone(),
                    certificate_type,
                    key_algorithm,
                    validity_days,
                    csr: csr.clone(),
                    business: business.clone(),
                    answers: form.answers.clone(),
                    recommendation: recommendation.clone(),
                    requested_ca_type,
                    override_reason: override_reason.clone(),
                    renews: renews.clone(),
                    stays_in_acm,
                }),
                submit: true,
                at,
            };
            let approval = ApprovalCommand::Open {
                request_id,
                request_number: number,
                requester: requester.clone(),
                certificate_type,
                required_approvals,
                approvers: approvers.clone(),
                at,
            };
            async move {
                Ok(vec![
                    super::first_events::<CertificateRequest>(request_id, request).await?,
                    super::first_events::<Approval>(request_id, approval).await?,
                ])
            }
        };
        let span = tracing::info_span!(
            "command",
            otel.name = "command CertificateRequest",
            aggregate = CertificateRequest::TYPE,
            aggregate_id = %request_id,
        );
        let mut metadata = metadata;
        span.in_scope(|| crate::telemetry::trace::stamp(&mut metadata));
        let request_number = self
            .inner
            .numbers
            .write_next(self.pool(), today, request_id, &metadata, streams)
            .instrument(span)
            .await?;
        tracing::info!(
            request_number = %request_number,
            %certificate_type,
            required_approvals,
            correlation_id = %ctx.correlation_id,
            "request submitted"
        );
        Ok(SubmittedRequest {
            request_id,
            request_number,
            required_approvals,
            recommendation,
            notice,
        })
    }

    /// The request's state and its approval so far, read from its aggregates (not the read
    /// model, so it is current the moment a command returns) in one round trip.
    pub async fn request(&self, number: &RequestNumber) -> Result<RequestView, CommandError> {
        let missing = || CommandError::NotFound(format!("there is no request {number}"));
        let state = crate::eventstore::request_state(self.pool(), number.as_ref())
            .await?
            .ok_or_else(missing)?;
        RequestView::from_state(number, state).ok_or_else(missing)
    }

    /// The request as `ctx`'s person may see it: its requester, the approvers asked to decide
    /// on it, admins and auditors. Anyone else is refused (and the attempt audited), so
    /// request numbers, which are sequential, cannot be walked to learn who asked for what.
    /// `by` is `ctx`'s person, as [`Commands::actor`] found them.
    pub async fn request_seen_by(
        &self,
        ctx: &CommandContext,
        by: &Actor,
        number: &RequestNumber,
    ) -> Result<RequestView, CommandError> {
        let view = self.request(number).await?;
        let may_see = matches!(by.role, Role::Admin | Role::Auditor)
            || view.requester.email.same_person(&by.email)
            || view
                .approval_parts
                .iter()
                .any(|(approver, _)| approver.email.same_person(&by.email));
        if may_see {
            return Ok(view);
        }
        let attempt = Attempt {
            action: "view_request",
            resource_type: "request",
            resource_id: Some(view.request_id),
            resource_identifier: Some(number.as_ref()),
        };
        let refused = Err(CommandError::Refused(format!(
            "only the requester of {number}, its approvers, admins and auditors may see it"
        )));
        self.audit_refusal(ctx, Some(by), attempt, refused).await
    }

    /// Withdraws a request (its requester or an admin, before issuance starts).
    pub async fn cancel_request(
        &self,
        ctx: &CommandContext,
        number: &RequestNumber,
        reason: Option<&str>,
    ) -> Result<(), CommandError> {
        let by = self.actor(ctx).await?;
        let request_id = numbers::request_id_of(self.pool(), number).await?;
        let reason = Text::optional("reason", reason, 2000)?;
        let metadata = ctx.metadata(Some(&by));
        let at = Utc::now();
        let cancelled = self
            .inner
            .requests
            .execute(request_id, &metadata, || RequestCommand::Cancel {
                by: by.clone(),
                reason: reason.clone(),
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e));
        let attempt = Attempt {
            action: "cancel",
            resource_type: "request",
            resource_id: Some(request_id),
            resource_identifier: Some(number.as_ref()),
        };
        self.audit_refusal(ctx, Some(&by), attempt, cancelled)
            .await?;
        // Close the approval too; it may already be decided (approved, then cancelled).
        let withdrawn = self
            .inner
            .approvals
            .execute(request_id, &metadata, || ApprovalCommand::Withdraw {
                reason: "the request was cancelled".to_owned(),
                at,
            })
            .await;
        if let Err(e) = withdrawn {
            tracing::debug!(error = %e, request_number = %number, "approval not withdrawn");
        }
        Ok(())
    }

    /// Cancels a request that waited `waited_days` without a decision (the stale-request
    /// job) and closes its approval; returns the requester, to be told. Refused when the
    /// request is no longer waiting (decided or cancelled meanwhile).
    pub async fn expire_request(
        &self,
        request_id: Uuid,
        waited_days: u32,
        at: DateTime<Utc>,
    ) -> Result<Actor, CommandError> {
        let metadata = super::certificates::system_metadata();
        let request = self
            .inner
            .requests
            .load(request_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))?;
        let requester = request
            .requester()
            .cloned()
            .ok_or_else(|| CommandError::NotFound("there is no such request".to_owned()))?;
        self.inner
            .requests
            .execute(request_id, &metadata, || RequestCommand::Expire {
                waited_days,
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))?;
        let withdrawn = self
            .inner
            .approvals
            .execute(request_id, &metadata, || ApprovalCommand::Withdraw {
                reason: format!("no decision within {waited_days} days"),
                at,
            })
            .await;
        if let Err(e) = withdrawn {
            tracing::debug!(error = %e, %request_id, "approval not withdrawn");
        }
        Ok(requester)
    }

    /// Encrypts a private key (PEM) under a new data key wrapped by the key-encryption key,
    /// storing the wrapped data key: how every private key here is kept.
    pub async fn seal_private_key(&self, pem: &str) -> Result<EncryptedPrivateKey, CommandError> {
        let (data_key, wrapped) = self
            .inner
            .kek
            .new_data_key()
            .map_err(CommandError::internal)?;
        let private_key = data_key.encrypt(pem).map_err(CommandError::internal)?;
        crate::pki::key_store::store_data_key(self.pool(), &wrapped).await?;
        Ok(private_key)
    }

    async fn generate_csr(
        &self,
        subject: &Subject,
        algorithm: KeyAlgorithm,
    ) -> Result<Csr, CommandError> {
        // RSA 4096 takes a while: keep it off the async workers.
        let subject_for_keygen = subject.clone();
        let generated =
            tokio::task::spawn_blocking(move || keygen::generate(&subject_for_keygen, algorithm))
                .await
                .map_err(CommandError::internal)?
                .map_err(CommandError::internal)?;
        let private_key = self.seal_private_key(&generated.private_key_pem).await?;
        Ok(Csr {
            csr_type: CsrType::Generated,
            pem: generated.csr_pem.clone(),
            private_key: Some(private_key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::testing::{actor, at, requester};

    fn view(status: RequestStatus, outcome: Option<Outcome>) -> RequestView {
        RequestView {
            request_id: Uuid::nil(),
            request_number: RequestNumber::new(at(0).date_naive(), 1).expect("number"),
            status,
            requester: requester(),
            approval_parts: vec![
                (actor("jane", Role::Approver), Part::Approved),
                (actor("olga", Role::Approver), Part::Pending),
            ],
            approval_outcome: outcome,
            certificate: None,
            at_ca: None,
            failure: None,
            validation_records: Vec::new(),
        }
    }

    fn parts(view: &RequestView) -> Vec<&'static str> {
        view.approval_lines().into_iter().map(|(_, p)| p).collect()
    }

    #[test]
    fn an_approver_not_needed_once_the_request_is_settled_is_not_shown_waiting() {
        assert_eq!(
            parts(&view(RequestStatus::PendingApproval, None)),
            ["approved", "waiting"]
        );
        let approved = Outcome::Approved {
            approvers: vec![actor("jane", Role::Approver)],
            at: at(1),
        };
        assert_eq!(
            parts(&view(RequestStatus::Issued, Some(approved))),
            ["approved", "no longer needed"]
        );
        assert_eq!(
            parts(&view(RequestStatus::Cancelled, None)),
            ["approved", "no longer needed"]
        );
    }
}
