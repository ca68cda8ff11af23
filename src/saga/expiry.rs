//! Expiry: a scheduled job that reminds owners before their certificates expire (once per
//! threshold of `expiry.notification.days`, only the most urgent one after downtime) and
//! marks certificates past `valid_to` expired. Certificates of the public CA (ACM) are
//! renewed by ACM itself: for them the job first asks whether ACM renewed them
//! ([`CaRenewals`]), and their reminders say that ACM renews them.
//!
//! Every replica may run it: a transaction-scoped advisory lock lets one do each pass, and
//! the certificate aggregate refuses a second reminder for a threshold, so a race costs a
//! refused command, never a duplicate e-mail (the notification id is derived from the
//! certificate and threshold, too).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;
use uuid::Uuid;

use crate::adapters::clock::Clock;
use crate::commands::Commands;
use crate::domain::certificate::CertificateStatus;
use crate::domain::certificate::expiry::due_reminder;
use crate::domain::notification::{Channel, Message, NotificationType};
use crate::jobs::try_lease;
use crate::saga::ca_renewal::CaRenewals;

/// The advisory lock key of the expiry pass ("cert-exp" in ASCII).
pub const LOCK_KEY: i64 = 0x6365_7274_2d65_7870;

/// Namespace of reminder notification ids: one per certificate and threshold.
const REMINDER_NAMESPACE: Uuid = Uuid::from_u128(0x7d3c_51a2_0b8e_4c19_a6f4_22e1_9b5d_03c7);

/// The thresholds when `expiry.notification.days` is missing or unreadable.
const DEFAULT_THRESHOLDS: [u32; 5] = [90, 60, 30, 14, 7];

/// Active certificates expiring before `$1`, with the thresholds already reminded of.
/// Served by the partial index `idx_certificates_active_expiring`.
pub const DUE_CERTIFICATES: &str = "SELECT id, valid_from, valid_to, \
        coalesce((SELECT array_agg((n ->> 'days_before')::int) \
                    FROM jsonb_array_elements(expiry_notifications) n), '{}') AS reminded, \
        (SELECT arn FROM acm_certificates a WHERE a.certificate_id = certificates.id) AS acm_arn \
   FROM certificates \
  WHERE status = 'active' AND deleted_at IS NULL AND valid_to <= $1 \
  ORDER BY valid_to";

/// The rows of [`DUE_CERTIFICATES`] up to `horizon`. JIT compilation is off for it: on a
/// million certificates it costs more than it saves (`cert-assistant bench expiry-scan`).
pub async fn due_certificates(
    pool: &sqlx::PgPool,
    horizon: DateTime<Utc>,
) -> sqlx::Result<Vec<sqlx::postgres::PgRow>> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
    let rows = sqlx::query(DUE_CERTIFICATES)
        .bind(horizon)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rows)
}

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPass {
    /// Reminders recorded and queued.
    pub reminded: usize,
    /// Certificates marked expired.
    pub expired: usize,
    /// Certificates the CA renewed by itself, taken in.
    pub renewed: usize,
}

/// The scheduled expiry job.
#[derive(Debug, Clone)]
pub struct ExpiryWorker {
    commands: Commands,
    clock: Arc<dyn Clock>,
    renewals: Option<CaRenewals>,
}

impl ExpiryWorker {
    /// A job reading the time from `clock`.
    pub fn new(commands: Commands, clock: Arc<dyn Clock>) -> Self {
        Self {
            commands,
            clock,
            renewals: None,
        }
    }

    /// Takes in the renewals the public CA does by itself (ACM).
    #[must_use]
    pub fn with_ca_renewals(mut self, renewals: Option<CaRenewals>) -> Self {
        self.renewals = renewals;
        self
    }

    /// One pass; `None` when another replica holds the pass.
    pub async fn step(&self) -> anyhow::Result<Option<ExpiryPass>> {
        let pool = self.commands.pool();
        let Some(lease) = try_lease(pool, LOCK_KEY).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        let thresholds = self.thresholds().await?;
        let horizon =
            now + chrono::Duration::days(i64::from(*thresholds.iter().max().unwrap_or(&0)));
        let rows = due_certificates(pool, horizon).await?;
        let mut pass = ExpiryPass::default();
        for row in rows {
            let id: Uuid = row.try_get("id")?;
            let valid_from: DateTime<Utc> = row.try_get("valid_from")?;
            let valid_to: DateTime<Utc> = row.try_get("valid_to")?;
            let lifetime_days = (valid_to - valid_from).num_days();
            let reminded: Vec<i32> = row.try_get("reminded")?;
            let reminded: Vec<u32> = reminded
                .into_iter()
                .filter_map(|d| d.try_into().ok())
                .collect();
            let acm_arn: Option<String> = row.try_get("acm_arn")?;
            if let (Some(arn), Some(renewals)) = (&acm_arn, &self.renewals) {
                match renewals.take(id, arn, valid_to, now).await {
                    Ok(true) => {
                        pass.renewed += 1;
                        continue;
                    }
                    Ok(false) => {}
                    // ACM unreachable, or a renewal not as approved: the reminders go on.
                    Err(error) => tracing::warn!(
                        certificate = %id,
                        error = format!("{error:#}"),
                        "could not take in the CA's renewal"
                    ),
                }
            }
            if valid_to <= now {
                if self.expire(id, now).await? {
                    pass.expired += 1;
                }
                continue;
            }
            let days_left = (valid_to - now).num_days();
            // The read model may lag; the aggregate has the last word below.
            if due_reminder(&thresholds, &reminded, lifetime_days, days_left).is_some()
                && self
                    .remind(id, &thresholds, lifetime_days, days_left, now)
                    .await?
            {
                pass.reminded += 1;
            }
        }
        lease.commit().await?;
        Ok(Some(pass))
    }

