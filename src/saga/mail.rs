//! E-mail delivery: a feed consumer turns every e-mail notification queued into a mail job
//! carrying the message; the worker sends it through the configured mailer and records the
//! result on the notification (sent, or a failed attempt). A mail that cannot be sent never
//! holds anything else up; claiming, retries and giving up are the job runtime's
//! ([`policy::MAIL`](crate::jobs::policy::MAIL)).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::adapters::mail::{Mail, MailError, Mailer};
use crate::commands::{CommandError, Commands};
use crate::domain::notification::{Channel, Message, NotificationEvent};
use crate::feed::{DomainEvent, FeedConsumer, StoredEvent};
use crate::jobs::{self, Claimed, JobError, JobWorker, NewJob, Outcome, Policy};

/// The feed consumer's checkpoint name.
pub const MAIL_OUTBOX: &str = "mail_outbox";

/// The job kind.
pub const MAIL: &str = "mail";

/// One e-mail to send.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MailJob {
    /// The notification it delivers (the result is recorded on it).
    pub notification_id: Uuid,
    /// What to send, to whom.
    pub message: Message,
}

/// Creates a job for every e-mail notification.
#[derive(Debug, Clone, Copy, Default)]
pub struct MailOutbox;

impl FeedConsumer for MailOutbox {
    fn name(&self) -> &'static str {
        MAIL_OUTBOX
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
        let Some(DomainEvent::Notification(NotificationEvent::NotificationQueued {
            message, ..
        })) = event.decode()?
        else {
            return Ok(());
        };
        if message.channel != Channel::Email {
            return Ok(());
        }
        let notification_id = event.aggregate_uuid()?;
        let job = MailJob {
            notification_id,
            message: *message,
        };
        jobs::enqueue(
            conn,
            NewJob {
                id: notification_id,
                kind: MAIL,
                ordering_key: None,
                payload: &job,
                traceparent: event.traceparent(),
            },
        )
        .await
    }
}

/// Queues a mail whose notification is not recorded yet (a feed consumer asking someone in
/// the same transaction as its checkpoint): the worker records the notification under `id`
/// before it sends, so the mail is in `notifications` like every other.
pub async fn enqueue(
    conn: &mut PgConnection,
    id: Uuid,
    message: Message,
    traceparent: Option<&str>,
) -> anyhow::Result<()> {
    let job = MailJob {
        notification_id: id,
        message,
    };
    jobs::enqueue(
        conn,
        NewJob {
            id,
            kind: MAIL,
            ordering_key: None,
            payload: &job,
            traceparent,
        },
    )
    .await
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
        jobs::step(self.commands.pool(), self).await
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        jobs::run(&self.commands.pool().clone(), &self, stopped).await;
    }
}

impl JobWorker for MailWorker {
    type Payload = MailJob;

    fn kind(&self) -> &'static str {
        MAIL
    }

    fn policy(&self) -> &'static Policy {
        &jobs::policy::MAIL
    }

    async fn perform(&self, job: &Claimed<MailJob>) -> Result<Outcome, JobError> {
        // Recorded first when it was queued ahead of its notification ([`enqueue`]); a
        // notification already recorded is left as it is. (Its own event then finds this
        // job queued under the same id and adds none.)
        let id = job.payload.notification_id;
        self.commands
            .queue_notification_as(id, job.payload.message.clone())
            .await
            .map_err(|error| match error {
                CommandError::Refused(why) => JobError::permanent(why),
                other => JobError::Transient(other.into()),
            })?;
        let from = crate::db::setting(self.commands.pool(), "notification.email.from")
            .await?
            .unwrap_or_else(|| "cert-assistant@example.com".to_owned());
        let message = &job.payload.message;
        let mail = Mail {
            from,
            to: message.recipient.email.to_string(),
            subject: message.subject.clone(),
            html: format!(
                "<html><body><p>{}</p></body></html>",
                html_escape(&message.body).replace('\n', "<br>")
            ),
            text: message.body.clone(),
        };
        let sent = self.mailer.send(&mail).await;
        let recorded = match &sent {
            Ok(message_id) => Ok(Some(message_id.clone())),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = self.commands.record_delivery(id, recorded).await {
            tracing::warn!(notification = %id, %error, "could not record a delivery");
        }
        match sent {
            Ok(_) => Ok(Outcome::Done),
            Err(MailError::Permanent(error)) => Err(JobError::permanent(error)),
            Err(MailError::Transient(error)) => Err(JobError::Transient(anyhow::anyhow!(error))),
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
