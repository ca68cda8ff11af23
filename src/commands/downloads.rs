//! Downloads: an issued certificate, its chain, or — once, to its owner — the private key
//! the service generated. Every download is an event (count, audit row); the private key is
//! decrypted only after the certificate aggregate allowed it.

use chrono::Utc;
use uuid::Uuid;

use super::{CommandContext, CommandError, Commands, store};
use crate::adapters::artifacts::ArtifactStore;
use crate::domain::certificate::{
    Artifact, CertificateCommand, CertificateEvent, IssuedCertificate,
};

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
                Some(_) => self.private_key(&issued).await?,
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
        let payload: Option<serde_json::Value> = sqlx::query_scalar(
            "SELECT payload FROM events WHERE aggregate_type = 'Certificate' \
                AND aggregate_id = $1 AND event_type = 'CertificateIssued'",
        )
        .bind(certificate_id.to_string())
        .fetch_optional(self.pool())
        .await?;
        let payload = payload
            .ok_or_else(|| CommandError::NotFound("there is no such certificate".to_owned()))?;
        match serde_json::from_value(payload).map_err(CommandError::internal)? {
            CertificateEvent::CertificateIssued { certificate, .. } => Ok(*certificate),
            _ => Err(CommandError::internal(anyhow::anyhow!(
                "a CertificateIssued row holds another event"
            ))),
        }
    }

    async fn private_key(&self, issued: &IssuedCertificate) -> Result<String, CommandError> {
        let encrypted = issued.private_key.as_ref().ok_or_else(|| {
            CommandError::NotFound("this certificate has no generated private key".to_owned())
        })?;
        let wrapped = store::load_data_key(self.pool(), encrypted.data_key_id)
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
