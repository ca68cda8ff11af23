//! Carrying revocations to the CA: a feed consumer creates a job for every revoked
//! certificate; a worker claims it with a lease and asks the CA to revoke (the embedded CA
//! then lists it in its CRL), and records the outcome (`crl_updated_at`, or why not). A CA
//! that cannot revoke through its API (ADCS Web Enrollment) leaves a clear task for an
//! operator in `certificate_revocations.adcs_error_message` and the audit trail. Then, unless
//! `revocation.destroy_private_key` is false, the generated private key is crypto-shredded.

use std::sync::Arc;

use cqrs_es::Aggregate;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::adapters::ca::{CaError, CertificateAuthority};
use crate::commands::Commands;
use crate::domain::certificate::{Certificate, CertificateEvent};
use crate::domain::values::RevocationReason;
use crate::projections::StoredEvent;
use crate::projections::projector::FeedConsumer;

/// The feed consumer's checkpoint name.
pub const REVOCATION: &str = "revocation";

/// How often a transient CA failure is retried before an operator is asked to step in.
const MAX_ATTEMPTS: i32 = 10;

/// Creates a job for every revoked certificate.
#[derive(Debug, Clone, Copy, Default)]
pub struct RevocationFeed;

impl FeedConsumer for RevocationFeed {
    fn name(&self) -> &'static str {
        REVOCATION
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
        if event.aggregate_type == Certificate::TYPE && event.event_type == "CertificateRevoked" {
            sqlx::query(
                "INSERT INTO revocation_jobs (certificate_id) VALUES ($1) ON CONFLICT DO NOTHING",
            )
            .bind(event.aggregate_id.parse::<Uuid>()?)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }
}

/// Revokes at the CA.
#[derive(Debug, Clone)]
pub struct RevocationWorker {
    commands: Commands,
    ca: Arc<dyn CertificateAuthority>,
}

impl RevocationWorker {
    /// A worker revoking at `ca`.
    pub fn new(commands: Commands, ca: Arc<dyn CertificateAuthority>) -> Self {
        Self { commands, ca }
    }

    /// Claims due jobs and runs them; returns how many were claimed.
    pub async fn step(&self) -> anyhow::Result<usize> {
        let pool = self.commands.pool();
        let jobs = sqlx::query(
            "UPDATE revocation_jobs SET locked_until = now() + interval '60 seconds', \
                    attempts = attempts + 1 \
              WHERE certificate_id IN (SELECT certificate_id FROM revocation_jobs \
                     WHERE done_at IS NULL AND run_at <= now() \
                       AND (locked_until IS NULL OR locked_until < now()) \
                     ORDER BY run_at LIMIT 10 FOR UPDATE SKIP LOCKED) \
             RETURNING certificate_id, attempts",
        )
        .fetch_all(pool)
        .await?;
        let claimed = jobs.len();
        for job in jobs {
            let id: Uuid = job.try_get("certificate_id")?;
            let attempts: i32 = job.try_get("attempts")?;
            let (serial, reason) = self.revocation(id).await?;
            // An admin may have confirmed revoking it by hand meanwhile: nothing left to do.
            let already = self.commands.certificate(id).await?.revoked_at_ca();
            let outcome = if already {
                Ok(())
            } else {
                self.ca.revoke(&serial, reason).await
            };
            let (done, error) = match outcome {
                Ok(()) if already => (true, None),
                Ok(()) => {
                    self.commands.record_ca_revocation(id, Ok(())).await?;
                    (true, None)
                }
                Err(CaError::Permanent(message)) => {
                    let task = format!(
                        "{message}. Revoke serial {serial} at the CA by hand (for ADCS: \
                         certutil -revoke {serial} {}, then certutil -crl), and confirm it with \
                         /cert confirm-revocation {serial}.",
                        reason.code()
                    );
                    self.commands
                        .record_ca_revocation(id, Err(task.clone()))
                        .await?;
                    (true, Some(task))
                }
                Err(CaError::Transient(message)) if attempts >= MAX_ATTEMPTS => {
                    let task = format!(
                        "{message} (gave up after {attempts} attempts). Revoke serial {serial} \
                         at the CA by hand and confirm it with /cert confirm-revocation {serial}."
                    );
                    self.commands
                        .record_ca_revocation(id, Err(task.clone()))
                        .await?;
                    (true, Some(task))
                }
                Err(CaError::Transient(message)) => (false, Some(message)),
            };
            if done && self.destroys_keys().await? && self.commands.destroy_private_key(id).await? {
                tracing::info!(certificate = %id, "private key destroyed after revocation");
            }
            sqlx::query(
                "UPDATE revocation_jobs SET locked_until = NULL, last_error = $2, \
                     run_at = now() + make_interval(secs => $3), \
                     done_at = CASE WHEN $4 THEN now() ELSE NULL END WHERE certificate_id = $1",
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

    /// `revocation.destroy_private_key` (default true): whether a revoked certificate's
    /// generated private key is destroyed. A revoked key has no legitimate use left; turn it
    /// off where old S/MIME mail must stay decryptable.
    async fn destroys_keys(&self) -> anyhow::Result<bool> {
        let value =
            crate::db::setting(self.commands.pool(), "revocation.destroy_private_key").await?;
        Ok(value.is_none_or(|v| v.trim() != "false"))
    }

    /// The serial and reason of a revoked certificate, from its events.
    async fn revocation(&self, id: Uuid) -> anyhow::Result<(String, RevocationReason)> {
        let rows = sqlx::query(
            "SELECT payload::jsonb AS payload FROM events WHERE aggregate_type = 'Certificate' \
               AND aggregate_id = $1 AND event_type IN ('CertificateIssued', 'CertificateRevoked') \
             ORDER BY sequence",
        )
        .bind(id.to_string())
        .fetch_all(self.commands.pool())
        .await?;
        let mut serial = None;
        let mut reason = None;
        for row in rows {
            match serde_json::from_value::<CertificateEvent>(row.try_get("payload")?)? {
                CertificateEvent::CertificateIssued { certificate, .. } => {
                    serial = Some(certificate.serial_number.to_string());
                }
                CertificateEvent::CertificateRevoked { reason: r, .. } => reason = Some(r),
                _ => {}
            }
        }
        match (serial, reason) {
            (Some(serial), Some(reason)) => Ok((serial, reason)),
            _ => anyhow::bail!("certificate {id} has no issuance or revocation to carry"),
        }
    }

    /// Runs until `stopped` turns true.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        super::worker::poll_jobs("revocation", 10, stopped, || self.step()).await;
    }
}
