//! AWS Certificate Manager as the public CA. A request becomes `RequestCertificate` with DNS
//! validation, exportable, with an idempotency token derived from the request (a restart or
//! a second replica asks once); `DescribeCertificate` answers while ACM waits for the
//! validation records, and once it is `ISSUED` the certificate is exported with a one-time
//! passphrase: certificate, chain, and the private key (decrypted here, sealed by the saga).
//! ACM makes the key; the request's CSR is not used. A certificate for AWS services
//! (load balancers, CloudFront, API Gateway) is requested not exportable: it stays in ACM,
//! and only its certificate and chain (`GetCertificate`) are kept here.
//!
//! ACM renews its public certificates itself, under the same ARN: [`AcmCa::renewed`] notices
//! a certificate valid past the one recorded and exports it again. Revocation is
//! `RevokeCertificate`, which ACM offers for exported certificates.

use aws_sdk_acm::primitives::Blob;
use aws_sdk_acm::types::{
    CertificateDetail, CertificateExport, CertificateOptions, CertificateStatus,
    KeyAlgorithm as AcmKeyAlgorithm, ValidationMethod,
};
use base64::Engine as _;

use super::{
    AtCa, CaError, CertificateAuthority, HandedKey, Order, Renewed, Submission, ValidationRecord,
};
use crate::domain::values::{KeyAlgorithm, RevocationReason};
use crate::ports::BoxFuture;

/// AWS Certificate Manager.
#[derive(Debug, Clone)]
pub struct AcmCa {
    client: aws_sdk_acm::Client,
    zones: Option<Route53Zones>,
}

/// Route 53 hosted zones where ACM's validation records are created for the names they cover.
#[derive(Debug, Clone)]
pub struct Route53Zones {
    client: aws_sdk_route53::Client,
    zone_ids: Vec<String>,
}

impl Route53Zones {
    /// The zones `zone_ids`, through the default AWS configuration chain, optionally at
    /// another endpoint. Route 53 is global: without a region in the environment it is
    /// signed for `us-east-1`, as AWS documents.
    pub async fn new(
        zone_ids: Vec<String>,
        endpoint: Option<String>,
        credentials: Option<crate::adapters::aws::Credentials>,
    ) -> Self {
        let mut config =
            crate::adapters::aws::sdk_config_with(None, endpoint.as_deref(), credentials).await;
        if config.region().is_none() {
            config = config
                .into_builder()
                .region(aws_config::Region::new("us-east-1"))
                .build();
        }
        Self::from_client(aws_sdk_route53::Client::new(&config), zone_ids)
    }

    /// The zones `zone_ids` through `client`.
    pub fn from_client(client: aws_sdk_route53::Client, zone_ids: Vec<String>) -> Self {
        Self { client, zone_ids }
    }

    /// Creates (UPSERT) each record that falls in one of the zones, noting where.
    async fn create(&self, records: &mut [ValidationRecord]) -> anyhow::Result<()> {
        use aws_sdk_route53::types::{
            Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
        };
        let mut zones = Vec::new();
        for id in &self.zone_ids {
            let zone = self.client.get_hosted_zone().id(id).send().await?;
            if let Some(name) = zone.hosted_zone().map(|z| z.name().trim_end_matches('.')) {
                zones.push((id.clone(), name.to_ascii_lowercase()));
            }
        }
        for record in records.iter_mut() {
            let host = record.name.trim_end_matches('.').to_ascii_lowercase();
            let Some((id, zone)) = zones
                .iter()
                .filter(|(_, zone)| host == *zone || host.ends_with(&format!(".{zone}")))
                .max_by_key(|(_, zone)| zone.len())
            else {
                continue;
            };
            let set = ResourceRecordSet::builder()
                .name(&record.name)
                .r#type(RrType::from(record.record_type.as_str()))
                .ttl(300)
                .resource_records(ResourceRecord::builder().value(&record.value).build()?)
                .build()?;
            let change = Change::builder()
                .action(ChangeAction::Upsert)
                .resource_record_set(set)
                .build()?;
            self.client
                .change_resource_record_sets()
                .hosted_zone_id(id)
                .change_batch(
                    ChangeBatch::builder()
                        .comment("ACM DNS validation (cert-assistant)")
                        .changes(change)
                        .build()?,
                )
                .send()
                .await?;
            record.created_in = Some(zone.clone());
        }
        Ok(())
    }
}

