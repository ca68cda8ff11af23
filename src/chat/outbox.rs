//! The chat outbox: a durable feed consumer that turns approval events into jobs for the
//! chat platforms (ask the approvers; announce the decision and update every message).

use cqrs_es::Aggregate;
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::approval::{Approval, ApprovalEvent};
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

/// The consumer.
#[derive(Debug, Clone, Copy, Default)]
pub struct ChatOutbox;

impl FeedConsumer for ChatOutbox {
    fn name(&self) -> &'static str {
        CHAT_OUTBOX
    }

    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a StoredEvent,
    ) -> impl Future<Output = anyhow::Result<()>> + Send + 'a {
        apply(conn, event)
    }
}

async fn apply(conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
    if event.aggregate_type == CertificateRequest::TYPE {
        let payload = match serde_json::from_value::<RequestEvent>(event.payload.clone())? {
            RequestEvent::RequestIssued { serial_number, .. } => {
                json!({ "outcome": "issued", "serial": serial_number })
            }
            RequestEvent::IssuanceFailed { error, .. } => {
                json!({ "outcome": "failed", "error": error })
            }
            _ => return Ok(()),
        };
        return insert_job(conn, event, ANNOUNCE_ISSUANCE, payload).await;
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
        _ => return Ok(()),
    };
    insert_job(conn, event, kind, payload).await
}

async fn insert_job(
    conn: &mut PgConnection,
    event: &StoredEvent,
    kind: &str,
    payload: serde_json::Value,
) -> anyhow::Result<()> {
    let request_id: Uuid = event.aggregate_id.parse()?;
    let id = Uuid::new_v5(
        &JOB_NAMESPACE,
        format!(
            "{}/{}/{}",
            event.aggregate_type, event.aggregate_id, event.sequence
        )
        .as_bytes(),
    );
    sqlx::query(
        "INSERT INTO chat_jobs (id, kind, request_id, payload) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(request_id)
    .bind(payload)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
