//! `approvals`: one row per approver of a request, from asked to decided. Approvers who never
//! acted leave the table once the approval closes, so `v_pending_approvals` lists only what
//! still waits for someone.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::table::Record;
use super::{Rows, requests, row_id, users};
use crate::domain::actor::Actor;
use crate::domain::approval::ApprovalEvent;
use crate::feed::StoredEvent;
use crate::projections::audit::AuditEntry;

/// An `approvals` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct ApprovalRow {
    pub id: Uuid,
    pub request_id: Uuid,
    pub approver_id: Uuid,
    pub status: String,
    pub decision: Option<String>,
    pub comments: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub delegated_to_id: Option<Uuid>,
    pub delegation_reason: Option<String>,
    pub notified_at: Option<DateTime<Utc>>,
    pub reminder_count: Option<i32>,
    pub last_reminder_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The approval rows of one request (the unit events change them in).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RequestApprovals {
    pub request_id: Uuid,
    pub rows: Vec<ApprovalRow>,
}

impl Record for RequestApprovals {
    type Key = Uuid;

    fn key(&self) -> Uuid {
        self.request_id
    }

    async fn load(conn: &mut PgConnection, keys: &[Uuid]) -> anyhow::Result<Vec<Self>> {
        let rows: Vec<ApprovalRow> = sqlx::query_as(
            "SELECT id, request_id, approver_id, status, decision, comments, decided_at, \
                    delegated_to_id, delegation_reason, notified_at, reminder_count, \
                    last_reminder_at, created_at, updated_at \
               FROM approvals WHERE request_id = ANY($1) ORDER BY created_at, id",
        )
        .bind(keys)
        .fetch_all(conn)
        .await?;
        let mut groups: std::collections::HashMap<Uuid, Vec<ApprovalRow>> =
            std::collections::HashMap::new();
        for row in rows {
            groups.entry(row.request_id).or_default().push(row);
        }
        Ok(groups
            .into_iter()
            .map(|(request_id, rows)| RequestApprovals { request_id, rows })
            .collect())
    }

    async fn write(
        conn: &mut PgConnection,
        changed: &[(Option<&Self>, &Self)],
    ) -> anyhow::Result<()> {
        let mut upserts: Vec<((), &ApprovalRow)> = Vec::new();
        let mut gone: Vec<Uuid> = Vec::new();
        for (stored, now) in changed {
            let before = stored.map_or(&[][..], |s| s.rows.as_slice());
            upserts.extend(
                now.rows
                    .iter()
                    .filter(|row| !before.contains(row))
                    .map(|row| ((), row)),
            );
            gone.extend(
                before
                    .iter()
                    .filter(|old| now.rows.iter().all(|row| row.id != old.id))
                    .map(|old| old.id),
            );
        }
        if !gone.is_empty() {
            sqlx::query("DELETE FROM approvals WHERE id = ANY($1)")
                .bind(&gone)
                .execute(&mut *conn)
                .await?;
        }
        if upserts.is_empty() {
            return Ok(());
        }
        super::bind_columns!(
            sqlx::query(
                "INSERT INTO approvals (id, request_id, approver_id, status, decision, \
                     comments, decided_at, delegated_to_id, delegation_reason, notified_at, \
                     reminder_count, last_reminder_at, created_at, updated_at) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], \
                     $5::text[], $6::text[], $7::timestamptz[], $8::uuid[], $9::text[], \
                     $10::timestamptz[], $11::int[], $12::timestamptz[], \
                     $13::timestamptz[], $14::timestamptz[]) \
                 ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, \
                     decision = EXCLUDED.decision, comments = EXCLUDED.comments, \
                     decided_at = EXCLUDED.decided_at, \
                     delegated_to_id = EXCLUDED.delegated_to_id, \
                     delegation_reason = EXCLUDED.delegation_reason, \
                     notified_at = EXCLUDED.notified_at, \
                     reminder_count = EXCLUDED.reminder_count, \
                     last_reminder_at = EXCLUDED.last_reminder_at, \
                     updated_at = EXCLUDED.updated_at",
            ),
            upserts,
            id,
            request_id,
            approver_id,
            status,
            decision,
            comments,
            decided_at,
            delegated_to_id,
            delegation_reason,
            notified_at,
            reminder_count,
            last_reminder_at,
            created_at,
            updated_at
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// One approver's decision (or the lack of one) on a request.
struct Decision<'a> {
    status: &'a str,
    decision: Option<&'a str>,
    comments: Option<&'a str>,
    delegated_to: Option<Uuid>,
    delegation_reason: Option<&'a str>,
}

impl Decision<'_> {
    const PENDING: Decision<'static> = Decision {
        status: "pending",
        decision: None,
        comments: None,
        delegated_to: None,
        delegation_reason: None,
    };
}