impl AcmCa {
    /// ACM with the default AWS configuration chain (region and credentials from the
    /// environment, profile or instance), as S3 and SES use it, optionally at another endpoint.
    /// `credentials`, when given, replace the chain's.
    pub async fn new(
        region: Option<String>,
        endpoint: Option<String>,
        credentials: Option<crate::adapters::aws::Credentials>,
    ) -> Self {
        let config = crate::adapters::aws::sdk_config_with(
            region.as_deref(),
            endpoint.as_deref(),
            credentials,
        )
        .await;
        Self::from_client(aws_sdk_acm::Client::new(&config))
    }

    /// ACM through `client`.
    pub fn from_client(client: aws_sdk_acm::Client) -> Self {
        Self {
            client,
            zones: None,
        }
    }

    /// Creates validation records in `zones` for the names they cover.
    #[must_use]
    pub fn with_route53(mut self, zones: Option<Route53Zones>) -> Self {
        self.zones = zones;
        self
    }

    /// The DNS records ACM waits for, for the certificate `arn` (ACM fills them in a few
    /// seconds after the request), created in the Route 53 zones that cover them.
    async fn records(&self, arn: &str) -> Result<Vec<ValidationRecord>, CaError> {
        let certificate = self.describe(arn).await?;
        let mut records = Vec::new();
        for option in certificate.domain_validation_options() {
            if let Some(record) = option.resource_record() {
                records.push(ValidationRecord {
                    domain: option.domain_name().to_owned(),
                    name: record.name().to_owned(),
                    record_type: record.r#type().as_str().to_owned(),
                    value: record.value().to_owned(),
                    created_in: None,
                });
            }
        }
        if let Some(zones) = &self.zones
            && !records.is_empty()
            && let Err(error) = zones.create(&mut records).await
        {
            // The requester is told every record; those not created here, to create by hand.
            tracing::warn!(
                error = format!("{error:#}"),
                "could not create the validation records in Route 53"
            );
        }
        Ok(records)
    }

    async fn request(&self, order: Order<'_>) -> Result<Submission, CaError> {
        let key_algorithm = match order.subject.common_name.as_dns_name() {
            None => {
                return Ok(Submission::Denied {
                    message: format!(
                        "ACM certifies host names; {} is not one",
                        order.subject.common_name
                    ),
                });
            }
            Some(_) => key_algorithm(order.csr_pem)?,
        };
        let domain = order.subject.common_name.to_string();
        let others: Vec<String> = order
            .subject
            .subject_alternative_names
            .iter()
            .map(|name| name.as_ref().to_owned())
            .filter(|name| *name != domain)
            .collect();
        let mut request = self
            .client
            .request_certificate()
            .domain_name(&domain)
            .validation_method(ValidationMethod::Dns)
            .idempotency_token(token(order.reference))
            .key_algorithm(key_algorithm)
            .options(
                CertificateOptions::builder()
                    .export(if order.exportable {
                        CertificateExport::Enabled
                    } else {
                        CertificateExport::Disabled
                    })
                    .build(),
            );
        for name in others {
            request = request.subject_alternative_names(name);
        }
        let answer = request.send().await.map_err(|e| classify(&e))?;
        let arn = answer
            .certificate_arn()
            .ok_or_else(|| CaError::Transient("ACM answered without an ARN".to_owned()))?;
        self.status(arn).await
    }

    /// What ACM says of the certificate `arn`.
    async fn describe(&self, arn: &str) -> Result<CertificateDetail, CaError> {
        self.client
            .describe_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .map_err(|e| classify(&e))?
            .certificate
            .ok_or_else(|| CaError::Transient(format!("ACM does not describe {arn}")))
    }

    async fn status(&self, arn: &str) -> Result<Submission, CaError> {
        let certificate = self.describe(arn).await?;
        match certificate.status() {
            Some(CertificateStatus::PendingValidation) | None => Ok(Submission::Pending {
                ca_request_id: arn.to_owned(),
            }),
            Some(CertificateStatus::Issued) => {
                let exported = self.fetch(arn, &certificate).await?;
                Ok(Submission::Issued {
                    ca_request_id: arn.to_owned(),
                    certificate_pem: exported.certificate_pem,
                    chain_pem: exported.chain_pem,
                    private_key: exported.private_key,
                })
            }
            Some(CertificateStatus::ValidationTimedOut) => Ok(Submission::Denied {
                message: "ACM gave up waiting for the DNS validation records (it waits 72 \
                          hours) and will not issue this certificate (VALIDATION_TIMED_OUT); \
                          create the records shown and request it again"
                    .to_owned(),
            }),
            Some(status) => {
                let reason = certificate
                    .failure_reason()
                    .map_or_else(String::new, |r| format!(" ({})", r.as_str()));
                Ok(Submission::Denied {
                    message: format!("ACM: the certificate is {}{reason}", status.as_str()),
                })
            }
        }
    }

