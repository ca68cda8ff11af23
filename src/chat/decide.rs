//! A decision taken with a button or its form, on any platform: approve, reject or delegate a
//! request, or approve or reject a revocation waiting for an approver (the subject is then a
//! serial). The message that was clicked becomes what the notifier makes of every other copy
//! ([`cards`]): the same fields, the same line, read back from what was recorded.

use chrono::Utc;

use super::command;
use super::outbound::RevocationDecision;
use super::outbound::cards::{self, RequestCard};
use super::reply::{Decision, Reply};
use crate::commands::{CommandContext, CommandError, Commands, Revocation};
use crate::domain::values::{Email, RequestNumber};

/// What came of a decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Decided {
    /// It is final: this replaces the message that was clicked.
    Final(Reply),
    /// Recorded, but more approvals are needed: tell only the person.
    Partial(String),
}

/// Takes `decision` on `subject` as the person in `ctx`.
pub async fn decide(
    commands: &Commands,
    ctx: &CommandContext,
    decision: Decision,
    subject: &str,
    reason: Option<&str>,
    to: Option<&str>,
) -> Result<Decided, CommandError> {
    let raw_reason = reason.unwrap_or_default().trim();
    if command::names_certificate(subject) {
        return decide_revocation(commands, ctx, decision, subject, reason).await;
    }
    let number = RequestNumber::parse(subject)?;
    match decision {
        Decision::Approve => {
            if let crate::commands::Decision::Recorded {
                approvals,
                required,
            } = commands.approve(ctx, &number, None).await?
            {
                return Ok(Decided::Partial(format!(
                    "Your approval of {number} is recorded ({approvals} of {required})."
                )));
            }
        }
        Decision::Reject => {
            commands.reject(ctx, &number, raw_reason).await?;
        }
        Decision::Delegate => {
            let email = Email::parse(to.unwrap_or_default().trim()).map_err(|_| {
                CommandError::Refused("give the e-mail of the person to delegate to".to_owned())
            })?;
            commands.delegate(ctx, &number, &email, raw_reason).await?;
            let at = Utc::now().format("%H:%M");
            let line = format!(
                "Delegated by {} to {email} at {at} UTC: {raw_reason}",
                ctx.email
            );
            let view = commands.request(&number).await?;
            return Ok(Decided::Final(
                card(commands, view.request_id).await?.decided(line),
            ));
        }
    }
    // Read back as recorded: the approvers, the time and the reason the copies will show.
    let view = commands.request(&number).await?;
    let outcome = view.approval_outcome.as_ref().ok_or_else(|| {
        CommandError::Internal(anyhow::anyhow!("{number} is decided but has no outcome"))
    })?;
    let line = cards::outcome_line(outcome);
    Ok(Decided::Final(
        card(commands, view.request_id).await?.decided(line),
    ))
}

async fn card(commands: &Commands, request_id: uuid::Uuid) -> Result<RequestCard, CommandError> {
    RequestCard::load(commands.pool(), request_id)
        .await
        .map_err(CommandError::Internal)
}

async fn decide_revocation(
    commands: &Commands,
    ctx: &CommandContext,
    decision: Decision,
    subject: &str,
    comment: Option<&str>,
) -> Result<Decided, CommandError> {
    let approve = decision == Decision::Approve;
    let decided = commands
        .decide_revocation(ctx, subject, approve, comment)
        .await?;
    let (certificate_id, outcome, at) = match decided {
        Revocation::Revoked {
            certificate_id, at, ..
        } => (certificate_id, RevocationDecision::Approved, at),
        Revocation::Rejected {
            certificate_id, at, ..
        } => (certificate_id, RevocationDecision::Rejected, at),
        Revocation::AwaitingApproval { .. } => {
            return Err(CommandError::Internal(anyhow::anyhow!(
                "a decision on a revocation left it waiting"
            )));
        }
    };
    let serial = crate::eventstore::issued_certificate(commands.pool(), certificate_id)
        .await?
        .map_or_else(
            || subject.to_owned(),
            |issued| issued.serial_number.to_string(),
        );
    let comment = comment.map(str::trim).filter(|c| !c.is_empty());
    Ok(Decided::Final(cards::revocation_decided(
        &serial, outcome, &ctx.email, comment, at,
    )))
}
