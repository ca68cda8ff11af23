//! Delivers the chat outbox to Slack: approval requests as DMs with buttons (and to an
//! approvals channel, if configured), then, once decided, every copy updated in place and
//! the requester told. Jobs are claimed with `FOR UPDATE SKIP LOCKED` and a lease; no
//! transaction stays open while Slack is called, and several replicas may run this.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::api::SlackApi;
use super::render;
use crate::chat::outbox::{
    ANNOUNCE_DECISION, ANNOUNCE_EXPIRY, ANNOUNCE_ISSUANCE, ANNOUNCE_REVOCATION, ASK_APPROVERS,
    ASK_REVOCATION, NUDGE_APPROVERS, OPERATOR_TASK, REMIND_EXPIRY,
};
use crate::chat::reply::{Action, Block, Reply};
use crate::commands::store;

/// Attempts before a job is given up.
const MAX_ATTEMPTS: i32 = 8;
/// Jobs older than this are stale (e.g. Slack was configured long after): dropped, not sent.
const STALE_AFTER: chrono::Duration = chrono::Duration::hours(24);
/// How long a claimed job is reserved for its worker.
const LEASE: Duration = Duration::from_secs(60);

/// The Slack side of the chat outbox.
#[derive(Debug, Clone)]
pub struct SlackNotifier {
    pool: PgPool,
    api: SlackApi,
    approvals_channel: Option<String>,
}

impl SlackNotifier {
    /// A notifier posting with `api`, also to `approvals_channel` when given.
    pub fn new(pool: PgPool, api: SlackApi, approvals_channel: Option<String>) -> Self {
        Self {
            pool,
            api,
            approvals_channel,
        }
    }

