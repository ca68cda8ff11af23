//! Teams as a [`ChatPlatform`] for the outbox notifier: people are reached once they wrote
//! to the bot (their tenant, Teams id and e-mail are remembered); proactive messages open a
//! one-to-one conversation through the tenant's connector, cards are updated in place.

use sqlx::PgPool;

use super::PLATFORM;
use super::api::TeamsApi;
use super::render;
use crate::chat::outbound::{ChatPlatform, Posted};
use crate::chat::reply::Reply;
use crate::ports::BoxFuture;

/// Teams, for the notifier.
#[derive(Debug, Clone)]
pub struct TeamsPlatform {
    pool: PgPool,
    api: TeamsApi,
}

/// `Posted.channel` holds the tenant and the conversation: `TENANT|CONVERSATION`.
fn split(channel: &str) -> anyhow::Result<(&str, &str)> {
    channel
        .split_once('|')
        .ok_or_else(|| anyhow::anyhow!("not a Teams conversation: {channel}"))
}

impl TeamsPlatform {
    /// Teams through `api`.
    pub fn new(pool: PgPool, api: TeamsApi) -> Self {
        Self { pool, api }
    }

    async fn service_url(&self, tenant: &str) -> anyhow::Result<String> {
        sqlx::query_scalar("SELECT service_url FROM teams_service_urls WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no Teams service URL known for tenant {tenant}"))
    }
}

impl ChatPlatform for TeamsPlatform {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn user_for<'a>(&'a self, email: &'a str) -> BoxFuture<'a, anyhow::Result<Option<String>>> {
        Box::pin(async move {
            let account = crate::chat::identities::account_of(&self.pool, PLATFORM, email).await?;
            Ok(account.map(|(tenant, user)| format!("{tenant}|{user}")))
        })
    }

    fn send_direct<'a>(
        &'a self,
        user: &'a str,
        reply: &'a Reply,
    ) -> BoxFuture<'a, anyhow::Result<Posted>> {
        Box::pin(async move {
            let (tenant, user_id) = split(user)?;
            let service_url = self.service_url(tenant).await?;
            let conversation = self
                .api
                .create_conversation(&service_url, tenant, user_id)
                .await?;
            let message_id = self
                .api
                .send(&service_url, &conversation, &render::activity(reply))
                .await?;
            Ok(Posted {
                channel: format!("{tenant}|{conversation}"),
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
            let (tenant, conversation) = split(channel)?;
            let service_url = self.service_url(tenant).await?;
            let message_id = self
                .api
                .send(&service_url, conversation, &render::activity(reply))
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
            let (tenant, conversation) = split(&posted.channel)?;
            let service_url = self.service_url(tenant).await?;
            let mut activity = render::activity(reply);
            activity["id"] = serde_json::json!(posted.message_id);
            self.api
                .update(&service_url, conversation, &posted.message_id, &activity)
                .await
        })
    }
}
