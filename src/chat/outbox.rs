//! The chat outbox: a durable feed consumer that turns events into jobs for the chat
//! platforms (ask the approvers, remind them and escalate; announce the decision and update
//! every message; tell the requester about issuance; remind owners before expiry).

use cqrs_es::Aggregate;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::commands::store;
use crate::domain::approval::{Approval, ApprovalEvent};
use crate::domain::certificate::{Certificate, CertificateEvent};
use crate::domain::request::{CertificateRequest, RequestEvent};
use crate::projections::StoredEvent;
use crate::projections::projector::FeedConsumer;

/// Its checkpoint's name.
pub const CHAT_OUTBOX: &str = "chat_outbox";

/// Namespace of job ids: one job per event, however often it is applied.
const JOB_NAMESPACE: Uuid = Uuid::from_u128(0x41aa_0c3e_91d2_4f6b_8e07_5c2b_d913_6a58);

/// Ask the listed people to decide.
pub const ASK_APPROVERS: &str = "ask_approvers";
/// Tell everyone involved how it ended.
pub const ANNOUNCE_DECISION: &str = "announce_decision";
/// Tell the requester the certificate is ready, or why it is not.
pub const ANNOUNCE_ISSUANCE: &str = "announce_issuance";
/// Tell the requester that their request was cancelled for want of a decision.
pub const ANNOUNCE_EXPIRY: &str = "announce_expiry";
/// Ask the approvers to decide on a revocation (the job's `request_id` is the certificate).
pub const ASK_REVOCATION: &str = "ask_revocation";
/// Tell everyone involved how a revocation approval ended, and update every message.
pub const ANNOUNCE_REVOCATION: &str = "announce_revocation";
/// Ask the admins to revoke a certificate at the CA by hand and confirm it (with a button).
pub const OPERATOR_TASK: &str = "operator_task";
/// Remind the owner that a certificate expires soon (with a Renew button).
pub const REMIND_EXPIRY: &str = "remind_expiry";
/// Remind the pending approvers of an overdue approval, and the admins it escalates to.
pub const NUDGE_APPROVERS: &str = "nudge_approvers";

/// The consumer: one job per event and chat platform in use.
#[derive(Debug, Clone, Default)]
pub struct ChatOutbox {
    platforms: Vec<&'static str>,
}

impl ChatOutbox {
    /// Jobs for these platforms (their notifiers' [`name`](super::notifier::ChatPlatform::name)s).
    pub fn new(platforms: impl IntoIterator<Item = &'static str>) -> Self {
        Self {
            platforms: platforms.into_iter().collect(),
        }
    }
}

impl FeedConsumer for ChatOutbox {
    fn name(&self) -> &'static str {
        CHAT_OUTBOX
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a StoredEvent,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        apply(conn, event, &self.platforms)
    }
}

