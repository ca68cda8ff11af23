//! Who to ask: the active approvers and admins, as the read model knows them.

use sqlx::PgExecutor;
use uuid::Uuid;

use super::CommandError;

/// The people to ask for approvals: active approvers and admins, as the read model knows
/// them (it may lag a moment behind a role change; any approver may decide regardless).
pub async fn approvers<'e>(
    pool: impl PgExecutor<'e>,
) -> Result<Vec<crate::domain::actor::Actor>, CommandError> {
    active_users(pool, &["approver", "admin"]).await
}

/// The active admins, as the read model knows them.
pub async fn admins<'e>(
    pool: impl PgExecutor<'e>,
) -> Result<Vec<crate::domain::actor::Actor>, CommandError> {
    active_users(pool, &["admin"]).await
}

async fn active_users<'e>(
    pool: impl PgExecutor<'e>,
    roles: &[&str],
) -> Result<Vec<crate::domain::actor::Actor>, CommandError> {
    use crate::domain::actor::{Actor, Role};
    use crate::domain::values::Email;
    let rows: Vec<(Uuid, String, String)> = sqlx::query_as(
        "SELECT id, email, role FROM users \
          WHERE role = ANY($1) AND is_active AND deleted_at IS NULL \
          ORDER BY email LIMIT 50",
    )
    .bind(roles)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(user_id, email, role)| {
            Some(Actor {
                user_id,
                email: Email::parse(&email).ok()?,
                role: Role::parse(&role).ok()?,
            })
        })
        .collect())
}