    /// The certificate ACM renewed under `arn`, exported, when it is valid past `valid_to`.
    async fn renewed(
        &self,
        arn: &str,
        valid_to: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<Renewed>, CaError> {
        let certificate = self.describe(arn).await?;
        let not_after = certificate
            .not_after()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
        let newer = not_after.is_some_and(|t| t > valid_to + chrono::Duration::minutes(1));
        if certificate.status() != Some(&CertificateStatus::Issued) || !newer {
            return Ok(None);
        }
        self.fetch(arn, &certificate).await.map(Some)
    }

    /// The issued certificate `arn`: exported with its key when ACM allows it (it was
    /// requested exportable), otherwise certificate and chain alone (its key stays in ACM).
    async fn fetch(&self, arn: &str, certificate: &CertificateDetail) -> Result<Renewed, CaError> {
        let exportable = certificate.options().and_then(CertificateOptions::export)
            == Some(&CertificateExport::Enabled);
        if exportable {
            return self.export(arn).await;
        }
        let got = self
            .client
            .get_certificate()
            .certificate_arn(arn)
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let certificate_pem = got
            .certificate()
            .ok_or_else(|| CaError::Transient("ACM returned no certificate".to_owned()))?;
        Ok(Renewed {
            certificate_pem: certificate_pem.to_owned(),
            chain_pem: got.certificate_chain().unwrap_or_default().to_owned(),
            private_key: None,
        })
    }

    async fn export(&self, arn: &str) -> Result<Renewed, CaError> {
        // A one-time passphrase for this export; the key is decrypted here at once.
        let mut secret = [0u8; 32];
        aws_lc_rs::rand::fill(&mut secret)
            .map_err(|_| CaError::Transient("no randomness for a passphrase".to_owned()))?;
        let passphrase = base64::engine::general_purpose::STANDARD.encode(secret);
        let exported = self
            .client
            .export_certificate()
            .certificate_arn(arn)
            .passphrase(Blob::new(passphrase.as_bytes()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let (Some(certificate_pem), Some(encrypted)) =
            (exported.certificate(), exported.private_key())
        else {
            return Err(CaError::Transient(
                "ACM exported no certificate or no key".to_owned(),
            ));
        };
        let private_key = decrypt(encrypted, passphrase.as_bytes())?;
        Ok(Renewed {
            certificate_pem: certificate_pem.to_owned(),
            chain_pem: exported.certificate_chain().unwrap_or_default().to_owned(),
            private_key: Some(HandedKey(private_key.into())),
        })
    }

    async fn revoke_exported(
        &self,
        certificate: AtCa<'_>,
        reason: RevocationReason,
    ) -> Result<(), CaError> {
        use aws_sdk_acm::types::RevocationReason as Acm;
        let Some(arn) = certificate.ca_request_id else {
            return Err(CaError::Permanent(format!(
                "ACM knows certificates by ARN, and none is recorded for serial {}",
                certificate.serial
            )));
        };
        let reason = match reason {
            RevocationReason::Unspecified => Acm::Unspecified,
            RevocationReason::KeyCompromise => Acm::KeyCompromise,
            RevocationReason::CaCompromise => Acm::CaCompromise,
            RevocationReason::AffiliationChanged => Acm::AffiliationChanged,
            RevocationReason::Superseded => Acm::Superseded,
            RevocationReason::CessationOfOperation => Acm::CessationOfOperation,
            RevocationReason::CertificateHold => Acm::CertificateHold,
            RevocationReason::RemoveFromCrl => Acm::RemoveFromCrl,
        };
        let answer = self
            .client
            .revoke_certificate()
            .certificate_arn(arn)
            .revocation_reason(reason)
            .send()
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(error) => {
                // A worker that crashed after ACM revoked it asks again: already revoked is done.
                if let Ok(described) = self.describe(arn).await
                    && described.status() == Some(&CertificateStatus::Revoked)
                {
                    return Ok(());
                }
                Err(classify(&error))
            }
        }
    }
}

impl CertificateAuthority for AcmCa {
    fn submit<'a>(&'a self, order: Order<'a>) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(self.request(order))
    }

    fn retrieve<'a>(
        &'a self,
        ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(self.status(ca_request_id))
    }

