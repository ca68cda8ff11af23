//! Teams as a [`ChatPlatform`] for the outbox notifier: people who wrote to the bot are
//! reached by the Teams id remembered then (a one-to-one conversation opened through the
//! tenant's connector); people who never did, through Microsoft Graph ([`Graph`]: the app
//! installed for them, its chat with them). Cards are updated in place.

use sqlx::PgPool;

use super::PLATFORM;
use super::api::TeamsApi;
use super::graph::{Found, Graph, GraphError};
use super::render;
use crate::chat::outbound::{ChatPlatform, Posted, Reach};
use crate::chat::reply::Reply;
use crate::ports::BoxFuture;

/// Teams, for the notifier.
#[derive(Debug, Clone)]
pub struct TeamsPlatform {
    pool: PgPool,
    api: TeamsApi,
    /// How people who never wrote to the bot are reached (`None`: they are not).
    graph: Option<Graph>,
    /// The tenants served, where such people are looked for.
    tenants: std::sync::Arc<Vec<String>>,
    /// The connector for a tenant none of whose people wrote yet.
    default_service_url: String,
}

/// `Posted.channel` holds the tenant and the conversation: `TENANT|CONVERSATION`.
fn split(channel: &str) -> anyhow::Result<(&str, &str)> {
    channel
        .split_once('|')
        .ok_or_else(|| anyhow::anyhow!("not a Teams conversation: {channel}"))
}

/// A user reached through their chat with the app (found by Graph) rather than a Teams id.
const CHAT: &str = "chat:";

impl TeamsPlatform {
    /// Teams through `api`, reaching people who never wrote through `graph` (in `tenants`,
    /// at `default_service_url` while none of a tenant's people wrote).
    pub fn new(
        pool: PgPool,
        api: TeamsApi,
        graph: Option<Graph>,
        tenants: std::sync::Arc<Vec<String>>,
        default_service_url: &str,
    ) -> Self {
        Self {
            pool,
            api,
            graph,
            tenants,
            default_service_url: default_service_url.to_owned(),
        }
    }

    /// The connector of `tenant`, as its activities last named it.
    async fn service_url(&self, tenant: &str) -> anyhow::Result<String> {
        let known: Option<String> =
            sqlx::query_scalar("SELECT service_url FROM teams_service_urls WHERE tenant_id = $1")
                .bind(tenant)
                .fetch_optional(&self.pool)
                .await?;
        Ok(known.unwrap_or_else(|| self.default_service_url.clone()))
    }

    /// Someone who never wrote to the bot, through Graph in each served tenant.
    async fn reach_first(&self, email: &str) -> anyhow::Result<Reach> {
        let Some(graph) = &self.graph else {
            return Ok(Reach::Unreachable {
                why: Some(
                    "they have not written to the bot yet, and reaching people first is off \
                     (teams.proactive = false)"
                        .to_owned(),
                ),
            });
        };
        let mut refused = None;
        for tenant in self.tenants.iter() {
            match graph.personal_chat(tenant, email).await {
                Ok(Found::Chat(chat)) => return Ok(Reach::At(format!("{tenant}|{CHAT}{chat}"))),
                Ok(Found::NotInDirectory) => {}
                Err(GraphError::Refused(why)) => {
                    tracing::warn!(%tenant, %why, "Graph cannot reach a person on Teams");
                    refused = Some(why);
                }
                Err(GraphError::Failed(error)) => return Err(error),
            }
        }
        Ok(Reach::Unreachable { why: refused })
    }
}

impl ChatPlatform for TeamsPlatform {
    fn name(&self) -> &'static str {
        PLATFORM
    }

    fn reach<'a>(&'a self, email: &'a str) -> BoxFuture<'a, anyhow::Result<Reach>> {
        Box::pin(async move {
            match crate::chat::identities::account_of(&self.pool, PLATFORM, email).await? {
                Some((tenant, user)) => Ok(Reach::At(format!("{tenant}|{user}"))),
                None => self.reach_first(email).await,
            }
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
            let conversation = match user_id.strip_prefix(CHAT) {
                Some(chat) => chat.to_owned(),
                None => {
                    self.api
                        .create_conversation(&service_url, tenant, user_id)
                        .await?
                }
            };
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
