//! System configuration and the notification outbox.

use chrono::Utc;
use uuid::Uuid;

use super::{Attempt, CommandContext, CommandError, Commands};
use crate::domain::config::{SetConfig, Setting, ValueType};
use crate::domain::notification::{Message, NotificationCommand};

/// The namespace of configuration aggregate ids (one aggregate per key).
const CONFIG_NAMESPACE: Uuid = Uuid::from_u128(0x7d1e_66a0_2b4f_4c89_b3e2_5a90_c4d8_1e37);

impl Commands {
    /// Sets a configuration value (admins only). The type defaults to the key's current type.
    pub async fn set_config(
        &self,
        ctx: &CommandContext,
        key: &str,
        value: &str,
        value_type: Option<&str>,
    ) -> Result<Setting, CommandError> {
        let by = self.actor(ctx).await?;
        let value_type = match value_type {
            Some(text) => ValueType::parse(text)?,
            None => {
                let current: Option<String> = sqlx::query_scalar(
                    "SELECT value_type FROM system_config WHERE config_key = $1",
                )
                .bind(key.trim())
                .fetch_optional(self.pool())
                .await?;
                current
                    .as_deref()
                    .map(ValueType::parse)
                    .transpose()?
                    .unwrap_or(ValueType::String)
            }
        };
        let setting = Setting::parse(key, value, value_type)?;
        let id = Uuid::new_v5(&CONFIG_NAMESPACE, setting.key.as_bytes());
        let at = Utc::now();
        let result = self
            .inner
            .config
            .execute(id, &ctx.metadata(Some(&by)), || SetConfig {
                setting: setting.clone(),
                by: by.clone(),
                at,
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the setting", e));
        let attempt = Attempt {
            action: "configure",
            resource_type: "config",
            resource_id: Some(id),
            resource_identifier: Some(&setting.key),
        };
        self.audit_refusal(ctx, Some(&by), attempt, result).await?;
        self.inner.directory.changed_settings().await?;
        Ok(setting)
    }

    /// Puts a message in the outbox; returns its id.
    pub async fn queue_notification(&self, message: Message) -> Result<Uuid, CommandError> {
        self.queue_notification_as(Uuid::new_v4(), message).await
    }

    /// Puts a message in the outbox under a chosen id: queuing the same id again (a retry
    /// after a crash) is not an error and sends nothing twice.
    pub async fn queue_notification_as(
        &self,
        id: Uuid,
        message: Message,
    ) -> Result<Uuid, CommandError> {
        let at = Utc::now();
        self.inner
            .notifications
            .execute(id, &super::certificates::system_metadata(), || {
                NotificationCommand::Queue {
                    message: Box::new(message.clone()),
                    at,
                }
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the notification", e))
            .or_else(|e| match e {
                CommandError::Refused(m) if m.contains("already queued") => Ok(()),
                other => Err(other),
            })?;
        Ok(id)
    }

    /// Records a delivery (`Ok(external id)`) or a failed attempt (`Err(error)`).
    pub async fn record_delivery(
        &self,
        id: Uuid,
        outcome: Result<Option<String>, String>,
    ) -> Result<(), CommandError> {
        let at = Utc::now();
        let command = match outcome {
            Ok(external_message_id) => NotificationCommand::MarkSent {
                external_message_id,
                at,
            },
            Err(error) => NotificationCommand::MarkFailed { error, at },
        };
        self.inner
            .notifications
            .execute(id, &super::certificates::system_metadata(), || {
                command.clone()
            })
            .await
            .map_err(|e| CommandError::from_aggregate("the notification", e))
    }
}
