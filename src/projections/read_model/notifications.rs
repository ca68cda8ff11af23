//! `notifications`: e-mail and chat messages, from queued to sent, failed or bounced.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::table::Record;
use super::{Rows, users};
use crate::domain::notification::NotificationEvent;
use crate::feed::StoredEvent;
use crate::projections::audit::AuditEntry;

/// A `notifications` row.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct NotificationRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub recipient_email: String,
    pub notification_type: String,
    pub subject: String,
    pub body: String,
    pub channel: String,
    pub resource_type: Option<String>,
    pub resource_id: Option<Uuid>,
    pub status: String,
    pub sent_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    pub retry_count: Option<i32>,
    pub external_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl Record for NotificationRow {
    type Key = Uuid;

    fn key(&self) -> Uuid {
        self.id
    }

    async fn load(conn: &mut PgConnection, keys: &[Uuid]) -> anyhow::Result<Vec<Self>> {
        Ok(sqlx::query_as(
            "SELECT id, user_id, recipient_email, notification_type, subject, body, channel, \
                    resource_type, resource_id, status, sent_at, error_message, retry_count, \
                    external_message_id, created_at \
               FROM notifications WHERE id = ANY($1)",
        )
        .bind(keys)
        .fetch_all(conn)
        .await?)
    }

    async fn write(
        conn: &mut PgConnection,
        changed: &[(Option<&Self>, &Self)],
    ) -> anyhow::Result<()> {
        super::bind_columns!(
            sqlx::query(
                "INSERT INTO notifications (id, user_id, recipient_email, notification_type, \
                     subject, body, channel, resource_type, resource_id, status, sent_at, \
                     error_message, retry_count, external_message_id, created_at) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
                     $5::text[], $6::text[], $7::text[], $8::text[], $9::uuid[], $10::text[], \
                     $11::timestamptz[], $12::text[], $13::int[], $14::text[], \
                     $15::timestamptz[]) \
                 ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, \
                     sent_at = EXCLUDED.sent_at, error_message = EXCLUDED.error_message, \
                     retry_count = EXCLUDED.retry_count, \
                     external_message_id = EXCLUDED.external_message_id",
            ),
            changed,
            id,
            user_id,
            recipient_email,
            notification_type,
            subject,
            body,
            channel,
            resource_type,
            resource_id,
            status,
            sent_at,
            error_message,
            retry_count,
            external_message_id,
            created_at
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

pub(super) fn apply(
    rows: &mut Rows,
    stored: &StoredEvent,
    event: &NotificationEvent,
) -> anyhow::Result<AuditEntry> {
    let id = stored.aggregate_uuid()?;
    let entry = |event_type: &str, action: &str| {
        AuditEntry::new(event_type, "system", "notification", action)
    };
    let entry = match event {
        NotificationEvent::NotificationQueued { message, at } => {
            users::ensure_actor(rows, &message.recipient, *at);
            rows.notifications.insert_if_absent(NotificationRow {
                id,
                user_id: message.recipient.user_id,
                recipient_email: message.recipient.email.to_string(),
                notification_type: message.notification_type.as_str().to_owned(),
                subject: message.subject.clone(),
                body: message.body.clone(),
                channel: message.channel.as_str().to_owned(),
                resource_type: message.resource_type.clone(),
                resource_id: message.resource_id,
                status: "pending".to_owned(),
                sent_at: None,
                error_message: None,
                retry_count: Some(0),
                external_message_id: None,
                created_at: *at,
            });
            entry("notification_queued", "create")
                .actor(&message.recipient)
                .details(json!({
                    "notification_type": message.notification_type,
                    "channel": message.channel,
                    "resource_type": message.resource_type,
                    "resource_id": message.resource_id,
                }))
        }
        NotificationEvent::NotificationSent {
            external_message_id,
            at,
        } => {
            if let Some(row) = rows.notifications.get_mut(&id) {
                "sent".clone_into(&mut row.status);
                row.sent_at = Some(*at);
                row.external_message_id.clone_from(external_message_id);
            }
            entry("notification_sent", "send")
        }
        NotificationEvent::NotificationDeliveryFailed {
            error,
            retry_count,
            gave_up,
            ..
        } => {
            if let Some(row) = rows.notifications.get_mut(&id) {
                row.retry_count = Some(i32::try_from(*retry_count).unwrap_or(i32::MAX));
                row.error_message = Some(error.clone());
                if *gave_up {
                    "failed".clone_into(&mut row.status);
                }
            }
            entry("notification_failed", "send")
                .severity(if *gave_up { "error" } else { "warning" })
                .details(json!({ "retry_count": retry_count, "gave_up": gave_up }))
                .failure(error.clone())
        }
        NotificationEvent::NotificationBounced { .. } => {
            if let Some(row) = rows.notifications.get_mut(&id) {
                "bounced".clone_into(&mut row.status);
            }
            entry("notification_bounced", "send").severity("warning")
        }
    };
    Ok(entry.resource(Some(id), None))
}