/// Upserts one approver's row of a request.
fn set_row(
    rows: &mut Rows,
    request_id: Uuid,
    approver: &Actor,
    decision: &Decision<'_>,
    at: DateTime<Utc>,
) {
    users::ensure_actor(rows, approver, at);
    let Some(group) = rows
        .approvals
        .get_or_insert_with(&request_id, || RequestApprovals {
            request_id,
            rows: Vec::new(),
        })
    else {
        return;
    };
    let id = row_id(&[
        "approval",
        &request_id.to_string(),
        &approver.user_id.to_string(),
    ]);
    let pending = decision.status == "pending";
    let row = match group.rows.iter_mut().position(|row| row.id == id) {
        Some(i) => &mut group.rows[i],
        None => {
            group.rows.push(ApprovalRow {
                id,
                request_id,
                approver_id: approver.user_id,
                status: String::new(),
                decision: None,
                comments: None,
                decided_at: None,
                delegated_to_id: None,
                delegation_reason: None,
                notified_at: pending.then_some(at),
                reminder_count: Some(0),
                last_reminder_at: None,
                created_at: at,
                updated_at: at,
            });
            group.rows.last_mut().expect("just pushed")
        }
    };
    decision.status.clone_into(&mut row.status);
    row.decision = decision.decision.map(str::to_owned);
    row.comments = decision.comments.map(str::to_owned);
    row.decided_at = (!pending).then_some(at);
    row.delegated_to_id = decision.delegated_to;
    row.delegation_reason = decision.delegation_reason.map(str::to_owned);
    row.updated_at = at;
}

fn drop_pending(rows: &mut Rows, request_id: Uuid) {
    if let Some(group) = rows.approvals.get_mut(&request_id) {
        group.rows.retain(|row| row.status != "pending");
    }
}

pub(super) fn apply(
    rows: &mut Rows,
    stored: &StoredEvent,
    event: &ApprovalEvent,
) -> anyhow::Result<AuditEntry> {
    let request_id = stored.aggregate_uuid()?;
    let entry =
        |event_type: &str, action: &str| AuditEntry::new(event_type, "approval", "request", action);
    let emails = |people: &[Actor]| {
        people
            .iter()
            .map(|a| a.email.to_string())
            .collect::<Vec<_>>()
    };
    let entry = match event {
        ApprovalEvent::ApprovalOpened {
            required_approvals,
            approvers,
            at,
            ..
        } => {
            for approver in approvers {
                set_row(rows, request_id, approver, &Decision::PENDING, *at);
            }
            entry("approval_requested", "create").details(json!({
                "required_approvals": required_approvals,
                "approvers": emails(approvers),
            }))
        }
        ApprovalEvent::ApprovalGranted {
            by,
            comment,
            approvals,
            required_approvals,
            at,
        } => {
            let decision = Decision {
                status: "approved",
                decision: Some("approve"),
                comments: comment.as_deref(),
                ..Decision::PENDING
            };
            set_row(rows, request_id, by, &decision, *at);
            entry("approval_granted", "approve")
                .actor(by)
                .details(json!({ "approvals": approvals, "required_approvals": required_approvals, "comment": comment }))
        }
        ApprovalEvent::ApprovalRejected { by, reason, at } => {
            let decision = Decision {
                status: "rejected",
                decision: Some("reject"),
                comments: Some(reason),
                ..Decision::PENDING
            };
            set_row(rows, request_id, by, &decision, *at);
            drop_pending(rows, request_id);
            entry("approval_rejected", "reject")
                .actor(by)
                .details(json!({ "reason": reason }))
        }
        ApprovalEvent::ApprovalDelegated { by, to, reason, at } => {
            users::ensure_actor(rows, to, *at);
            let decision = Decision {
                status: "delegated",
                delegated_to: Some(to.user_id),
                delegation_reason: Some(reason),
                ..Decision::PENDING
            };
            set_row(rows, request_id, by, &decision, *at);
            set_row(rows, request_id, to, &Decision::PENDING, *at);
            entry("approval_delegated", "delegate")
                .actor(by)
                .details(json!({ "to": to.email, "reason": reason }))
        }
        ApprovalEvent::ApprovalReminderSent {
            approvers,
            reminder_count,
            escalated_to,
            at,
        } => {
            if let Some(group) = rows.approvals.get_mut(&request_id) {
                for row in group.rows.iter_mut().filter(|row| row.status == "pending") {
                    row.reminder_count = Some(i32::try_from(*reminder_count).unwrap_or(i32::MAX));
                    row.last_reminder_at = Some(*at);
                    row.updated_at = *at;
                }
            }
            entry("approval_reminder_sent", "remind").details(json!({
                "reminder_count": reminder_count,
                "approvers": emails(approvers),
                "escalated_to": emails(escalated_to),
            }))
        }
        ApprovalEvent::ApprovalPolicySatisfied { approvers, .. } => {
            drop_pending(rows, request_id);
            entry("approval_policy_satisfied", "approve").details(json!({
                "approvers": emails(approvers),
            }))
        }
        ApprovalEvent::ApprovalWithdrawn { reason, .. } => {
            drop_pending(rows, request_id);
            entry("approval_withdrawn", "cancel").details(json!({ "reason": reason }))
        }
    };
    let number = requests::number(rows, request_id);
    Ok(entry.resource(Some(request_id), number))
}
