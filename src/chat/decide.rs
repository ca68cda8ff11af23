//! A decision taken with a button or its form, on any platform: approve, reject or delegate a
//! request, or approve or reject a revocation waiting for an approver (the subject is then a
//! serial). Platforms render the outcome line in place of the message that was clicked.

use chrono::Utc;

use super::command;
use super::reply::Decision;
use crate::commands::{CommandContext, CommandError, Commands};
use crate::domain::values::{Email, RequestNumber};

/// What came of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decided {
    /// It is final: this line replaces the message ("Approved by … at 14:02 UTC").
    Final(String),
    /// Recorded, but more approvals are needed: tell only the person.
    Partial(String),
}

/// How a platform shows the outcome line: the person who decided (a mention, a name), and
/// the text they typed (escaped where the platform's markup would act on it).
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a> {
    /// The person who decided.
    pub by: &'a str,
    /// A reason as it may appear in the platform's markup.
    pub typed: fn(&str) -> String,
}

impl<'a> Shown<'a> {
    /// `by`, with typed text shown as it is (for markup that cannot ping or mask links).
    pub fn verbatim(by: &'a str) -> Self {
        Self {
            by,
            typed: str::to_owned,
        }
    }
}

/// Takes `decision` on `subject` as the person in `ctx`, shown as `shown` says in the
/// outcome line.
pub async fn decide(
    commands: &Commands,
    ctx: &CommandContext,
    decision: Decision,
    subject: &str,
    reason: Option<&str>,
    to: Option<&str>,
    shown: Shown<'_>,
) -> Result<Decided, CommandError> {
    let at = Utc::now().format("%H:%M");
    let by = shown.by;
    let raw_reason = reason.unwrap_or_default().trim();
    let reason_text = (shown.typed)(raw_reason);
    if command::names_certificate(subject) {
        let approve = decision == Decision::Approve;
        commands
            .decide_revocation(ctx, subject, approve, reason)
            .await?;
        return Ok(Decided::Final(if approve {
            format!("Revocation approved by {by} at {at} UTC")
        } else {
            format!("Revocation rejected by {by} at {at} UTC: {reason_text}")
        }));
    }
    let number = RequestNumber::parse(subject)?;
    match decision {
        Decision::Approve => match commands.approve(ctx, &number, None).await? {
            crate::commands::Decision::Recorded {
                approvals,
                required,
            } => Ok(Decided::Partial(format!(
                "Your approval of {number} is recorded ({approvals} of {required})."
            ))),
            _ => Ok(Decided::Final(format!("Approved by {by} at {at} UTC"))),
        },
        Decision::Reject => {
            commands.reject(ctx, &number, raw_reason).await?;
            Ok(Decided::Final(format!(
                "Rejected by {by} at {at} UTC: {reason_text}"
            )))
        }
        Decision::Delegate => {
            let email = Email::parse(to.unwrap_or_default().trim()).map_err(|_| {
                CommandError::Refused("give the e-mail of the person to delegate to".to_owned())
            })?;
            commands.delegate(ctx, &number, &email, raw_reason).await?;
            Ok(Decided::Final(format!(
                "Delegated by {by} to {email} at {at} UTC: {reason_text}"
            )))
        }
    }
}
