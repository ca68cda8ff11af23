//! Reaching people who never wrote to the bot, by Microsoft Graph's documented route for
//! proactive messages: find the person in the tenant's directory by e-mail, install the app
//! for them (the organisation's app catalog holds it under the bot's app id), and read the
//! id of the one-to-one chat that installing opens; the bot then posts there through the
//! connector. It needs the application permissions `User.Read.All`,
//! `AppCatalog.Read.All` and `TeamsAppInstallation.ReadWriteSelfForUser.All`, granted by a
//! tenant admin. What Graph refuses is said in words, for the admins.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::api::Credentials;

/// The application permissions the route needs (for the admins, and the README).
pub const PERMISSIONS: &str = "User.Read.All, AppCatalog.Read.All and \
                               TeamsAppInstallation.ReadWriteSelfForUser.All";

/// A Graph client for the bot's own app registration.
#[derive(Clone)]
pub struct Graph {
    http: reqwest::Client,
    base: String,
    app_id: String,
    password: SecretString,
    /// The token endpoint: `{tenant}` is replaced by the tenant's id.
    token_url: String,
    tokens: Arc<Mutex<HashMap<String, Credentials>>>,
    /// The app's id in each tenant's catalog, once found.
    catalog: Arc<Mutex<HashMap<String, String>>>,
}

impl std::fmt::Debug for Graph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Graph")
            .field("base", &self.base)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// Where a person can be messaged, as Graph found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Their one-to-one chat with the bot.
    Chat(String),
    /// The tenant's directory has nobody with that e-mail.
    NotInDirectory,
}

/// Why Graph gave no chat.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    /// Graph said no, and will say it again until an admin acts (a permission not
    /// granted, the app not in the catalog): worth telling the admins, not worth retrying.
    #[error("{0}")]
    Refused(String),
    /// It could not be asked (unreachable, a server error): worth another attempt.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