    /// `expiry.notification.days`, or the documented default.
    async fn thresholds(&self) -> anyhow::Result<Vec<u32>> {
        let value = crate::db::setting(self.commands.pool(), "expiry.notification.days").await?;
        match value.as_deref().map(serde_json::from_str::<Vec<u32>>) {
            Some(Ok(days)) if !days.is_empty() => Ok(days),
            None => Ok(DEFAULT_THRESHOLDS.to_vec()),
            Some(_) => {
                tracing::warn!("expiry.notification.days is not a list of days; using the default");
                Ok(DEFAULT_THRESHOLDS.to_vec())
            }
        }
    }

    async fn expire(&self, id: Uuid, now: DateTime<Utc>) -> anyhow::Result<bool> {
        let certificate = self.commands.certificate(id).await?;
        if certificate.status() != Some(CertificateStatus::Active) {
            return Ok(false);
        }
        self.commands.mark_expired(id, now).await?;
        Ok(true)
    }

    /// Records the due reminder and queues the owner's e-mail; false when nothing was due
    /// after all (another replica, or a lagging read model).
    async fn remind(
        &self,
        id: Uuid,
        thresholds: &[u32],
        lifetime_days: i64,
        days_left: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let certificate = self.commands.certificate(id).await?;
        let renewed_by = certificate.acm().map(|acm| acm.exported);
        let (Some(CertificateStatus::Active), Some(owner), Some(serial), Some(valid_to)) = (
            certificate.status(),
            certificate.owner().cloned(),
            certificate.serial().cloned(),
            certificate.valid_to(),
        ) else {
            return Ok(false);
        };
        let Some(days_before) = due_reminder(
            thresholds,
            &certificate.reminders(),
            lifetime_days,
            days_left,
        ) else {
            return Ok(false);
        };
        self.commands
            .record_expiry_reminder(id, days_before, now)
            .await?;
        let expires = format!(
            "The certificate with serial {serial} expires on {} ({days_left} days from now).",
            valid_to.format("%Y-%m-%d %H:%M UTC")
        );
        let body = match renewed_by {
            Some(exported) => format!(
                "{expires}\n\nAWS Certificate Manager renews it by itself, under the same ARN, \
                 from 60 days before it expires, as long as its DNS validation records (the \
                 CNAMEs created when it was requested) stay in place: do not remove them. {} \
                 If it is not renewed 30 days before expiry, check the records and the \
                 certificate's renewal status in the ACM console.\n",
                if exported {
                    "Once it is renewed you are told here, and the new certificate and key \
                     are ready to download."
                } else {
                    "It stays in ACM: the AWS services that use it get the renewal by \
                     themselves."
                }
            ),
            None => format!(
                "{expires}\n\nRenew it before then: `/cert renew {serial}` in chat (or the \
                 Renew button of the chat reminder, or `cert-assistant certificate renew \
                 {serial}`) asks for a new certificate with the same details and a fresh key. \
                 Once the new one is issued, revoke this one as superseded.\n"
            ),
        };
        let message = Message {
            recipient: owner,
            notification_type: NotificationType::CertificateExpiring,
            subject: format!("Your certificate {serial} expires in {days_left} days"),
            body,
            channel: Channel::Email,
            resource_type: Some("certificate".to_owned()),
            resource_id: Some(id),
        };
        let notification = Uuid::new_v5(
            &REMINDER_NAMESPACE,
            format!("{id}/{days_before}").as_bytes(),
        );
        if let Err(error) = self
            .commands
            .queue_notification_as(notification, message)
            .await
        {
            tracing::warn!(certificate = %id, %error, "could not queue the expiry reminder");
        }
        tracing::info!(%serial, days_before, "expiry reminder sent");
        Ok(true)
    }

    /// Runs a pass every `every` until `stopped` turns true.
    pub async fn run(self, every: Duration, stopped: tokio::sync::watch::Receiver<bool>) {
        crate::jobs::every("expiry", every, stopped, || self.step()).await;
    }
}
