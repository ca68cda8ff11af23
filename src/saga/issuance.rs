//! The issuance saga: approved requests become certificates.
//!
//! [`IssuanceFeed`] follows the event feed and creates one job per approved request, in the
//! transaction that moves its checkpoint. [`IssuanceWorker`] runs them on the job runtime
//! ([`policy::ISSUANCE`](crate::jobs::policy::ISSUANCE)), and for each: marks the request in
//! progress, writes `issuance_submissions.submitting_at` (committed) before calling the CA
//! and the CA's request id right after it,
//! polls while the CA holds the request, stores certificate, chain and encrypted key in the
//! artifact store, and records the certificate. No transaction is open while the CA is
//! called. A job found with `submitting_at` but no CA request id was interrupted at the one
//! moment where it is unknown whether the CA got the CSR: it is handed to an operator
//! (`needs_operator`) rather than submitted again — unless the CA answers a repeated order
//! with the same certificate (ACM, whose idempotency token is the request's id).
//!
//! A request goes to its own CA: the internal one, or the public one (ACM) when one is
//! configured; a request for the public CA is never issued by the internal one.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::adapters::artifacts::ArtifactStore;
use crate::adapters::ca::{CaError, CertificateAuthority, Order, Submission};
use crate::commands::{CommandError, Commands};
use crate::domain::actor::Actor;
use crate::domain::certificate::{AcmCertificate, IssuedCertificate, StorageKeys};
use crate::domain::key_material::EncryptedPrivateKey;
use crate::domain::notification::{Channel, Message, NotificationType};
use crate::domain::request::{RequestEvent, RequestStatus, Subject};
use crate::domain::values::{
    CaType, CertificateType, KeyAlgorithm, RequestNumber, SerialNumber, ValidityDays,
};
use crate::feed::{DomainEvent, FeedConsumer, StoredEvent};
use crate::jobs::{self, Claimed, JobError, JobWorker, NewJob, Policy};

pub(crate) mod returned;
pub(crate) use returned::Returned;

/// The feed consumer's checkpoint name.
pub const ISSUANCE: &str = "issuance";

/// Namespace of certificate ids: one certificate per request, whatever retries happen.
const CERTIFICATE_NAMESPACE: Uuid = Uuid::from_u128(0x9b3e_57c1_2d4a_4e8f_a1c6_0f7d_38e2_b5a9);

/// An approved request to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuanceJob {
    /// The request.
    pub request_id: Uuid,
}

/// Creates a job for every approved request.
#[derive(Debug, Clone, Copy, Default)]
pub struct IssuanceFeed;

impl FeedConsumer for IssuanceFeed {
    fn name(&self) -> &'static str {
        ISSUANCE
    }

    async fn apply(&self, conn: &mut PgConnection, event: &StoredEvent) -> anyhow::Result<()> {
        let Some(DomainEvent::Request(RequestEvent::RequestApproved { .. })) = event.decode()?
        else {
            return Ok(());
        };
        let request_id = event.aggregate_uuid()?;
        jobs::enqueue(
            conn,
            NewJob {
                id: request_id,
                kind: ISSUANCE,
                ordering_key: None,
                payload: &IssuanceJob { request_id },
                traceparent: event.traceparent(),
            },
        )
        .await
    }
}

/// What the request asked for, from its creation event.
struct Asked {
    number: RequestNumber,
    requester: Actor,
    subject: Subject,
    certificate_type: CertificateType,
    key_algorithm: KeyAlgorithm,
    validity_days: ValidityDays,
    csr_pem: String,
    private_key: Option<EncryptedPrivateKey>,
    ca_type: CaType,
    stays_in_acm: bool,
}

/// Whether the request's CSR names exactly what its subject states.
fn names_as_stated(asked: &Asked) -> Result<(), crate::pki::csr::CsrError> {
    let csr = crate::pki::csr::parse(&asked.csr_pem)?;
    crate::pki::csr::check_matches(&csr, &asked.subject, Some(asked.key_algorithm))
}

