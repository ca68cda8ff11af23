//! The Bot Framework connector calls we make: replies, proactive conversations, card updates
//! and member lookups, each with the bot's own client-credentials token (cached until shortly
//! before it expires). The service URL comes from the activities Teams sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::sync::Mutex;

/// A client-credentials token for one resource (`scope`), cached until shortly before it
/// expires: the Bot Framework connector's, or Microsoft Graph's for one tenant.
#[derive(Clone)]
pub(super) struct Credentials {
    http: reqwest::Client,
    app_id: String,
    password: SecretString,
    token_url: String,
    scope: &'static str,
    token: Arc<Mutex<Option<(SecretString, Instant)>>>,
}

impl Credentials {
    pub(super) fn new(
        http: reqwest::Client,
        app_id: &str,
        password: SecretString,
        token_url: &str,
        scope: &'static str,
    ) -> Self {
        Self {
            http,
            app_id: app_id.to_owned(),
            password,
            token_url: token_url.to_owned(),
            scope,
            token: Arc::default(),
        }
    }

    /// The token, from the cache while it lasts.
    pub(super) async fn token(&self) -> anyhow::Result<SecretString> {
        let mut cached = self.token.lock().await;
        if let Some((token, until)) = cached.as_ref()
            && Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let answer: Value = self
            .http
            .post(&self.token_url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", self.app_id.as_str()),
                ("client_secret", self.password.expose_secret()),
                ("scope", self.scope),
            ])
            .send()
            .await
            .with_context(|| format!("asking for a token for {}", self.scope))?
            .error_for_status()
            .context("the token endpoint refused the bot's credentials")?
            .json()
            .await?;
        let token: SecretString = answer["access_token"]
            .as_str()
            .context("the token endpoint returned no access_token")?
            .to_owned()
            .into();
        let lifetime = answer["expires_in"].as_u64().unwrap_or(3600);
        let until = Instant::now() + Duration::from_secs(lifetime.saturating_sub(300).max(60));
        *cached = Some((token.clone(), until));
        Ok(token)
    }
}

/// A connector client.
#[derive(Clone)]
pub struct TeamsApi {
    http: reqwest::Client,
    app_id: String,
    credentials: Credentials,
}

impl std::fmt::Debug for TeamsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsApi")
            .field("app_id", &self.app_id)
            .field("token_url", &self.credentials.token_url)
            .finish_non_exhaustive()
    }
}

/// A member's profile as the connector returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Their e-mail (or user principal name).
    pub email: Option<String>,
    /// A name to show.
    pub name: Option<String>,
}

impl TeamsApi {
    /// A client for the bot `app_id`, getting tokens from `token_url`.
    pub fn new(app_id: &str, password: SecretString, token_url: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        let credentials = Credentials::new(
            http.clone(),
            app_id,
            password,
            token_url,
            "https://api.botframework.com/.default",
        );
        Self {
            http,
            app_id: app_id.to_owned(),
            credentials,
        }
    }

    /// The bot's id.
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The HTTP client it calls with (shared with Graph).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let token = self.credentials.token().await?;
        let mut request = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("calling the Bot Framework: {method} {url}"))?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "the Bot Framework answered {status} to {method} {url}"
        );
        Ok(response.json().await.unwrap_or(Value::Null))
    }

    fn base(service_url: &str) -> &str {
        service_url.trim_end_matches('/')
    }

    /// POSTs `body` to `url` and returns the id the connector gives back (`what` it is).
    async fn post_for_id(&self, url: String, body: &Value, what: &str) -> anyhow::Result<String> {
        let answer = self.call(reqwest::Method::POST, url, Some(body)).await?;
        answer["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("the Bot Framework returned no {what} id"))
    }

    /// Replies in the conversation of `activity_id`; returns the new activity's id.
    pub async fn reply(
        &self,
        service_url: &str,
        conversation: &str,
        activity_id: &str,
        activity: &Value,
    ) -> anyhow::Result<String> {
        let base = Self::base(service_url);
        let url = format!("{base}/v3/conversations/{conversation}/activities/{activity_id}");
        self.post_for_id(url, activity, "activity").await
    }

    /// Opens a one-to-one conversation with a user; returns its id.
    pub async fn create_conversation(
        &self,
        service_url: &str,
        tenant_id: &str,
        user_id: &str,
    ) -> anyhow::Result<String> {
        let conversation = json!({
            "bot": { "id": format!("28:{}", self.app_id) },
            "members": [{ "id": user_id }],
            "tenantId": tenant_id,
            "channelData": { "tenant": { "id": tenant_id } },
            "isGroup": false,
        });
        let url = format!("{}/v3/conversations", Self::base(service_url));
        self.post_for_id(url, &conversation, "conversation").await
    }

    /// Posts an activity to a conversation; returns its id.
    pub async fn send(
        &self,
        service_url: &str,
        conversation: &str,
        activity: &Value,
    ) -> anyhow::Result<String> {
        let base = Self::base(service_url);
        let url = format!("{base}/v3/conversations/{conversation}/activities");
        self.post_for_id(url, activity, "activity").await
    }

    /// Replaces an activity (a card) the bot posted.
    pub async fn update(
        &self,
        service_url: &str,
        conversation: &str,
        activity_id: &str,
        activity: &Value,
    ) -> anyhow::Result<()> {
        self.call(
            reqwest::Method::PUT,
            format!(
                "{}/v3/conversations/{conversation}/activities/{activity_id}",
                Self::base(service_url)
            ),
            Some(activity),
        )
        .await
        .map(drop)
    }

    /// A conversation member's profile (e-mail or UPN).
    pub async fn member(
        &self,
        service_url: &str,
        conversation: &str,
        user_id: &str,
    ) -> anyhow::Result<Member> {
        let answer = self
            .call(
                reqwest::Method::GET,
                format!(
                    "{}/v3/conversations/{conversation}/members/{user_id}",
                    Self::base(service_url)
                ),
                None,
            )
            .await?;
        Ok(Member {
            email: answer["email"]
                .as_str()
                .or_else(|| answer["userPrincipalName"].as_str())
                .map(str::to_owned),
            name: answer["name"].as_str().map(str::to_owned),
        })
    }
}
