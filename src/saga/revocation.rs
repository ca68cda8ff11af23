//! Carrying revocations to the CA: a feed consumer creates a job for every revoked
//! certificate (and asks the approvers by e-mail to decide on a revocation that waits for
//! one, as the chat outbox asks them in chat); a worker claims it with a lease and asks the CA to revoke (the embedded CA
//! then lists it in its CRL), and records the outcome (`crl_updated_at`, or why not). A CA
//! A certificate of the public CA is revoked in ACM (`RevokeCertificate`, by its ARN), never
//! at the internal CA. A CA
//! that cannot revoke through its API (ADCS Web Enrollment) leaves a clear task for an
//! operator in `certificate_revocations.adcs_error_message` and the audit trail. Then, unless
//! `revocation.destroy_private_key` is false, the generated private key is crypto-shredded.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::adapters::ca::{AtCa, CaError, CertificateAuthority};
use chrono::{DateTime, Utc};

use super::mail;
use crate::commands::{Commands, people};
use crate::domain::actor::Actor;
use crate::domain::certificate::CertificateEvent;
use crate::domain::notification::{Channel, Message, NotificationType};
use crate::domain::values::{RevocationReason, SerialNumber};
use crate::feed::{DomainEvent, FeedConsumer, StoredEvent};
use crate::jobs::{self, Claimed, JobError, JobWorker, NewJob, Outcome, Policy};

/// The feed consumer's checkpoint name.
pub const REVOCATION: &str = "revocation";

/// A revocation to carry to the CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationJob {
    /// The revoked certificate.
    pub certificate_id: Uuid,
    /// Its serial, as the CA knows it.
    pub serial: SerialNumber,
    /// Why it was revoked (RFC 5280).
    pub reason: RevocationReason,
    /// Its ARN, when the public CA (ACM) issued it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acm_arn: Option<String>,
}

/// Creates a job for every revoked certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct RevocationFeed;

impl FeedConsumer for RevocationFeed {
    fn name(&self) -> &'static str {
        REVOCATION
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
        let reason = match event.decode()? {
            Some(DomainEvent::Certificate(CertificateEvent::CertificateRevoked {
                reason, ..
            })) => reason,
            Some(DomainEvent::Certificate(CertificateEvent::RevocationRequested {
                by,
                reason,
                text,
                at,
            })) => {
                let asked = Asked {
                    by: &by,
                    reason,
                    text: text.as_deref(),
                    at,
                };
                return ask_by_mail(conn, event, &asked).await;
            }
            _ => return Ok(()),
        };
        let certificate_id = event.aggregate_uuid()?;
        let issued = crate::eventstore::issued_certificate(&mut *conn, certificate_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("certificate {certificate_id} was never issued"))?;
        let job = RevocationJob {
            certificate_id,
            serial: issued.serial_number,
            reason,
            acm_arn: issued.acm.map(|acm| acm.arn),
        };
        jobs::enqueue(
            conn,
            NewJob {
                id: certificate_id,
                kind: REVOCATION,
                ordering_key: None,
                payload: &job,
                traceparent: event.traceparent(),
            },
        )
        .await
    }
}

/// A revocation that waits for an approver, as it was asked for.
struct Asked<'a> {
    by: &'a Actor,
    reason: RevocationReason,
    text: Option<&'a str>,
    at: DateTime<Utc>,
}

/// Ids of the e-mails asking approvers to decide on a revocation (one per ask and approver,
/// so a replayed event asks nobody twice).
const ASK_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_3c2a_8e4b_4f7a_9c5d_2b1e_0a3f_7c61);

/// Asks every approver but the one who asked, by e-mail as in chat, to decide on a
/// revocation that waits for one; it stays valid until one agrees.
async fn ask_by_mail(
    conn: &mut PgConnection,
    event: &StoredEvent,
    asked: &Asked<'_>,
) -> anyhow::Result<()> {
    let certificate_id = event.aggregate_uuid()?;
    let issued = crate::eventstore::issued_certificate(&mut *conn, certificate_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("certificate {certificate_id} was never issued"))?;
    let serial = &issued.serial_number;
    let by = &asked.by.email;
    let why = asked
        .text
        .map_or_else(String::new, |text| format!(" (\"{text}\")"));
    let subject = format!(
        "Revoking certificate {} ({serial}) waits for your decision",
        issued.common_name
    );
    let body = format!(
        "{by} asks to revoke certificate {serial} for {reason}{why}.\n\n\
         Common name: {cn}\nOwner: {owner}\nExpires: {expires}\nRequest: {request}\n\n\
         It stays valid until an approver agrees. Decide with the buttons on the message in \
         chat, with /cert approve {serial} or /cert reject {serial} REASON, or with \
         `cert-assistant certificate approve-revocation {serial} --as YOUR-EMAIL` (or \
         reject-revocation … --reason …).\n",
        reason = asked.reason,
        cn = issued.common_name,
        owner = issued.owner.email,
        expires = issued.valid_to.format("%Y-%m-%d"),
        request = issued.request_number,
    );
    for approver in people::approvers(&mut *conn).await? {
        if approver.email == *by {
            continue;
        }
        let id = Uuid::new_v5(
            &ASK_NAMESPACE,
            format!(
                "{certificate_id}/{}/{}",
                asked.at.to_rfc3339(),
                approver.user_id
            )
            .as_bytes(),
        );
        let message = Message {
            recipient: approver,
            notification_type: NotificationType::ApprovalRequested,
            subject: subject.clone(),
            body: body.clone(),
            channel: Channel::Email,
            resource_type: Some("certificate".to_owned()),
            resource_id: Some(certificate_id),
        };
        mail::enqueue(conn, id, message, event.traceparent()).await?;
    }
    Ok(())
}