/// Claims and runs issuance jobs.
#[derive(Debug, Clone)]
pub struct IssuanceWorker {
    commands: Commands,
    ca: Arc<dyn CertificateAuthority>,
    public: Option<Arc<dyn CertificateAuthority>>,
    store: Arc<dyn ArtifactStore>,
}

/// What became of a job this time.
enum Outcome {
    Done,
    Failed,
    PollAgain(String),
    RetryLater(String),
    NeedsOperator(String),
}

impl IssuanceWorker {
    /// A worker issuing through `ca` and storing in `store`.
    pub fn new(
        commands: Commands,
        ca: Arc<dyn CertificateAuthority>,
        store: Arc<dyn ArtifactStore>,
    ) -> Self {
        Self {
            commands,
            ca,
            public: None,
            store,
        }
    }

    /// Issues requests for the public CA through `public` (ACM).
    #[must_use]
    pub fn with_public_ca(mut self, public: Option<Arc<dyn CertificateAuthority>>) -> Self {
        self.public = public;
        self
    }

    fn pool(&self) -> &PgPool {
        self.commands.pool()
    }

    /// Claims due jobs and runs them; returns how many were claimed.
    pub async fn step(&self) -> anyhow::Result<usize> {
        jobs::step(self.pool(), self).await
    }

    /// Where an earlier attempt got to: when it began submitting, and the CA's request id.
    async fn submission(
        &self,
        request_id: Uuid,
    ) -> anyhow::Result<(Option<DateTime<Utc>>, Option<String>)> {
        let row: Option<(Option<DateTime<Utc>>, Option<String>)> = sqlx::query_as(
            "SELECT submitting_at, ca_request_id FROM issuance_submissions WHERE request_id = $1",
        )
        .bind(request_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.unwrap_or_default())
    }

