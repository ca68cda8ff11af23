//! E-mail delivery: a feed consumer turns every e-mail notification queued into a job; a
//! worker claims jobs with a lease, sends through the configured mailer, and records the
//! result on the notification (sent, or a failed attempt; after five it gives up). A mail
//! that cannot be sent never holds anything else up.

use std::sync::Arc;

use cqrs_es::Aggregate;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::adapters::mail::{Mail, MailError, Mailer};
use crate::commands::Commands;
use crate::domain::notification::{Channel, Notification, NotificationEvent};
use crate::projections::StoredEvent;
use crate::projections::projector::FeedConsumer;

/// The feed consumer's checkpoint name.
pub const MAIL_OUTBOX: &str = "mail_outbox";

/// Creates a job for every e-mail notification.
#[derive(Debug, Clone, Copy, Default)]
pub struct MailOutbox;

impl FeedConsumer for MailOutbox {
    fn name(&self) -> &'static str {
        MAIL_OUTBOX
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
        if event.aggregate_type != Notification::TYPE || event.event_type != "NotificationQueued" {
            return Ok(());
        }
        let NotificationEvent::NotificationQueued { message, .. } =
            serde_json::from_value(event.payload.clone())?
        else {
            return Ok(());
        };
        if message.channel == Channel::Email {
            sqlx::query(
                "INSERT INTO mail_jobs (notification_id) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(event.aggregate_id.parse::<Uuid>()?)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Sends queued mail.
#[derive(Debug, Clone)]
pub struct MailWorker {
    commands: Commands,
    mailer: Arc<dyn Mailer>,
}

impl MailWorker {
    /// A worker sending through `mailer`.
    pub fn new(commands: Commands, mailer: Arc<dyn Mailer>) -> Self {
        Self { commands, mailer }
    }

    /// Claims due jobs and sends them; returns how many were claimed.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let pool = self.commands.pool();
        let jobs = sqlx::query(
            "UPDATE mail_jobs SET locked_until = now() + interval '60 seconds', attempts = attempts + 1 \
              WHERE notification_id IN (SELECT notification_id FROM mail_jobs \
                     WHERE done_at IS NULL AND run_at <= now() \
                       AND (locked_until IS NULL OR locked_until < now()) \
                     ORDER BY run_at LIMIT 10 FOR UPDATE SKIP LOCKED) \
             RETURNING notification_id, attempts",
        )
        .fetch_all(pool)
        .await?;
        let from = crate::db::setting(pool, "notification.email.from")
            .await?
            .unwrap_or_else(|| "cert-assistant@example.com".to_owned());
        let claimed = jobs.len();
        for job in jobs {
            let id: Uuid = job.try_get("notification_id")?;
            let attempts: i32 = job.try_get("attempts")?;
            let payload: serde_json::Value = sqlx::query_scalar(
                "SELECT payload::jsonb FROM events WHERE aggregate_type = 'Notification' \
                   AND aggregate_id = $1 AND event_type = 'NotificationQueued'",
            )
            .bind(id.to_string())
            .fetch_one(pool)
            .await?;
            let NotificationEvent::NotificationQueued { message, .. } =
                serde_json::from_value(payload)?
            else {
                continue;
            };
            let mail = Mail {
                from: from.clone(),
                to: message.recipient.email.to_string(),
                subject: message.subject.clone(),
                html: format!(
                    "<html><body><p>{}</p></body></html>",
                    html_escape(&message.body).replace('\n', "<br>")
                ),
                text: message.body.clone(),
            };
            let sent = self.mailer.send(&mail).await;
            let (done, error) = match &sent {
                Ok(_) => (true, None),
                Err(MailError::Permanent(e)) => (true, Some(e.clone())),
                Err(MailError::Transient(e)) => (attempts >= 5, Some(e.clone())),
            };
            let outcome = match sent {
                Ok(message_id) => Ok(Some(message_id)),
                Err(e) => Err(e.to_string()),
            };
            if let Err(error) = self.commands.record_delivery(id, outcome).await {
                tracing::warn!(notification = %id, %error, "could not record a delivery");
            }
            sqlx::query(
                "UPDATE mail_jobs SET locked_until = NULL, last_error = $2, \
                     run_at = now() + make_interval(secs => $3), \
                     done_at = CASE WHEN $4 THEN now() ELSE NULL END WHERE notification_id = $1",
            )
            .bind(id)
            .bind(error)
            .bind(2_f64.powi(attempts.clamp(1, 10)).min(600.0))
            .bind(done)
            .execute(pool)
            .await?;
        }
        Ok(claimed)
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        super::worker::poll_jobs("mail", 10, stopped, || self.step()).await;
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
