//! Delivers chat jobs to one platform: approval requests as DMs with buttons (and to an
//! approvals channel, if configured), then, once decided, every copy updated in place and
//! the requester told; reminders, escalations, expiry notices, operator tasks and alerts
//! alike. The messages are platform-neutral [`Reply`]s; a [`ChatPlatform`] finds people and
//! posts them its own way. Claiming (in event order per subject), retries and giving up are
//! the job runtime's ([`policy::CHAT`](crate::jobs::policy::CHAT)); several replicas may
//! run this.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::cards::{self, RequestCard};
use super::{
    ChatJob, ChatMessage, ChatPlatform, Decision, Issuance, Posted, Reach, RevocationDecision,
    job_kind,
};
use crate::chat::reply::{Action, Block, Reply};
use crate::commands::people;
use crate::domain::values::{Email, SerialNumber};
use crate::jobs::{self, Claimed, JobError, JobWorker, Outcome, Policy};

/// Why a person was not messaged: said when the admins can fix it.
#[derive(Debug)]
struct Unreached(Option<String>);

/// A platform's name as people write it.
fn platform_name(name: &str) -> &str {
    match name {
        "slack" => "Slack",
        "discord" => "Discord",
        "teams" => "Teams",
        other => other,
    }
}

/// The chat outbox's delivery to one platform.
#[derive(Debug, Clone)]
pub struct ChatNotifier {
    pool: PgPool,
    platform: Arc<dyn ChatPlatform>,
    approvals_channel: Option<String>,
}

impl ChatNotifier {
    /// A notifier delivering through `platform`, also to `approvals_channel` when given.
    pub fn new(
        pool: PgPool,
        platform: Arc<dyn ChatPlatform>,
        approvals_channel: Option<String>,
    ) -> Self {
        Self {
            pool,
            platform,
            approvals_channel,
        }
    }