    /// Records, committed, that the CSR is about to go to the CA (`Some(now)`) or that
    /// nothing is outstanding there (`None`).
    async fn mark_submitting(&self, request_id: Uuid, submitting: bool) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO issuance_submissions (request_id, submitting_at) \
             VALUES ($1, CASE WHEN $2 THEN now() END) \
             ON CONFLICT (request_id) DO UPDATE \
                SET submitting_at = EXCLUDED.submitting_at, updated_at = now()",
        )
        .bind(request_id)
        .bind(submitting)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn record_ca_request_id(&self, request_id: Uuid, id: &str) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE issuance_submissions SET ca_request_id = $2, updated_at = now() \
              WHERE request_id = $1",
        )
        .bind(request_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    async fn polling_interval(&self) -> anyhow::Result<Duration> {
        let value = crate::db::setting(self.pool(), "adcs.polling.interval_seconds").await?;
        let seconds = value
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .unwrap_or(30.0);
        Ok(Duration::from_secs_f64(seconds.min(86_400.0)))
    }

    async fn max_retries(&self) -> anyhow::Result<u32> {
        let value = crate::db::setting(self.pool(), "issuance.max_retries").await?;
        Ok(value.and_then(|v| v.trim().parse().ok()).unwrap_or(5))
    }

    async fn asked(&self, request_id: Uuid) -> anyhow::Result<Asked> {
        let created = crate::eventstore::request_creation(self.pool(), request_id)
            .await?
            .with_context(|| format!("request {request_id} has no creation event"))?;
        let RequestEvent::RequestCreated {
            request_number,
            requester,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr_pem,
            private_key,
            requested_ca_type,
            stays_in_acm,
            ..
        } = created
        else {
            anyhow::bail!("the request's first event is not its creation");
        };
        Ok(Asked {
            number: request_number,
            requester,
            subject,
            certificate_type,
            key_algorithm,
            validity_days,
            csr_pem,
            private_key,
            ca_type: requested_ca_type,
            stays_in_acm,
        })
    }

    async fn run_job(&self, request_id: Uuid) -> anyhow::Result<Outcome> {
        let status = self.commands.request_status(request_id).await?;
        match status {
            Some(RequestStatus::Approved) => self.commands.start_issuance(request_id).await?,
            Some(RequestStatus::InProgress) => {}
            // Cancelled, failed, issued (a finished earlier attempt), ...: nothing to do.
            _ => return Ok(Outcome::Done),
        }
        let asked = self.asked(request_id).await?;
        // The request's CA: the internal one, or the public one (ACM) when it is configured.
        // A request for the public CA is never issued by the internal one as if it were
        // public (one stored while no public CA was configured, for instance).
        let ca: &dyn CertificateAuthority = match (asked.ca_type, &self.public) {
            (CaType::Internal, _) => self.ca.as_ref(),
            (CaType::Public, Some(public)) => public.as_ref(),
            (CaType::Public, None) => {
                let why = format!(
                    "not sent to the {}: the request is for a public certificate, which the {} \
                     cannot issue, and no public CA (AWS Certificate Manager) is configured",
                    self.ca.name(),
                    self.ca.name()
                );
                self.failed(request_id, &asked, &why).await?;
                return Ok(Outcome::Failed);
            }
        };
        let (submitting, ca_request_id) = self.submission(request_id).await?;
        let answer = match ca_request_id {
            Some(id) => ca.retrieve(&id).await,
            None => {
                if submitting.is_some() && !ca.resubmits_safely() {
                    return Ok(Outcome::NeedsOperator(format!(
                        "{} was being submitted to the {} when the worker stopped; it is \
                         unknown whether the CA received it. Check the CA, then resolve the \
                         request by hand (it was not submitted again).",
                        asked.number,
                        ca.name()
                    )));
                }
                // The CA sees the CSR; certsrv takes names from it. It names what the
                // request states and nothing more, or it is not sent (a request stored
                // before this check existed, or a CSR that was altered since).
                if let Err(error) = names_as_stated(&asked) {
                    let why = format!("not sent to the {}: {error}", ca.name());
                    self.failed(request_id, &asked, &why).await?;
                    return Ok(Outcome::Failed);
                }
                self.mark_submitting(request_id, true).await?;
                let answer = ca
                    .submit(Order {
                        csr_pem: &asked.csr_pem,
                        subject: &asked.subject,
                        certificate_type: asked.certificate_type,
                        validity_days: asked.validity_days.days(),
                        reference: &request_id.simple().to_string(),
                        exportable: !asked.stays_in_acm,
                    })
                    .await;
                if let Ok(
                    Submission::Issued { ca_request_id, .. }
                    | Submission::Pending { ca_request_id },
                ) = &answer
                {
                    self.record_ca_request_id(request_id, ca_request_id).await?;
                } else {
                    // Denied or not reached: nothing is outstanding at the CA.
                    self.mark_submitting(request_id, false).await?;
                }
                answer
            }
        };
        match answer {
            Ok(Submission::Issued {
                ca_request_id,
                certificate_pem,
                chain_pem,
                private_key,
            }) => {
                tolerate(
                    self.commands
                        .record_ca_request(request_id, &ca_request_id, "issued")
                        .await,
                )?;
                let returned = match Returned::read(&certificate_pem, &asked.subject) {
                    Ok(returned) => returned,
                    Err(problem) => {
                        // Issued at the CA, but not what was approved: final, not retried.
                        let why = format!(
                            "the {} issued a certificate that is not recorded, because {problem}; \
                             it must be revoked at the CA (its request {ca_request_id})",
                            ca.name()
                        );
                        self.failed(request_id, &asked, &why).await?;
                        return Ok(Outcome::NeedsOperator(why));
                    }
                };
                // A key the CA made (ACM's export) is sealed at once and is the certificate's.
                // ACM always makes the key: the one generated with the request is not it.
                let mut asked = asked;
                if let Some(key) = private_key {
                    use secrecy::ExposeSecret as _;
                    asked.private_key = Some(
                        self.commands
                            .seal_private_key(key.0.expose_secret())
                            .await?,
                    );
                } else if asked.ca_type == CaType::Public {
                    asked.private_key = None;
                }
                // The public CA knows it by its ARN: what revocation and renewal ask about.
                let acm = (asked.ca_type == CaType::Public).then(|| AcmCertificate {
                    arn: ca_request_id.clone(),
                    exported: !asked.stays_in_acm,
                });
                self.issued(
                    request_id,
                    &asked,
                    returned,
                    Pem {
                        certificate: &certificate_pem,
                        chain: &chain_pem,
                    },
                    acm,
                )
                .await?;
                Ok(Outcome::Done)
            }
            Ok(Submission::Pending { ca_request_id }) => {
                tolerate(
                    self.commands
                        .record_ca_request(request_id, &ca_request_id, "pending")
                        .await,
                )?;
                self.ask_for_validation(ca, request_id, &asked, &ca_request_id, submitting)
                    .await;
                Ok(Outcome::PollAgain(format!(
                    "{} holds the request",
                    ca.name()
                )))
            }
            Ok(Submission::Denied { message }) | Err(CaError::Permanent(message)) => {
                self.failed(request_id, &asked, &message).await?;
                Ok(Outcome::Failed)
            }
            Err(CaError::Transient(message)) => {
                let retries = self.commands.schedule_retry(request_id, &message).await?;
                if retries > self.max_retries().await? {
                    let why = format!("gave up after {retries} attempts: {message}");
                    self.failed(request_id, &asked, &why).await?;
                    return Ok(Outcome::Failed);
                }
                Ok(Outcome::RetryLater(message))
            }
        }
    }

    async fn failed(&self, request_id: Uuid, asked: &Asked, why: &str) -> anyhow::Result<()> {
        self.commands.fail_issuance(request_id, why).await?;
        self.tell(
            request_id,
            asked,
            NotificationType::IssuanceFailed,
            format!("{} could not be issued", asked.number),
            format!(
                "The certificate for {} could not be issued.\n\nThe CA said: {why}\n",
                asked.number
            ),
        )
        .await;
        Ok(())
    }

    async fn issued(
        &self,
        request_id: Uuid,
        asked: &Asked,
        returned: Returned,
        pem: Pem<'_>,
        acm: Option<AcmCertificate>,
    ) -> anyhow::Result<()> {
        let storage = store_artifacts(
            self.store.as_ref(),
            &asked.number,
            &returned.serial,
            pem,
            asked.private_key.as_ref(),
        )
        .await?;
        let certificate = IssuedCertificate {
            certificate_id: Uuid::new_v5(&CERTIFICATE_NAMESPACE, request_id.as_bytes()),
            request_id,
            request_number: asked.number.clone(),
            owner: asked.requester.clone(),
            serial_number: returned.serial.clone(),
            thumbprint_sha1: returned.thumbprint_sha1,
            thumbprint_sha256: returned.thumbprint_sha256,
            common_name: returned.common_name,
            subject_dn: returned.subject_dn,
            issuer_dn: returned.issuer_dn,
            subject_alternative_names: returned.subject_alternative_names,
            valid_from: returned.valid_from,
            valid_to: returned.valid_to,
            key_algorithm: asked.key_algorithm,
            key_size: asked.key_algorithm.key_size(),
            signature_algorithm: returned.signature_algorithm,
            storage,
            private_key: asked.private_key.clone(),
            acm,
        };
        let valid_to = certificate.valid_to;
        let serial = certificate.serial_number.clone();
        tolerate(self.commands.record_issuance(certificate).await)?;
        tracing::info!(request = %asked.number, "certificate issued");
        self.tell(
            request_id,
            asked,
            NotificationType::CertificateIssued,
            format!("Your certificate for {} is ready", asked.number),
            format!(
                "The certificate you requested with {} is issued.\n\nSerial: {serial}\nValid until: {}\n",
                asked.number,
                valid_to.format("%Y-%m-%d %H:%M UTC")
            ),
        )
        .await;
        Ok(())
    }

    /// When the CA waits for DNS records (ACM), tells the requester which to create: once as
    /// soon as the CA names them, then once a day while it still waits (`waiting_since` is
    /// when the request went to the CA). A failure here is logged and tried at the next poll.
    async fn ask_for_validation(
        &self,
        ca: &dyn CertificateAuthority,
        request_id: Uuid,
        asked: &Asked,
        ca_request_id: &str,
        waiting_since: Option<DateTime<Utc>>,
    ) {
        let kind = NotificationType::ValidationRequired;
        let days = waiting_since.map_or(0, |since| (Utc::now() - since).num_days().max(0));
        let id = if days == 0 {
            format!("{request_id}/{kind}")
        } else {
            format!("{request_id}/{kind}/{days}")
        };
        let id = Uuid::new_v5(&CERTIFICATE_NAMESPACE, id.as_bytes());
        let told = crate::eventstore::notification_exists(self.pool(), id).await;
        if !matches!(told, Ok(false)) {
            return;
        }
        let records = match ca.validation_records(ca_request_id).await {
            Ok(records) if !records.is_empty() => records,
            Ok(_) => return,
            Err(error) => {
                tracing::warn!(request = %asked.number, %error, "could not read the DNS records the CA waits for");
                return;
            }
        };
        // Recorded on the request (once), for `/cert status` and `request show`.
        if days == 0
            && let Err(error) = self
                .commands
                .record_validation_records(request_id, records.clone())
                .await
        {
            tracing::warn!(request = %asked.number, %error, "could not record the DNS records the CA waits for");
        }
        let still = match days {
            0 => String::new(),
            1 => "It has been waiting for a day. ".to_owned(),
            days => format!("It has been waiting for {days} days. "),
        };
        let mut body = format!(
            "{still}{} waits for these DNS records before it issues the certificate for {}. \
             Create them in the zone of each name (and keep them: {} renews with them):\n\n",
            ca.name(),
            asked.number,
            ca.name()
        );
        if days > 0 {
            body.insert_str(
                0,
                &format!(
                    "Reminder: {} still cannot validate the names; it gives up 72 hours after \
                     the request, and the request then fails.\n\n",
                    ca.name()
                ),
            );
        }
        for record in &records {
            let done = record.created_in.as_ref().map_or_else(String::new, |zone| {
                format!("  (created for you in the Route 53 zone {zone})\n")
            });
            body.push_str(&format!(
                "{}\n  {} {} {}\n{done}\n",
                record.domain, record.name, record.record_type, record.value
            ));
        }
        let subject = if days == 0 {
            format!("{}: create DNS records to validate the names", asked.number)
        } else {
            format!(
                "{}: the DNS validation records are still missing",
                asked.number
            )
        };
        self.tell_as(id, request_id, asked, kind, subject, body)
            .await;
    }

    /// Queues an e-mail to the requester; a failure here never undoes the issuance.
    async fn tell(
        &self,
        request_id: Uuid,
        asked: &Asked,
        kind: NotificationType,
        subject: String,
        body: String,
    ) {
        let id = Uuid::new_v5(
            &CERTIFICATE_NAMESPACE,
            format!("{request_id}/{kind}").as_bytes(),
        );
        self.tell_as(id, request_id, asked, kind, subject, body)
            .await;
    }

    /// The same, as notification `id` (a reminder of its own).
    async fn tell_as(
        &self,
        id: Uuid,
        request_id: Uuid,
        asked: &Asked,
        kind: NotificationType,
        subject: String,
        body: String,
    ) {
        let message = Message {
            recipient: asked.requester.clone(),
            notification_type: kind,
            subject,
            body,
            channel: Channel::Email,
            resource_type: Some("request".to_owned()),
            resource_id: Some(request_id),
        };
        if let Err(error) = self.commands.queue_notification_as(id, message).await {
            tracing::warn!(%request_id, %error, "could not queue the requester's e-mail");
        }
    }

    /// Runs until `stopped` turns true, checking for due jobs every second.
    pub async fn run(self, stopped: tokio::sync::watch::Receiver<bool>) {
        tracing::info!(ca = %self.ca.name(), "issuance worker started");
        jobs::run(&self.pool().clone(), &self, stopped).await;
    }
}

