//! Renewal: a new request prefilled from a certificate's original request, with a fresh key.

use uuid::Uuid;

use super::{CommandContext, CommandError, Commands, RequestForm, SubmittedRequest};
use crate::domain::actor::Role;
use crate::domain::request::RequestEvent;

/// The justification's limit (the request form's).
const JUSTIFICATION_LIMIT: usize = 4000;

impl Commands {
    /// Submits a renewal of a certificate (serial or id) as the acting user: the same
    /// subject, names, type, key algorithm, validity and answers as the original request,
    /// with a newly generated key. Only the owner or an admin may renew.
    pub async fn renew(
        &self,
        ctx: &CommandContext,
        certificate: &str,
    ) -> Result<SubmittedRequest, CommandError> {
        let by = self.actor(ctx).await?;
        let certificate_id = self.certificate_id(certificate).await?;
        let current = self.certificate(certificate_id).await?;
        let (Some(owner), Some(serial)) = (current.owner(), current.serial()) else {
            return Err(CommandError::NotFound(
                "there is no such certificate".to_owned(),
            ));
        };
        if !by.is(owner) && by.role != Role::Admin {
            let refused: Result<(), _> = Err(CommandError::Refused(
                "only the certificate's owner or an admin can renew it".to_owned(),
            ));
            let identifier = super::certificates::certificate_identifier(certificate);
            let attempt = super::Attempt {
                action: "renew",
                resource_type: "certificate",
                resource_id: Some(certificate_id),
                resource_identifier: identifier.as_deref(),
            };
            self.audit_refusal(ctx, Some(&by), attempt, refused).await?;
        }
        let request_id = self.request_of_certificate(certificate_id).await?;
        let form = self.renewal_form(request_id, serial.as_ref()).await?;
        self.submit(ctx, form, Some(serial.clone())).await
    }

    /// The original request's form, to be submitted again.
    async fn renewal_form(
        &self,
        request_id: Uuid,
        serial: &str,
    ) -> Result<RequestForm, CommandError> {
        let Some(created) = crate::eventstore::request_creation(self.pool(), request_id).await?
        else {
            return Err(CommandError::NotFound(
                "the certificate's original request is gone".to_owned(),
            ));
        };
        let RequestEvent::RequestCreated {
            request_number,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            business,
            answers,
            requested_ca_type,
            override_reason,
            stays_in_acm,
            ..
        } = created
        else {
            return Err(CommandError::internal(anyhow::anyhow!(
                "a RequestCreated row holds another event"
            )));
        };
        let text = |t: Option<crate::domain::text::Text>| t.map(|t| t.to_string());
        let mut justification = format!(
            "Renewal of certificate {serial} ({request_number}): {}",
            business.justification
        );
        if justification.chars().count() > JUSTIFICATION_LIMIT {
            justification = justification.chars().take(JUSTIFICATION_LIMIT).collect();
        }
        Ok(RequestForm {
            common_name: subject.common_name.to_string(),
            subject_alternative_names: subject
                .subject_alternative_names
                .iter()
                .map(ToString::to_string)
                .collect(),
            organization: text(subject.organization),
            organizational_unit: text(subject.organizational_unit),
            locality: text(subject.locality),
            state_province: text(subject.state_province),
            country: subject.country.map(|c| c.to_string()),
            email_address: subject.email_address.map(|e| e.to_string()),
            certificate_type: certificate_type.as_str().to_owned(),
            key_algorithm: Some(key_algorithm.as_str().to_owned()),
            validity_days: Some(u32::from(validity_days).to_string()),
            csr_pem: None,
            justification,
            department: text(business.department),
            cost_center: text(business.cost_center),
            project_code: text(business.project_code),
            notes: Some(format!(
                "Renews {serial}; revoke it as superseded once this is issued."
            )),
            answers,
            requested_ca_type: Some(requested_ca_type.as_str().to_owned()),
            override_reason,
            export: stays_in_acm.then(|| "no".to_owned()),
        })
    }
}
