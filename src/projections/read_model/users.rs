//! `users`: people, from their own events and as the actors every other event names.

use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Rows;
use super::table::Record;
use crate::domain::actor::Actor;
use crate::domain::user::UserEvent;
use crate::projections::audit::AuditEntry;

/// A `users` row, as far as the projector writes it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub(super) struct UserRow {
    pub id: Uuid,
    pub email: String,
    pub display_name: Option<String>,
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Record for UserRow {
    type Key = Uuid;

    fn key(&self) -> Uuid {
        self.id
    }

    async fn load(conn: &mut PgConnection, keys: &[Uuid]) -> anyhow::Result<Vec<Self>> {
        Ok(sqlx::query_as(
            "SELECT id, email, display_name, role, created_at, updated_at \
               FROM users WHERE id = ANY($1)",
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
                "INSERT INTO users (id, email, display_name, role, created_at, updated_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], \
                     $5::timestamptz[], $6::timestamptz[]) \
                 ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, \
                     display_name = EXCLUDED.display_name, role = EXCLUDED.role, \
                     created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at",
            ),
            changed,
            id,
            email,
            display_name,
            role,
            created_at,
            updated_at
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Gives an actor a minimal `users` row if it has none (foreign keys need it);
/// `UserRegistered` fills in the rest.
pub(super) fn ensure(rows: &mut Rows, id: Uuid, email: &str, role: &str, at: DateTime<Utc>) {
    rows.users.insert_if_absent(UserRow {
        id,
        email: email.to_owned(),
        display_name: None,
        role: role.to_owned(),
        created_at: at,
        updated_at: at,
    });
}

/// [`ensure`] for an actor of an event.
pub(super) fn ensure_actor(rows: &mut Rows, actor: &Actor, at: DateTime<Utc>) {
    ensure(
        rows,
        actor.user_id,
        actor.email.as_ref(),
        actor.role.as_str(),
        at,
    );
}

pub(super) fn apply(rows: &mut Rows, event: &UserEvent) -> AuditEntry {
    match event {
        UserEvent::UserRegistered {
            user,
            display_name,
            platform,
            at,
        } => {
            if let Some(row) = rows.users.get_or_insert_with(&user.user_id, || UserRow {
                id: user.user_id,
                email: user.email.to_string(),
                display_name: None,
                role: user.role.as_str().to_owned(),
                created_at: *at,
                updated_at: *at,
            }) {
                if display_name.is_some() {
                    row.display_name.clone_from(display_name);
                }
                user.role.as_str().clone_into(&mut row.role);
                row.created_at = *at;
                row.updated_at = *at;
            }
            AuditEntry::new("user_registered", "authentication", "user", "create")
                .actor(user)
                .resource(Some(user.user_id), Some(user.email.to_string()))
                .details(json!({ "role": user.role, "platform": platform }))
        }
        UserEvent::RoleGranted {
            user,
            previous_role,
            by,
            at,
        } => {
            if let Some(row) = rows.users.get_mut(&user.user_id) {
                user.role.as_str().clone_into(&mut row.role);
                row.updated_at = *at;
            }
            AuditEntry::new("role_granted", "authorization", "user", "update")
                .actor(by)
                .severity("warning")
                .resource(Some(user.user_id), Some(user.email.to_string()))
                .details(json!({ "role": user.role, "previous_role": previous_role }))
        }
        UserEvent::DashboardViewed { user, page, .. } => {
            let (event, action) = if page == "sign-in" {
                ("dashboard_signed_in", "sign_in")
            } else {
                ("dashboard_viewed", "view")
            };
            AuditEntry::new(event, "access", "dashboard", action)
                .actor(user)
                .resource(None, Some(page.clone()))
                .details(json!({ "role": user.role }))
        }
        UserEvent::ChatAccountLinked {
            user,
            platform,
            account,
            ..
        } => AuditEntry::new("chat_account_linked", "authentication", "user", "update")
            .actor(user)
            .severity("warning")
            .resource(Some(user.user_id), Some(user.email.to_string()))
            .details(json!({ "platform": platform, "account": account })),
    }
}
