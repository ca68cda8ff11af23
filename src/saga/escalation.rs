//! Approval escalation: a scheduled job that nudges approvals pending longer than
//! `approval.escalation.hours` — first a reminder to the approvers still pending, then
//! (after as long again) escalations that also tell the admins, at most
//! [`MAX_NUDGES`](crate::domain::approval::escalation::MAX_NUDGES) in all. Every nudge is an
//! `ApprovalReminderSent` event (`approvals.reminder_count`, `last_reminder_at`) and e-mails
//! (the chat outbox turns it into chat messages with decision buttons). A request that waits
//! longer than `approval.stale_request.days` (default 14; 0 = never) is cancelled instead,
//! and its requester told why.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::adapters::clock::Clock;
use crate::commands::{CommandError, Commands, people};
use crate::domain::actor::Actor;
use crate::domain::approval::Part;
use crate::domain::approval::escalation::{Nudge, due_nudge};
use crate::domain::notification::{Channel, Message, NotificationType};
use crate::jobs::try_lease;

/// The advisory lock key of the escalation pass ("cert-esc" in ASCII).
pub const LOCK_KEY: i64 = 0x6365_7274_2d65_7363;

/// Namespace of nudge notification ids: one per approval, nudge and recipient.
const NUDGE_NAMESPACE: Uuid = Uuid::from_u128(0x2b91_e6d0_5a47_4f8c_b3e2_8d10_c6a7_f459);

/// `approval.escalation.hours` when it is missing or unreadable (the documented default).
const DEFAULT_HOURS: i64 = 48;

/// `approval.stale_request.days` when it is missing or unreadable.
const DEFAULT_STALE_DAYS: i64 = 14;

/// Namespace of the notification telling a requester that their request expired.
const EXPIRED_NAMESPACE: Uuid = Uuid::from_u128(0x9e07_3b5c_d1a4_4e62_8f90_7c3a_12b6_e4d8);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EscalationPass {
    /// Requests nudged, and how.
    pub nudged: Vec<(String, Nudge)>,
    /// Requests cancelled because nobody decided in time.
    pub expired: Vec<String>,
}

/// Requests waiting for approval, with how long and how often they were nudged. A request
/// whose approval has nobody pending (no approver existed yet) still counts: it is
/// escalated to the admins.
const PENDING: &str = "SELECT r.id, r.request_number, \
        coalesce(min(a.created_at), r.submitted_at, r.created_at) AS opened_at, \
        coalesce(max(a.reminder_count), 0) AS reminder_count, \
        max(a.last_reminder_at) AS last_reminder_at \
   FROM certificate_requests r \
   LEFT JOIN approvals a ON a.request_id = r.id AND a.status = 'pending' \
  WHERE r.status = 'pending_approval' \
  GROUP BY r.id, r.request_number \
  ORDER BY opened_at";

/// The scheduled escalation job.
#[derive(Debug, Clone)]
pub struct EscalationWorker {
    commands: Commands,
    clock: Arc<dyn Clock>,
}

impl EscalationWorker {
    /// A job reading the time from `clock`.
    pub fn new(commands: Commands, clock: Arc<dyn Clock>) -> Self {
        Self { commands, clock }
    }

    /// One pass; `None` when another replica holds the pass.
    pub async fn step(&self) -> anyhow::Result<Option<EscalationPass>> {
        let pool = self.commands.pool();
        let Some(lease) = try_lease(pool, LOCK_KEY).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let after = chrono::Duration::hours(self.hours().await?);
        let stale_days = self.stale_days().await?;
        let mut pass = EscalationPass::default();
        for row in sqlx::query(PENDING).fetch_all(pool).await? {
            let request_id: Uuid = row.try_get("id")?;
            let number: String = row.try_get("request_number")?;
            let opened_at: DateTime<Utc> = row.try_get("opened_at")?;
            let count: i32 = row.try_get("reminder_count")?;
            let last: Option<DateTime<Utc>> = row.try_get("last_reminder_at")?;
            let count = u32::try_from(count).unwrap_or(0);
            let waited_days = (now - opened_at).num_days();
            if stale_days > 0 && waited_days >= stale_days {
                if self.expire(request_id, &number, waited_days, now).await? {
                    pass.expired.push(number);
                }
                continue;
            }
            // The read model may lag; the aggregate's count is checked again below.
            if due_nudge(now, opened_at, count, last, after).is_none() {
                continue;
            }
            if let Some(nudge) = self
                .nudge(request_id, &number, opened_at, after, now)
                .await?
            {
                pass.nudged.push((number, nudge));
            }
        }
        lease.commit().await?;
        Ok(Some(pass))
    }

