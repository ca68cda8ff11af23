//! The Slack Web API methods we call, over reqwest, against a configurable base URL (tests
//! point it at a local server that speaks the same methods).

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

/// A Slack Web API client.
#[derive(Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base_url: String,
    token: SecretString,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// What `users.info` tells about a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackUser {
    /// The profile's e-mail (needs `users:read.email`).
    pub email: Option<String>,
    /// A name to show.
    pub name: Option<String>,
}

impl SlackApi {
    /// A client for `base_url` (e.g. `https://slack.com/api`) with a bot token.
    pub fn new(base_url: &str, token: SecretString) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// Calls `method` with a JSON body and returns Slack's answer when `ok` is true.
    async fn call(&self, method: &str, body: &Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(format!("{}/{method}", self.base_url))
            .bearer_auth(self.token.expose_secret())
            .json(body)
            .send()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("calling Slack's {method}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(reqwest::Error::without_url)
            .with_context(|| format!("reading Slack's answer to {method} ({status})"))?;
        if answer["ok"].as_bool() != Some(true) {
            anyhow::bail!(
                "Slack's {method} failed: {}",
                answer["error"].as_str().unwrap_or("no error given")
            );
        }
        Ok(answer)
    }

    /// `users.info`.
    pub async fn user(&self, user_id: &str) -> anyhow::Result<SlackUser> {
        let answer = self.call("users.info", &json!({ "user": user_id })).await?;
        let profile = &answer["user"]["profile"];
        Ok(SlackUser {
            email: profile["email"].as_str().map(str::to_owned),
            name: profile["real_name"]
                .as_str()
                .or_else(|| answer["user"]["real_name"].as_str())
                .map(str::to_owned),
        })
    }

    /// `users.lookupByEmail`: the Slack user id and workspace of an address, if any.
    pub async fn lookup_by_email(&self, email: &str) -> anyhow::Result<Option<(String, String)>> {
        match self
            .call("users.lookupByEmail", &json!({ "email": email }))
            .await
        {
            Ok(answer) => Ok(answer["user"]["id"].as_str().map(|id| {
                (
                    id.to_owned(),
                    answer["user"]["team_id"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })),
            Err(error) if error.to_string().contains("users_not_found") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `views.open` with a modal.
    pub async fn open_view(&self, trigger_id: &str, view: Value) -> anyhow::Result<()> {
        self.call(
            "views.open",
            &json!({ "trigger_id": trigger_id, "view": view }),
        )
        .await
        .map(drop)
    }

    /// `views.publish`: `view` becomes `user_id`'s App Home.
    pub async fn publish_view(&self, user_id: &str, view: Value) -> anyhow::Result<()> {
        self.call(
            "views.publish",
            &json!({ "user_id": user_id, "view": view }),
        )
        .await
        .map(drop)
    }

    /// `conversations.open` for a DM with `user_id`; returns the channel id.
    pub async fn open_dm(&self, user_id: &str) -> anyhow::Result<String> {
        let answer = self
            .call("conversations.open", &json!({ "users": user_id }))
            .await?;
        answer["channel"]["id"]
            .as_str()
            .map(str::to_owned)
            .context("Slack's conversations.open returned no channel")
    }

    /// `chat.postMessage`; returns the message's `ts`.
    pub async fn post_message(&self, channel: &str, message: &Value) -> anyhow::Result<String> {
        let mut body = message.clone();
        body["channel"] = json!(channel);
        let answer = self.call("chat.postMessage", &body).await?;
        answer["ts"]
            .as_str()
            .map(str::to_owned)
            .context("Slack's chat.postMessage returned no ts")
    }

    /// `chat.update` of a message.
    pub async fn update_message(
        &self,
        channel: &str,
        ts: &str,
        message: &Value,
    ) -> anyhow::Result<()> {
        let mut body = message.clone();
        body["channel"] = json!(channel);
        body["ts"] = json!(ts);
        self.call("chat.update", &body).await.map(drop)
    }

    /// Posts to an interaction's `response_url` (up to 5 times within 30 minutes).
    pub async fn respond(&self, response_url: &str, message: &Value) -> anyhow::Result<()> {
        let response = self
            .http
            .post(response_url)
            .json(message)
            .send()
            .await
            // A response_url lets anyone answer as the app for 30 minutes: never logged.
            .map_err(reqwest::Error::without_url)
            .context("posting to Slack's response_url")?;
        anyhow::ensure!(
            response.status().is_success(),
            "Slack's response_url answered {}",
            response.status()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_response_url_is_never_part_of_an_error() {
        let api = SlackApi::new("http://127.0.0.1:9/api", "xoxb-test".to_owned().into());
        // Nobody listens on port 9: the error is reqwest's, and it must not carry the URL.
        let error = api
            .respond(
                "http://127.0.0.1:9/actions/T1/SECRET-HOOK",
                &serde_json::json!({}),
            )
            .await
            .expect_err("nobody answers");
        let shown = format!("{error:#} {error:?}");
        assert!(!shown.contains("SECRET-HOOK"), "{shown}");
    }
}