    fn ca_chain(&self) -> BoxFuture<'_, Result<String, CaError>> {
        Box::pin(async {
            Err(CaError::Permanent(
                "ACM hands out each certificate's chain with it".to_owned(),
            ))
        })
    }

    fn revoke<'a>(
        &'a self,
        certificate: AtCa<'a>,
        reason: RevocationReason,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(self.revoke_exported(certificate, reason))
    }

    fn renewal<'a>(
        &'a self,
        ca_request_id: &'a str,
        valid_to: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<Option<Renewed>, CaError>> {
        Box::pin(self.renewed(ca_request_id, valid_to))
    }

    fn name(&self) -> String {
        "AWS Certificate Manager".to_owned()
    }

    fn validation_records<'a>(
        &'a self,
        ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, CaError>> {
        Box::pin(self.records(ca_request_id))
    }

    fn resubmits_safely(&self) -> bool {
        // The idempotency token is the request's id: ACM answers the same certificate.
        true
    }
}

/// ACM's idempotency token: up to 32 word characters, from the request's reference.
fn token(reference: &str) -> String {
    reference
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(32)
        .collect()
}

/// The key algorithm ACM offers for public certificates that matches the request's (read
/// from its CSR, which states it); ACM offers no RSA-4096 public certificates.
fn key_algorithm(csr_pem: &str) -> Result<AcmKeyAlgorithm, CaError> {
    let csr = crate::pki::csr::parse(csr_pem)
        .map_err(|e| CaError::Permanent(format!("the request's CSR is unreadable: {e}")))?;
    match csr.key_algorithm {
        KeyAlgorithm::EccP256 => Ok(AcmKeyAlgorithm::EcPrime256v1),
        KeyAlgorithm::EccP384 => Ok(AcmKeyAlgorithm::EcSecp384r1),
        KeyAlgorithm::Rsa2048 => Ok(AcmKeyAlgorithm::Rsa2048),
        other => Err(CaError::Permanent(format!(
            "ACM issues public certificates with ECC P-256, ECC P-384 or RSA 2048 keys, not {other}"
        ))),
    }
}

/// The exported key, decrypted (encrypted PKCS#8, PBES2), as a PKCS#8 PEM.
fn decrypt(encrypted_pem: &str, passphrase: &[u8]) -> Result<String, CaError> {
    use pkcs8::der::pem::LineEnding;
    let (_, document) = pkcs8::SecretDocument::from_pem(encrypted_pem)
        .map_err(|e| CaError::Permanent(format!("ACM's exported key is unreadable: {e}")))?;
    let encrypted = pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes())
        .map_err(|e| CaError::Permanent(format!("ACM's exported key is unreadable: {e}")))?;
    let decrypted = encrypted
        .decrypt(passphrase)
        .map_err(|e| CaError::Permanent(format!("ACM's exported key does not decrypt: {e}")))?;
    let pem = decrypted
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| CaError::Permanent(format!("ACM's exported key: {e}")))?;
    Ok(pem.to_string())
}

/// Throttling, 5xx and connection failures are worth retrying; the rest is ACM's answer.
fn classify<E, R>(error: &aws_sdk_acm::error::SdkError<E, R>) -> CaError
where
    E: aws_sdk_acm::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_acm::error::SdkError;
    let message = match error {
        SdkError::ServiceError(service) => {
            let inner = service.err();
            format!(
                "{}: {}",
                inner.code().unwrap_or("error"),
                inner.message().unwrap_or("no message")
            )
        }
        other => aws_sdk_acm::error::DisplayErrorContext(other).to_string(),
    };
    match error {
        SdkError::ServiceError(service)
            if !service
                .err()
                .code()
                .is_some_and(|c| c.contains("Throttl") || c.contains("RequestInProgress")) =>
        {
            CaError::Permanent(format!("ACM refused: {message}"))
        }
        _ => CaError::Transient(format!("ACM: {message}")),
    }
}
