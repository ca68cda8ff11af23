//! Downloads: an issued certificate, its chain, or — once, to its owner — the private key
//! the service generated. Every download is an event (count, audit row); the private key is
//! decrypted only after the certificate aggregate allowed it.

use base64::Engine as _;
use chrono::Utc;
use uuid::Uuid;

use super::{CommandContext, CommandError, Commands};
use crate::adapters::artifacts::ArtifactStore;
use crate::domain::certificate::{Artifact, CertificateCommand, IssuedCertificate};

/// A downloaded artifact.
#[derive(Clone)]
pub struct Download {
    /// A file name to save it as, e.g. `app.example.com-0A1B….pem`.
    pub filename: String,
    /// PEM text.
    pub pem: String,
    /// What it is.
    pub artifact: Artifact,
}

impl std::fmt::Debug for Download {
    // Never print the PEM: it may be a private key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download")
            .field("filename", &self.filename)
            .field("artifact", &self.artifact)
            .finish_non_exhaustive()
    }
}

impl Commands {
    /// Hands out an artifact of a certificate (serial or id) to the acting user, recording
    /// the download. The certificate aggregate decides who may have what.
    pub async fn download(
        &self,
        ctx: &CommandContext,
        certificate: &str,
        artifact: Artifact,
        artifacts: &dyn ArtifactStore,
    ) -> Result<Download, CommandError> {
        self.download_protected(ctx, certificate, artifact, artifacts, None)
            .await
    }

    /// What a verified download link grants, for the person it was made for. A private key
    /// comes encrypted under the link's one-time passphrase (shown only with the link).
    pub async fn download_by_link(
        &self,
        link: &DownloadLink,
        token: &str,
        artifacts: &dyn ArtifactStore,
    ) -> Result<Download, CommandError> {
        let ctx = CommandContext::new(link.email.clone(), link.platform);
        let passphrase = self.inner.kek.link_passphrase(token);
        self.download_protected(
            &ctx,
            &link.certificate_id.to_string(),
            link.artifact,
            artifacts,
            Some(&passphrase),
        )
        .await
    }

    async fn download_protected(
        &self,
        ctx: &CommandContext,
        certificate: &str,
        artifact: Artifact,
        artifacts: &dyn ArtifactStore,
        passphrase: Option<&str>,
    ) -> Result<Download, CommandError> {
        let by = self.actor(ctx).await?;
        let certificate_id = self.certificate_id(certificate).await?;
        let issued = self.issued(certificate_id).await?;
        // Read (and for the key, decrypt) first, record second: a storage failure must not
        // use up the owner's one private-key download. Nothing is returned unless the
        // certificate aggregate allowed the download.
        let pem = match artifact {
            Artifact::Certificate => read(artifacts, &issued.storage.certificate).await?,
            Artifact::Chain => match &issued.storage.chain {
                Some(key) => read(artifacts, key).await?,
                None => {
                    return Err(CommandError::NotFound(
                        "the CA returned no chain for this certificate".to_owned(),
                    ));
                }
            },
            Artifact::PrivateKey => match &issued.private_key {
                Some(_) => {
                    let pem = self.private_key(&issued).await?;
                    match passphrase {
                        Some(passphrase) => crate::pki::key_file::encrypt_pem(&pem, passphrase)
                            .map_err(CommandError::internal)?,
                        None => pem,
                    }
                }
                // Let the aggregate explain (it knows the key was not generated here).
                None => String::new(),
            },
        };
        let at = Utc::now();
        let metadata = ctx.metadata(Some(&by));
        self.inner
            .certificates
            .execute(certificate_id, &metadata, || {
                CertificateCommand::RecordDownload {
                    by: by.clone(),
                    artifact,
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))?;
        let suffix = match artifact {
            Artifact::Certificate => "",
            Artifact::Chain => "-chain",
            Artifact::PrivateKey if passphrase.is_some() => "-key.encrypted",
            Artifact::PrivateKey => "-key",
        };
        Ok(Download {
            filename: format!(
                "{}-{}{suffix}.pem",
                issued.common_name.as_ref().replace('*', "wildcard"),
                issued.serial_number
            ),
            pem,
            artifact,
        })
    }

    /// The certificate as issued, from its `CertificateIssued` event.
    pub(super) async fn issued(
        &self,
        certificate_id: Uuid,
    ) -> Result<IssuedCertificate, CommandError> {
        crate::eventstore::issued_certificate(self.pool(), certificate_id)
            .await?
            .ok_or_else(|| CommandError::NotFound("there is no such certificate".to_owned()))
    }

    async fn private_key(&self, issued: &IssuedCertificate) -> Result<String, CommandError> {
        let encrypted = issued.private_key.as_ref().ok_or_else(|| {
            CommandError::NotFound("this certificate has no generated private key".to_owned())
        })?;
        let wrapped = crate::pki::key_store::load_data_key(self.pool(), encrypted.data_key_id)
            .await?
            .ok_or_else(|| {
                CommandError::Refused(
                    "the private key was destroyed (crypto-shredded) and cannot be recovered"
                        .to_owned(),
                )
            })?;
        let data_key = self
            .inner
            .kek
            .unwrap(&wrapped)
            .map_err(CommandError::internal)?;
        data_key.decrypt(encrypted).map_err(CommandError::internal)
    }
}

async fn read(artifacts: &dyn ArtifactStore, key: &str) -> Result<String, CommandError> {
    let bytes = artifacts.get(key).await.map_err(CommandError::internal)?;
    String::from_utf8(bytes).map_err(CommandError::internal)
}

/// How long a download link works.
pub const LINK_TTL_MINUTES: i64 = 15;

/// What a download link grants: one artifact of one certificate to one person, until `e`.
#[derive(serde::Serialize, serde::Deserialize)]
struct LinkClaims {
    /// The certificate.
    c: Uuid,
    /// The artifact.
    a: String,
    /// The person's e-mail.
    u: String,
    /// The platform they asked on.
    p: String,
    /// Expiry, Unix seconds.
    e: i64,
}

/// Why a download link was not honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Not signed by this service, or altered.
    #[error("this download link is not valid")]
    Forged,
    /// Past its time.
    #[error("this download link has expired; ask for a new one with /cert download")]
    Expired,
}