impl Graph {
    /// Graph at `base` (`https://graph.microsoft.com/v1.0`) for the bot `app_id`, with
    /// tokens from `token_url` (`{tenant}` stands for the tenant's id).
    pub fn new(
        http: reqwest::Client,
        base: &str,
        app_id: &str,
        password: SecretString,
        token_url: &str,
    ) -> Self {
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            password,
            token_url: token_url.to_owned(),
            tokens: Arc::default(),
            catalog: Arc::default(),
        }
    }

    /// The one-to-one chat of the person with `email` in `tenant` and the bot, installing
    /// the app for them first if they do not have it.
    pub async fn personal_chat(&self, tenant: &str, email: &str) -> Result<Found, GraphError> {
        let token = self.token(tenant).await?;
        let quoted = odata_string(email);
        let users = self
            .get(
                &token,
                "/users",
                &[
                    (
                        "$filter",
                        format!("mail eq {quoted} or userPrincipalName eq {quoted}"),
                    ),
                    ("$select", "id".to_owned()),
                ],
                "look people up in the directory",
            )
            .await?;
        let Some(user) = first_id(&users) else {
            return Ok(Found::NotInDirectory);
        };
        let catalog_id = self.catalog_id(tenant, &token).await?;
        self.install(&token, &user, &catalog_id).await?;
        let installed = self
            .get(
                &token,
                &format!("/users/{user}/teamwork/installedApps"),
                &[
                    ("$expand", "teamsApp".to_owned()),
                    (
                        "$filter",
                        format!("teamsApp/externalId eq {}", odata_string(&self.app_id)),
                    ),
                ],
                "read the apps installed for a person",
            )
            .await?;
        let installation = first_id(&installed).ok_or_else(|| {
            GraphError::Failed(anyhow::anyhow!(
                "Graph lists no installation of the app right after installing it"
            ))
        })?;
        let chat = self
            .get(
                &token,
                &format!("/users/{user}/teamwork/installedApps/{installation}/chat"),
                &[],
                "read the chat of an installed app",
            )
            .await?;
        chat["id"]
            .as_str()
            .map(|id| Found::Chat(id.to_owned()))
            .ok_or_else(|| GraphError::Failed(anyhow::anyhow!("Graph returned no chat id")))
    }

    async fn token(&self, tenant: &str) -> Result<SecretString, GraphError> {
        let credentials = {
            let mut tokens = self.tokens.lock().await;
            tokens
                .entry(tenant.to_owned())
                .or_insert_with(|| {
                    Credentials::new(
                        self.http.clone(),
                        &self.app_id,
                        self.password.clone(),
                        &self.token_url.replace("{tenant}", tenant),
                        "https://graph.microsoft.com/.default",
                    )
                })
                .clone()
        };
        Ok(credentials.token().await?)
    }

    /// The app's id in the tenant's catalog (its manifest id is the bot's app id).
    async fn catalog_id(&self, tenant: &str, token: &SecretString) -> Result<String, GraphError> {
        if let Some(id) = self.catalog.lock().await.get(tenant) {
            return Ok(id.clone());
        }
        let apps = self
            .get(
                token,
                "/appCatalogs/teamsApps",
                &[(
                    "$filter",
                    format!("externalId eq {}", odata_string(&self.app_id)),
                )],
                "read the organisation's app catalog",
            )
            .await?;
        let id = first_id(&apps).ok_or_else(|| {
            GraphError::Refused(
                "the app is not in the organisation's app catalog: upload the manifest \
                 (cert-assistant manifest teams) in the Teams admin center"
                    .to_owned(),
            )
        })?;
        self.catalog
            .lock()
            .await
            .insert(tenant.to_owned(), id.clone());
        Ok(id)
    }

    /// Installs the app for `user`; one already installed is left as it is.
    async fn install(
        &self,
        token: &SecretString,
        user: &str,
        catalog_id: &str,
    ) -> Result<(), GraphError> {
        let url = format!("{}/users/{user}/teamwork/installedApps", self.base);
        let body = json!({
            "teamsApp@odata.bind": format!("{}/appCatalogs/teamsApps/{catalog_id}", self.base),
        });
        let response = self
            .http
            .post(&url)
            .bearer_auth(token.expose_secret())
            .json(&body)
            .send()
            .await
            .context("calling Microsoft Graph to install the app for a person")?;
        match response.status() {
            status if status.is_success() => Ok(()),
            StatusCode::CONFLICT => Ok(()),
            _ => Err(refusal(response, "install the app for a person").await),
        }
    }

    async fn get(
        &self,
        token: &SecretString,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Value, GraphError> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .query(query)
            .bearer_auth(token.expose_secret())
            .send()
            .await
            .with_context(|| format!("calling Microsoft Graph to {what}"))?;
        if !response.status().is_success() {
            return Err(refusal(response, what).await);
        }
        Ok(response
            .json()
            .await
            .with_context(|| format!("Microsoft Graph's answer when asked to {what}"))?)
    }
}

/// What a failed Graph call means: refused (a 4xx other than throttling: permissions, a
/// missing app), or failed (throttled, a server error) and worth retrying.
async fn refusal(response: reqwest::Response, what: &str) -> GraphError {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let code = body["error"]["code"].as_str().unwrap_or("no error code");
    let said: String = body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    let text = format!("Microsoft Graph refused to {what}: {status} ({code}) {said}");
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        let hint = if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            format!(
                "; the bot's app registration needs the application permissions {PERMISSIONS}, granted by an admin"
            )
        } else {
            String::new()
        };
        GraphError::Refused(format!("{}{hint}", text.trim_end()))
    } else {
        GraphError::Failed(anyhow::anyhow!(text))
    }
}

/// The first `id` of a Graph collection (`{"value": [{"id": …}]}`).
fn first_id(collection: &Value) -> Option<String> {
    collection["value"][0]["id"].as_str().map(str::to_owned)
}

/// A string literal in an OData `$filter`: quoted, with quotes doubled.
fn odata_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_literals_cannot_end_early() {
        assert_eq!(odata_string("o'neil@example.com"), "'o''neil@example.com'");
        assert_eq!(
            first_id(&json!({ "value": [{ "id": "a" }, { "id": "b" }] })),
            Some("a".to_owned())
        );
        assert_eq!(first_id(&json!({ "value": [] })), None);
    }
}
