//! The embedded CA: a root and an issuing CA made with rcgen on first start, kept in the
//! database with their keys encrypted (envelope encryption under the key-encryption key),
//! issuing real certificates with the extensions each type needs, a CRL distribution point,
//! and a signed CRL that reflects revocations.

use std::sync::Arc;

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, CrlDistributionPoint, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, RevokedCertParams,
};
use sqlx::{PgPool, Row};
use time::OffsetDateTime;

use super::{AtCa, CaError, CertificateAuthority, Order, Submission};
use crate::domain::key_material::EncryptedPrivateKey;
use crate::domain::request::Subject;
use crate::domain::values::{CertificateType, RevocationReason};
use crate::pki::envelope::KeyEncryptionKey;
use crate::ports::BoxFuture;

/// Whose names a certificate carries.
#[derive(Debug, Clone, Copy)]
pub enum Names<'a> {
    /// The request's validated subject, and nothing from the CSR but its key: the embedded CA.
    Stated(&'a Subject),
    /// Whatever the CSR asks for, as an ADCS template that takes the subject from the request
    /// does: the certsrv emulator only.
    AsInCsr,
    /// The CSR's alternative names under an empty subject, as an ADCS template whose subject
    /// name format is "None" issues: the certsrv emulator only.
    WithoutSubject,
}

/// A root and an issuing CA in memory, and the rules for what they sign. Shared by the
/// embedded CA (persisted) and the certsrv emulator (throw-away).
#[derive(Clone)]
pub struct Signer {
    root_pem: String,
    issuing_pem: String,
    issuer: Arc<Issuer<'static, KeyPair>>,
    crl_url: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("crl_url", &self.crl_url)
            .finish_non_exhaustive()
    }
}

/// The embedded CA.
#[derive(Debug)]
pub struct EmbeddedCa {
    pool: PgPool,
    signer: Signer,
    /// The last CRL signed, served until the revocations change or it nears `nextUpdate`.
    crl: tokio::sync::Mutex<Option<SignedCrl>>,
}

/// A revoked certificate as a CRL lists it: serial (hex), when, RFC 5280 reason code.
type Revoked = (String, chrono::DateTime<chrono::Utc>, Option<i16>);

/// A CRL as signed, with what it lists and when.
#[derive(Debug)]
struct SignedCrl {
    revoked: Vec<Revoked>,
    signed_at: chrono::DateTime<chrono::Utc>,
    der: Vec<u8>,
}

/// How long a CRL is valid (`nextUpdate - thisUpdate`).
const CRL_VALIDITY: chrono::Duration = chrono::Duration::days(1);
/// A CRL is signed again once it is this old, well before relying parties see it expire.
const CRL_RESIGN_AFTER: chrono::Duration = chrono::Duration::hours(12);

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "cert-assistant");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn ca_params(common_name: &str, years: i64) -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(common_name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.key_identifier_method = KeyIdMethod::Sha256;
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(365 * years);
    Ok(params)
}