/// A download link just made.
#[derive(Clone)]
pub struct NewLink {
    /// The token (the last part of `/downloads/{token}`).
    pub token: String,
    /// When it stops working.
    pub expires: chrono::DateTime<Utc>,
    /// For a private key: the passphrase it is encrypted under. Show it only to the person.
    pub passphrase: Option<String>,
}

impl std::fmt::Debug for NewLink {
    // The passphrase stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewLink")
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// A verified download link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadLink {
    /// Who asked for it.
    pub email: crate::domain::values::Email,
    /// Where they asked.
    pub platform: crate::domain::actor::Platform,
    /// The certificate.
    pub certificate_id: Uuid,
    /// What.
    pub artifact: Artifact,
}

impl Commands {
    /// A signed, short-lived link token for the acting user to download an artifact. The
    /// download itself is checked and recorded when the link is used; the obvious refusals
    /// (no such certificate, someone else's private key) come now.
    pub async fn download_link(
        &self,
        ctx: &CommandContext,
        certificate: &str,
        artifact: Artifact,
    ) -> Result<NewLink, CommandError> {
        let by = self.actor(ctx).await?;
        let certificate_id = self.certificate_id(certificate).await?;
        let current = self.certificate(certificate_id).await?;
        let Some(owner) = current.owner() else {
            return Err(CommandError::NotFound(
                "there is no such certificate".to_owned(),
            ));
        };
        if artifact == Artifact::PrivateKey && !by.is(owner) {
            let refused: Result<(), _> = Err(CommandError::Refused(
                "only the owner can download the private key".to_owned(),
            ));
            let identifier = super::certificates::certificate_identifier(certificate);
            let attempt = super::Attempt {
                action: "download",
                resource_type: "certificate",
                resource_id: Some(certificate_id),
                resource_identifier: identifier.as_deref(),
            };
            self.audit_refusal(ctx, Some(&by), attempt, refused).await?;
        }
        let expires = Utc::now() + chrono::Duration::minutes(LINK_TTL_MINUTES);
        let claims = LinkClaims {
            c: certificate_id,
            a: artifact.as_str().to_owned(),
            u: ctx.email.to_string(),
            p: ctx.platform.as_str().to_owned(),
            e: expires.timestamp(),
        };
        let payload = serde_json::to_vec(&claims).map_err(CommandError::internal)?;
        let tag = self.inner.kek.sign_link(&payload);
        let token = format!("{}.{}", LINK_B64.encode(&payload), LINK_B64.encode(tag));
        let passphrase =
            (artifact == Artifact::PrivateKey).then(|| self.inner.kek.link_passphrase(&token));
        Ok(NewLink {
            token,
            expires,
            passphrase,
        })
    }

    /// Verifies a link token (signature first, then expiry at `now`).
    pub fn open_download_link(
        &self,
        token: &str,
        now: chrono::DateTime<Utc>,
    ) -> Result<DownloadLink, LinkError> {
        let (payload, tag) = token.split_once('.').ok_or(LinkError::Forged)?;
        let payload = LINK_B64.decode(payload).map_err(|_| LinkError::Forged)?;
        let tag = LINK_B64.decode(tag).map_err(|_| LinkError::Forged)?;
        if !self.inner.kek.verify_link(&payload, &tag) {
            return Err(LinkError::Forged);
        }
        let claims: LinkClaims = serde_json::from_slice(&payload).map_err(|_| LinkError::Forged)?;
        if now.timestamp() > claims.e {
            return Err(LinkError::Expired);
        }
        Ok(DownloadLink {
            email: crate::domain::values::Email::parse(&claims.u).map_err(|_| LinkError::Forged)?,
            platform: crate::domain::actor::Platform::parse(&claims.p)
                .map_err(|_| LinkError::Forged)?,
            certificate_id: claims.c,
            artifact: Artifact::parse(&claims.a).map_err(|_| LinkError::Forged)?,
        })
    }
}

/// Link tokens travel in URL paths.
const LINK_B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
