//! `system_config`: the runtime settings. Rows seeded by migrations keep their description
//! and sensitivity; events set values.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::table::Record;
use super::{Rows, row_id, users};
use crate::domain::config::ConfigEvent;
use crate::projections::audit::AuditEntry;

/// A `system_config` row, as far as the projector writes it (`is_sensitive` is read only).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct ConfigRow {
    pub id: Uuid,
    pub config_key: String,
    pub config_value: String,
    pub value_type: String,
    pub updated_by: Option<Uuid>,
    pub is_sensitive: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Record for ConfigRow {
    type Key = String;

    fn key(&self) -> String {
        self.config_key.clone()
    }

    async fn load(conn: &mut PgConnection, keys: &[String]) -> anyhow::Result<Vec<Self>> {
        Ok(sqlx::query_as(
            "SELECT id, config_key, config_value, value_type, updated_by, \
                    coalesce(is_sensitive, false) AS is_sensitive, created_at, updated_at \
               FROM system_config WHERE config_key = ANY($1)",
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
                "INSERT INTO system_config (id, config_key, config_value, value_type, \
                     updated_by, created_at, updated_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], \
                     $5::uuid[], $6::timestamptz[], $7::timestamptz[]) \
                 ON CONFLICT (config_key) DO UPDATE SET config_value = EXCLUDED.config_value, \
                     value_type = EXCLUDED.value_type, updated_by = EXCLUDED.updated_by, \
                     updated_at = EXCLUDED.updated_at",
            ),
            changed,
            id,
            config_key,
            config_value,
            value_type,
            updated_by,
            created_at,
            updated_at
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

pub(super) fn apply(rows: &mut Rows, event: &ConfigEvent) -> AuditEntry {
    let ConfigEvent::ConfigValueSet {
        setting,
        previous_value,
        by,
        at,
    } = event;
    users::ensure_actor(rows, by, *at);
    let row = rows.config.get_or_insert_with(&setting.key, || ConfigRow {
        id: row_id(&["config", &setting.key]),
        config_key: setting.key.clone(),
        config_value: setting.value.clone(),
        value_type: setting.value_type.as_str().to_owned(),
        updated_by: Some(by.user_id),
        is_sensitive: false,
        created_at: *at,
        updated_at: *at,
    });
    let sensitive = match row {
        Some(row) => {
            row.config_value.clone_from(&setting.value);
            setting.value_type.as_str().clone_into(&mut row.value_type);
            row.updated_by = Some(by.user_id);
            row.updated_at = *at;
            row.is_sensitive
        }
        None => true,
    };
    // Sensitive values never reach the audit trail.
    let details = if sensitive {
        json!({ "value": "[redacted]" })
    } else {
        json!({ "value": setting.value, "previous_value": previous_value })
    };
    AuditEntry::new("config_changed", "system", "config", "update")
        .actor(by)
        .severity("warning")
        .resource(None, Some(setting.key.clone()))
        .details(details)
}
