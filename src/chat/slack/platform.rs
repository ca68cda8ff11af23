//! Slack as a [`ChatPlatform`] for the outbox notifier: people are found by e-mail (from an
//! earlier `/cert`, or `users.lookupByEmail`), DMs go through `conversations.open` and
//! `chat.postMessage`, updates through `chat.update`; the App Home tabs of the people a
//! delivery concerns are published again ([`super::home`]).

use serde_json::Value;
use sqlx::PgPool;

use super::api::SlackApi;
use super::render;
use crate::chat::outbound::{ChatPlatform, Posted, Reach};
use crate::chat::reply::Reply;
use crate::chat::service::ChatService;
use crate::domain::values::Email;
use crate::ports::BoxFuture;

/// Slack, for the notifier.
#[derive(Debug, Clone)]
pub struct SlackPlatform {
    pool: PgPool,
    api: SlackApi,
    /// What the App Home tabs show.
    chat: ChatService,
}

impl SlackPlatform {
    /// Slack through `api`, remembering people in `chat_identities`.
    pub fn new(pool: PgPool, api: SlackApi, chat: ChatService) -> Self {
        Self { pool, api, chat }
    }

    async fn find(&self, email: &str) -> anyhow::Result<Option<String>> {
        if let Some((_, user_id)) =
            crate::chat::identities::account_of(&self.pool, "slack", email).await?
        {
            return Ok(Some(user_id));
        }
        let Some((user_id, team_id)) = self.api.lookup_by_email(email).await? else {
            return Ok(None);
        };
        crate::chat::identities::remember(&self.pool, "slack", &team_id, &user_id, email, None)
            .await?;
        Ok(Some(user_id))
    }
}

/// A reply as a `chat.postMessage` / `chat.update` body (`response_type` belongs to
/// responses only).
fn body(reply: &Reply) -> Value {
    let mut message = render::message(reply);
    if let Some(fields) = message.as_object_mut() {
        fields.remove("response_type");
    }
    message
}

impl ChatPlatform for SlackPlatform {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn reach<'a>(&'a self, email: &'a str) -> BoxFuture<'a, anyhow::Result<Reach>> {
        Box::pin(async move { Ok(self.find(email).await?.into()) })
    }

    fn has_pages(&self) -> bool {
        true
    }

    fn refresh_pages<'a>(
        &'a self,
        people: &'a [Email],
        approvers: bool,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(super::home::refresh(
            &self.chat, &self.api, people, approvers,
        ))
    }

    fn send_direct<'a>(
        &'a self,
        user: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>> {
        Box::pin(async move {
            let channel = self.api.open_dm(user).await?;
            let message_id = self.api.post_message(&channel, &body(reply)).await?;
            Ok(Posted {
                channel,
                message_id,
            })
        })
    }

    fn post<'a>(
        &'a self,
        channel: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>> {
        Box::pin(async move {
            let message_id = self.api.post_message(channel, &body(reply)).await?;
            Ok(Posted {
                channel: channel.to_owned(),
                message_id,
            })
        })
    }

    fn update<'a>(
        &'a self,
        posted: &'a Posted,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.api
                .update_message(&posted.channel, &posted.message_id, &body(reply))
                .await
        })
    }
}
