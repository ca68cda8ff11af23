//! Who a Slack user is: the e-mail from `users.info`, cached in `chat_identities`.

use chrono::{Duration, Utc};
use sqlx::PgPool;

use super::api::SlackApi;
use crate::domain::values::Email;

/// How long a looked-up e-mail is trusted before asking Slack again.
const FRESH_FOR: Duration = Duration::hours(24);

/// Why a Slack user could not be identified.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Slack has no (visible) e-mail for the user.
    #[error(
        "your Slack profile shows cert-assistant no e-mail address, and that is how it knows \
         who you are. Ask your Slack admin to reinstall the app with the users:read.email scope, \
         or add an e-mail to your profile"
    )]
    NoEmail,
    /// Slack or the database failed.
    #[error("could not look you up in Slack right now; please try again")]
    Unavailable(#[source] anyhow::Error),
}

/// The e-mail and name of Slack user `user_id` in workspace `team_id`.
pub async fn resolve(
    pool: &PgPool,
    api: &SlackApi,
    team_id: &str,
    user_id: &str,
) -> Result<(Email, Option<String>), IdentityError> {
    let cached: Option<(String, Option<String>)> = sqlx::query_as(
        "SELECT email, display_name FROM chat_identities \
          WHERE platform = 'slack' AND workspace_id = $1 AND user_id = $2 AND refreshed_at > $3",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(Utc::now() - FRESH_FOR)
    .fetch_optional(pool)
    .await
    .map_err(|e| IdentityError::Unavailable(e.into()))?;
    if let Some((email, name)) = cached
        && let Ok(email) = Email::parse(&email)
    {
        return Ok((email, name));
    }
    let user = api
        .user(user_id)
        .await
        .map_err(IdentityError::Unavailable)?;
    let email = user
        .email
        .as_deref()
        .and_then(|e| Email::parse(e).ok())
        .ok_or(IdentityError::NoEmail)?;
    sqlx::query(
        "INSERT INTO chat_identities (platform, workspace_id, user_id, email, display_name, refreshed_at) \
         VALUES ('slack', $1, $2, $3, $4, now()) \
         ON CONFLICT (platform, workspace_id, user_id) DO UPDATE \
            SET email = EXCLUDED.email, display_name = EXCLUDED.display_name, refreshed_at = now()",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(email.as_ref())
    .bind(&user.name)
    .execute(pool)
    .await
    .map_err(|e| IdentityError::Unavailable(e.into()))?;
    Ok((email, user.name))
}
