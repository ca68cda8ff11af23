//! Microsoft Teams through the Bot Framework: activities arrive at `/api/messages` with a
//! Bearer JWT that is checked before anything changes; text commands (`cert status REQ-…`,
//! with the @mention stripped), a dialog for the request form (`task/fetch` / `task/submit`),
//! and Adaptive Card approvals whose `Action.Execute` is answered with the card that
//! replaces the clicked one. Everything runs through the same chat core as Slack and Discord.

pub mod api;
pub mod auth;
pub mod graph;
pub mod manifest;
pub mod platform;
pub mod render;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use serde_json::{Value, json};

use super::command::{self, ChatCommand};
use super::decide::{Decided, decide};
use super::reply::{Action, Decision, Reply, Visibility};
use super::service::ChatService;
use crate::commands::{CommandContext, CommandError};
use crate::domain::actor::Platform;
use crate::domain::values::Email;
use api::TeamsApi;
use auth::{AuthError, Authenticator};

/// `chat_identities.platform` of Teams users (their `workspace_id` is the tenant).
pub const PLATFORM: &str = "teams";

/// What the Teams route needs.
#[derive(Debug, Clone)]
pub struct TeamsState {
    auth: Authenticator,
    api: TeamsApi,
    chat: ChatService,
    /// The tenants served, lower-cased.
    tenants: std::sync::Arc<Vec<String>>,
    /// How people who never wrote to the bot are reached.
    reaching: Reaching,
}

/// How the notifier reaches people who never wrote to the bot.
#[derive(Debug, Clone)]
pub struct Reaching {
    /// Through Graph (`None`: not at all).
    pub graph: Option<graph::Graph>,
    /// The connector while none of a tenant's people wrote.
    pub service_url: String,
}

impl TeamsState {
    /// Teams on top of the chat service, serving the people of `tenants`.
    pub fn new(
        auth: Authenticator,
        api: TeamsApi,
        chat: ChatService,
        tenants: Vec<String>,
        reaching: Reaching,
    ) -> Self {
        Self {
            auth,
            api,
            chat,
            tenants: std::sync::Arc::new(tenants),
            reaching,
        }
    }

    /// The connector client (its HTTP client is shared with Graph).
    pub fn api(&self) -> &TeamsApi {
        &self.api
    }

    /// Whether this activity may be served: it comes from Teams itself (not Web Chat or
    /// Direct Line, where the client writes the body), from a tenant on the allow-list, as
    /// the conversation names it (never `channelData`, which any client can fill).
    fn admits(&self, activity: &Value) -> Result<(), String> {
        let channel = activity["channelId"].as_str().unwrap_or_default();
        if channel != "msteams" {
            return Err(format!(
                "only Microsoft Teams is served here, not the {channel:?} channel"
            ));
        }
        let tenant = tenant(activity);
        if tenant.is_empty() {
            return Err("the activity names no tenant (conversation.tenantId)".to_owned());
        }
        if !self.tenants.iter().any(|t| t.eq_ignore_ascii_case(tenant)) {
            return Err(format!("tenant {tenant} is not served here"));
        }
        Ok(())
    }

    /// The worker that delivers the chat outbox to Teams.
    pub fn notifier(&self) -> crate::chat::outbound::ChatNotifier {
        let pool = self.chat.commands().pool().clone();
        crate::chat::outbound::ChatNotifier::new(
            pool.clone(),
            std::sync::Arc::new(platform::TeamsPlatform::new(
                pool,
                self.api.clone(),
                self.reaching.graph.clone(),
                self.tenants.clone(),
                &self.reaching.service_url,
            )),
            None,
        )
    }
}

/// The Teams route.
pub fn router(state: TeamsState) -> Router {
    Router::new()
        .route("/api/messages", post(messages))
        .with_state(state)
}

/// The activity's tenant, as its conversation names it.
pub(crate) fn tenant(activity: &Value) -> &str {
    activity["conversation"]["tenantId"]
        .as_str()
        .unwrap_or_default()
}

/// `<at>cert-assistant</at> cert status REQ-1` → `status REQ-1`.
pub(crate) fn command_text(text: &str) -> String {
    let mut rest = text.to_owned();
    while let (Some(start), Some(end)) = (rest.find("<at>"), rest.find("</at>")) {
        if end < start {
            break;
        }
        rest.replace_range(start..end + "</at>".len(), "");
    }
    let rest = rest.replace("&nbsp;", " ");
    let rest = rest.trim();
    let lower = rest.to_ascii_lowercase();
    let rest = if lower == "cert" || lower.starts_with("cert ") || lower.starts_with("/cert") {
        rest.trim_start_matches('/')[4..].trim()
    } else {
        rest
    };
    rest.to_owned()
}

