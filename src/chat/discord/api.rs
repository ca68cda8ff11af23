//! The Discord REST calls we make, over reqwest, against a configurable base URL (tests
//! point it at a local server that records them).

use anyhow::Context;
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// A Discord REST client with the bot's token.
#[derive(Clone)]
pub struct DiscordApi {
    http: reqwest::Client,
    base_url: String,
    application_id: String,
    token: SecretString,
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApi")
            .field("base_url", &self.base_url)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

impl DiscordApi {
    /// A client for `base_url` (e.g. `https://discord.com/api/v10`).
    pub fn new(base_url: &str, application_id: &str, token: SecretString) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            application_id: application_id.to_owned(),
            token,
        }
    }

    /// The application's id.
    pub fn application_id(&self) -> &str {
        &self.application_id
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base_url))
            .header(
                "authorization",
                format!("Bot {}", self.token.expose_secret()),
            );
        if let Some(body) = body {
            request = request.json(body);
        }
        // Interaction webhooks carry their token in the path: errors name the path without
        // it, and reqwest's errors lose their URL, so neither reaches a log.
        let shown = shown_path(path);
        let response = request
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("calling Discord's {method} {shown}"))?;
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        if !status.is_success() {
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["message"].as_str().map(str::to_owned))
                .unwrap_or_else(|| status.to_string());
            anyhow::bail!("Discord's {method} {shown} failed ({status}): {message}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Opens (or finds) the DM channel with a user; returns its id.
    pub async fn open_dm(&self, user_id: &str) -> anyhow::Result<String> {
        let channel = self
            .call(
                Method::POST,
                "/users/@me/channels",
                Some(&json!({ "recipient_id": user_id })),
            )
            .await?;
        channel["id"]
            .as_str()
            .map(str::to_owned)
            .context("Discord returned no DM channel id")
    }

    /// Posts a message; returns its id.
    pub async fn create_message(&self, channel: &str, message: &Value) -> anyhow::Result<String> {
        let posted = self
            .call(
                Method::POST,
                &format!("/channels/{channel}/messages"),
                Some(message),
            )
            .await?;
        posted["id"]
            .as_str()
            .map(str::to_owned)
            .context("Discord returned no message id")
    }

    /// Replaces a message the bot posted.
    pub async fn edit_message(
        &self,
        channel: &str,
        message_id: &str,
        message: &Value,
    ) -> anyhow::Result<()> {
        self.call(
            Method::PATCH,
            &format!("/channels/{channel}/messages/{message_id}"),
            Some(message),
        )
        .await
        .map(drop)
    }

    /// Replaces the original answer to an interaction (after a deferred response).
    pub async fn edit_original(&self, token: &str, message: &Value) -> anyhow::Result<()> {
        self.call(
            Method::PATCH,
            &format!(
                "/webhooks/{}/{token}/messages/@original",
                self.application_id
            ),
            Some(message),
        )
        .await
        .map(drop)
    }

    /// Registers the application's commands, globally or in one guild (replacing them all).
    pub async fn register_commands(
        &self,
        guild: Option<&str>,
        commands: &Value,
    ) -> anyhow::Result<Value> {
        let path = match guild {
            Some(guild) => format!(
                "/applications/{}/guilds/{guild}/commands",
                self.application_id
            ),
            None => format!("/applications/{}/commands", self.application_id),
        };
        self.call(Method::PUT, &path, Some(commands)).await
    }
}

/// `path` as it may be logged: `/webhooks/{application}/{token}/…` loses its token.
fn shown_path(path: &str) -> String {
    match path
        .strip_prefix("/webhooks/")
        .and_then(|rest| rest.split_once('/'))
    {
        Some((application, rest)) => {
            let after_token = rest.split_once('/').map_or("", |(_, after)| after);
            format!("/webhooks/{application}/…/{after_token}")
        }
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_interaction_token_is_never_part_of_an_error() {
        assert_eq!(
            shown_path("/webhooks/123/tok-en.SECRET/messages/@original"),
            "/webhooks/123/…/messages/@original"
        );
        assert_eq!(shown_path("/users/@me/channels"), "/users/@me/channels");
        // Nobody listens on port 9: the error is reqwest's, and it must not carry the URL.
        let api = DiscordApi::new("http://127.0.0.1:9/api/v10", "123", "bot".to_owned().into());
        let error = api
            .edit_original("tok-en.SECRET", &serde_json::json!({}))
            .await
            .expect_err("nobody answers");
        let shown = format!("{error:#} {error:?}");
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