    /// Claims due jobs and runs them; returns how many were claimed.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let jobs = sqlx::query(
            "UPDATE chat_jobs SET locked_until = now() + make_interval(secs => $1), \
                    attempts = attempts + 1 \
              WHERE id IN (SELECT id FROM chat_jobs j \
                            WHERE done_at IS NULL AND run_at <= now() \
                              AND (locked_until IS NULL OR locked_until < now()) \
                              AND NOT EXISTS (SELECT 1 FROM chat_jobs e \
                                    WHERE e.request_id = j.request_id AND e.done_at IS NULL \
                                      AND e.seq < j.seq) \
                            ORDER BY run_at, seq LIMIT 10 FOR UPDATE SKIP LOCKED) \
             RETURNING id, kind, request_id, payload, attempts, created_at",
        )
        .bind(LEASE.as_secs_f64())
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
                tracing::warn!(job = %id, attempts, give_up, error = %message, "slack notification failed");
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

    /// The Slack user id of `email`: known from an earlier `/cert`, or looked up in Slack
    /// (and remembered).
    async fn slack_user(&self, email: &str) -> anyhow::Result<Option<String>> {
        let known: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM chat_identities WHERE platform = 'slack' AND lower(email) = lower($1) \
              ORDER BY refreshed_at DESC LIMIT 1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        if known.is_some() {
            return Ok(known);
        }
        let Some((user_id, team_id)) = self.api.lookup_by_email(email).await? else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO chat_identities (platform, workspace_id, user_id, email) \
             VALUES ('slack', $1, $2, $3) ON CONFLICT (platform, workspace_id, user_id) \
             DO UPDATE SET email = EXCLUDED.email, refreshed_at = now()",
        )
        .bind(team_id)
        .bind(&user_id)
        .bind(email)
        .execute(&self.pool)
        .await?;
        Ok(Some(user_id))
    }

    async fn posted_to(&self, request_id: Uuid, recipient: &str) -> anyhow::Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM chat_messages \
                WHERE platform = 'slack' AND request_id = $1 AND recipient_email = $2)",
        )
        .bind(request_id)
        .bind(recipient)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn post(
        &self,
        request_id: Uuid,
        recipient: &str,
        channel: &str,
        message: &Value,
    ) -> anyhow::Result<()> {
        let ts = self.api.post_message(channel, message).await?;
        self.remember(request_id, recipient, channel, &ts).await
    }

    /// Remembers a posted approval message.
    async fn remember(
        &self,
        request_id: Uuid,
        recipient: &str,
        channel: &str,
        ts: &str,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO chat_messages (platform, channel, ts, request_id, recipient_email) \
             VALUES ('slack', $1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(channel)
        .bind(ts)
        .bind(request_id)
        .bind(recipient)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An approval message: `intro`, the request's details, and the decision buttons.
    fn approval_message(request: &Value, intro: &str) -> Value {
        let number = request["request_number"].as_str().unwrap_or_default();
        let sans: Vec<&str> = request["subject"]["subject_alternative_names"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let field = |label: &str, value: String| json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") });
        json!({
            "text": format!("{number} needs your approval"),
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": intro } },
                { "type": "section", "fields": [
                    field("Requester", request["requester"]["email"].as_str().unwrap_or_default().to_owned()),
                    field("Common name", request["subject"]["common_name"].as_str().unwrap_or_default().to_owned()),
                    field("Type", request["certificate_type"].as_str().unwrap_or_default().to_owned()),
                    field("Validity", format!("{} days", request["validity_days"])),
                    field("SANs", if sans.is_empty() { "—".to_owned() } else { sans.join(", ") }),
                    field("Why", request["business"]["justification"].as_str().unwrap_or_default().to_owned()),
                ] },
                render::decisions(number),
            ],
        })
    }

    /// DMs `message` to `email`: where it went (channel, ts), or `None` when the person has
    /// no Slack account.
    async fn direct(
        &self,
        email: &str,
        message: &Value,
    ) -> anyhow::Result<Option<(String, String)>> {
        let Some(user) = self.slack_user(email).await? else {
            return Ok(None);
        };
        let channel = self.api.open_dm(&user).await?;
        let ts = self.api.post_message(&channel, message).await?;
        Ok(Some((channel, ts)))
    }

    /// DMs an approval message and remembers the copy, so the decision updates it.
    async fn direct_approval(
        &self,
        request_id: Uuid,
        email: &str,
        message: &Value,
    ) -> anyhow::Result<bool> {
        let Some((channel, ts)) = self.direct(email, message).await? else {
            return Ok(false);
        };
        self.remember(request_id, email, &channel, &ts).await?;
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
        let recipients: Vec<String> = payload["approvers"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        for email in recipients {
            if self.posted_to(request_id, &email).await? {
                continue;
            }
            if !self.direct_approval(request_id, &email, &message).await? {
                tracing::info!(
                    request = number,
                    "an approver has no Slack account; not messaged"
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
        let emails = |key: &str| -> Vec<String> {
            payload[key]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        let approvers = emails("approvers");
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
            emails("escalated_to")
                .iter()
                .map(|e| (e, &escalation))
                .collect::<Vec<_>>(),
        ) {
            if !self.direct_approval(request_id, email, message).await? {
                tracing::info!(request = number, "a person to nudge has no Slack account");
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
        if self.direct(&owner, &dm_body(&reply)).await?.is_none() {
            tracing::info!(%serial, "the owner has no Slack account; reminded by e-mail only");
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
        let copies = sqlx::query(
            "SELECT channel, ts FROM chat_messages WHERE platform = 'slack' AND request_id = $1",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        for copy in copies {
            let channel: String = copy.try_get("channel")?;
            let ts: String = copy.try_get("ts")?;
            let message = json!({
                "text": format!("{number}: {outcome}"),
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn", "text": format!("*{number}*") } },
                    { "type": "context", "elements": [ { "type": "mrkdwn", "text": outcome } ] },
                ],
            });
            self.api.update_message(&channel, &ts, &message).await?;
        }
        if payload["outcome"] == "withdrawn" {
            // The requester cancelled it, or was told of its expiry separately.
            return Ok(());
        }
        let requester = request["requester"]["email"].as_str().unwrap_or_default();
        if let Some(user) = self.slack_user(requester).await? {
            let channel = self.api.open_dm(&user).await?;
            let text = match payload["outcome"].as_str() {
                Some("approved") => format!(
                    "Your request *{number}* is approved ({by}). The certificate is being issued."
                ),
                _ => format!(
                    "Your request *{number}* was rejected by {by}: {}",
                    payload["reason"].as_str().unwrap_or_default()
                ),
            };
            self.api
                .post_message(&channel, &json!({ "text": text }))
                .await?;
        }
        Ok(())
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
        let field = |label: &str, value: String| json!({ "type": "mrkdwn", "text": format!("*{label}*\n{value}") });
        let message = json!({
            "text": format!("A revocation of {serial} needs your approval"),
            "blocks": [
                { "type": "section", "text": { "type": "mrkdwn", "text": format!(
                    "{by} asks to revoke certificate `{serial}` for *{reason}*{why}. It stays valid until an approver agrees."
                ) } },
                { "type": "section", "fields": [
                    field("Common name", issued.common_name.to_string()),
                    field("Owner", issued.owner.email.to_string()),
                    field("Expires", issued.valid_to.format("%Y-%m-%d").to_string()),
                    field("Request", issued.request_number.to_string()),
                ] },
                render::revocation_decisions(&serial),
            ],
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
                tracing::info!(%serial, "an approver has no Slack account; not messaged");
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
        let copies = sqlx::query(
            "SELECT channel, ts FROM chat_messages WHERE platform = 'slack' AND request_id = $1",
        )
        .bind(certificate_id)
        .fetch_all(&self.pool)
        .await?;
        for copy in copies {
            let channel: String = copy.try_get("channel")?;
            let ts: String = copy.try_get("ts")?;
            let message = json!({
                "text": format!("{serial}: {outcome}"),
                "blocks": [
                    { "type": "section", "text": { "type": "mrkdwn", "text": format!("Revocation of `{serial}`") } },
                    { "type": "context", "elements": [ { "type": "mrkdwn", "text": outcome } ] },
                ],
            });
            self.api.update_message(&channel, &ts, &message).await?;
        }
        if let Some(requester) = payload["requester"].as_str() {
            self.direct(requester, &dm_body(&Reply::text(told))).await?;
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
        let message = dm_body(&reply);
        for admin in store::admins(&self.pool).await? {
            let email = admin.email.to_string();
            if self.posted_to(certificate_id, &email).await? {
                continue;
            }
            if !self
                .direct_approval(certificate_id, &email, &message)
                .await?
            {
                tracing::info!(%serial, "an admin has no Slack account; not messaged");
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
        self.direct(requester, &dm_body(&reply)).await.map(drop)
    }

    async fn announce_issuance(&self, request_id: Uuid, payload: &Value) -> anyhow::Result<()> {
        let request = self.request(request_id).await?;
        let number = request["request_number"].as_str().unwrap_or_default();
        let requester = request["requester"]["email"].as_str().unwrap_or_default();
        let Some(user) = self.slack_user(requester).await? else {
            return Ok(());
        };
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
        let channel = self.api.open_dm(&user).await?;
        self.api
            .post_message(&channel, &dm_body(&reply))
            .await
            .map(drop)
    }

    /// Runs until `stopped` turns true, checking for jobs every second.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        tracing::info!("slack notifier started");
        // Step again at once after any work: a request's next job (e.g. the decision after
        // the ask) becomes claimable only when the one before it is done.
        crate::saga::worker::poll_jobs("slack notifier", 1, stopped, || self.step()).await;
        tracing::info!("slack notifier stopped");
    }
}

/// When the event behind a job happened (the job's `at`), else now.
fn sent_at(payload: &Value) -> DateTime<Utc> {
    payload["at"]
        .as_str()
        .and_then(|at| at.parse().ok())
        .unwrap_or_else(Utc::now)
}

/// A reply as a `chat.postMessage` body (`response_type` belongs to responses only).
fn dm_body(reply: &Reply) -> Value {
    let mut message = render::message(reply);
    if let Some(fields) = message.as_object_mut() {
        fields.remove("response_type");
    }
    message
}