    /// `approval.stale_request.days`; 0 turns expiry off.
    async fn stale_days(&self) -> anyhow::Result<i64> {
        let value = crate::db::setting(self.commands.pool(), "approval.stale_request.days").await?;
        Ok(value
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|days| *days >= 0)
            .unwrap_or(DEFAULT_STALE_DAYS))
    }

    /// Cancels a request nobody decided on and tells its requester; false when it was
    /// decided or cancelled meanwhile (the read model lagged).
    async fn expire(
        &self,
        request_id: Uuid,
        number: &str,
        waited_days: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let waited = u32::try_from(waited_days).unwrap_or(u32::MAX);
        let requester = match self.commands.expire_request(request_id, waited, now).await {
            Ok(requester) => requester,
            Err(CommandError::Refused(reason)) => {
                tracing::debug!(request = number, %reason, "not expired");
                return Ok(false);
            }
            Err(error) => return Err(error.into()),
        };
        let message = Message {
            recipient: requester,
            notification_type: NotificationType::RequestRejected,
            subject: format!("{number} was cancelled: no decision within {waited_days} days"),
            body: format!(
                "Your request {number} waited {waited_days} days without a decision, so it was \
                 cancelled (approval.stale_request.days). If you still need the certificate, \
                 request it again with /cert request; its approvers were reminded and the \
                 admins told while it waited.\n"
            ),
            channel: Channel::Email,
            resource_type: Some("request".to_owned()),
            resource_id: Some(request_id),
        };
        let id = Uuid::new_v5(&EXPIRED_NAMESPACE, request_id.as_bytes());
        if let Err(error) = self.commands.queue_notification_as(id, message).await {
            tracing::warn!(request = number, %error, "could not queue the expiry notice");
        }
        tracing::info!(request = number, waited_days, "stale request cancelled");
        Ok(true)
    }

    async fn hours(&self) -> anyhow::Result<i64> {
        let value = crate::db::setting(self.commands.pool(), "approval.escalation.hours").await?;
        Ok(value
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(DEFAULT_HOURS))
    }

    async fn nudge(
        &self,
        request_id: Uuid,
        number: &str,
        opened_at: DateTime<Utc>,
        after: chrono::Duration,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Nudge>> {
        let approval = self.commands.approval(request_id).await?;
        if approval.outcome().is_some() {
            return Ok(None);
        }
        let Some(nudge) = due_nudge(
            now,
            opened_at,
            approval.reminder_count(),
            approval.last_reminder_at(),
            after,
        ) else {
            return Ok(None);
        };
        let pending: Vec<Actor> = approval
            .parts()
            .into_iter()
            .filter(|(_, part)| *part == Part::Pending)
            .map(|(actor, _)| actor)
            .collect();
        // Nobody to remind (no approver existed when it was opened): straight to the admins.
        let nudge = if pending.is_empty() {
            Nudge::Escalate
        } else {
            nudge
        };
        let escalated_to: Vec<Actor> = if nudge == Nudge::Escalate {
            people::admins(self.commands.pool())
                .await?
                .into_iter()
                .filter(|admin| !pending.iter().any(|p| p.is(admin)))
                .collect()
        } else {
            Vec::new()
        };
        self.commands
            .record_approval_reminder(request_id, &escalated_to, now)
            .await?;
        let waited = (now - opened_at).num_hours();
        let round = approval.reminder_count() + 1;
        let mut recipients: Vec<(Actor, String, String)> = pending
            .iter()
            .map(|approver| {
                (
                    approver.clone(),
                    format!("Reminder: {number} is waiting for your approval"),
                    format!(
                        "{number} has waited {waited} hours for your decision. Approve or \
                         reject it with the buttons in chat, or `cert-assistant request \
                         approve|reject {number}`.\n"
                    ),
                )
            })
            .collect();
        let names = pending
            .iter()
            .map(|a| a.email.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        for admin in escalated_to {
            recipients.push((
                admin,
                format!("Escalation: {number} has waited {waited} hours for approval"),
                format!(
                    "{number} has waited {waited} hours; its approvers ({names}) were \
                     reminded and have not decided. Decide on it yourself, or delegate it \
                     (`cert-assistant request delegate {number} --to …`).\n"
                ),
            ));
        }
        for (recipient, subject, body) in recipients {
            let id = Uuid::new_v5(
                &NUDGE_NAMESPACE,
                format!("{request_id}/{round}/{}", recipient.user_id).as_bytes(),
            );
            let message = Message {
                recipient,
                notification_type: NotificationType::ApprovalReminder,
                subject,
                body,
                channel: Channel::Email,
                resource_type: Some("request".to_owned()),
                resource_id: Some(request_id),
            };
            if let Err(error) = self.commands.queue_notification_as(id, message).await {
                tracing::warn!(request = number, %error, "could not queue an approval reminder");
            }
        }
        tracing::info!(request = number, ?nudge, "approval nudged");
        Ok(Some(nudge))
    }

    /// Runs a pass every `every` until `stopped` turns true.
    pub async fn run(self, every: Duration, stopped: tokio::sync::watch::Receiver<bool>) {
        crate::jobs::every("escalation", every, stopped, || self.step()).await;
    }
}
