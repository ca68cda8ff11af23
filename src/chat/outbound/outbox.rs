//! The chat outbox: a durable feed consumer that turns events into chat jobs, one per event
//! and configured platform (ask the approvers, remind them and escalate; announce the
//! decision and update every message; tell the requester about issuance; remind owners
//! before expiry; operator tasks). Jobs about one subject run in event order.

use sqlx::PgConnection;
use uuid::Uuid;

use super::{ChatJob, ChatMessage, Decision, Issuance, RevocationDecision, job_kind};
use crate::domain::approval::ApprovalEvent;
use crate::domain::certificate::CertificateEvent;
use crate::domain::request::RequestEvent;
use crate::feed::{DomainEvent, FeedConsumer, StoredEvent};
use crate::jobs::{self, NewJob};

/// Its checkpoint's name.
pub const CHAT_OUTBOX: &str = "chat_outbox";

/// Namespace of job ids: one job per event and platform, however often it is applied.
const JOB_NAMESPACE: Uuid = Uuid::from_u128(0x41aa_0c3e_91d2_4f6b_8e07_5c2b_d913_6a58);

/// The consumer: one job per event and chat platform in use.
#[derive(Debug, Clone, Default)]
pub struct ChatOutbox {
    platforms: Vec<&'static str>,
}

impl ChatOutbox {
    /// Jobs for these platforms (their [`ChatPlatform::name`](super::ChatPlatform::name)s).
    pub fn new(platforms: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            platforms: platforms.into_iter().collect(),
        }
    }

    /// Queues `job` for every platform, in `conn`'s transaction; `cause` names the event
    /// (or failure) it comes from, so queueing it again queues nothing, and `traceparent`
    /// the trace it continues.
    pub async fn queue(
        &self,
        conn: &mut PgConnection,
        cause: &str,
        traceparent: Option<&str>,
        job: &ChatJob,
    ) -> anyhow::Result<()> {
        for platform in &self.platforms {
            jobs::enqueue(
                &mut *conn,
                NewJob {
                    id: Uuid::new_v5(&JOB_NAMESPACE, format!("{platform}/{cause}").as_bytes()),
                    kind: job_kind(platform),
                    ordering_key: Some(format!("{platform}/{}", job.subject)),
                    payload: job,
                    traceparent,
                },
            )
            .await?;
        }
        Ok(())
    }
}

impl FeedConsumer for ChatOutbox {
    fn name(&self) -> &'static str {
        CHAT_OUTBOX
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
        if self.platforms.is_empty() {
            return Ok(());
        }
        let Some(decoded) = event.decode()? else {
            return Ok(());
        };
        let job = match decoded {
            DomainEvent::Certificate(change) => {
                certificate_job(conn, event.aggregate_uuid()?, change).await?
            }
            DomainEvent::Request(change) => request_job(change)
                .map(|message| {
                    event
                        .aggregate_uuid()
                        .map(|subject| ChatJob { subject, message })
                })
                .transpose()?,
            DomainEvent::Approval(change) => approval_job(change)
                .map(|message| {
                    event
                        .aggregate_uuid()
                        .map(|subject| ChatJob { subject, message })
                })
                .transpose()?,
            _ => None,
        };
        let Some(job) = job else {
            return Ok(());
        };
        let cause = format!(
            "{}/{}/{}",
            event.aggregate_type, event.aggregate_id, event.sequence
        );
        self.queue(conn, &cause, event.traceparent(), &job).await
    }
}

