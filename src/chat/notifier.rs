//! Delivers the chat outbox to one chat platform: approval requests as DMs with buttons (and
//! to an approvals channel, if configured), then, once decided, every copy updated in place
//! and the requester told; reminders, escalations, expiry notices and operator tasks alike.
//! The messages are platform-neutral [`Reply`]s; a [`ChatPlatform`] finds people and posts
//! them its own way. Jobs are claimed per platform with `FOR UPDATE SKIP LOCKED` and a lease,
//! in event order per request; no transaction stays open while the platform is called, and
//! several replicas may run this.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::adapters::artifacts::BoxFuture;
use crate::chat::outbox::{
    ANNOUNCE_DECISION, ANNOUNCE_EXPIRY, ANNOUNCE_ISSUANCE, ANNOUNCE_REVOCATION, ASK_APPROVERS,
    ASK_REVOCATION, NUDGE_APPROVERS, OPERATOR_TASK, REMIND_EXPIRY,
};
use crate::chat::reply::{Action, Block, Reply};
use crate::commands::store;

/// Attempts before a job is given up.
const MAX_ATTEMPTS: i32 = 8;
/// Jobs older than this are stale (e.g. the platform was configured long after): dropped.
const STALE_AFTER: chrono::Duration = chrono::Duration::hours(24);
/// How long a claimed job is reserved for its worker.
const LEASE: Duration = Duration::from_secs(60);

/// Where a message went, so it can be updated later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    /// The conversation (Slack channel, Discord channel, Teams conversation).
    pub channel: String,
    /// The message in it (Slack `ts`, Discord message id, Teams activity id).
    pub message_id: String,
}

