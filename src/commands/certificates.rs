//! Issuance records and revocation. The CA work itself belongs to the issuance saga; these
//! are the commands it (and people) issue.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Attempt, CommandContext, CommandError, Commands};
use crate::domain::actor::{Platform, Role};
use crate::domain::certificate::{CaRenewal, Certificate, CertificateCommand, IssuedCertificate};
use crate::domain::request::RequestCommand;
use crate::domain::text::Text;
use crate::domain::values::{RevocationReason, SerialNumber};

/// A revocation as people type it.
#[derive(Debug, Clone)]
pub struct RevocationForm {
    /// Serial number (hex) or certificate id.
    pub certificate: String,
    /// RFC 5280 reason, e.g. `key_compromise`.
    pub reason: String,
    /// Free text.
    pub text: Option<String>,
}

/// What became of a revocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked; the CA is told in the background.
    Revoked {
        /// The certificate.
        certificate_id: Uuid,
        /// Why.
        reason: RevocationReason,
        /// When, as recorded.
        at: DateTime<Utc>,
    },
    /// Its reason needs an approver first; they are asked.
    AwaitingApproval {
        /// The certificate.
        certificate_id: Uuid,
        /// Why.
        reason: RevocationReason,
        /// When it was asked for, as recorded.
        at: DateTime<Utc>,
    },
    /// An approver turned it down.
    Rejected {
        /// The certificate.
        certificate_id: Uuid,
        /// Why it was asked for.
        reason: RevocationReason,
        /// When, as recorded.
        at: DateTime<Utc>,
    },
}

