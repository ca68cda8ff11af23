//! Deciding on requests, and carrying the outcome over to the request.

use chrono::{DateTime, Utc};
use cqrs_es::AggregateError;
use uuid::Uuid;

use super::{Attempt, CommandContext, CommandError, Commands, numbers};
use crate::domain::actor::Actor;
use crate::domain::approval::{Approval, ApprovalCommand, Outcome};
use crate::domain::request::{RequestCommand, RequestError, RequestStatus};
use crate::domain::text::Text;
use crate::domain::values::{Email, RequestNumber, ValueError};

/// What a decision led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Recorded; more approvals are needed.
    Recorded {
        /// Approvals so far.
        approvals: usize,
        /// Approvals needed.
        required: u8,
    },
    /// The request is now approved.
    Approved,
    /// The request is now rejected.
    Rejected,
    /// Handed to someone else.
    Delegated {
        /// To whom.
        to: Email,
    },
}

impl Commands {
    /// An approval's current state (empty when the request has none).
    pub async fn approval(&self, request_id: Uuid) -> Result<Approval, CommandError> {
        self.inner
            .approvals
            .load(request_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the approval", e))
    }

    /// Records that the approvers still pending were reminded (by the escalation job).
    pub async fn record_approval_reminder(
        &self,
        request_id: Uuid,
        escalated_to: &[Actor],
        at: DateTime<Utc>,
    ) -> Result<(), CommandError> {
        self.inner
            .approvals
            .execute(request_id, &super::certificates::system_metadata(), || {
                ApprovalCommand::RecordReminder {
                    escalated_to: escalated_to.to_vec(),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the approval", e))
    }

    /// Approves `number` as the acting user.
    pub async fn approve(
        &self,
        ctx: &CommandContext,
        number: &RequestNumber,
        comment: Option<&str>,
    ) -> Result<Decision, CommandError> {
        let comment = Text::optional("comment", comment, 2000)?;
        let approval = self
            .decide(ctx, number, "approve", |by, at| ApprovalCommand::Approve {
                by,
                comment: comment.clone(),
                at,
            })
            .await?;
        Ok(match approval.outcome() {
            Some(Outcome::Approved { .. }) => Decision::Approved,
            _ => Decision::Recorded {
                approvals: approval.approval_count(),
                required: approval.required_approvals(),
            },
        })
    }

    /// Rejects `number`; a reason is required.
    pub async fn reject(
        &self,
        ctx: &CommandContext,
        number: &RequestNumber,
        reason: &str,
    ) -> Result<Decision, CommandError> {
        let reason = required_reason(reason, "a rejection needs a reason")?;
        self.decide(ctx, number, "reject", |by, at| ApprovalCommand::Reject {
            by,
            reason: reason.clone(),
            at,
        })
        .await?;
        Ok(Decision::Rejected)
    }

    /// Hands the acting approver's decision to `to`; a reason is required.
    pub async fn delegate(
        &self,
        ctx: &CommandContext,
        number: &RequestNumber,
        to: &Email,
        reason: &str,
    ) -> Result<Decision, CommandError> {
        let reason = required_reason(reason, "a delegation needs a reason")?;
        let delegate = self
            .actor(&CommandContext {
                email: to.clone(),
                display_name: None,
                ..ctx.clone()
            })
            .await?;
        self.decide(ctx, number, "delegate", |by, at| {
            ApprovalCommand::Delegate {
                by,
                to: delegate.clone(),
                reason: reason.clone(),
                at,
            }
        })
        .await?;
        Ok(Decision::Delegated { to: to.clone() })
    }

    /// Runs a decision on the approval, then carries a final outcome over to the request.
    async fn decide(
        &self,
        ctx: &CommandContext,
        number: &RequestNumber,
        action: &str,
        command: impl Fn(Actor, DateTime<Utc>) -> ApprovalCommand,
    ) -> Result<Approval, CommandError> {
        let by = self.actor(ctx).await?;
        let request_id = numbers::request_id_of(self.pool(), number).await?;
        let metadata = ctx.metadata(Some(&by));
        let at = Utc::now();
        let decided = self
            .inner
            .approvals
            .execute(request_id, &metadata, || command(by.clone(), at))
            .await;
        // Even a refused click (already decided) syncs: that heals a request left pending
        // by a crash between the approval's commit and the request's.
        let approval = self.sync_request(ctx, request_id, &by).await?;
        let decided = decided.map_err(|e| CommandError::from_aggregate("the approval", e));
        let attempt = Attempt {
            action,
            resource_type: "request",
            resource_id: Some(request_id),
            resource_identifier: Some(number.as_ref()),
        };
        self.audit_refusal(ctx, Some(&by), attempt, decided).await?;
        Ok(approval)
    }

    /// Pushes a decided approval's outcome to its request if the request still waits.
    async fn sync_request(
        &self,
        ctx: &CommandContext,
        request_id: Uuid,
        by: &Actor,
    ) -> Result<Approval, CommandError> {
        let approval = self
            .inner
            .approvals
            .load(request_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the approval", e))?;
        let command = match approval.outcome() {
            Some(Outcome::Approved { approvers, at }) => RequestCommand::Approve {
                approvers: approvers.clone(),
                at: *at,
            },
            Some(Outcome::Rejected { by, reason, at }) => RequestCommand::Reject {
                by: by.clone(),
                reason: Text::parse("reason", reason, 2000)?,
                at: *at,
            },
            Some(Outcome::Withdrawn { .. }) | None => return Ok(approval),
        };
        let request = self
            .inner
            .requests
            .load(request_id)
            .await
            .map_err(|e| CommandError::from_aggregate("the request", e))?;
        if request.status() != Some(RequestStatus::PendingApproval) {
            return Ok(approval);
        }
        match self
            .inner
            .requests
            .execute(request_id, &ctx.metadata(Some(by)), || command.clone())
            .await
        {
            // WrongStatus: a concurrent click synced it first.
            Ok(()) | Err(AggregateError::UserError(RequestError::WrongStatus { .. })) => {
                Ok(approval)
            }
            Err(e) => Err(CommandError::from_aggregate("the request", e)),
        }
    }
}

fn required_reason(reason: &str, missing: &str) -> Result<Text, CommandError> {
    Text::parse("reason", reason, 2000).map_err(|e| {
        if reason.trim().is_empty() {
            CommandError::Invalid(vec![ValueError::new("reason", missing)])
        } else {
            e.into()
        }
    })
}
