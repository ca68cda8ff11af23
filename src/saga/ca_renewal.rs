//! Renewals the CA does by itself: ACM renews its public certificates under the same ARN
//! before they expire. The expiry job asks, for each of them coming due, whether ACM holds a
//! newer one; if so it is exported again, read and checked like a new issuance (the same
//! names, nothing more), stored, and recorded as [`CertificateRenewedAtCa`], and the owner is
//! told to install it.
//!
//! [`CertificateRenewedAtCa`]: crate::domain::certificate::CertificateEvent::CertificateRenewedAtCa

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::issuance::{Pem, Returned, store_artifacts};
use crate::adapters::artifacts::ArtifactStore;
use crate::adapters::ca::CertificateAuthority;
use crate::commands::Commands;
use crate::domain::certificate::CaRenewal;
use crate::domain::notification::{Channel, Message, NotificationType};
use crate::domain::request::RequestEvent;

/// Namespace of renewal notification ids: one per certificate and new serial.
const RENEWAL_NAMESPACE: Uuid = Uuid::from_u128(0x2f6b_94d0_7c1e_4a35_b8e2_5d09_c4a7_61f3);

/// Takes the public CA's own renewals in.
#[derive(Debug, Clone)]
pub struct CaRenewals {
    commands: Commands,
    ca: Arc<dyn CertificateAuthority>,
    store: Arc<dyn ArtifactStore>,
}

impl CaRenewals {
    /// Renewals by `ca`, stored in `store`.
    pub fn new(
        commands: Commands,
        ca: Arc<dyn CertificateAuthority>,
        store: Arc<dyn ArtifactStore>,
    ) -> Self {
        Self {
            commands,
            ca,
            store,
        }
    }

    /// Whether the CA renewed certificate `id` (known to it as `ca_request_id`, recorded
    /// here as valid to `valid_to`); records the renewal when it did.
    pub async fn take(
        &self,
        id: Uuid,
        ca_request_id: &str,
        valid_to: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let Some(renewed) = self.ca.renewal(ca_request_id, valid_to).await? else {
            return Ok(false);
        };
        let issued = crate::eventstore::issued_certificate(self.commands.pool(), id)
            .await?
            .with_context(|| format!("certificate {id} was never issued"))?;
        let Some(RequestEvent::RequestCreated { subject, .. }) =
            crate::eventstore::request_creation(self.commands.pool(), issued.request_id).await?
        else {
            anyhow::bail!("the request of certificate {id} has no creation event");
        };
        // The renewed certificate certifies what was approved, and nothing else.
        let returned = Returned::read(&renewed.certificate_pem, &subject).map_err(|problem| {
            anyhow::anyhow!(
                "the {} renewed {ca_request_id}, but the renewal is not recorded because \
                 {problem}",
                self.ca.name()
            )
        })?;
        let private_key = match &renewed.private_key {
            Some(key) => {
                use secrecy::ExposeSecret as _;
                Some(
                    self.commands
                        .seal_private_key(key.0.expose_secret())
                        .await?,
                )
            }
            None => None,
        };
        let storage = store_artifacts(
            self.store.as_ref(),
            &issued.request_number,
            &returned.serial,
            Pem {
                certificate: &renewed.certificate_pem,
                chain: &renewed.chain_pem,
            },
            private_key.as_ref(),
        )
        .await?;
        let serial = returned.serial.clone();
        self.commands
            .record_ca_renewal(
                id,
                CaRenewal {
                    serial_number: returned.serial,
                    thumbprint_sha1: returned.thumbprint_sha1,
                    thumbprint_sha256: returned.thumbprint_sha256,
                    valid_from: returned.valid_from,
                    valid_to: returned.valid_to,
                    storage,
                    private_key,
                },
                now,
            )
            .await?;
        tracing::info!(certificate = %id, %serial, "renewal by the CA recorded");
        let install = if renewed.private_key.is_some() {
            format!(
                "Install it before the old one expires: `/cert download {serial}` in chat (or \
                 `cert-assistant certificate download {serial}`) gives the certificate, its \
                 chain and its new private key."
            )
        } else {
            "It stays in ACM: the AWS services that use it get it by themselves.".to_owned()
        };
        let message = Message {
            recipient: issued.owner,
            notification_type: NotificationType::CertificateIssued,
            subject: format!("Your certificate for {} was renewed", issued.common_name),
            body: format!(
                "{} renewed the certificate for {} ({}). The new one has serial {serial} and \
                 is valid until {}.\n\n{install}\n",
                self.ca.name(),
                issued.common_name,
                issued.request_number,
                returned.valid_to.format("%Y-%m-%d %H:%M UTC"),
            ),
            channel: Channel::Email,
            resource_type: Some("certificate".to_owned()),
            resource_id: Some(id),
        };
        let notification = Uuid::new_v5(&RENEWAL_NAMESPACE, format!("{id}/{serial}").as_bytes());
        if let Err(error) = self
            .commands
            .queue_notification_as(notification, message)
            .await
        {
            tracing::warn!(certificate = %id, %error, "could not queue the renewal e-mail");
        }
        Ok(true)
    }
}
