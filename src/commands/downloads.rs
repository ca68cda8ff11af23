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

/// A download checked and read, not yet recorded: hand it over (write the file, send the
/// response), then [`Commands::record_download`] it. Nothing is handed over that the
/// certificate aggregate did not allow, and a failure to hand it over loses nothing.
pub struct PreparedDownload {
    download: Download,
    certificate_id: Uuid,
    by: crate::domain::actor::Actor,
    ctx: CommandContext,
}

impl std::fmt::Debug for PreparedDownload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedDownload")
            .field("download", &self.download)
            .field("certificate_id", &self.certificate_id)
            .finish_non_exhaustive()
    }
}

impl PreparedDownload {
    /// What will be handed over.
    pub fn download(&self) -> &Download {
        &self.download
    }
}

/// Private keys re-encrypted under a link's passphrase at the same time (PBKDF2 with 600,000
/// rounds is about a core-second each): the rest wait, off the async threads.
static KEY_EXPORTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

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
        let prepared = self
            .prepare_download(ctx, certificate, artifact, artifacts)
            .await?;
        self.record_download(prepared).await
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
        let prepared = self
            .prepare(
                &ctx,
                &link.certificate_id.to_string(),
                link.artifact,
                artifacts,
                Some(passphrase),
            )
            .await?;
        self.record_download(prepared).await
    }

    /// Checks and reads an artifact for the acting user without recording it.
    pub async fn prepare_download(
        &self,
        ctx: &CommandContext,
        certificate: &str,
        artifact: Artifact,
        artifacts: &dyn ArtifactStore,
    ) -> Result<PreparedDownload, CommandError> {
        self.prepare(ctx, certificate, artifact, artifacts, None)
            .await
    }

    /// Records a prepared download (the aggregate checks again: of two at once, one wins)
    /// and gives it back.
    pub async fn record_download(
        &self,
        prepared: PreparedDownload,
    ) -> Result<Download, CommandError> {
        let PreparedDownload {
            download,
            certificate_id,
            by,
            ctx,
        } = prepared;
        let at = Utc::now();
        let artifact = download.artifact;
        self.inner
            .certificates
            .execute(certificate_id, &ctx.metadata(Some(&by)), || {
                CertificateCommand::RecordDownload {
                    by: by.clone(),
                    artifact,
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the certificate", e))?;
        Ok(download)
    }

    async fn prepare(
        &self,
        ctx: &CommandContext,
        certificate: &str,
        artifact: Artifact,
        artifacts: &dyn ArtifactStore,
        passphrase: Option<String>,
    ) -> Result<PreparedDownload, CommandError> {
        let by = self.actor(ctx).await?;
        let certificate_id = self.certificate_id(certificate).await?;
        // Refused early (already downloaded, someone else's, destroyed) before any key is
        // decrypted or re-encrypted.
        self.certificate(certificate_id)
            .await?
            .may_download(&by, artifact)?;
        let issued = self.issued(certificate_id).await?;
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
            Artifact::PrivateKey => {
                let pem = self.private_key(&issued).await?;
                match &passphrase {
                    Some(passphrase) => protect(pem, passphrase.clone()).await?,
                    None => pem,
                }
            }
        };
        let suffix = match artifact {
            Artifact::Certificate => "",
            Artifact::Chain => "-chain",
            Artifact::PrivateKey if passphrase.is_some() => "-key.encrypted",
            Artifact::PrivateKey => "-key",
        };
        Ok(PreparedDownload {
            download: Download {
                filename: file_name(&format!(
                    "{}-{}{suffix}.pem",
                    issued.common_name.as_ref().replace('*', "wildcard"),
                    issued.serial_number
                )),
                pem,
                artifact,
            },
            certificate_id,
            by,
            ctx: ctx.clone(),
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

/// The key PEM encrypted under `passphrase`, on a blocking thread, a few at a time.
async fn protect(pem: String, passphrase: String) -> Result<String, CommandError> {
    let _turn = KEY_EXPORTS
        .acquire()
        .await
        .map_err(CommandError::internal)?;
    tokio::task::spawn_blocking(move || crate::pki::key_file::encrypt_pem(&pem, &passphrase))
        .await
        .map_err(CommandError::internal)?
        .map_err(CommandError::internal)
}

/// A file name safe in a path and in a `Content-Disposition` header: letters, digits and
/// `.-_` kept, anything else (quotes, `;`, `/`, spaces, control characters, non-ASCII)
/// becomes `_`, at most 200 characters.
pub fn file_name(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    match cleaned.trim_start_matches('.') {
        "" => "download.pem".to_owned(),
        rest => rest.to_owned(),
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
        if artifact == Artifact::PrivateKey && by.is(owner) {
            // No link for a key that cannot be had any more (downloaded, destroyed).
            current.may_download(&by, artifact)?;
        }
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
        self.count_link(&by).await?;
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

    /// Counts a link for `by`, refusing one past [`LINKS_PER_HOUR`] in the last hour (per
    /// person, across platforms and replicas, atomically).
    async fn count_link(&self, by: &crate::domain::actor::Actor) -> Result<(), CommandError> {
        let identity = by.email.identity();
        let mut tx = self.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("download-links:{identity}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM download_links_issued \
              WHERE identity = $1 AND at <= now() - interval '1 hour'",
        )
        .bind(&identity)
        .execute(&mut *tx)
        .await?;
        let (count, oldest): (i64, Option<chrono::DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(at) FROM download_links_issued WHERE identity = $1",
        )
        .bind(&identity)
        .fetch_one(&mut *tx)
        .await?;
        if count >= LINKS_PER_HOUR {
            tx.rollback().await?;
            let next = oldest.map_or_else(Utc::now, |at| at + chrono::Duration::hours(1));
            return Err(CommandError::Refused(format!(
                "you asked for {LINKS_PER_HOUR} download links in the last hour, the most one \
                 person may; ask again after {} UTC",
                next.format("%H:%M")
            )));
        }
        sqlx::query("INSERT INTO download_links_issued (identity) VALUES ($1)")
            .bind(&identity)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
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

/// Download links one person may ask for in an hour.
pub const LINKS_PER_HOUR: i64 = 20;

/// Link tokens travel in URL paths.
const LINK_B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn file_names_cannot_break_out_of_a_header_or_a_directory() {
        assert_eq!(
            file_name("Jane \"Doe\"; filename=evil.exe-0A1B.pem"),
            "Jane__Doe___filename_evil.exe-0A1B.pem"
        );
        assert_eq!(file_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(file_name("..."), "download.pem");
        assert_eq!(file_name("Ä\r\n名.pem"), "____.pem");
        assert_eq!(file_name(&"a".repeat(500)).len(), 200);
    }
}
