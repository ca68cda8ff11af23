//! Outbound chat: what happens to a request or certificate reaches the people involved on
//! every configured platform. [`outbox`] follows the event feed and queues one typed
//! [`ChatJob`] per event and platform on the job runtime; [`notifier`] delivers a
//! platform's jobs through its [`ChatPlatform`] (in event order per request); [`cards`] is
//! what its messages look like, for it and for a click's own reply; [`alerts`]
//! tells the admins about work the runtime gave up.

pub mod alerts;
pub mod cards;
pub mod notifier;
pub mod outbox;
pub mod platform;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::values::{Email, RevocationReason, SerialNumber};

pub use notifier::ChatNotifier;
pub use outbox::{CHAT_OUTBOX, ChatOutbox};
pub use platform::{ChatPlatform, Posted, Reach};

/// The job kind of a platform's chat deliveries (`chat:slack`, ...).
pub fn job_kind(platform: &'static str) -> &'static str {
    match platform {
        "slack" => "chat:slack",
        "discord" => "chat:discord",
        "teams" => "chat:teams",
        _ => "chat:other",
    }
}

/// One delivery to one platform: about `subject` (a request, or a certificate), `message`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatJob {
    /// The request (or, for revocations, operator tasks and expiry, the certificate) whose
    /// approval messages are asked, updated or answered.
    pub subject: Uuid,
    /// What to say.
    #[serde(flatten)]
    pub message: ChatMessage,
}

/// What a chat job says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatMessage {
    /// Ask these people to decide (a new approval, or a delegation to one person).
    AskApprovers {
        /// Who to ask.
        approvers: Vec<Email>,
        /// Who delegated it, for a delegation.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delegated_by: Option<Email>,
        /// Why it was delegated.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Tell everyone involved how the approval ended, and update every copy.
    AnnounceDecision {
        /// How it ended.
        outcome: Decision,
        /// Who decided (several approvers, comma-separated).
        #[serde(default)]
        by: String,
        /// Why it was rejected or withdrawn.
        #[serde(default)]
        reason: String,
        /// When.
        at: Option<DateTime<Utc>>,
    },
    /// Tell the requester the certificate is ready, or why it is not.
    AnnounceIssuance {
        /// Issued, or failed.
        outcome: Issuance,
        /// The new certificate's serial.
        #[serde(default)]
        serial: Option<SerialNumber>,
        /// The CA's reason, when it failed.
        #[serde(default)]
        error: Option<String>,
    },
    /// Show the DNS records the CA waits for (ACM's validation) to the requester, privately,
    /// and on every copy of the approval message.
    AskForValidation {
        /// The records.
        records: Vec<crate::domain::request::ValidationRecord>,
    },
    /// Tell the requester their request was cancelled for want of a decision.
    AnnounceExpiry {
        /// How long it waited.
        waited_days: u32,
    },
    /// Ask the approvers to decide on a revocation (subject: the certificate).
    AskRevocation {
        /// Who asked for it.
        by: Email,
        /// Why.
        reason: RevocationReason,
        /// Their words.
        #[serde(default)]
        text: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Tell everyone how a revocation approval ended, and update every copy.
    AnnounceRevocation {
        /// Approved, rejected, or confirmed revoked at the CA by an admin.
        outcome: RevocationDecision,
        /// Who decided.
        by: Email,
        /// Who asked for it, to be told.
        #[serde(default)]
        requester: Option<Email>,
        /// The rejecting approver's words.
        #[serde(default)]
        comment: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Ask the admins to revoke at the CA by hand and confirm it (subject: the certificate).
    OperatorTask {
        /// What to do.
        task: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Remind the owner that a certificate expires soon (with a Renew button).
    RemindExpiry {
        /// The certificate.
        certificate_id: Uuid,
        /// Which threshold this is.
        days_before: u32,
        /// When the reminder was recorded.
        at: DateTime<Utc>,
    },
    /// Remind the pending approvers of an overdue approval, and the admins it escalates to.
    NudgeApprovers {
        /// Still pending.
        approvers: Vec<Email>,
        /// Admins told as well.
        #[serde(default)]
        escalated_to: Vec<Email>,
        /// The how-manyth nudge.
        reminder_count: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// Tell the admins that background work was given up (subject: the failed job).
    AlertAdmins {
        /// What failed and why, in a sentence.
        text: String,
    },
}

/// How an approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The policy was met.
    Approved,
    /// An approver rejected it.
    Rejected,
    /// Cancelled, or expired.
    Withdrawn,
}

/// How issuance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Issuance {
    /// The certificate exists.
    Issued,
    /// It could not be issued.
    Failed,
}

/// How a revocation approval ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevocationDecision {
    /// Another approver agreed; it is revoked.
    Approved,
    /// An approver refused; it stays valid.
    Rejected,
    /// An admin confirmed revoking it at the CA by hand.
    Confirmed,
    /// It was revoked without a decision on the revocation that waited (an admin, or a
    /// reason that needs no approver): an ask still open is moot.
    Overtaken,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_queued_by_the_previous_version_reads_as_the_same_typed_job() {
        // The migration to the job runtime rewrote pending chat jobs as their old payload
        // plus `kind` and `subject`.
        let subject = Uuid::new_v4();
        let old = serde_json::json!({
            "kind": "ask_approvers",
            "subject": subject,
            "approvers": ["jane@example.com"],
            "delegated_by": "ops@example.com",
            "reason": "on leave",
        });
        let job: ChatJob = serde_json::from_value(old).expect("reads");
        assert_eq!(job.subject, subject);
        assert_eq!(
            job.message,
            ChatMessage::AskApprovers {
                approvers: vec![Email::parse("jane@example.com").expect("email")],
                delegated_by: Some(Email::parse("ops@example.com").expect("email")),
                reason: Some("on leave".to_owned()),
            }
        );
        let decided = serde_json::json!({
            "kind": "announce_decision", "subject": subject, "outcome": "approved",
            "by": "jane@example.com, root@example.com", "at": "2026-11-30T10:00:00Z",
        });
        let job: ChatJob = serde_json::from_value(decided).expect("reads");
        assert!(matches!(
            job.message,
            ChatMessage::AnnounceDecision {
                outcome: Decision::Approved,
                ..
            }
        ));
    }

    #[test]
    fn a_job_survives_its_own_round_trip() {
        let job = ChatJob {
            subject: Uuid::new_v4(),
            message: ChatMessage::NudgeApprovers {
                approvers: vec![],
                escalated_to: vec![Email::parse("root@example.com").expect("email")],
                reminder_count: 2,
                at: Utc::now(),
            },
        };
        let json = serde_json::to_value(&job).expect("json");
        assert_eq!(json["kind"], "nudge_approvers");
        assert_eq!(serde_json::from_value::<ChatJob>(json).expect("back"), job);
    }
}
