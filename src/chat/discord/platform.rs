//! Discord as a [`ChatPlatform`] for the outbox notifier: people are reached once they linked
//! their account (`/cert link`); DMs go through `POST /users/@me/channels` and
//! `POST /channels/{id}/messages`, updates through `PATCH`.

use sqlx::PgPool;

use super::api::DiscordApi;
use super::identity::PLATFORM;
use super::render;
use crate::chat::outbound::{ChatPlatform, Posted, Reach};
use crate::chat::reply::Reply;
use crate::ports::BoxFuture;

/// Discord, for the notifier.
#[derive(Debug, Clone)]
pub struct DiscordPlatform {
    pool: PgPool,
    api: DiscordApi,
}

impl DiscordPlatform {
    /// Discord through `api`.
    pub fn new(pool: PgPool, api: DiscordApi) -> Self {
        Self { pool, api }
    }
}

impl ChatPlatform for DiscordPlatform {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn reach<'a>(&'a self, email: &'a str) -> BoxFuture<'a, anyhow::Result<Reach>> {
        Box::pin(async move {
            let account = crate::chat::identities::account_of(&self.pool, PLATFORM, email).await?;
            Ok(account.map(|(_, user)| user).into())
        })
    }

    fn send_direct<'a>(
        &'a self,
        user: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>> {
        Box::pin(async move {
            let channel = self.api.open_dm(user).await?;
            let message_id = self
                .api
                .create_message(&channel, &render::posted(reply))
                .await?;
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
            let message_id = self
                .api
                .create_message(channel, &render::posted(reply))
                .await?;
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
                .edit_message(&posted.channel, &posted.message_id, &render::posted(reply))
                .await
        })
    }
}