impl EmbeddedCa {
    /// Loads the CA, creating root and issuing CA on first use (once, across replicas).
    /// Certificates point at `crl_url` for revocation.
    pub async fn load_or_create(
        pool: &PgPool,
        kek: &KeyEncryptionKey,
        crl_url: &str,
    ) -> anyhow::Result<Self> {
        let mut tx = pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cert-assistant embedded ca'))")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT name, certificate_pem, key_data_key, key_ciphertext FROM embedded_ca",
        )
        .fetch_all(&mut *tx)
        .await?;
        if rows.len() < 2 {
            let (root_pem, root_key, issuing_pem, issuing_key) = new_hierarchy()?;
            for (name, pem, key) in [
                ("root", root_pem, &root_key),
                ("issuing", issuing_pem, &issuing_key),
            ] {
                let (data_key, wrapped) = kek.new_data_key()?;
                let encrypted = data_key.encrypt(&key.serialize_pem())?;
                sqlx::query("INSERT INTO data_keys (id, kek_id, wrapped_key) VALUES ($1, $2, $3)")
                    .bind(wrapped.id)
                    .bind(&wrapped.kek_id)
                    .bind(&wrapped.wrapped)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO embedded_ca (name, certificate_pem, key_data_key, key_ciphertext) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(pem)
                .bind(encrypted.data_key_id)
                .bind(&encrypted.ciphertext)
                .execute(&mut *tx)
                .await?;
            }
            tracing::info!("embedded CA created (root and issuing CA)");
        }
        tx.commit().await?;
        Self::load(pool, kek, crl_url).await
    }

    async fn load(pool: &PgPool, kek: &KeyEncryptionKey, crl_url: &str) -> anyhow::Result<Self> {
        let rows = sqlx::query(
            "SELECT name, certificate_pem, key_data_key, key_ciphertext FROM embedded_ca",
        )
        .fetch_all(pool)
        .await?;
        let mut root_pem = None;
        let mut issuing = None;
        for row in rows {
            let name: String = row.try_get("name")?;
            let pem: String = row.try_get("certificate_pem")?;
            if name == "root" {
                root_pem = Some(pem);
                continue;
            }
            let data_key_id: uuid::Uuid = row.try_get("key_data_key")?;
            let ciphertext: String = row.try_get("key_ciphertext")?;
            let wrapped = crate::pki::key_store::load_data_key(pool, data_key_id)
                .await?
                .context("the embedded CA's key was destroyed")?;
            let key_pem = kek
                .unwrap(&wrapped)?
                .decrypt(&EncryptedPrivateKey {
                    data_key_id,
                    algorithm: crate::pki::envelope::ALGORITHM.to_owned(),
                    ciphertext,
                })
                .context(
                    "the embedded CA's key cannot be decrypted with this key-encryption key",
                )?;
            issuing = Some((pem, KeyPair::from_pem(&key_pem)?));
        }
        let root_pem = root_pem.context("the embedded CA has no root")?;
        let (issuing_pem, issuing_key) = issuing.context("the embedded CA has no issuing CA")?;
        Ok(Self {
            pool: pool.clone(),
            signer: Signer::from_parts(root_pem, issuing_pem, issuing_key, crl_url)?,
            crl: tokio::sync::Mutex::new(None),
        })
    }

    /// The root certificate, PEM (what relying parties trust).
    pub fn root_pem(&self) -> &str {
        self.signer.root_pem()
    }

    /// The chain below the root plus the root: issuing CA, then root.
    pub fn chain_pem(&self) -> String {
        self.signer.chain_pem()
    }

    /// The current CRL, DER, signed by the issuing CA. Anyone may fetch it, so it is signed
    /// (and numbered) again only when a revocation changed it or it is half-way to its
    /// `nextUpdate`; one signing at a time, the others wait for its result.
    pub async fn crl_der(&self) -> anyhow::Result<Vec<u8>> {
        let rows = sqlx::query(
            "SELECT serial, revoked_at, reason_code FROM embedded_ca_certificates \
              WHERE revoked_at IS NOT NULL ORDER BY revoked_at, serial",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut revoked: Vec<Revoked> = Vec::new();
        for row in rows {
            let serial: String = row.try_get("serial")?;
            let at: chrono::DateTime<chrono::Utc> = row.try_get("revoked_at")?;
            let code: Option<i16> = row.try_get("reason_code")?;
            revoked.push((serial, at, code));
        }
        let mut cached = self.crl.lock().await;
        let now = chrono::Utc::now();
        if let Some(crl) = cached.as_ref()
            && crl.revoked == revoked
            && now - crl.signed_at < CRL_RESIGN_AFTER
        {
            return Ok(crl.der.clone());
        }
        let number: i64 = sqlx::query_scalar("SELECT nextval('embedded_ca_crl_number')")
            .fetch_one(&self.pool)
            .await?;
        let der = self.signer.crl_der(number, &revoked)?;
        *cached = Some(SignedCrl {
            revoked,
            signed_at: now,
            der: der.clone(),
        });
        Ok(der)
    }
}