impl Commands {
    /// Records what the CA did with a revocation: `Ok` when it revoked (its CRL lists the
    /// certificate), `Err` with the reason when it could not.
    pub async fn record_ca_revocation(
        &self,
        certificate_id: Uuid,
        outcome: Result<(), String>,
    ) -> Result<(), CommandError> {
        let at = Utc::now();
        let (ca_status, error) = match outcome {
            Ok(()) => ("revoked".to_owned(), None),
            Err(error) => ("failed".to_owned(), Some(error)),
        };
        self.inner
            .certificates
            .execute(certificate_id, &system_metadata(), || {
                CertificateCommand::RecordCaRevocation {
                    ca_status: ca_status.clone(),
                    error: error.clone(),
                    confirmed_by: None,
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))
    }

    /// An admin confirms having revoked a certificate at the CA by hand (the operator task
    /// left when the CA could not be told): the revocation counts as done at the CA.
    pub async fn confirm_ca_revocation(
        &self,
        ctx: &CommandContext,
        certificate: &str,
    ) -> Result<Uuid, CommandError> {
        let by = self.actor(ctx).await?;
        let certificate_id = self.existing_certificate(certificate).await?;
        let metadata = ctx.metadata(Some(&by));
        let at = Utc::now();
        let confirmed = self
            .inner
            .certificates
            .execute(certificate_id, &metadata, || {
                CertificateCommand::RecordCaRevocation {
                    ca_status: "revoked".to_owned(),
                    error: None,
                    confirmed_by: Some(by.clone()),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e));
        let identifier = certificate_identifier(certificate);
        let attempt = Attempt {
            action: "confirm_revocation",
            resource_type: "certificate",
            resource_id: Some(certificate_id),
            resource_identifier: identifier.as_deref(),
        };
        self.audit_refusal(ctx, Some(&by), attempt, confirmed)
            .await?;
        Ok(certificate_id)
    }

    /// The saga takes an approved request up.
    pub async fn start_issuance(&self, request_id: Uuid) -> Result<(), CommandError> {
        let metadata = system_metadata();
        let at = Utc::now();
        self.inner
            .requests
            .execute(request_id, &metadata, || RequestCommand::StartIssuance {
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))
    }

    /// The request's status, if it exists.
    pub async fn request_status(
        &self,
        request_id: Uuid,
    ) -> Result<Option<crate::domain::request::RequestStatus>, CommandError> {
        Ok(self
            .inner
            .requests
            .load(request_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))?
            .status())
    }

    /// The saga records the DNS records the CA waits for before it issues.
    pub async fn record_validation_records(
        &self,
        request_id: Uuid,
        records: Vec<crate::domain::request::ValidationRecord>,
    ) -> Result<(), CommandError> {
        let at = Utc::now();
        self.inner
            .requests
            .execute(request_id, &system_metadata(), || {
                RequestCommand::RecordValidationRecords {
                    records: records.clone(),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))
    }

    /// The saga records the CA's id for the request (at once, before anything else).
    pub async fn record_ca_request(
        &self,
        request_id: Uuid,
        ca_request_id: &str,
        ca_status: &str,
    ) -> Result<(), CommandError> {
        let at = Utc::now();
        self.inner
            .requests
            .execute(request_id, &system_metadata(), || {
                RequestCommand::RecordCaRequest {
                    ca_request_id: ca_request_id.to_owned(),
                    ca_status: ca_status.to_owned(),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))
    }

    /// A transient CA failure; returns the retries counted so far.
    pub async fn schedule_retry(&self, request_id: Uuid, error: &str) -> Result<u32, CommandError> {
        let at = Utc::now();
        self.inner
            .requests
            .execute(request_id, &system_metadata(), || {
                RequestCommand::ScheduleRetry {
                    error: error.to_owned(),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))?;
        Ok(self
            .inner
            .requests
            .load(request_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))?
            .retry_count())
    }

    /// Issuance ended without a certificate.
    pub async fn fail_issuance(&self, request_id: Uuid, error: &str) -> Result<(), CommandError> {
        let at = Utc::now();
        self.inner
            .requests
            .execute(request_id, &system_metadata(), || RequestCommand::Fail {
                error: error.to_owned(),
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))
    }

    /// A certificate's current state (empty when there is no such certificate).
    pub async fn certificate(&self, certificate_id: Uuid) -> Result<Certificate, CommandError> {
        self.inner
            .certificates
            .load(certificate_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))
    }

    /// Destroys a revoked certificate's generated private key for good (crypto-shredding):
    /// deletes its data key, then records `PrivateKeyDestroyed`. Both steps are idempotent,
    /// so a retry after a crash finishes the job. Returns false when there was no key.
    pub async fn destroy_private_key(&self, certificate_id: Uuid) -> Result<bool, CommandError> {
        let certificate = self.certificate(certificate_id).await?;
        if !certificate.has_private_key_left() {
            return Ok(false);
        }
        let issued = self.issued(certificate_id).await?;
        if let Some(key) = &issued.private_key {
            crate::pki::key_store::destroy_data_key(self.pool(), key.data_key_id).await?;
        }
        let at = Utc::now();
        self.inner
            .certificates
            .execute(certificate_id, &system_metadata(), || {
                CertificateCommand::RecordKeyDestroyed { at }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))?;
        Ok(true)
    }

    /// Records that the owner was reminded `days_before` expiry (once per threshold).
    pub async fn record_expiry_reminder(
        &self,
        certificate_id: Uuid,
        days_before: u32,
        at: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        self.inner
            .certificates
            .execute(certificate_id, &system_metadata(), || {
                CertificateCommand::RecordExpiryReminder { days_before, at }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))
    }

    /// Records that the CA renewed a certificate by itself (ACM's managed renewal).
    pub async fn record_ca_renewal(
        &self,
        certificate_id: Uuid,
        renewal: CaRenewal,
        at: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        self.inner
            .certificates
            .execute(certificate_id, &system_metadata(), || {
                CertificateCommand::RecordCaRenewal {
                    renewal: Box::new(renewal.clone()),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))
    }

    /// Marks a certificate expired (`at` must be at or after its `valid_to`).
    pub async fn mark_expired(
        &self,
        certificate_id: Uuid,
        at: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        self.inner
            .certificates
            .execute(certificate_id, &system_metadata(), || {
                CertificateCommand::MarkExpired { at }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))
    }

    /// Records an issued certificate and marks its request issued.
    pub async fn record_issuance(
        &self,
        certificate: IssuedCertificate,
    ) -> Result<(), CommandError> {
        let metadata = system_metadata();
        let at = Utc::now();
        let certificate_id = certificate.certificate_id;
        let request_id = certificate.request_id;
        let serial_number = certificate.serial_number.clone();
        self.inner
            .certificates
            .execute(certificate_id, &metadata, || CertificateCommand::Issue {
                certificate: Box::new(certificate.clone()),
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))?;
        self.inner
            .requests
            .execute(request_id, &metadata, || RequestCommand::MarkIssued {
                certificate_id,
                serial_number: serial_number.clone(),
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))
    }

    /// Revokes a certificate as the acting user (its owner or an admin). A reason listed in
    /// `revocation.approval_required_reasons` first waits for an approver, unless an admin
    /// asks (an admin's revocation is its own approval).
    pub async fn revoke(
        &self,
        ctx: &CommandContext,
        form: RevocationForm,
    ) -> Result<Revocation, CommandError> {
        let by = self.actor(ctx).await?;
        let reason = RevocationReason::parse_for_revocation(&form.reason)?;
        let text = Text::optional("reason_text", form.text.as_deref(), 2000)?;
        let certificate_id = self.existing_certificate(&form.certificate).await?;
        let needs_approval = self.settings().await?.revocation_needs_approval(reason);
        let metadata = ctx.metadata(Some(&by));
        let at = Utc::now();
        let attempt = Attempt {
            action: "revoke",
            resource_type: "certificate",
            resource_id: Some(certificate_id),
            resource_identifier: None,
        };
        if needs_approval && by.role != Role::Admin {
            let asked = self
                .inner
                .certificates
                .execute(certificate_id, &metadata, || {
                    CertificateCommand::RequestRevocation {
                        by: by.clone(),
                        reason,
                        text: text.clone(),
                        at,
                    }
                })
                .await
                .map_err(|e| CommandError::from_aggregate("the certificate", e));
            self.audit_refusal(ctx, Some(&by), attempt, asked).await?;
            return Ok(Revocation::AwaitingApproval {
                certificate_id,
                reason,
                at,
            });
        }
        let revoked = self
            .inner
            .certificates
            .execute(certificate_id, &metadata, || CertificateCommand::Revoke {
                by: by.clone(),
                reason,
                text: text.clone(),
                approval_required: needs_approval,
                approved_by: needs_approval.then(|| by.clone()),
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e));
        self.audit_refusal(ctx, Some(&by), attempt, revoked).await?;
        self.mark_request_revoked(certificate_id, reason, &metadata, at)
            .await?;
        Ok(Revocation::Revoked {
            certificate_id,
            reason,
            at,
        })
    }

    /// An approver's decision on a revocation that waits for one; approved revokes it.
    pub async fn decide_revocation(
        &self,
        ctx: &CommandContext,
        certificate: &str,
        approve: bool,
        comment: Option<&str>,
    ) -> Result<Revocation, CommandError> {
        let by = self.actor(ctx).await?;
        let comment = Text::optional("comment", comment, 2000)?;
        let certificate_id = self.existing_certificate(certificate).await?;
        let pending = self
            .certificate(certificate_id)
            .await?
            .pending_revocation()
            .map(|p| p.reason);
        let metadata = ctx.metadata(Some(&by));
        let at = Utc::now();
        let decided = self
            .inner
            .certificates
            .execute(certificate_id, &metadata, || {
                CertificateCommand::DecideRevocation {
                    by: by.clone(),
                    approve,
                    comment: comment.clone(),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e));
        let attempt = Attempt {
            action: if approve { "approve" } else { "reject" },
            resource_type: "certificate",
            resource_id: Some(certificate_id),
            resource_identifier: None,
        };
        self.audit_refusal(ctx, Some(&by), attempt, decided).await?;
        let reason = pending.unwrap_or(RevocationReason::Unspecified);
        if !approve {
            return Ok(Revocation::Rejected {
                certificate_id,
                reason,
                at,
            });
        }
        self.mark_request_revoked(certificate_id, reason, &metadata, at)
            .await?;
        Ok(Revocation::Revoked {
            certificate_id,
            reason,
            at,
        })
    }

    /// The id of a certificate that exists (serial or id).
    async fn existing_certificate(&self, given: &str) -> Result<Uuid, CommandError> {
        let certificate_id = self.certificate_id(given).await?;
        if self.certificate(certificate_id).await?.status().is_none() {
            return Err(CommandError::NotFound(
                "there is no such certificate".to_owned(),
            ));
        }
        Ok(certificate_id)
    }

    /// The request of a revoked certificate follows it.
    async fn mark_request_revoked(
        &self,
        certificate_id: Uuid,
        reason: RevocationReason,
        metadata: &std::collections::HashMap<String, String>,
        at: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        let request_id = self.request_of_certificate(certificate_id).await?;
        self.inner
            .requests
            .execute(request_id, metadata, || RequestCommand::MarkRevoked {
                certificate_id,
                reason,
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))
    }

    pub(super) async fn request_of_certificate(
        &self,
        certificate_id: Uuid,
    ) -> Result<Uuid, CommandError> {
        Ok(self.issued(certificate_id).await?.request_id)
    }
}

impl Commands {
    /// The certificate a person means: its id (hyphenated UUID) or its serial number.
    pub(super) async fn certificate_id(&self, given: &str) -> Result<Uuid, CommandError> {
        match certificate_uuid(given) {
            Some(id) => Ok(id),
            None => {
                let serial = SerialNumber::parse(given)?;
                crate::eventstore::certificate_with_serial(self.pool(), serial.as_ref())
                    .await?
                    .ok_or_else(|| {
                        CommandError::NotFound(format!(
                            "there is no certificate with serial {serial}"
                        ))
                    })
            }
        }
    }
}

/// The certificate id when `given` is one in its hyphenated form. A 128-bit serial number
/// is 32 hex digits, which `Uuid` would also accept in its "simple" form, so only the
/// hyphenated form counts as an id; everything else is looked up as a serial.
/// How a refusal names the certificate a person meant: its id or its serial as parsed, never
/// what they typed (which may be padded to any length).
pub(super) fn certificate_identifier(given: &str) -> Option<String> {
    certificate_uuid(given)
        .map(|id| id.to_string())
        .or_else(|| SerialNumber::parse(given).ok().map(|s| s.to_string()))
}

fn certificate_uuid(given: &str) -> Option<Uuid> {
    let given = given.trim();
    if given.len() == 36 && given.contains('-') {
        given.parse().ok()
    } else {
        None
    }
}

/// The metadata of what the service does on its own (the saga, scheduled passes): inside a
/// trace, the correlation id of the action that caused it.
pub(super) fn system_metadata() -> std::collections::HashMap<String, String> {
    std::collections::HashMap::from([
        ("platform".to_owned(), Platform::System.as_str().to_owned()),
        (
            "correlation_id".to_owned(),
            crate::telemetry::trace::correlation_id().to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::certificate_uuid;

    #[test]
    fn a_serial_of_32_hex_digits_is_not_taken_for_an_id() {
        assert_eq!(certificate_uuid("677C7B5F4371E87F74DFCB93A54F3447"), None);
        let id = uuid::Uuid::new_v4();
        assert_eq!(certificate_uuid(&format!(" {id} ")), Some(id));
    }
}