    /// The platform it delivers to.
    pub fn platform(&self) -> &'static str {
        self.platform.name()
    }

    /// Claims due jobs and runs them; returns how many were claimed.
    pub async fn step(&self) -> anyhow::Result<usize> {
        jobs::step(&self.pool, self).await
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        jobs::run(&self.pool.clone(), &self, stopped).await;
    }

    async fn deliver(&self, job: &ChatJob) -> anyhow::Result<()> {
        let subject = job.subject;
        match &job.message {
            ChatMessage::AskApprovers {
                approvers,
                delegated_by,
                reason,
            } => {
                self.ask(subject, approvers, delegated_by.as_ref(), reason.as_deref())
                    .await
            }
            ChatMessage::AnnounceDecision {
                outcome,
                by,
                reason,
                at,
            } => self.announce(subject, *outcome, by, reason, *at).await,
            ChatMessage::AnnounceIssuance {
                outcome,
                serial,
                error,
            } => {
                self.announce_issuance(subject, *outcome, serial.as_ref(), error.as_deref())
                    .await
            }
            ChatMessage::AskForValidation { records } => {
                self.ask_for_validation(subject, records).await
            }
            ChatMessage::AnnounceExpiry { waited_days } => {
                self.announce_expiry(subject, *waited_days).await
            }
            ChatMessage::NudgeApprovers {
                approvers,
                escalated_to,
                at,
                ..
            } => self.nudge(subject, approvers, escalated_to, *at).await,
            ChatMessage::RemindExpiry {
                certificate_id, at, ..
            } => self.remind_expiry(*certificate_id, *at).await,
            ChatMessage::AskRevocation {
                by, reason, text, ..
            } => {
                self.ask_revocation(subject, by, reason.as_str(), text.as_deref())
                    .await
            }
            ChatMessage::AnnounceRevocation {
                outcome,
                by,
                requester,
                comment,
                at,
            } => {
                self.announce_revocation(
                    subject,
                    *outcome,
                    by,
                    requester.as_ref(),
                    comment.as_deref(),
                    *at,
                )
                .await
            }
            ChatMessage::OperatorTask { task, .. } => {
                self.operator_task(subject, task.as_deref()).await
            }
            ChatMessage::AlertAdmins { text } => self.alert_admins(text).await,
        }?;
        if self.platform.has_pages() {
            // Best effort: a page not refreshed now is on the next change, or when opened.
            let refreshed = match self.whose_pages(job).await {
                Ok((people, approvers)) => self.platform.refresh_pages(&people, approvers).await,
                Err(error) => Err(error),
            };
            if let Err(error) = refreshed {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not refresh the people's pages"
                );
            }
        }
        Ok(())
    }

    /// Whose own pages a delivery changes: the requester's or the certificate owner's, and
    /// (when the approval queue changed) every approver's.
    async fn whose_pages(&self, job: &ChatJob) -> anyhow::Result<(Vec<Email>, bool)> {
        let requester =
            || async { anyhow::Ok(vec![self.request(job.subject).await?.requester.email]) };
        let owner = |certificate_id| async move {
            anyhow::Ok(vec![self.issued(certificate_id).await?.owner.email])
        };
        Ok(match &job.message {
            ChatMessage::AskApprovers { .. }
            | ChatMessage::AnnounceDecision { .. }
            | ChatMessage::AnnounceExpiry { .. } => (requester().await?, true),
            ChatMessage::AnnounceIssuance { .. } | ChatMessage::AskForValidation { .. } => {
                (requester().await?, false)
            }
            ChatMessage::AskRevocation { .. }
            | ChatMessage::AnnounceRevocation { .. }
            | ChatMessage::OperatorTask { .. } => (owner(job.subject).await?, false),
            ChatMessage::RemindExpiry { certificate_id, .. } => {
                (owner(*certificate_id).await?, false)
            }
            ChatMessage::NudgeApprovers { .. } | ChatMessage::AlertAdmins { .. } => {
                (Vec::new(), false)
            }
        })
    }

    /// The request as its creation event recorded it.
    async fn request(&self, request_id: Uuid) -> anyhow::Result<RequestCard> {
        RequestCard::load(&self.pool, request_id).await
    }

    async fn issued(
        &self,
        certificate_id: Uuid,
    ) -> anyhow::Result<crate::domain::certificate::IssuedCertificate> {
        crate::eventstore::issued_certificate(&self.pool, certificate_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("certificate {certificate_id} was never issued"))
    }

    async fn posted_to(&self, request_id: Uuid, recipient: &str) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chat_messages \
                WHERE platform = $3 AND request_id = $1 AND recipient_email = $2)",
        )
        .bind(request_id)
        .bind(recipient)
        .bind(self.platform.name())
        .fetch_one(&self.pool)
        .await?)
    }

    async fn post(
        &self,
        request_id: Uuid,
        recipient: &str,
        channel: &str,
        message: &Reply,
    ) -> anyhow::Result<()> {
        let posted = self.platform.post(channel, message).await?;
        self.remember(request_id, recipient, &posted).await
    }

    /// Remembers a posted approval message.
    async fn remember(
        &self,
        request_id: Uuid,
        recipient: &str,
        posted: &Posted,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO chat_messages (platform, channel, ts, request_id, recipient_email) \
             VALUES ($5, $1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&posted.channel)
        .bind(&posted.message_id)
        .bind(request_id)
        .bind(recipient)
        .bind(self.platform.name())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every copy of the approval messages about `subject` (a request, or a certificate whose
    /// revocation waits), replaced by `reply`.
    async fn update_copies(&self, subject: Uuid, reply: &Reply) -> anyhow::Result<()> {
        let copies = sqlx::query(
            "SELECT channel, ts FROM chat_messages WHERE platform = $2 AND request_id = $1",
        )
        .bind(subject)
        .bind(self.platform.name())
        .fetch_all(&self.pool)
        .await?;
        for copy in copies {
            let posted = Posted {
                channel: copy.try_get("channel")?,
                message_id: copy.try_get("ts")?,
            };
            self.platform.update(&posted, reply).await?;
        }
        Ok(())
    }

    /// Sends `message` to `email` privately: where it went, or why the person cannot be
    /// reached on this platform.
    async fn direct(
        &self,
        email: &str,
        message: &Reply,
    ) -> anyhow::Result<Result<Posted, Unreached>> {
        match self.platform.reach(email).await? {
            Reach::At(user) => Ok(Ok(self.platform.send_direct(&user, message).await?)),
            Reach::Unreachable { why } => Ok(Err(Unreached(why))),
        }
    }

    /// DMs an approval message and remembers the copy, so the decision updates it.
    async fn direct_approval(
        &self,
        subject: Uuid,
        email: &str,
        message: &Reply,
    ) -> anyhow::Result<Result<(), Unreached>> {
        let posted = match self.direct(email, message).await? {
            Ok(posted) => posted,
            Err(unreached) => return Ok(Err(unreached)),
        };
        self.remember(subject, email, &posted).await?;
        Ok(Ok(()))
    }

    /// Asks each of `people` with their message (once only, unless `again`: a reminder),
    /// and tells the admins about anyone who cannot be reached for a reason they can fix;
    /// `what` names the ask.
    async fn ask_each(
        &self,
        subject: Uuid,
        people: &[(&Email, &Reply)],
        again: bool,
        what: &str,
    ) -> anyhow::Result<()> {
        let mut unreached = Vec::new();
        for &(email, message) in people {
            let email = email.to_string();
            if !again && self.posted_to(subject, &email).await? {
                continue;
            }
            if let Err(Unreached(why)) = self.direct_approval(subject, &email, message).await? {
                tracing::info!(%subject, "a person to ask cannot be reached on this platform");
                if let Some(why) = why {
                    unreached.push((email, why));
                }
            }
        }
        self.tell_admins_unreached(what, &unreached).await
    }

    /// Tells the admins who can be reached here that these people could not be asked.
    async fn tell_admins_unreached(
        &self,
        what: &str,
        unreached: &[(String, String)],
    ) -> anyhow::Result<()> {
        if unreached.is_empty() {
            return Ok(());
        }
        let platform = platform_name(self.platform.name());
        let mut reply = Reply::text(format!(
            "{what}, but some of the people to ask cannot be reached on {platform}, so they \
             were not asked here:"
        ));
        reply = reply.with(Block::Fields(unreached.to_vec()));
        for admin in people::admins(&self.pool).await? {
            let email = admin.email.to_string();
            if unreached.iter().any(|(them, _)| *them == email) {
                continue;
            }
            if self.direct(&email, &reply).await?.is_err() {
                tracing::info!("an admin cannot be reached on this platform");
            }
        }
        Ok(())
    }

    async fn ask(
        &self,
        request_id: Uuid,
        approvers: &[Email],
        delegated_by: Option<&Email>,
        reason: Option<&str>,
    ) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = &request.number;
        let intro = match delegated_by {
            Some(by) => format!(
                "*{number}* was delegated to you by {by}: {}",
                reason.unwrap_or_default()
            ),
            None => format!("*{number}* needs your approval."),
        };
        let message = request.approval_message(&intro);
        let asked: Vec<_> = approvers.iter().map(|email| (email, &message)).collect();
        self.ask_each(
            request_id,
            &asked,
            false,
            &format!("{number} waits for approval"),
        )
        .await?;
        if let Some(channel) = &self.approvals_channel
            && !self.posted_to(request_id, "#approvals").await?
        {
            self.post(request_id, "#approvals", channel, &message)
                .await?;
        }
        Ok(())
    }

    /// Reminds the pending approvers of an overdue approval (and tells the admins it
    /// escalates to) with fresh decision buttons; a decision updates these copies too.
    async fn nudge(
        &self,
        request_id: Uuid,
        approvers: &[Email],
        escalated_to: &[Email],
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = &request.number;
        let waited = self.waiting_hours(request_id, at).await?;
        let reminder = request.approval_message(&format!(
            "Reminder: *{number}* has waited {waited} hours for your decision."
        ));
        let names = if approvers.is_empty() {
            "nobody could approve it yet".to_owned()
        } else {
            let names: Vec<String> = approvers.iter().map(ToString::to_string).collect();
            format!("{} did not decide yet", names.join(", "))
        };
        let escalation = request.approval_message(&format!(
            "Escalation: *{number}* has waited {waited} hours for approval; {names}. \
                 Decide on it yourself, or delegate it."
        ));
        let to_remind = approvers.iter().map(|e| (e, &reminder));
        let to_escalate = escalated_to.iter().map(|e| (e, &escalation));
        let what = format!("{number} has waited {waited} hours for approval");
        let asked: Vec<_> = to_remind.chain(to_escalate).collect();
        self.ask_each(request_id, &asked, true, &what).await
    }

    /// Hours the request had waited for its approvers at `at`.
    async fn waiting_hours(&self, request_id: Uuid, at: DateTime<Utc>) -> anyhow::Result<i64> {
        let opened: Option<DateTime<Utc>> = sqlx::query_scalar(
            "SELECT coalesce(submitted_at, created_at) FROM certificate_requests WHERE id = $1",
        )
        .bind(request_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(opened.map_or(0, |opened| (at - opened).num_hours()))
    }

    /// Reminds a certificate's owner of its expiry, with a Renew button.
    async fn remind_expiry(&self, certificate_id: Uuid, at: DateTime<Utc>) -> anyhow::Result<()> {
        let issued = self.issued(certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let days_left = (issued.valid_to - at).num_days().max(0);
        let reply = Reply::text(format!(
            "Your certificate *{}* (serial `{serial}`) expires on {} — in {days_left} days. \
             Renew it now: you get a new request with the same details and a fresh key.",
            issued.common_name,
            issued.valid_to.format("%Y-%m-%d"),
        ))
        .with(Block::Actions(vec![Action::Renew {
            certificate: serial.clone(),
        }]));
        let owner = issued.owner.email.to_string();
        if self.direct(&owner, &reply).await?.is_err() {
            tracing::info!(%serial, "the owner cannot be reached on this platform; reminded by e-mail only");
        }
        Ok(())
    }

    async fn announce(
        &self,
        request_id: Uuid,
        outcome: Decision,
        by: &str,
        reason: &str,
        at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = &request.number;
        // Every copy keeps what the approvers saw, without its buttons, and says who decided.
        let decided = request.decided(cards::decision_line(outcome, by, reason, at));
        self.update_copies(request_id, &decided).await?;
        let text = match outcome {
            // The requester cancelled it, or was told of its expiry separately.
            Decision::Withdrawn => return Ok(()),
            Decision::Approved => format!(
                "Your request *{number}* is approved ({by}). The certificate is being issued."
            ),
            Decision::Rejected => format!("Your request *{number}* was rejected by {by}: {reason}"),
        };
        let requester = request.requester.email.to_string();
        self.direct(&requester, &Reply::text(text)).await.map(drop)
    }

    /// Asks every approver but the one who asked to decide on a revocation, with Approve /
    /// Reject buttons; the copies are remembered under the certificate's id.
    async fn ask_revocation(
        &self,
        certificate_id: Uuid,
        by: &Email,
        reason: &str,
        text: Option<&str>,
    ) -> anyhow::Result<()> {
        let issued = self.issued(certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let why = text.map_or_else(String::new, |text| format!(": {text}"));
        let message = Reply::text(format!(
            "{by} asks to revoke certificate `{serial}` for *{reason}*{why}. It stays valid \
             until an approver agrees."
        ))
        .with(Block::Fields(vec![
            ("Common name".to_owned(), issued.common_name.to_string()),
            ("Owner".to_owned(), issued.owner.email.to_string()),
            (
                "Expires".to_owned(),
                issued.valid_to.format("%Y-%m-%d").to_string(),
            ),
            ("Request".to_owned(), issued.request_number.to_string()),
        ]))
        .with(Block::RevocationDecisions {
            serial: serial.clone(),
        });
        let approvers = people::approvers(&self.pool).await?;
        let asked: Vec<_> = approvers
            .iter()
            .filter(|approver| approver.email != *by)
            .map(|approver| (&approver.email, &message))
            .collect();
        let what = format!("The revocation of certificate `{serial}` waits for an approver");
        self.ask_each(certificate_id, &asked, false, &what).await
    }

    /// Updates every copy of a revocation approval and tells whoever asked for it.
    async fn announce_revocation(
        &self,
        certificate_id: Uuid,
        outcome: RevocationDecision,
        by: &Email,
        requester: Option<&Email>,
        comment: Option<&str>,
        at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let issued = self.issued(certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let told = match outcome {
            RevocationDecision::Confirmed | RevocationDecision::Overtaken => String::new(),
            RevocationDecision::Approved => format!(
                "{by} approved your revocation of certificate `{serial}`; it is revoked and the \
                 CA is told."
            ),
            RevocationDecision::Rejected => format!(
                "{by} rejected your revocation of certificate `{serial}`: {}. It stays valid.",
                comment.unwrap_or_default()
            ),
        };
        let decided = cards::revocation_decided(&serial, outcome, by, comment, at);
        self.update_copies(certificate_id, &decided).await?;
        if let Some(requester) = requester
            && self
                .direct(requester.as_ref(), &Reply::text(told))
                .await?
                .is_err()
        {
            tracing::info!(%serial, "the requester cannot be reached on this platform");
        }
        Ok(())
    }

    /// Asks the admins to revoke a certificate at the CA by hand (the CA could not be told)
    /// and to confirm it with the button; a confirmation updates every copy.
    async fn operator_task(&self, certificate_id: Uuid, task: Option<&str>) -> anyhow::Result<()> {
        let issued = self.issued(certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let reply = Reply::text(format!(
            "Certificate `{serial}` ({}) is revoked here, but the CA could not be told: {}",
            issued.common_name,
            task.unwrap_or("revoke it at the CA by hand")
        ))
        .with(Block::Actions(vec![Action::ConfirmRevocation {
            certificate: serial.clone(),
        }]));
        for admin in people::admins(&self.pool).await? {
            let email = admin.email.to_string();
            if self.posted_to(certificate_id, &email).await? {
                continue;
            }
            if self
                .direct_approval(certificate_id, &email, &reply)
                .await?
                .is_err()
            {
                tracing::info!(%serial, "an admin cannot be reached on this platform");
            }
        }
        Ok(())
    }

    /// Tells every admin who can be reached here that background work was given up.
    async fn alert_admins(&self, text: &str) -> anyhow::Result<()> {
        let reply = Reply::text(text.to_owned());
        for admin in people::admins(&self.pool).await? {
            if self.direct(admin.email.as_ref(), &reply).await?.is_err() {
                tracing::info!("an admin cannot be reached on this platform");
            }
        }
        Ok(())
    }

    /// Tells the requester that nobody decided in time and the request was cancelled.
    /// The DNS records the CA waits for: to the requester, to create, and on the approval
    /// messages, so the approvers see where the approved request stands.
    async fn ask_for_validation(
        &self,
        request_id: Uuid,
        records: &[crate::domain::request::ValidationRecord],
    ) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = &request.number;
        let fields: Vec<(String, String)> = records
            .iter()
            .map(|record| {
                let created = record.created_in.as_ref().map_or_else(String::new, |zone| {
                    format!(" (created in the Route 53 zone {zone})")
                });
                (
                    format!("{}{created}", record.domain),
                    format!("`{} {} {}`", record.name, record.record_type, record.value),
                )
            })
            .collect();
        let approved_by: Vec<String> = sqlx::query_scalar(
            "SELECT u.email FROM approvals a JOIN users u ON u.id = a.approver_id \
              WHERE a.request_id = $1 AND a.status = 'approved' ORDER BY a.decided_at",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        let approved = if approved_by.is_empty() {
            "Approved".to_owned()
        } else {
            format!("Approved by {}", approved_by.join(", "))
        };
        let copies = request
            .decided(format!(
                "{approved}. AWS Certificate Manager waits for these DNS validation records \
                 before it issues the certificate:"
            ))
            .with(Block::Fields(fields.clone()));
        self.update_copies(request_id, &copies).await?;
        let reply = Reply::text(format!(
            "AWS Certificate Manager waits for these DNS records before it issues *{number}*. \
             Create the ones not created for you, in the zone of each name, and keep them: \
             ACM renews the certificate with them."
        ))
        .with(Block::Fields(fields));
        let requester = request.requester.email.to_string();
        self.direct(&requester, &reply).await.map(drop)
    }

    async fn announce_expiry(&self, request_id: Uuid, waited_days: u32) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let reply = Reply::text(format!(
            "Your request *{}* waited {waited_days} days without a decision, so it was \
             cancelled. If you still need the certificate, request it again with \
             `/cert request`.",
            request.number
        ));
        let requester = request.requester.email.to_string();
        self.direct(&requester, &reply).await.map(drop)
    }

    async fn announce_issuance(
        &self,
        request_id: Uuid,
        outcome: Issuance,
        serial: Option<&SerialNumber>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = &request.number;
        let reply = match outcome {
            Issuance::Issued => {
                let serial = serial.map(ToString::to_string).unwrap_or_default();
                let reply = Reply::text(format!(
                    "Your certificate for *{number}* is issued (serial `{serial}`). Get it \
                     with `/cert download {serial}`."
                ));
                match &request.renews {
                    Some(old) => reply
                        .with(Block::Text(format!(
                            "It renews `{old}`. Once the new one is in place, revoke the old \
                             one as superseded."
                        )))
                        .with(Block::Actions(vec![Action::RevokeSuperseded {
                            certificate: old.to_string(),
                        }])),
                    None => reply,
                }
            }
            Issuance::Failed => Reply::text(format!(
                "*{number}* could not be issued. The CA said: {}",
                error.unwrap_or_default()
            )),
        };
        let requester = request.requester.email.to_string();
        self.direct(&requester, &reply).await.map(drop)
    }
}

impl JobWorker for ChatNotifier {
    type Payload = ChatJob;

    fn kind(&self) -> &'static str {
        job_kind(self.platform.name())
    }

    fn policy(&self) -> &'static Policy {
        &jobs::policy::CHAT
    }

    async fn perform(&self, job: &Claimed<ChatJob>) -> Result<Outcome, JobError> {
        self.deliver(&job.payload).await?;
        Ok(Outcome::Done)
    }
}
