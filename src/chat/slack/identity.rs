//! Who a Slack user is: the e-mail from `users.info`, cached in `chat_identities`.

use super::api::SlackApi;
use crate::chat::service::ChatService;
use crate::domain::values::Email;

/// `chat_identities.platform` of Slack users (their `workspace_id` is the team).
const PLATFORM: &str = "slack";

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
    #[error(
        "could not look you up in Slack right now, so nothing was done; please try again in a \
         minute (`/cert help` answers meanwhile)"
    )]
    Unavailable(#[source] anyhow::Error),
}

/// The e-mail and name of Slack user `user_id` in workspace `team_id`.
pub async fn resolve(
    chat: &ChatService,
    api: &SlackApi,
    team_id: &str,
    user_id: &str,
) -> Result<(Email, Option<String>), IdentityError> {
    let pool = chat.commands().pool();
    let cached = chat
        .identities()
        .fresh(pool, PLATFORM, team_id, user_id)
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
    chat.identities()
        .remember(
            pool,
            PLATFORM,
            team_id,
            user_id,
            email.as_ref(),
            user.name.as_deref(),
        )
        .await
        .map_err(|e| IdentityError::Unavailable(e.into()))?;
    Ok((email, user.name))
}
