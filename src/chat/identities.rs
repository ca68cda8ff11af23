//! Who a chat account is: `chat_identities` maps a platform's user (in its workspace, team or
//! tenant) to the e-mail that identifies the person everywhere. Every platform reads and
//! writes it through here.

use sqlx::{PgExecutor, PgPool};

/// How long a looked-up e-mail is trusted before the platform is asked again.
pub const FRESH_FOR_HOURS: i32 = 24;

/// The e-mail and display name remembered for `user_id`, if looked up within
/// [`FRESH_FOR_HOURS`].
pub async fn fresh(
    pool: &PgPool,
    platform: &str,
    workspace_id: &str,
    user_id: &str,
) -> sqlx::Result<Option<(String, Option<String>)>> {
    sqlx::query_as(
        "SELECT email, display_name FROM chat_identities \
          WHERE platform = $1 AND workspace_id = $2 AND user_id = $3 \
            AND refreshed_at > now() - make_interval(hours => $4)",
    )
    .bind(platform)
    .bind(workspace_id)
    .bind(user_id)
    .bind(FRESH_FOR_HOURS)
    .fetch_optional(pool)
    .await
}

/// The account (workspace id, user id) most recently seen with `email` on `platform`.
pub async fn account_of(
    pool: &PgPool,
    platform: &str,
    email: &str,
) -> sqlx::Result<Option<(String, String)>> {
    sqlx::query_as(
        "SELECT workspace_id, user_id FROM chat_identities \
          WHERE platform = $1 AND lower(email) = lower($2) \
          ORDER BY refreshed_at DESC LIMIT 1",
    )
    .bind(platform)
    .bind(email)
    .fetch_optional(pool)
    .await
}

/// Remembers that `user_id` is `email` (and, when known, `display_name`) as of now.
pub async fn remember<'e>(
    executor: impl PgExecutor<'e>,
    platform: &str,
    workspace_id: &str,
    user_id: &str,
    email: &str,
    display_name: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO chat_identities (platform, workspace_id, user_id, email, display_name, \
             refreshed_at) \
         VALUES ($1, $2, $3, $4, $5, now()) \
         ON CONFLICT (platform, workspace_id, user_id) DO UPDATE \
            SET email = EXCLUDED.email, \
                display_name = coalesce(EXCLUDED.display_name, chat_identities.display_name), \
                refreshed_at = now()",
    )
    .bind(platform)
    .bind(workspace_id)
    .bind(user_id)
    .bind(email)
    .bind(display_name.and_then(crate::domain::text::display_name))
    .execute(executor)
    .await?;
    Ok(())
}