impl TeamsState {
    /// The person behind an activity, by the e-mail Teams knows them by (looked up once,
    /// then remembered).
    async fn context(&self, activity: &Value) -> Result<CommandContext, String> {
        let pool = self.chat.commands().pool();
        let tenant = tenant(activity);
        let user_id = activity["from"]["id"].as_str().unwrap_or_default();
        let known = self
            .chat
            .identities()
            .fresh(pool, PLATFORM, tenant, user_id)
            .await
            .map_err(|e| internal(&e))?
            .map(|(email, _)| email);
        let name = activity["from"]["name"].as_str().map(str::to_owned);
        let email = match known {
            Some(email) => email,
            None => {
                let member = self
                    .api
                    .member(
                        activity["serviceUrl"].as_str().unwrap_or_default(),
                        activity["conversation"]["id"].as_str().unwrap_or_default(),
                        user_id,
                    )
                    .await
                    .map_err(|e| {
                        tracing::warn!(error = format!("{e:#}"), "teams member lookup failed");
                        "Your Teams profile could not be read right now, so nothing was done; please \
                         try again in a minute (`cert help` answers meanwhile)."
                            .to_owned()
                    })?;
                let email = member.email.ok_or_else(|| {
                    "Your Teams profile has no e-mail address; ask an admin.".to_owned()
                })?;
                self.chat
                    .identities()
                    .remember(
                        pool,
                        PLATFORM,
                        tenant,
                        user_id,
                        &email,
                        member.name.as_deref().or(name.as_deref()),
                    )
                    .await
                    .map_err(|e| internal(&e))?;
                email
            }
        };
        let email = Email::parse(&email).map_err(|e| e.message)?;
        let mut ctx = CommandContext::new(email, Platform::Teams);
        ctx.display_name = name;
        Ok(ctx)
    }

    async fn remember_service_url(&self, activity: &Value) {
        let (tenant, Some(url)) = (tenant(activity), activity["serviceUrl"].as_str()) else {
            return;
        };
        if tenant.is_empty() {
            return;
        }
        let stored = sqlx::query(
            "INSERT INTO teams_service_urls (tenant_id, service_url) VALUES ($1, $2) \
             ON CONFLICT (tenant_id) DO UPDATE SET service_url = EXCLUDED.service_url, \
                 updated_at = now() WHERE teams_service_urls.service_url <> EXCLUDED.service_url",
        )
        .bind(tenant)
        .bind(url)
        .execute(self.chat.commands().pool())
        .await;
        if let Err(error) = stored {
            tracing::warn!(%error, "could not remember the Teams service URL");
        }
    }
}

fn internal(error: &dyn std::fmt::Display) -> String {
    tracing::error!(%error, "teams");
    "Something went wrong on our side; the details are in the service log.".to_owned()
}

/// `POST /api/messages`.
async fn messages(State(state): State<TeamsState>, headers: HeaderMap, body: String) -> Response {
    let authorization = headers.get("authorization").and_then(|v| v.to_str().ok());
    if authorization.is_none() {
        return (StatusCode::UNAUTHORIZED, "missing bearer token").into_response();
    }
    let Ok(activity) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "the activity is not JSON").into_response();
    };
    let checked = state
        .auth
        .check(
            authorization,
            activity["channelId"].as_str().unwrap_or_default(),
            activity["serviceUrl"].as_str().unwrap_or_default(),
        )
        .await;
    match checked.map_err(|e| match e {
        AuthError::Unauthorized(why) => (StatusCode::UNAUTHORIZED, why),
        AuthError::Forbidden(why) => (StatusCode::FORBIDDEN, why),
    }) {
        Ok(()) => {}
        Err((status, why)) => {
            tracing::warn!(%why, "teams activity rejected");
            return (status, why).into_response();
        }
    }
    if let Err(why) = state.admits(&activity) {
        tracing::warn!(%why, "teams activity refused");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    state.remember_service_url(&activity).await;
    match activity["type"].as_str() {
        Some("message") => message(&state, &activity).await,
        Some("invoke") => invoke(&state, &activity).await,
        _ => StatusCode::OK.into_response(),
    }
}

/// A text command; the answer is a reply in the conversation.
async fn message(state: &TeamsState, activity: &Value) -> Response {
    let text = command_text(activity["text"].as_str().unwrap_or_default());
    // The place is held until the reply has been sent.
    let place = state.chat.admission().admit("teams").await;
    let reply = match &place {
        Err(busy) => Reply::text(busy.to_string()),
        Ok(_) => reply_to(state, activity, &text).await,
    };
    // Outside a personal chat, an answer for the person alone (a download link and its
    // passphrase, an audit extract, …) goes to them directly; the conversation hears only
    // that it was sent.
    let personal = activity["conversation"]["conversationType"].as_str() == Some("personal");
    let reply = if !personal && reply.visibility == Visibility::Ephemeral {
        match direct(state, activity, &render::activity(&reply)).await {
            Ok(()) => Reply::text("I sent you the answer in a direct message."),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not answer in a direct message"
                );
                Reply::text(
                    "That answer is for you alone, and a direct message could not be sent; \
                     ask me in a chat with me instead.",
                )
            }
        }
    } else {
        reply
    };
    let mut answer = render::activity(&reply);
    if text.trim() == "request" {
        answer["attachments"][0]["content"]["actions"] = json!([{
            "type": "Action.Submit",
            "title": "Open the request form",
            "data": { "msteams": { "type": "task/fetch" } },
        }]);
    }
    let sent = state
        .api
        .reply(
            activity["serviceUrl"].as_str().unwrap_or_default(),
            activity["conversation"]["id"].as_str().unwrap_or_default(),
            activity["id"].as_str().unwrap_or_default(),
            &answer,
        )
        .await;
    if let Err(error) = sent {
        tracing::warn!(error = format!("{error:#}"), "could not reply in Teams");
    }
    StatusCode::OK.into_response()
}

