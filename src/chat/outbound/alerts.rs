//! Tells the admins, on every configured platform, about background work the job runtime
//! gave up (a certificate that cannot be issued without an operator, mail that keeps
//! bouncing, a CA that never answered) and about event streams a feed consumer parked. A pass every few seconds takes the failures nobody
//! was told about and queues one alert each, in one transaction; failed alerts themselves
//! are only logged, so an unreachable platform cannot alert about itself forever.

use std::time::Duration;

use sqlx::PgPool;

use super::{ChatJob, ChatMessage, ChatOutbox};

/// How often the pass runs.
pub const EVERY: Duration = Duration::from_secs(5);

/// The pass.
#[derive(Debug, Clone)]
pub struct FailedJobAlerts {
    pool: PgPool,
    outbox: ChatOutbox,
}

impl FailedJobAlerts {
    /// Alerts through the platforms `outbox` queues for.
    pub fn new(pool: PgPool, outbox: ChatOutbox) -> Self {
        Self { pool, outbox }
    }

    /// One pass; returns how many failures and parked streams it reported.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let mut tx = self.pool.begin().await?;
        let failures = crate::jobs::failed_unreported(&mut tx, 50).await?;
        let count = failures.len();
        for (failure, payload) in failures {
            let is_alert = serde_json::from_value::<ChatJob>(payload)
                .is_ok_and(|job| matches!(job.message, ChatMessage::AlertAdmins { .. }));
            if is_alert {
                continue;
            }
            let text = format!(
                "Background work was given up after {} attempts: {} job {}. {} \
                 Once the cause is fixed, `cert-assistant jobs retry {}` runs it again.",
                failure.attempts,
                failure.kind,
                failure.id,
                sentence(&failure.error),
                failure.id,
            );
            let job = ChatJob {
                subject: failure.id,
                message: ChatMessage::AlertAdmins { text },
            };
            self.outbox
                .queue(&mut tx, &format!("alert/{}", failure.id), None, &job)
                .await?;
        }
        let parked = crate::feed::parking::unreported(&mut tx, 50).await?;
        let count = count + parked.len();
        for stream in parked {
            let text = format!(
                "The {} consumer parked {} {}: its event {} ({}) cannot be applied: {} The \
                 rest of the feed goes on; this stream waits. Once the cause is fixed, \
                 `cert-assistant projections retry {}` applies it again.",
                stream.consumer,
                stream.aggregate_type,
                stream.aggregate_id,
                stream.first_global_seq,
                stream.event_type,
                sentence(&stream.error),
                stream.first_global_seq,
            );
            let cause = format!(
                "parked/{}/{}/{}/{}",
                stream.consumer,
                stream.aggregate_type,
                stream.aggregate_id,
                stream.first_global_seq
            );
            let job = ChatJob {
                subject: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, cause.as_bytes()),
                message: ChatMessage::AlertAdmins { text },
            };
            self.outbox.queue(&mut tx, &cause, None, &job).await?;
        }
        tx.commit().await?;
        Ok(count)
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        crate::jobs::every("failed-job alerts", EVERY, stopped, || self.step()).await;
    }
}

/// The error as a sentence, at most 500 characters.
fn sentence(error: &str) -> String {
    let mut text: String = error.chars().take(500).collect();
    if !text.ends_with('.') {
        text.push('.');
    }
    text
}