impl JobWorker for IssuanceWorker {
    type Payload = IssuanceJob;

    fn kind(&self) -> &'static str {
        ISSUANCE
    }

    fn policy(&self) -> &'static Policy {
        &jobs::policy::ISSUANCE
    }

    async fn perform(&self, job: &Claimed<IssuanceJob>) -> Result<jobs::Outcome, JobError> {
        let request_id = job.payload.request_id;
        match self.run_job(request_id).await {
            Ok(Outcome::Done | Outcome::Failed) => Ok(jobs::Outcome::Done),
            Ok(Outcome::PollAgain(note)) => Ok(jobs::Outcome::Later {
                after: self.polling_interval().await?,
                note,
            }),
            Ok(Outcome::RetryLater(why)) => Err(JobError::Transient(anyhow::anyhow!(why))),
            Ok(Outcome::NeedsOperator(why)) => {
                tracing::error!(%request_id, %why, "issuance needs an operator");
                Err(JobError::permanent(format!("needs an operator: {why}")))
            }
            Err(error) => Err(JobError::Transient(error)),
        }
    }
}

/// A certificate and its chain as the CA returned them, PEM.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pem<'a> {
    pub(crate) certificate: &'a str,
    pub(crate) chain: &'a str,
}

/// Stores certificate, chain and encrypted key under the request's number and the serial;
/// returns where. Idempotent: a retry after a crash finds the same bytes already stored.
pub(crate) async fn store_artifacts(
    store: &dyn ArtifactStore,
    number: &RequestNumber,
    serial: &SerialNumber,
    pem: Pem<'_>,
    private_key: Option<&EncryptedPrivateKey>,
) -> anyhow::Result<StorageKeys> {
    async fn put(store: &dyn ArtifactStore, key: &str, bytes: Vec<u8>) -> anyhow::Result<()> {
        if let Err(error) = store.put(key, bytes.clone()).await {
            match store.get(key).await {
                Ok(existing) if existing == bytes => {}
                _ => return Err(error),
            }
        }
        Ok(())
    }
    let base = format!("certificates/{number}/{serial}");
    let certificate = format!("{base}.pem");
    let chain = format!("{base}.chain.pem");
    put(store, &certificate, pem.certificate.as_bytes().to_vec()).await?;
    put(store, &chain, pem.chain.as_bytes().to_vec()).await?;
    let private_key = match private_key {
        Some(key) => {
            let key_key = format!("{base}.key.json");
            put(store, &key_key, serde_json::to_vec_pretty(key)?).await?;
            Some(key_key)
        }
        None => None,
    };
    Ok(StorageKeys {
        bucket: store.bucket(),
        certificate,
        chain: Some(chain),
        private_key,
    })
}

/// A step that a crashed earlier attempt already took is not an error.
fn tolerate(result: Result<(), CommandError>) -> anyhow::Result<()> {
    match result {
        Ok(()) => Ok(()),
        Err(CommandError::Refused(message))
            if message.contains("already recorded") || message.contains("is issued") =>
        {
            Ok(())
        }
        Err(error) => Err(anyhow::anyhow!("{error}")),
    }
}