async fn apply(
    conn: &mut PgConnection,
    event: &StoredEvent,
    platforms: &[&'static str],
) -> anyhow::Result<()> {
    if platforms.is_empty() {
        return Ok(());
    }
    if event.aggregate_type == Certificate::TYPE {
        let certificate_id: Uuid = event.aggregate_id.parse()?;
        let (kind, subject, payload) = match serde_json::from_value(event.payload.clone())? {
            CertificateEvent::ExpiryReminderSent { days_before, at } => {
                let issued = store::issued_certificate(&mut *conn, certificate_id).await?;
                (
                    REMIND_EXPIRY,
                    issued.request_id,
                    json!({ "certificate_id": certificate_id, "days_before": days_before, "at": at }),
                )
            }
            CertificateEvent::RevocationRequested {
                by,
                reason,
                text,
                at,
            } => (
                ASK_REVOCATION,
                certificate_id,
                json!({ "by": by.email, "reason": reason.as_str(), "text": text, "at": at }),
            ),
            CertificateEvent::CertificateRevoked {
                by,
                approved_by: Some(approver),
                approval_required: true,
                at,
                ..
            } if !approver.is(&by) => (
                ANNOUNCE_REVOCATION,
                certificate_id,
                json!({ "outcome": "approved", "by": approver.email, "requester": by.email, "at": at }),
            ),
            CertificateEvent::CaRevocationRecorded {
                ca_status,
                error,
                confirmed_by,
                at,
            } => match confirmed_by {
                Some(admin) => (
                    ANNOUNCE_REVOCATION,
                    certificate_id,
                    json!({ "outcome": "confirmed", "by": admin.email, "at": at }),
                ),
                None if ca_status != "revoked" => (
                    OPERATOR_TASK,
                    certificate_id,
                    json!({ "task": error, "at": at }),
                ),
                None => return Ok(()),
            },
            CertificateEvent::RevocationRejected {
                by,
                requested_by,
                comment,
                at,
            } => (
                ANNOUNCE_REVOCATION,
                certificate_id,
                json!({
                    "outcome": "rejected",
                    "by": by.email,
                    "requester": requested_by.email,
                    "comment": comment,
                    "at": at,
                }),
            ),
            _ => return Ok(()),
        };
        return insert_job(conn, event, platforms, kind, subject, payload).await;
    }
    if event.aggregate_type == CertificateRequest::TYPE {
        let request_id = event.aggregate_id.parse()?;
        let (kind, payload) = match serde_json::from_value::<RequestEvent>(event.payload.clone())? {
            RequestEvent::RequestExpired { waited_days, .. } => {
                (ANNOUNCE_EXPIRY, json!({ "waited_days": waited_days }))
            }
            RequestEvent::RequestIssued { serial_number, .. } => (
                ANNOUNCE_ISSUANCE,
                json!({ "outcome": "issued", "serial": serial_number }),
            ),
            RequestEvent::IssuanceFailed { error, .. } => (
                ANNOUNCE_ISSUANCE,
                json!({ "outcome": "failed", "error": error }),
            ),
            _ => return Ok(()),
        };
        return insert_job(conn, event, platforms, kind, request_id, payload).await;
    }
    if event.aggregate_type != Approval::TYPE {
        return Ok(());
    }
    let parsed: ApprovalEvent = serde_json::from_value(event.payload.clone())?;
    let (kind, payload) = match parsed {
        ApprovalEvent::ApprovalOpened { approvers, .. } => (
            ASK_APPROVERS,
            json!({ "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>() }),
        ),
        ApprovalEvent::ApprovalDelegated { by, to, reason, .. } => (
            ASK_APPROVERS,
            json!({ "approvers": [to.email], "delegated_by": by.email, "reason": reason }),
        ),
        ApprovalEvent::ApprovalPolicySatisfied { approvers, at } => (
            ANNOUNCE_DECISION,
            json!({
                "outcome": "approved",
                "by": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>().join(", "),
                "at": at,
            }),
        ),
        ApprovalEvent::ApprovalRejected { by, reason, at } => (
            ANNOUNCE_DECISION,
            json!({ "outcome": "rejected", "by": by.email, "reason": reason, "at": at }),
        ),
        ApprovalEvent::ApprovalWithdrawn { reason, at } => (
            ANNOUNCE_DECISION,
            json!({ "outcome": "withdrawn", "reason": reason, "at": at }),
        ),
        ApprovalEvent::ApprovalReminderSent {
            approvers,
            reminder_count,
            escalated_to,
            at,
        } => (
            NUDGE_APPROVERS,
            json!({
                "approvers": approvers.iter().map(|a| a.email.to_string()).collect::<Vec<_>>(),
                "escalated_to": escalated_to.iter().map(|a| a.email.to_string()).collect::<Vec<_>>(),
                "reminder_count": reminder_count,
                "at": at,
            }),
        ),
        _ => return Ok(()),
    };
    let request_id = event.aggregate_id.parse()?;
    insert_job(conn, event, platforms, kind, request_id, payload).await
}

async fn insert_job(
    conn: &mut PgConnection,
    event: &StoredEvent,
    platforms: &[&'static str],
    kind: &str,
    request_id: Uuid,
    payload: serde_json::Value,
) -> anyhow::Result<()> {
    for platform in platforms {
        let id = Uuid::new_v5(
            &JOB_NAMESPACE,
            format!(
                "{platform}/{}/{}/{}",
                event.aggregate_type, event.aggregate_id, event.sequence
            )
            .as_bytes(),
        );
        sqlx::query(
            "INSERT INTO chat_jobs (id, platform, kind, request_id, payload) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(platform)
        .bind(kind)
        .bind(request_id)
        .bind(&payload)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}