/// The job a certificate event makes: about the certificate, except expiry reminders, which
/// belong with the request's messages.
async fn certificate_job(
    conn: &mut PgConnection,
    certificate_id: Uuid,
    event: CertificateEvent,
) -> anyhow::Result<Option<ChatJob>> {
    let about = |message| {
        Some(ChatJob {
            subject: certificate_id,
            message,
        })
    };
    Ok(match event {
        CertificateEvent::ExpiryReminderSent { days_before, at } => {
            let issued = crate::eventstore::issued_certificate(&mut *conn, certificate_id)
                .await?
                .ok_or_else(|| anyhow::anyhow!("certificate {certificate_id} was never issued"))?;
            Some(ChatJob {
                subject: issued.request_id,
                message: ChatMessage::RemindExpiry {
                    certificate_id,
                    days_before,
                    at,
                },
            })
        }
        CertificateEvent::RevocationRequested {
            by,
            reason,
            text,
            at,
        } => about(ChatMessage::AskRevocation {
            by: by.email,
            reason,
            text,
            at,
        }),
        CertificateEvent::CertificateRevoked {
            by,
            approved_by: Some(approver),
            approval_required: true,
            at,
            ..
        } if !approver.is(&by) => about(ChatMessage::AnnounceRevocation {
            outcome: RevocationDecision::Approved,
            by: approver.email,
            requester: Some(by.email),
            comment: None,
            at,
        }),
        // Revoked without deciding on an ask that waited: its copies lose their buttons
        // (updating copies that do not exist does nothing).
        CertificateEvent::CertificateRevoked { by, at, .. } => {
            about(ChatMessage::AnnounceRevocation {
                outcome: RevocationDecision::Overtaken,
                by: by.email,
                requester: None,
                comment: None,
                at,
            })
        }
        CertificateEvent::CaRevocationRecorded {
            ca_status,
            error,
            confirmed_by,
            at,
        } => match confirmed_by {
            Some(admin) => about(ChatMessage::AnnounceRevocation {
                outcome: RevocationDecision::Confirmed,
                by: admin.email,
                requester: None,
                comment: None,
                at,
            }),
            None if ca_status != "revoked" => about(ChatMessage::OperatorTask { task: error, at }),
            None => None,
        },
        CertificateEvent::RevocationRejected {
            by,
            requested_by,
            comment,
            at,
        } => about(ChatMessage::AnnounceRevocation {
            outcome: RevocationDecision::Rejected,
            by: by.email,
            requester: Some(requested_by.email),
            comment: Some(comment),
            at,
        }),
        _ => None,
    })
}

fn request_job(event: RequestEvent) -> Option<ChatMessage> {
    match event {
        RequestEvent::RequestExpired { waited_days, .. } => {
            Some(ChatMessage::AnnounceExpiry { waited_days })
        }
        RequestEvent::RequestIssued { serial_number, .. } => Some(ChatMessage::AnnounceIssuance {
            outcome: Issuance::Issued,
            serial: Some(serial_number),
            error: None,
        }),
        RequestEvent::ValidationRecordsRequired { records, .. } => {
            Some(ChatMessage::AskForValidation { records })
        }
        RequestEvent::IssuanceFailed { error, .. } => Some(ChatMessage::AnnounceIssuance {
            outcome: Issuance::Failed,
            serial: None,
            error: Some(error),
        }),
        _ => None,
    }
}

fn approval_job(event: ApprovalEvent) -> Option<ChatMessage> {
    let emails = |actors: Vec<crate::domain::actor::Actor>| {
        actors.into_iter().map(|a| a.email).collect::<Vec<_>>()
    };
    match event {
        ApprovalEvent::ApprovalOpened { approvers, .. } => Some(ChatMessage::AskApprovers {
            approvers: emails(approvers),
            delegated_by: None,
            reason: None,
        }),
        ApprovalEvent::ApprovalDelegated { by, to, reason, .. } => {
            Some(ChatMessage::AskApprovers {
                approvers: vec![to.email],
                delegated_by: Some(by.email),
                reason: Some(reason),
            })
        }
        ApprovalEvent::ApprovalPolicySatisfied { approvers, at } => {
            Some(ChatMessage::AnnounceDecision {
                outcome: Decision::Approved,
                by: emails(approvers)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                reason: String::new(),
                at: Some(at),
            })
        }
        ApprovalEvent::ApprovalRejected { by, reason, at } => Some(ChatMessage::AnnounceDecision {
            outcome: Decision::Rejected,
            by: by.email.to_string(),
            reason,
            at: Some(at),
        }),
        ApprovalEvent::ApprovalWithdrawn { reason, at } => Some(ChatMessage::AnnounceDecision {
            outcome: Decision::Withdrawn,
            by: String::new(),
            reason,
            at: Some(at),
        }),
        ApprovalEvent::ApprovalReminderSent {
            approvers,
            reminder_count,
            escalated_to,
            at,
        } => Some(ChatMessage::NudgeApprovers {
            approvers: emails(approvers),
            escalated_to: emails(escalated_to),
            reminder_count,
            at,
        }),
        _ => None,
    }
}