/// A fresh root and issuing CA: (root PEM, root key, issuing PEM, issuing key).
fn new_hierarchy() -> anyhow::Result<(String, KeyPair, String, KeyPair)> {
    let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let root_params = ca_params("cert-assistant Root CA", 20)?;
    let root = root_params.self_signed(&root_key)?;
    let root_issuer = Issuer::from_params(&root_params, &root_key);
    let issuing_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut issuing_params = ca_params("cert-assistant Issuing CA", 10)?;
    issuing_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    issuing_params.use_authority_key_identifier_extension = true;
    let issuing = issuing_params.signed_by(&issuing_key, &root_issuer)?;
    Ok((root.pem(), root_key, issuing.pem(), issuing_key))
}

impl Signer {
    /// A throw-away hierarchy, for the emulator and tests.
    pub fn generate(crl_url: &str) -> anyhow::Result<Self> {
        let (root_pem, _, issuing_pem, issuing_key) = new_hierarchy()?;
        Self::from_parts(root_pem, issuing_pem, issuing_key, crl_url)
    }

    fn from_parts(
        root_pem: String,
        issuing_pem: String,
        issuing_key: KeyPair,
        crl_url: &str,
    ) -> anyhow::Result<Self> {
        let issuer = Issuer::from_ca_cert_pem(&issuing_pem, issuing_key)?;
        Ok(Self {
            root_pem,
            issuing_pem,
            issuer: Arc::new(issuer),
            crl_url: crl_url.to_owned(),
        })
    }

    /// The root certificate, PEM.
    pub fn root_pem(&self) -> &str {
        &self.root_pem
    }

    /// The issuing CA's certificate, PEM.
    pub fn issuing_pem(&self) -> &str {
        &self.issuing_pem
    }

    /// Issuing CA, then root.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", self.issuing_pem, self.root_pem)
    }

    /// Signs the key of a CSR for `names`: returns the serial (upper-case hex) and the
    /// certificate PEM. A CSR that cannot be read is a permanent error whose message starts
    /// with "Error Parsing Request".
    pub fn issue(
        &self,
        csr_pem: &str,
        names: Names<'_>,
        certificate_type: CertificateType,
        validity_days: u32,
    ) -> Result<(String, String), CaError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| CaError::Permanent(format!("Error Parsing Request: {e}")))?;
        let mut params = match names {
            Names::Stated(subject) => crate::pki::names::params(subject).map_err(|e| {
                CaError::Permanent(format!("the request's names cannot be certified: {e}"))
            })?,
            Names::AsInCsr => csr.params,
            Names::WithoutSubject => {
                let mut params = csr.params;
                params.distinguished_name = DistinguishedName::new();
                params
            }
        };
        let mut serial = [0u8; 16];
        aws_lc_rs::rand::fill(&mut serial)
            .map_err(|_| CaError::Transient("no randomness for a serial number".to_owned()))?;
        serial[0] &= 0x7f;
        serial[0] |= 0x01;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(i64::from(validity_days));
        params.is_ca = IsCa::NoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match certificate_type {
            CertificateType::WebServer => vec![ExtendedKeyUsagePurpose::ServerAuth],
            CertificateType::Database | CertificateType::Vpn | CertificateType::Other => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            CertificateType::UserAuth => vec![ExtendedKeyUsagePurpose::ClientAuth],
            CertificateType::Email => vec![ExtendedKeyUsagePurpose::EmailProtection],
            CertificateType::CodeSigning => vec![ExtendedKeyUsagePurpose::CodeSigning],
        };
        params.crl_distribution_points = vec![CrlDistributionPoint {
            uris: vec![self.crl_url.clone()],
        }];
        params.use_authority_key_identifier_extension = true;
        let certificate = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| CaError::Permanent(format!("the CA could not sign the request: {e}")))?;
        let serial_hex: String = serial.iter().map(|b| format!("{b:02X}")).collect();
        Ok((serial_hex, certificate.pem()))
    }

    /// A CRL numbered `number` listing `revoked` (serial hex, when, RFC 5280 code), DER.
    pub fn crl_der(&self, number: i64, revoked: &[Revoked]) -> anyhow::Result<Vec<u8>> {
        let mut entries = Vec::new();
        for (serial, at, code) in revoked {
            let bytes: Vec<u8> = (0..serial.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(serial.get(i..i + 2)?, 16).ok())
                .collect();
            entries.push(RevokedCertParams {
                serial_number: rcgen::SerialNumber::from_slice(&bytes),
                revocation_time: OffsetDateTime::from_unix_timestamp(at.timestamp())?,
                reason_code: code.and_then(reason_code),
                invalidity_date: None,
            });
        }
        let now = OffsetDateTime::now_utc();
        let crl = CertificateRevocationListParams {
            this_update: now,
            next_update: now + time::Duration::seconds(CRL_VALIDITY.num_seconds()),
            crl_number: rcgen::SerialNumber::from_slice(&number.to_be_bytes()),
            issuing_distribution_point: None,
            revoked_certs: entries,
            key_identifier_method: KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)?;
        Ok(crl.der().to_vec())
    }
}