/// What the service answers the text command `text` of `activity`.
async fn reply_to(state: &TeamsState, activity: &Value, text: &str) -> Reply {
    let parsed = match command::parse(text) {
        Err(usage) => return Reply::text(usage.message),
        Ok(ChatCommand::RequestForm) => {
            return Reply::text(
                "Open the request form with the button, or type it in one line: `cert request \
                 cn=app.example.com why=\"…\"`.",
            );
        }
        Ok(parsed) => parsed,
    };
    if let Some(reply) = state.chat.answer_anyone(&parsed).await {
        // Teams reaches only the people it has seen write to the bot: looking them up now
        // remembers them for the approvals and reminders they will be sent. The answer does
        // not wait on it succeeding.
        if let Err(why) = state.context(activity).await {
            tracing::debug!(%why, "a Teams user was answered without being looked up");
        }
        return reply;
    }
    match state.context(activity).await {
        Ok(ctx) => state.chat.handle(&ctx, parsed).await,
        Err(message) => Reply::text(message),
    }
}

/// Sends `answer` to the activity's sender in a one-to-one conversation.
async fn direct(state: &TeamsState, activity: &Value, answer: &Value) -> anyhow::Result<()> {
    let service_url = activity["serviceUrl"].as_str().unwrap_or_default();
    let conversation = state
        .api
        .create_conversation(
            service_url,
            tenant(activity),
            activity["from"]["id"].as_str().unwrap_or_default(),
        )
        .await?;
    state.api.send(service_url, &conversation, answer).await?;
    Ok(())
}

/// Card actions and dialogs; answered in the HTTP body.
async fn invoke(state: &TeamsState, activity: &Value) -> Response {
    let ctx = match state.context(activity).await {
        Ok(ctx) => ctx,
        Err(message) => return Json(render::message_response(&message)).into_response(),
    };
    match activity["name"].as_str() {
        Some("adaptiveCard/action") => card_action(state, &ctx, activity).await,
        Some("task/fetch") => Json(render::request_dialog()).into_response(),
        Some("task/submit") => {
            let data = &activity["value"]["data"];
            let form = super::short_form::request_form(|id| {
                data[id]
                    .as_str()
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .map(str::to_owned)
            });
            let answer = match state.chat.commands().submit_request(&ctx, form).await {
                Ok(submitted) => submitted.confirmation(),
                Err(error) => format!("The request was not filed: {error}"),
            };
            Json(json!({ "task": { "type": "message", "value": answer } })).into_response()
        }
        _ => StatusCode::OK.into_response(),
    }
}

async fn card_action(state: &TeamsState, ctx: &CommandContext, activity: &Value) -> Response {
    let action = &activity["value"]["action"];
    let verb = action["verb"].as_str().unwrap_or_default();
    let data = &action["data"];
    let subject = data["subject"].as_str().unwrap_or_default();
    if let Some(action) = Action::from_parts(verb, subject) {
        let reply = state.chat.handle(ctx, action.command()).await;
        return Json(render::message_response(&reply.plain_text())).into_response();
    }
    let Some(decision) = Decision::from_action_id(verb) else {
        return Json(render::message_response("That button is not known.")).into_response();
    };
    let outcome = decide(
        state.chat.commands(),
        ctx,
        decision,
        subject,
        data["reason"].as_str(),
        data["to"].as_str(),
    )
    .await;
    let answer = match outcome {
        Ok(Decided::Final(reply)) => render::card_response(&reply),
        Ok(Decided::Partial(text)) => render::message_response(&text),
        Err(error) => {
            if let CommandError::Internal(cause) = &error {
                tracing::error!(error = format!("{cause:#}"), "teams decision failed");
            }
            render::message_response(&error.to_string())
        }
    };
    Json(answer).into_response()
}

#[cfg(test)]
mod tests {
    use super::command_text;

    #[test]
    fn mentions_and_the_cert_prefix_are_stripped() {
        assert_eq!(
            command_text("<at>cert-assistant</at> cert status REQ-1"),
            "status REQ-1"
        );
        assert_eq!(command_text("cert help"), "help");
        assert_eq!(command_text("/cert list"), "list");
        assert_eq!(command_text("status REQ-1"), "status REQ-1");
        assert_eq!(command_text("<at>Bot</at>&nbsp;list"), "list");
        assert_eq!(command_text("certificate"), "certificate");
    }

    #[test]
    fn no_message_text_makes_the_mention_stripper_panic() {
        let mut inputs = crate::fuzz::Inputs::new(0x5eed_0004);
        for _ in 0..20_000 {
            let _ = command_text(&inputs.text(10));
            let _ = command_text(&inputs.mutate("<at>cert-assistant</at>&nbsp;cert status REQ-1"));
        }
    }
}
