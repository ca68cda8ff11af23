//! The bot's App Home tab: a person's open requests, their certificates with expiry and, for
//! approvers, the queue with its decision buttons ([`ChatService::home`]). It is published
//! when they open the tab (`app_home_opened`) and again, for everyone who opened it, when
//! something on it changes (the notifier's deliveries, [`refresh`]).

use serde_json::json;
use sqlx::Row;

use super::api::SlackApi;
use super::render;
use crate::chat::reply::{Block, Reply};
use crate::chat::service::ChatService;
use crate::commands::CommandContext;
use crate::domain::actor::Platform;
use crate::domain::values::Email;
use crate::projections::projector::READ_MODEL;

/// How long a page waits for the read model to hold what just happened.
const CATCH_UP: std::time::Duration = std::time::Duration::from_secs(2);

/// Publishes the page of the person `email`, Slack user `user_id` of `team_id`, with `note`
/// at the top when given (what came of a click on it), and remembers that they have one.
pub async fn publish(
    chat: &ChatService,
    api: &SlackApi,
    team_id: &str,
    user_id: &str,
    email: &Email,
    note: Option<String>,
) -> anyhow::Result<()> {
    // The page reads the read model: it waits (briefly) for what just happened to be there.
    let pool = chat.commands().pool();
    if !crate::feed::caught_up(pool, READ_MODEL, CATCH_UP).await? {
        tracing::info!("a Home tab is published before the read model caught up");
    }
    let ctx = CommandContext::new(email.clone(), Platform::Slack);
    let mut page = chat.home(&ctx).await?;
    if let Some(note) = note {
        page.blocks.insert(0, Block::Text(note));
    }
    api.publish_view(user_id, render::home(&page)).await?;
    sqlx::query(
        "INSERT INTO slack_home_tabs (team_id, user_id, email, published_at) \
         VALUES ($1, $2, $3, now()) \
         ON CONFLICT (team_id, user_id) DO UPDATE \
            SET email = EXCLUDED.email, published_at = now()",
    )
    .bind(team_id)
    .bind(user_id)
    .bind(email.as_ref())
    .execute(chat.commands().pool())
    .await?;
    Ok(())
}

/// Publishes again the pages of `people` and, when `approvers`, of every approver and admin
/// (their queue changed), among those who opened the tab. A page that cannot be published
/// is logged; it is published again on the next change or when its owner opens it.
pub async fn refresh(
    chat: &ChatService,
    api: &SlackApi,
    people: &[Email],
    approvers: bool,
) -> anyhow::Result<()> {
    let emails: Vec<String> = people.iter().map(|e| e.as_ref().to_lowercase()).collect();
    let tabs = sqlx::query(
        "SELECT h.team_id, h.user_id, h.email FROM slack_home_tabs h \
          WHERE lower(h.email) = ANY($1) \
             OR ($2 AND EXISTS (SELECT 1 FROM users u \
                                 WHERE lower(u.email) = lower(h.email) AND u.is_active \
                                   AND u.deleted_at IS NULL AND u.role IN ('approver', 'admin')))",
    )
    .bind(&emails)
    .bind(approvers)
    .fetch_all(chat.commands().pool())
    .await?;
    for tab in tabs {
        let team_id: String = tab.try_get("team_id")?;
        let user_id: String = tab.try_get("user_id")?;
        let Ok(email) = Email::parse(&tab.try_get::<String, _>("email")?) else {
            continue;
        };
        if let Err(error) = publish(chat, api, &team_id, &user_id, &email, None).await {
            tracing::warn!(
                error = format!("{error:#}"),
                "could not publish a Slack Home tab"
            );
        }
    }
    Ok(())
}

/// The page a person sees when their own cannot be shown (they could not be looked up).
pub fn unavailable(why: &str) -> serde_json::Value {
    let reply = Reply::text(format!("Your page could not be shown right now: {why}"));
    json!({ "type": "home", "blocks": render::home(&reply)["blocks"] })
}