/// What the notifier needs of a chat platform.
pub trait ChatPlatform: Send + Sync + std::fmt::Debug {
    /// Its name in `chat_jobs`, `chat_messages` and `chat_identities` (`slack`, ...).
    fn name(&self) -> &'static str;
    /// The platform's user id of the person with `email`, if they can be reached there.
    fn user_for<'a>(&'a self, email: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>>;
    /// Sends `reply` to `user` privately.
    fn send_direct<'a>(
        &'a self,
        user: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>>;
    /// Posts `reply` to a channel.
    fn post<'a>(
        &'a self,
        channel: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>>;
    /// Replaces a message posted before.
    fn update<'a>(
        &'a self,
        posted: &'a Posted,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
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
        let jobs = sqlx::query(
            "UPDATE chat_jobs SET locked_until = now() + make_interval(secs => $1), \
                    attempts = attempts + 1 \
              WHERE id IN (SELECT id FROM chat_jobs j \
                            WHERE platform = $2 AND done_at IS NULL AND run_at <= now() \
                              AND (locked_until IS NULL OR locked_until < now()) \
                              AND NOT EXISTS (SELECT 1 FROM chat_jobs e \
                                    WHERE e.platform = j.platform AND e.request_id = j.request_id \
                                      AND e.done_at IS NULL AND e.seq < j.seq) \
                            ORDER BY run_at, seq LIMIT 10 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, request_id, payload, attempts, created_at",
        )
        .bind(LEASE.as_secs_f64())
        .bind(self.platform.name())
        .fetch_all(&self.pool)
        .await?;
        let claimed = jobs.len();
        for job in jobs {
            let id: Uuid = job.try_get("id")?;
            let kind: String = job.try_get("kind")?;
            let request_id: Uuid = job.try_get("request_id")?;
            let payload: Value = job.try_get("payload")?;
            let attempts: i32 = job.try_get("attempts")?;
            let created_at: DateTime<Utc> = job.try_get("created_at")?;
            let outcome = if Utc::now() - created_at > STALE_AFTER {
                Err(anyhow::anyhow!("stale: not sent"))
            } else {
                match kind.as_str() {
                    ASK_APPROVERS => self.ask(request_id, &payload).await,
                    ANNOUNCE_DECISION => self.announce(request_id, &payload).await,
                    ANNOUNCE_ISSUANCE => self.announce_issuance(request_id, &payload).await,
                    NUDGE_APPROVERS => self.nudge(request_id, &payload).await,
                    REMIND_EXPIRY => self.remind_expiry(&payload).await,
                    ANNOUNCE_EXPIRY => self.announce_expiry(request_id, &payload).await,
                    ASK_REVOCATION => self.ask_revocation(request_id, &payload).await,
                    ANNOUNCE_REVOCATION => self.announce_revocation(request_id, &payload).await,
                    OPERATOR_TASK => self.operator_task(request_id, &payload).await,
                    other => Err(anyhow::anyhow!("unknown job kind {other}")),
                }
            };
            self.finish(id, attempts, created_at, outcome).await?;
        }
        Ok(claimed)
    }

    async fn finish(
        &self,
        id: Uuid,
        attempts: i32,
        created_at: DateTime<Utc>,
        outcome: anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE chat_jobs SET done_at = now(), locked_until = NULL WHERE id = $1",
                )
                .bind(id)
                .execute(&self.pool)
                .await?;
            }
            Err(error) => {
                let give_up = attempts >= MAX_ATTEMPTS || Utc::now() - created_at > STALE_AFTER;
                let message = format!("{error:#}");
                tracing::warn!(
                    job = %id,
                    platform = self.platform.name(),
                    attempts,
                    give_up,
                    error = %message,
                    "chat notification failed"
                );
                // Exponential backoff: 2, 4, 8, ... seconds, at most five minutes.
                let delay = 2_f64.powi(attempts.min(8)).min(300.0);
                sqlx::query(
                    "UPDATE chat_jobs SET last_error = $2, locked_until = NULL, \
                         run_at = now() + make_interval(secs => $3), \
                         done_at = CASE WHEN $4 THEN now() ELSE NULL END \
                      WHERE id = $1",
                )
                .bind(id)
                .bind(message)
                .bind(delay)
                .bind(give_up)
                .execute(&self.pool)
                .await?;
            }
        }
        Ok(())
    }

    /// The request as its creation event recorded it.
    async fn request(&self, request_id: Uuid) -> anyhow::Result<Value> {
        let payload: Value = sqlx::query_scalar(
            "SELECT payload::jsonb -> 'RequestCreated' FROM events \
              WHERE aggregate_type = 'CertificateRequest' AND aggregate_id = $1 \
                AND event_type = 'RequestCreated'",
        )
        .bind(request_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        Ok(payload)
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

    /// An approval message: `intro`, the request's details, and the decision buttons.
    fn approval_message(request: &Value, intro: &str) -> Reply {
        let number = request["request_number"].as_str().unwrap_or_default();
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let sans: Vec<&str> = request["subject"]["subject_alternative_names"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        Reply::text(intro)
            .with(Block::Fields(vec![
                ("Requester".to_owned(), text(&request["requester"]["email"])),
                (
                    "Common name".to_owned(),
                    text(&request["subject"]["common_name"]),
                ),
                ("Type".to_owned(), text(&request["certificate_type"])),
                (
                    "Validity".to_owned(),
                    format!("{} days", request["validity_days"]),
                ),
                (
                    "SANs".to_owned(),
                    if sans.is_empty() {
                        "—".to_owned()
                    } else {
                        sans.join(", ")
                    },
                ),
                (
                    "Why".to_owned(),
                    text(&request["business"]["justification"]),
                ),
            ]))
            .with(Block::Decisions {
                request_number: number.to_owned(),
            })
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

    /// Sends `message` to `email` privately: where it went, or `None` when the person cannot
    /// be reached on this platform.
    async fn direct(&self, email: &str, message: &Reply) -> anyhow::Result<Option<Posted>> {
        let Some(user) = self.platform.user_for(email).await? else {
            return Ok(None);
        };
        Ok(Some(self.platform.send_direct(&user, message).await?))
    }

    /// DMs an approval message and remembers the copy, so the decision updates it.
    async fn direct_approval(
        &self,
        request_id: Uuid,
        email: &str,
        message: &Reply,
    ) -> anyhow::Result<bool> {
        let Some(posted) = self.direct(email, message).await? else {
            return Ok(false);
        };
        self.remember(request_id, email, &posted).await?;
        Ok(true)
    }

    async fn ask(&self, request_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = request["request_number"].as_str().unwrap_or_default();
        let mut intro = format!("*{number}* needs your approval.");
        if let Some(by) = payload["delegated_by"].as_str() {
            intro = format!(
                "*{number}* was delegated to you by {by}: {}",
                payload["reason"].as_str().unwrap_or_default()
            );
        }
        let message = Self::approval_message(&request, &intro);
        for email in strings(payload, "approvers") {
            if self.posted_to(request_id, &email).await? {
                continue;
            }
            if !self.direct_approval(request_id, &email, &message).await? {
                tracing::info!(
                    request = number,
                    "an approver cannot be reached on this platform"
                );
            }
        }
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
    async fn nudge(&self, request_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = request["request_number"].as_str().unwrap_or_default();
        let waited = self.waiting_hours(request_id, sent_at(payload)).await?;
        let approvers = strings(payload, "approvers");
        let reminder = Self::approval_message(
            &request,
            &format!("Reminder: *{number}* has waited {waited} hours for your decision."),
        );
        let names = if approvers.is_empty() {
            "nobody could approve it yet".to_owned()
        } else {
            format!("{} did not decide yet", approvers.join(", "))
        };
        let escalation = Self::approval_message(
            &request,
            &format!(
                "Escalation: *{number}* has waited {waited} hours for approval; {names}. \
                 Decide on it yourself, or delegate it."
            ),
        );
        for (email, message) in approvers.iter().map(|e| (e, &reminder)).chain(
            strings(payload, "escalated_to")
                .iter()
                .map(|e| (e, &escalation))
                .collect::<Vec<_>>(),
        ) {
            if !self.direct_approval(request_id, email, message).await? {
                tracing::info!(
                    request = number,
                    "a person to nudge cannot be reached on this platform"
                );
            }
        }
        Ok(())
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
    async fn remind_expiry(&self, payload: &Value) -> anyhow::Result<()> {
        let certificate_id: Uuid = serde_json::from_value(payload["certificate_id"].clone())?;
        let issued = store::issued_certificate(&self.pool, certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let days_left = (issued.valid_to - sent_at(payload)).num_days().max(0);
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
        if self.direct(&owner, &reply).await?.is_none() {
            tracing::info!(%serial, "the owner cannot be reached on this platform; reminded by e-mail only");
        }
        Ok(())
    }

    async fn announce(&self, request_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = request["request_number"].as_str().unwrap_or_default();
        let at = payload["at"]
            .as_str()
            .and_then(|at| at.parse::<DateTime<Utc>>().ok())
            .map_or_else(String::new, |at| format!(" at {} UTC", at.format("%H:%M")));
        let by = payload["by"].as_str().unwrap_or_default();
        let reason = payload["reason"].as_str().unwrap_or_default();
        let outcome = match payload["outcome"].as_str() {
            Some("approved") => format!("Approved by {by}{at}"),
            Some("withdrawn") => format!("Withdrawn{at}: {reason}"),
            _ => format!(
                "Rejected by {by}{at}: {}",
                payload["reason"].as_str().unwrap_or_default()
            ),
        };
        let decided = Reply::text(format!("*{number}*")).with(Block::Text(outcome));
        self.update_copies(request_id, &decided).await?;
        if payload["outcome"] == "withdrawn" {
            // The requester cancelled it, or was told of its expiry separately.
            return Ok(());
        }
        let requester = request["requester"]["email"].as_str().unwrap_or_default();
        let text = match payload["outcome"].as_str() {
            Some("approved") => format!(
                "Your request *{number}* is approved ({by}). The certificate is being issued."
            ),
            _ => format!("Your request *{number}* was rejected by {by}: {reason}"),
        };
        self.direct(requester, &Reply::text(text)).await.map(drop)
    }

    /// Asks every approver but the one who asked to decide on a revocation, with Approve /
    /// Reject buttons; the copies are remembered under the certificate's id.
    async fn ask_revocation(&self, certificate_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let issued = store::issued_certificate(&self.pool, certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let by = payload["by"].as_str().unwrap_or_default();
        let reason = payload["reason"].as_str().unwrap_or_default();
        let why = payload["text"]
            .as_str()
            .map_or_else(String::new, |text| format!(": {text}"));
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
        for approver in store::approvers(&self.pool).await? {
            let email = approver.email.to_string();
            if email.eq_ignore_ascii_case(by) || self.posted_to(certificate_id, &email).await? {
                continue;
            }
            if !self
                .direct_approval(certificate_id, &email, &message)
                .await?
            {
                tracing::info!(%serial, "an approver cannot be reached on this platform");
            }
        }
        Ok(())
    }

    /// Updates every copy of a revocation approval and tells whoever asked for it.
    async fn announce_revocation(
        &self,
        certificate_id: Uuid,
        payload: &Value,
    ) -> anyhow::Result<()> {
        let issued = store::issued_certificate(&self.pool, certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let by = payload["by"].as_str().unwrap_or_default();
        let at = sent_at(payload).format("%H:%M");
        let (outcome, told) = match payload["outcome"].as_str() {
            Some("confirmed") => (
                format!("Revoked at the CA — confirmed by {by} at {at} UTC"),
                String::new(),
            ),
            Some("approved") => (
                format!("Revocation approved by {by} at {at} UTC"),
                format!(
                    "{by} approved your revocation of certificate `{serial}`; it is revoked \
                     and the CA is told."
                ),
            ),
            _ => {
                let comment = payload["comment"].as_str().unwrap_or_default();
                (
                    format!("Revocation rejected by {by} at {at} UTC: {comment}"),
                    format!(
                        "{by} rejected your revocation of certificate `{serial}`: {comment}. \
                         It stays valid."
                    ),
                )
            }
        };
        let decided = Reply::text(format!("Revocation of `{serial}`")).with(Block::Text(outcome));
        self.update_copies(certificate_id, &decided).await?;
        if let Some(requester) = payload["requester"].as_str() {
            self.direct(requester, &Reply::text(told)).await?;
        }
        Ok(())
    }

    /// Asks the admins to revoke a certificate at the CA by hand (the CA could not be told)
    /// and to confirm it with the button; a confirmation updates every copy.
    async fn operator_task(&self, certificate_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let issued = store::issued_certificate(&self.pool, certificate_id).await?;
        let serial = issued.serial_number.to_string();
        let reply = Reply::text(format!(
            "Certificate `{serial}` ({}) is revoked here, but the CA could not be told: {}",
            issued.common_name,
            payload["task"]
                .as_str()
                .unwrap_or("revoke it at the CA by hand")
        ))
        .with(Block::Actions(vec![Action::ConfirmRevocation {
            certificate: serial.clone(),
        }]));
        for admin in store::admins(&self.pool).await? {
            let email = admin.email.to_string();
            if self.posted_to(certificate_id, &email).await? {
                continue;
            }
            if !self.direct_approval(certificate_id, &email, &reply).await? {
                tracing::info!(%serial, "an admin cannot be reached on this platform");
            }
        }
        Ok(())
    }

    /// Tells the requester that nobody decided in time and the request was cancelled.
    async fn announce_expiry(&self, request_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = request["request_number"].as_str().unwrap_or_default();
        let requester = request["requester"]["email"].as_str().unwrap_or_default();
        let reply = Reply::text(format!(
            "Your request *{number}* waited {} days without a decision, so it was cancelled. \
             If you still need the certificate, request it again with `/cert request`.",
            payload["waited_days"]
        ));
        self.direct(requester, &reply).await.map(drop)
    }

    async fn announce_issuance(&self, request_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = request["request_number"].as_str().unwrap_or_default();
        let requester = request["requester"]["email"].as_str().unwrap_or_default();
        let reply = match payload["outcome"].as_str() {
            Some("issued") => {
                let reply = Reply::text(format!(
                    "Your certificate for *{number}* is issued (serial `{}`). Get it with \
                     `/cert download {0}`.",
                    payload["serial"].as_str().unwrap_or_default()
                ));
                match request["renews"].as_str() {
                    Some(old) => reply
                        .with(Block::Text(format!(
                            "It renews `{old}`. Once the new one is in place, revoke the old \
                             one as superseded."
                        )))
                        .with(Block::Actions(vec![Action::RevokeSuperseded {
                            certificate: old.to_owned(),
                        }])),
                    None => reply,
                }
            }
            _ => Reply::text(format!(
                "*{number}* could not be issued. The CA said: {}",
                payload["error"].as_str().unwrap_or_default()
            )),
        };
        self.direct(requester, &reply).await.map(drop)
    }

    /// Runs until `stopped` turns true, checking for jobs every second.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        let platform = self.platform.name();
        tracing::info!(platform, "chat notifier started");
        // Step again at once after any work: a request's next job (e.g. the decision after
        // the ask) becomes claimable only when the one before it is done.
        crate::saga::worker::poll_jobs("chat notifier", 1, stopped, || self.step()).await;
        tracing::info!(platform, "chat notifier stopped");
    }
}

/// When the event behind a job happened (the job's `at`), else now.
fn sent_at(payload: &Value) -> DateTime<Utc> {
    payload["at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .unwrap_or_else(Utc::now)
}

/// The strings of the array `payload[key]` (e-mail lists in event payloads).
fn strings(payload: &Value, key: &str) -> Vec<String> {
    payload[key]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
