//! The approval aggregate: one per certificate request (same id), collecting decisions until
//! the policy is met (approved) or someone rejects (rejected, at the first rejection).
//!
//! Rules:
//! - deciders are approvers and admins, and anyone an approver delegated to;
//! - nobody decides on their own request, and nobody is delegated a request of their own;
//! - a person acts once (approve, reject or delegate); a delegate acts in the delegator's place;
//! - a rejection and a delegation need a reason;
//! - the policy may need several approvals (e.g. two for code signing or critical services);
//! - once decided, the outcome is final: later clicks are told who decided and when.

pub mod escalation;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::actor::Actor;
use super::text::Text;
use super::values::{CertificateType, RequestNumber};

/// The largest number of approvals a policy may require.
pub const MAX_REQUIRED_APPROVALS: u8 = 5;

/// What can be asked of an approval.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalCommand {
    /// Start collecting decisions for a submitted request.
    Open {
        /// The request (and this aggregate's id).
        request_id: Uuid,
        /// Its number, for messages.
        request_number: RequestNumber,
        /// Who asked; may not decide.
        requester: Actor,
        /// What it is for.
        certificate_type: CertificateType,
        /// Approvals the policy requires (1–5).
        required_approvals: u8,
        /// The approvers notified (the approvals table gets a pending row for each).
        approvers: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Approve.
    Approve {
        /// Who.
        by: Actor,
        /// Optional comment.
        comment: Option<Text>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Reject.
    Reject {
        /// Who.
        by: Actor,
        /// Why (required).
        reason: Text,
        /// When.
        at: DateTime<Utc>,
    },
    /// Hand one's decision to someone else.
    Delegate {
        /// Who delegates.
        by: Actor,
        /// To whom.
        to: Actor,
        /// Why (required).
        reason: Text,
        /// When.
        at: DateTime<Utc>,
    },
    /// Record a reminder sent to the approvers still pending.
    RecordReminder {
        /// Besides the pending approvers, the admins this nudge escalates to.
        escalated_to: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The request went away (cancelled); stop collecting.
    Withdraw {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

/// What happened to an approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApprovalEvent {
    /// Decisions are being collected.
    ApprovalOpened {
        /// The request.
        request_id: Uuid,
        /// Its number.
        request_number: RequestNumber,
        /// Who asked.
        requester: Actor,
        /// What it is for.
        certificate_type: CertificateType,
        /// Approvals needed.
        required_approvals: u8,
        /// Who was asked.
        approvers: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone approved.
    ApprovalGranted {
        /// Who.
        by: Actor,
        /// Their comment.
        comment: Option<String>,
        /// Approvals so far, this one included.
        approvals: u8,
        /// Approvals needed.
        required_approvals: u8,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone rejected: the outcome is rejected.
    ApprovalRejected {
        /// Who.
        by: Actor,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Someone handed their decision on.
    ApprovalDelegated {
        /// Who delegated.
        by: Actor,
        /// To whom.
        to: Actor,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The pending approvers were reminded.
    ApprovalReminderSent {
        /// Who was reminded.
        approvers: Vec<Actor>,
        /// Reminders so far, this one included.
        reminder_count: u32,
        /// The admins it was escalated to (empty for a plain reminder, and in events written
        /// before escalations were recorded).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        escalated_to: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Enough approvals: the outcome is approved.
    ApprovalPolicySatisfied {
        /// Everyone who approved.
        approvers: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The request was withdrawn before a decision.
    ApprovalWithdrawn {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ApprovalEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ApprovalOpened { .. } => "ApprovalOpened",
            Self::ApprovalGranted { .. } => "ApprovalGranted",
            Self::ApprovalRejected { .. } => "ApprovalRejected",
            Self::ApprovalDelegated { .. } => "ApprovalDelegated",
            Self::ApprovalReminderSent { .. } => "ApprovalReminderSent",
            Self::ApprovalPolicySatisfied { .. } => "ApprovalPolicySatisfied",
            Self::ApprovalWithdrawn { .. } => "ApprovalWithdrawn",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}

/// Why an approval command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// Already opened.
    #[error("approval of {0} is already open")]
    AlreadyOpen(String),
    /// Never opened.
    #[error("there is no approval for that request")]
    NotFound,
    /// The policy number is out of range.
    #[error("a policy needs between 1 and {MAX_REQUIRED_APPROVALS} approvals, not {0}")]
    BadPolicy(u8),
    /// The outcome is final.
    #[error("{number} was already {outcome} by {by} at {at}")]
    AlreadyDecided {
        /// The request number.
        number: String,
        /// `approved`, `rejected` or `withdrawn`.
        outcome: &'static str,
        /// Who decided (e-mail), or `its requester` for withdrawals.
        by: String,
        /// When, `HH:MM UTC` on a date.
        at: String,
    },
    /// Requesters never decide on their own requests.
    #[error("you cannot decide on your own request")]
    OwnRequest,
    /// Not an approver and not a delegate.
    #[error("only approvers and admins can decide on requests")]
    NotAnApprover,
    /// This person already acted.
    #[error("you already {0} this request")]
    AlreadyActed(&'static str),
    /// Delegating to the requester.
    #[error("a request cannot be delegated to its requester")]
    DelegateIsRequester,
    /// Delegating to oneself.
    #[error("you cannot delegate a request to yourself")]
    DelegateIsSelf,
    /// The delegate already acted.
    #[error("{0} already acted on this request")]
    DelegateAlreadyActed(String),
}

/// One person's part in an approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    /// Asked, not yet acted.
    Pending,
    /// Approved.
    Approved,
    /// Rejected.
    Rejected,
    /// Handed on.
    Delegated,
}

/// The final outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Policy met.
    Approved {
        /// Everyone who approved, the deciding approver last.
        approvers: Vec<Actor>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Rejected.
    Rejected {
        /// Who.
        by: Actor,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Withdrawn.
    Withdrawn {
        /// When.
        at: DateTime<Utc>,
    },
}

/// The state rebuilt from events.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    state: Option<ApprovalState>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ApprovalState {
    request_number: RequestNumber,
    requester: Actor,
    required: u8,
    /// Everyone involved, in the order they appeared, with their part.
    parts: Vec<(Actor, Part)>,
    /// Delegates who may decide although their role alone would not allow it.
    delegates: Vec<Uuid>,
    reminder_count: u32,
    #[serde(default)]
    last_reminder_at: Option<DateTime<Utc>>,
    outcome: Option<Outcome>,
}

impl ApprovalState {
    fn part_of(&self, who: &Actor) -> Option<Part> {
        self.parts
            .iter()
            .find(|(a, _)| a.is(who))
            .map(|(_, part)| *part)
    }

    fn set_part(&mut self, who: &Actor, part: Part) {
        match self.parts.iter_mut().find(|(a, _)| a.is(who)) {
            Some(entry) => entry.1 = part,
            None => self.parts.push((who.clone(), part)),
        }
    }

    fn already_decided(&self) -> Result<(), ApprovalError> {
        let Some(outcome) = &self.outcome else {
            return Ok(());
        };
        let (outcome, by, at) = match outcome {
            Outcome::Approved { approvers, at } => (
                "approved",
                approvers
                    .last()
                    .map_or_else(String::new, |a| a.email.to_string()),
                at,
            ),
            Outcome::Rejected { by, at, .. } => ("rejected", by.email.to_string(), at),
            Outcome::Withdrawn { at } => ("withdrawn", "its requester".to_owned(), at),
        };
        Err(ApprovalError::AlreadyDecided {
            number: self.request_number.to_string(),
            outcome,
            by,
            at: at.format("%H:%M UTC on %Y-%m-%d").to_string(),
        })
    }

    /// The checks every decision (approve, reject, delegate) shares.
    fn may_decide(&self, by: &Actor) -> Result<(), ApprovalError> {
        self.already_decided()?;
        if by.is(&self.requester) {
            return Err(ApprovalError::OwnRequest);
        }
        match self.part_of(by) {
            Some(Part::Approved) => return Err(ApprovalError::AlreadyActed("approved")),
            Some(Part::Rejected) => return Err(ApprovalError::AlreadyActed("rejected")),
            Some(Part::Delegated) => return Err(ApprovalError::AlreadyActed("delegated")),
            Some(Part::Pending) | None => {}
        }
        if !by.role.may_approve() && !self.delegates.contains(&by.user_id) {
            return Err(ApprovalError::NotAnApprover);
        }
        Ok(())
    }
}

impl Approval {
    /// The request number, once opened.
    pub fn request_number(&self) -> Option<&RequestNumber> {
        self.state.as_ref().map(|s| &s.request_number)
    }

    /// The outcome, once decided.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.state.as_ref().and_then(|s| s.outcome.as_ref())
    }

    /// Everyone involved and their part.
    pub fn parts(&self) -> Vec<(Actor, Part)> {
        self.state
            .as_ref()
            .map(|s| s.parts.clone())
            .unwrap_or_default()
    }

    /// Approvals the policy requires.
    pub fn required_approvals(&self) -> u8 {
        self.state.as_ref().map_or(0, |s| s.required)
    }

    /// Approvals so far.
    pub fn approval_count(&self) -> usize {
        self.state.as_ref().map_or(0, |s| {
            s.parts.iter().filter(|(_, p)| *p == Part::Approved).count()
        })
    }

    /// Reminders sent so far.
    pub fn reminder_count(&self) -> u32 {
        self.state.as_ref().map_or(0, |s| s.reminder_count)
    }

    /// When the last reminder was sent.
    pub fn last_reminder_at(&self) -> Option<DateTime<Utc>> {
        self.state.as_ref().and_then(|s| s.last_reminder_at)
    }

    fn existing(&self) -> Result<&ApprovalState, ApprovalError> {
        self.state.as_ref().ok_or(ApprovalError::NotFound)
    }
}

impl Aggregate for Approval {
    const TYPE: &'static str = "Approval";
    type Command = ApprovalCommand;
    type Event = ApprovalEvent;
    type Error = ApprovalError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = match command {
            ApprovalCommand::Open {
                request_id,
                request_number,
                requester,
                certificate_type,
                required_approvals,
                approvers,
                at,
            } => {
                if self.state.is_some() {
                    return Err(ApprovalError::AlreadyOpen(request_number.to_string()));
                }
                if !(1..=MAX_REQUIRED_APPROVALS).contains(&required_approvals) {
                    return Err(ApprovalError::BadPolicy(required_approvals));
                }
                // The requester is never asked, even when they are an approver themselves.
                let mut asked: Vec<Actor> = Vec::new();
                for approver in approvers {
                    if !approver.is(&requester) && !asked.iter().any(|a| a.is(&approver)) {
                        asked.push(approver);
                    }
                }
                vec![ApprovalEvent::ApprovalOpened {
                    request_id,
                    request_number,
                    requester,
                    certificate_type,
                    required_approvals,
                    approvers: asked,
                    at,
                }]
            }
            ApprovalCommand::Approve { by, comment, at } => {
                let state = self.existing()?;
                state.may_decide(&by)?;
                let approvals = u8::try_from(
                    state
                        .parts
                        .iter()
                        .filter(|(_, p)| *p == Part::Approved)
                        .count(),
                )
                .unwrap_or(u8::MAX)
                .saturating_add(1);
                let mut events = vec![ApprovalEvent::ApprovalGranted {
                    by: by.clone(),
                    comment: comment.map(|c| c.to_string()),
                    approvals,
                    required_approvals: state.required,
                    at,
                }];
                if approvals >= state.required {
                    let mut approvers: Vec<Actor> = state
                        .parts
                        .iter()
                        .filter(|(_, p)| *p == Part::Approved)
                        .map(|(a, _)| a.clone())
                        .collect();
                    approvers.push(by);
                    events.push(ApprovalEvent::ApprovalPolicySatisfied { approvers, at });
                }
                events
            }
            ApprovalCommand::Reject { by, reason, at } => {
                self.existing()?.may_decide(&by)?;
                vec![ApprovalEvent::ApprovalRejected {
                    by,
                    reason: reason.to_string(),
                    at,
                }]
            }
            ApprovalCommand::Delegate { by, to, reason, at } => {
                let state = self.existing()?;
                state.may_decide(&by)?;
                if to.is(&state.requester) {
                    return Err(ApprovalError::DelegateIsRequester);
                }
                if to.is(&by) {
                    return Err(ApprovalError::DelegateIsSelf);
                }
                if matches!(
                    state.part_of(&to),
                    Some(Part::Approved | Part::Rejected | Part::Delegated)
                ) {
                    return Err(ApprovalError::DelegateAlreadyActed(to.email.to_string()));
                }
                vec![ApprovalEvent::ApprovalDelegated {
                    by,
                    to,
                    reason: reason.to_string(),
                    at,
                }]
            }
            ApprovalCommand::RecordReminder { escalated_to, at } => {
                let state = self.existing()?;
                state.already_decided()?;
                let pending: Vec<Actor> = state
                    .parts
                    .iter()
                    .filter(|(_, p)| *p == Part::Pending)
                    .map(|(a, _)| a.clone())
                    .collect();
                vec![ApprovalEvent::ApprovalReminderSent {
                    approvers: pending,
                    reminder_count: state.reminder_count + 1,
                    escalated_to,
                    at,
                }]
            }
            ApprovalCommand::Withdraw { reason, at } => {
                self.existing()?.already_decided()?;
                vec![ApprovalEvent::ApprovalWithdrawn { reason, at }]
            }
        };
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        if let ApprovalEvent::ApprovalOpened {
            request_number,
            requester,
            required_approvals,
            approvers,
            ..
        } = &event
        {
            self.state = Some(ApprovalState {
                request_number: request_number.clone(),
                requester: requester.clone(),
                required: *required_approvals,
                parts: approvers
                    .iter()
                    .map(|a| (a.clone(), Part::Pending))
                    .collect(),
                delegates: Vec::new(),
                reminder_count: 0,
                last_reminder_at: None,
                outcome: None,
            });
            return;
        }
        let Some(state) = self.state.as_mut() else {
            return;
        };
        match event {
            ApprovalEvent::ApprovalOpened { .. } => {}
            ApprovalEvent::ApprovalGranted { by, .. } => state.set_part(&by, Part::Approved),
            ApprovalEvent::ApprovalRejected { by, reason, at } => {
                state.set_part(&by, Part::Rejected);
                state.outcome = Some(Outcome::Rejected { by, reason, at });
            }
            ApprovalEvent::ApprovalDelegated { by, to, .. } => {
                state.set_part(&by, Part::Delegated);
                state.set_part(&to, Part::Pending);
                state.delegates.push(to.user_id);
            }
            ApprovalEvent::ApprovalReminderSent {
                reminder_count, at, ..
            } => {
                state.reminder_count = reminder_count;
                state.last_reminder_at = Some(at);
            }
            ApprovalEvent::ApprovalPolicySatisfied { approvers, at } => {
                state.outcome = Some(Outcome::Approved { approvers, at });
            }
            ApprovalEvent::ApprovalWithdrawn { at, .. } => {
                state.outcome = Some(Outcome::Withdrawn { at });
            }
        }
    }
}