fn reason_code(code: i16) -> Option<rcgen::RevocationReason> {
    use rcgen::RevocationReason as R;
    Some(match code {
        0 => R::Unspecified,
        1 => R::KeyCompromise,
        2 => R::CaCompromise,
        3 => R::AffiliationChanged,
        4 => R::Superseded,
        5 => R::CessationOfOperation,
        6 => R::CertificateHold,
        8 => R::RemoveFromCrl,
        _ => return None,
    })
}

impl CertificateAuthority for EmbeddedCa {
    fn submit<'a>(&'a self, order: Order<'a>) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(async move {
            let validity_days = order.validity_days;
            let (serial, certificate_pem) = match self.signer.issue(
                order.csr_pem,
                Names::Stated(order.subject),
                order.certificate_type,
                validity_days,
            ) {
                Ok(issued) => issued,
                Err(CaError::Permanent(message)) => return Ok(Submission::Denied { message }),
                Err(error) => return Err(error),
            };
            sqlx::query(
                "INSERT INTO embedded_ca_certificates (serial, certificate_pem, not_after) \
                 VALUES ($1, $2, now() + make_interval(days => $3))",
            )
            .bind(&serial)
            .bind(&certificate_pem)
            .bind(i32::try_from(validity_days).unwrap_or(i32::MAX))
            .execute(&self.pool)
            .await
            .map_err(|e| CaError::Transient(e.to_string()))?;
            Ok(Submission::Issued {
                ca_request_id: serial,
                certificate_pem,
                chain_pem: self.chain_pem(),
                private_key: None,
            })
        })
    }

    fn retrieve<'a>(
        &'a self,
        ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(async move {
            let pem: Option<String> = sqlx::query_scalar(
                "SELECT certificate_pem FROM embedded_ca_certificates WHERE serial = $1",
            )
            .bind(ca_request_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| CaError::Transient(e.to_string()))?;
            Ok(match pem {
                Some(certificate_pem) => Submission::Issued {
                    ca_request_id: ca_request_id.to_owned(),
                    certificate_pem,
                    chain_pem: self.chain_pem(),
                    private_key: None,
                },
                None => Submission::Denied {
                    message: "The requested property value is empty. 0x80094004".to_owned(),
                },
            })
        })
    }

    fn revoke<'a>(
        &'a self,
        certificate: AtCa<'a>,
        reason: RevocationReason,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        let serial = certificate.serial;
        Box::pin(async move {
            let updated = sqlx::query(
                "UPDATE embedded_ca_certificates SET revoked_at = now(), reason_code = $2 \
                  WHERE serial = $1 AND revoked_at IS NULL",
            )
            .bind(serial)
            .bind(i16::from(reason.code()))
            .execute(&self.pool)
            .await
            .map_err(|e| CaError::Transient(e.to_string()))?;
            if updated.rows_affected() > 0 {
                return Ok(());
            }
            // Revoking twice is not an error: a worker that crashed after revoking retries.
            let known: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM embedded_ca_certificates WHERE serial = $1)",
            )
            .bind(serial)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| CaError::Transient(e.to_string()))?;
            if known {
                Ok(())
            } else {
                Err(CaError::Permanent(format!(
                    "the embedded CA never issued a certificate with serial {serial}"
                )))
            }
        })
    }

    fn ca_chain(&self) -> BoxFuture<'_, Result<String, CaError>> {
        Box::pin(async move { Ok(self.chain_pem()) })
    }

    fn name(&self) -> String {
        "embedded CA".to_owned()
    }
}