/// Revokes at the CA.
#[derive(Debug, Clone)]
pub struct RevocationWorker {
    commands: Commands,
    ca: Arc<dyn CertificateAuthority>,
    public: Option<Arc<dyn CertificateAuthority>>,
}

impl RevocationWorker {
    /// A worker revoking at `ca`.
    pub fn new(commands: Commands, ca: Arc<dyn CertificateAuthority>) -> Self {
        Self {
            commands,
            ca,
            public: None,
        }
    }

    /// Revokes the public CA's certificates through `public` (ACM).
    #[must_use]
    pub fn with_public_ca(mut self, public: Option<Arc<dyn CertificateAuthority>>) -> Self {
        self.public = public;
        self
    }

    /// Claims due jobs and runs them; returns how many were claimed.
    pub async fn step(&self) -> anyhow::Result<usize> {
        jobs::step(self.commands.pool(), self).await
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        jobs::run(&self.commands.pool().clone(), &self, stopped).await;
    }

    /// Tells the CA, unless an admin confirmed revoking it by hand meanwhile; records the
    /// outcome. `Err` only for a transient failure that is worth another attempt.
    async fn revoke(&self, job: &Claimed<RevocationJob>) -> Result<(), JobError> {
        let RevocationJob {
            certificate_id: id,
            serial,
            reason,
            acm_arn,
        } = &job.payload;
        let id = *id;
        if self
            .commands
            .certificate(id)
            .await
            .map_err(anyhow::Error::from)?
            .revoked_at_ca()
        {
            return Ok(());
        }
        // Where it was issued, and how an operator revokes it there by hand.
        let (ca, by_hand) = match (acm_arn, &self.public) {
            (None, _) => (
                Some(self.ca.as_ref()),
                format!(
                    "Revoke serial {serial} at the CA by hand (for ADCS: certutil -revoke \
                     {serial} {}, then certutil -crl)",
                    reason.code()
                ),
            ),
            (Some(arn), public) => (
                public.as_deref(),
                format!(
                    "Revoke it in ACM by hand (aws acm revoke-certificate --certificate-arn \
                     {arn} --revocation-reason {})",
                    reason.as_str().to_ascii_uppercase()
                ),
            ),
        };
        let Some(ca) = ca else {
            let task = format!(
                "the certificate is from AWS Certificate Manager, which is not configured \
                 here (acm.enabled). {by_hand}, and confirm it with /cert confirm-revocation \
                 {serial}."
            );
            self.commands
                .record_ca_revocation(id, Err(task))
                .await
                .map_err(anyhow::Error::from)?;
            return Ok(());
        };
        let at_ca = AtCa {
            serial: serial.as_ref(),
            ca_request_id: acm_arn.as_deref(),
        };
        let task = match ca.revoke(at_ca, *reason).await {
            Ok(()) => {
                self.commands
                    .record_ca_revocation(id, Ok(()))
                    .await
                    .map_err(anyhow::Error::from)?;
                return Ok(());
            }
            Err(CaError::Permanent(message)) => format!(
                "{message}. {by_hand}, and confirm it with /cert confirm-revocation {serial}."
            ),
            Err(CaError::Transient(message)) if job.attempts >= self.policy().max_attempts => {
                format!(
                    "{message} (gave up after {} attempts). {by_hand}, and confirm it with \
                     /cert confirm-revocation {serial}.",
                    job.attempts
                )
            }
            Err(CaError::Transient(message)) => {
                return Err(JobError::Transient(anyhow::anyhow!(message)));
            }
        };
        // The CA cannot be told: the operator task goes to the admins through the
        // certificate's events, and this job is done.
        self.commands
            .record_ca_revocation(id, Err(task))
            .await
            .map_err(anyhow::Error::from)?;
        Ok(())
    }

    /// `revocation.destroy_private_key` (default true): whether a revoked certificate's
    /// generated private key is destroyed. A revoked key has no legitimate use left; turn it
    /// off where old S/MIME mail must stay decryptable.
    async fn destroys_keys(&self) -> anyhow::Result<bool> {
        let value =
            crate::db::setting(self.commands.pool(), "revocation.destroy_private_key").await?;
        Ok(value.is_none_or(|v| v.trim() != "false"))
    }
}

impl JobWorker for RevocationWorker {
    type Payload = RevocationJob;

    fn kind(&self) -> &'static str {
        REVOCATION
    }

    fn policy(&self) -> &'static Policy {
        &jobs::policy::REVOCATION
    }

    async fn perform(&self, job: &Claimed<RevocationJob>) -> Result<Outcome, JobError> {
        self.revoke(job).await?;
        let id = job.payload.certificate_id;
        if self.destroys_keys().await?
            && self
                .commands
                .destroy_private_key(id)
                .await
                .map_err(anyhow::Error::from)?
        {
            tracing::info!(certificate = %id, "private key destroyed after revocation");
        }
        Ok(Outcome::Done)
    }
}
