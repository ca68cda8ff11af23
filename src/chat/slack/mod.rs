//! Slack: `/cert` slash commands, interactive buttons and modals, all behind signature
//! verification. Slack payload types and the verifier come from slack-morphism; Web API calls
//! go through [`api::SlackApi`] to a configurable base URL.

pub mod api;
pub mod forms;
pub mod home;
pub mod identity;
pub mod platform;
pub mod render;
pub mod verify;

use std::time::Duration;

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use axum::{Router, middleware};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};
use slack_morphism::events::SlackCommandEvent;

use super::command::{self, ChatCommand};
use super::decide::{Decided, decide};
use super::reply::{Action, Decision, Reply};
use super::service::ChatService;
use crate::commands::{CommandContext, CommandError};
use crate::domain::actor::Platform;
use api::SlackApi;
use verify::Verifier;

/// Slack wants an answer within 3 s; work that takes longer continues in the background
/// and answers through `response_url`.
const ACK_BUDGET: Duration = Duration::from_millis(2500);

/// What the Slack routes need.
#[derive(Debug, Clone)]
pub struct SlackState {
    verifier: Verifier,
    api: SlackApi,
    chat: ChatService,
}

impl SlackState {
    /// The worker that delivers the chat outbox to Slack.
    pub fn notifier(
        &self,
        approvals_channel: Option<String>,
    ) -> crate::chat::outbound::ChatNotifier {
        let pool = self.chat.commands().pool().clone();
        crate::chat::outbound::ChatNotifier::new(
            pool.clone(),
            std::sync::Arc::new(platform::SlackPlatform::new(
                pool,
                self.api.clone(),
                self.chat.clone(),
            )),
            approvals_channel,
        )
    }

    /// Slack on top of the chat service.
    pub fn new(verifier: Verifier, api: SlackApi, chat: ChatService) -> Self {
        Self {
            verifier,
            api,
            chat,
        }
    }
}

/// The Slack routes; every one is verified before its handler runs.
pub fn router(state: SlackState) -> Router {
    let verifier = state.verifier.clone();
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactivity", post(interactivity))
        .route("/slack/events", post(events))
        .route_layer(middleware::from_fn_with_state(verifier, verify::verified))
        .with_state(state)
}

fn ephemeral(text: impl Into<String>) -> Response {
    Json(render::message(&Reply::text(text))).into_response()
}

impl SlackState {
    async fn context(&self, team_id: &str, user_id: &str) -> Result<CommandContext, String> {
        let (email, name) = identity::resolve(&self.chat, &self.api, team_id, user_id)
            .await
            .map_err(|e| {
                if let identity::IdentityError::Unavailable(cause) = &e {
                    tracing::warn!(error = format!("{cause:#}"), "slack identity lookup failed");
                }
                e.to_string()
            })?;
        let mut ctx = CommandContext::new(email, Platform::Slack);
        ctx.display_name = name;
        Ok(ctx)
    }

    /// `<@U123|jane>` (or `<@U123>`) → the user's e-mail; anything else is kept.
    async fn unmention(&self, team_id: &str, text: &str) -> Result<String, String> {
        let Some(inner) = text.strip_prefix("<@").and_then(|t| t.strip_suffix('>')) else {
            return Ok(text.to_owned());
        };
        let user_id = inner.split('|').next().unwrap_or(inner);
        let (email, _) = identity::resolve(&self.chat, &self.api, team_id, user_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(email.to_string())
    }
}

/// `POST /slack/commands`: `/cert …`.
async fn commands(
    State(state): State<SlackState>,
    Form(event): Form<SlackCommandEvent>,
) -> Response {
    let _place = match state.chat.admission().admit("slack").await {
        Ok(place) => place,
        Err(busy) => return ephemeral(busy.to_string()),
    };
    let text = event.text.clone().unwrap_or_default();
    let mut parsed = match command::parse(&text) {
        Ok(parsed) => parsed,
        Err(usage) => return ephemeral(usage.message),
    };
    if let Some(reply) = state.chat.answer_anyone(&parsed).await {
        return Json(render::message(&reply)).into_response();
    }
    let ctx = match state.context(&event.team_id.0, &event.user_id.0).await {
        Ok(ctx) => ctx,
        Err(message) => return ephemeral(message),
    };
    if parsed == ChatCommand::RequestForm {
        return match state
            .api
            .open_view(&event.trigger_id.0, forms::questionnaire_view())
            .await
        {
            Ok(()) => StatusCode::OK.into_response(),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "could not open the request form"
                );
                ephemeral(
                    "The request form could not be opened; use the one-line form: \
                     `/cert request cn=app.example.com why=\"…\"`",
                )
            }
        };
    }
    if let ChatCommand::Grant { user, .. } = &mut parsed {
        match state.unmention(&event.team_id.0, user).await {
            Ok(email) => *user = email,
            Err(message) => return ephemeral(message),
        }
    }
    let chat = state.chat.clone();
    let mut work = crate::telemetry::trace::spawn(async move { chat.handle(&ctx, parsed).await });
    match tokio::time::timeout(ACK_BUDGET, &mut work).await {
        Ok(Ok(reply)) => Json(render::message(&reply)).into_response(),
        Ok(Err(error)) => {
            tracing::error!(%error, "slack command task failed");
            ephemeral("Something went wrong on our side; the details are in the service log.")
        }
        Err(_) => {
            let api = state.api.clone();
            let response_url = event.response_url.0.to_string();
            crate::telemetry::trace::spawn(async move {
                let reply = match work.await {
                    Ok(reply) => reply,
                    Err(_) => Reply::text("Something went wrong on our side."),
                };
                if let Err(error) = api.respond(&response_url, &render::message(&reply)).await {
                    tracing::warn!(error = format!("{error:#}"), "could not send a late reply");
                }
            });
            ephemeral("Working on it…")
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct InteractionForm {
    pub(crate) payload: String,
}

/// Where a modal came from, kept in its `private_metadata`.
#[derive(Debug, serde::Serialize, Deserialize)]
pub(crate) struct ModalOrigin {
    number: String,
    response_url: Option<String>,
}

/// `POST /slack/interactivity`: button clicks and modal submissions.
async fn interactivity(
    State(state): State<SlackState>,
    Form(form): Form<InteractionForm>,
) -> Response {
    let Ok(payload) = serde_json::from_str::<Value>(&form.payload) else {
        return (StatusCode::BAD_REQUEST, "payload is not JSON").into_response();
    };
    let team_id = payload["team"]["id"]
        .as_str()
        .or_else(|| payload["user"]["team_id"].as_str())
        .unwrap_or_default()
        .to_owned();
    let user_id = payload["user"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    match payload["type"].as_str() {
        Some("block_actions") => block_action(state, payload, team_id, user_id).await,
        Some("view_submission") => view_submission(state, payload, team_id, user_id).await,
        _ => StatusCode::OK.into_response(),
    }
}

async fn block_action(
    state: SlackState,
    payload: Value,
    team_id: String,
    user_id: String,
) -> Response {
    let action = &payload["actions"][0];
    let action_id = action["action_id"].as_str().unwrap_or_default();
    let value = action["value"].as_str().unwrap_or_default();
    let response_url = payload["response_url"].as_str().map(str::to_owned);
    let action = Action::from_parts(action_id, value);
    let decision = Decision::from_action_id(action_id);
    if action.is_none() && decision.is_none() {
        return StatusCode::OK.into_response();
    }
    // A click passes the same gate as a command; its place is held until its work is done.
    let place = match state.chat.admission().admit("slack").await {
        Ok(place) => place,
        Err(busy) => {
            crate::telemetry::trace::spawn(async move {
                let told = Reply::text(busy.to_string());
                answer_privately(&state, response_url.as_deref(), &told).await;
            });
            return StatusCode::OK.into_response();
        }
    };
    if let Some(action) = action {
        // Ack now; run the command and answer privately in the background.
        crate::telemetry::trace::spawn(async move {
            let _place = place;
            let reply = match state.context(&team_id, &user_id).await {
                Ok(ctx) => state.chat.handle(&ctx, action.command()).await,
                Err(message) => Reply::text(message),
            };
            answer_privately(&state, response_url.as_deref(), &reply).await;
        });
        return StatusCode::OK.into_response();
    }
    let Some(decision) = decision else {
        return StatusCode::OK.into_response();
    };
    let number = value.to_owned();
    // A click on the App Home tab has no message to replace: the page is published again,
    // saying what came of it.
    if decision == Decision::Approve && payload["view"]["type"] == "home" {
        crate::telemetry::trace::spawn(async move {
            let _place = place;
            approve_from_home(&state, &team_id, &user_id, &number).await;
        });
        return StatusCode::OK.into_response();
    }
    match decision {
        Decision::Approve => {
            // Ack now; decide and update the message in the background.
            crate::telemetry::trace::spawn(async move {
                let _place = place;
                let reply = approve(&state, &team_id, &user_id, &number).await;
                if let Some(url) = response_url
                    && let Err(error) = state.api.respond(&url, &reply).await
                {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "could not update the approval message"
                    );
                }
            });
            StatusCode::OK.into_response()
        }
        Decision::Reject | Decision::Delegate => {
            let origin = serde_json::to_string(&ModalOrigin {
                number: number.clone(),
                response_url,
            })
            .unwrap_or_default();
            let view = match decision {
                Decision::Reject => render::reject_modal(&number, &origin),
                _ => render::delegate_modal(&number, &origin),
            };
            let trigger_id = payload["trigger_id"].as_str().unwrap_or_default();
            if let Err(error) = state.api.open_view(trigger_id, view).await {
                tracing::warn!(error = format!("{error:#}"), "could not open a modal");
            }
            StatusCode::OK.into_response()
        }
    }
}

/// Answers a click with `reply` for the clicker alone, leaving the clicked message as it is.
async fn answer_privately(state: &SlackState, response_url: Option<&str>, reply: &Reply) {
    let Some(url) = response_url else {
        return;
    };
    let mut message = render::message(reply);
    message["response_type"] = json!("ephemeral");
    message["replace_original"] = json!(false);
    if let Err(error) = state.api.respond(url, &message).await {
        tracing::warn!(error = format!("{error:#}"), "could not answer a button");
    }
}

/// Approves and returns the message that replaces the approval message (or, when refused,
/// an ephemeral note that leaves it alone).
async fn approve(state: &SlackState, team_id: &str, user_id: &str, number: &str) -> Value {
    let refused = |text: String| json!({ "response_type": "ephemeral", "replace_original": false, "text": text });
    let ctx = match state.context(team_id, user_id).await {
        Ok(ctx) => ctx,
        Err(message) => return refused(message),
    };
    let commands = state.chat.commands();
    match decide(commands, &ctx, Decision::Approve, number, None, None).await {
        Ok(Decided::Final(reply)) => render::replacing(&reply),
        Ok(Decided::Partial(note)) => refused(note),
        Err(error) => refused(polite(&error)),
    }
}

/// Approves from the Home tab and publishes it again with the outcome at the top.
async fn approve_from_home(state: &SlackState, team_id: &str, user_id: &str, number: &str) {
    let ctx = match state.context(team_id, user_id).await {
        Ok(ctx) => ctx,
        Err(message) => {
            if let Err(error) = state
                .api
                .publish_view(user_id, home::unavailable(&message))
                .await
            {
                tracing::warn!(error = format!("{error:#}"), "could not publish a Home tab");
            }
            return;
        }
    };
    let commands = state.chat.commands();
    let note = match decide(commands, &ctx, Decision::Approve, number, None, None).await {
        Ok(Decided::Final(reply)) => {
            let line = reply.blocks.iter().rev().find_map(|block| match block {
                super::reply::Block::Text(line) => Some(line.clone()),
                _ => None,
            });
            format!("{number}: {}", line.unwrap_or_else(|| "decided".to_owned()))
        }
        Ok(Decided::Partial(note)) => note,
        Err(error) => format!("{number}: {}", polite(&error)),
    };
    let published = home::publish(
        &state.chat,
        &state.api,
        team_id,
        user_id,
        &ctx.email,
        Some(note),
    )
    .await;
    if let Err(error) = published {
        tracing::warn!(error = format!("{error:#}"), "could not publish a Home tab");
    }
}

fn polite(error: &CommandError) -> String {
    if let CommandError::Internal(cause) = error {
        tracing::error!(error = format!("{cause:#}"), "slack action failed");
    }
    error.to_string()
}

async fn view_submission(
    state: SlackState,
    payload: Value,
    team_id: String,
    user_id: String,
) -> Response {
    let view = &payload["view"];
    match view["callback_id"].as_str() {
        Some(forms::QUESTIONNAIRE) => {
            return match forms::answers(&view["state"]["values"]) {
                Ok(answers) => {
                    let recommendation =
                        crate::domain::recommendation::recommend(&answers, Utc::now().date_naive());
                    let public_note = match state.chat.commands().public_ca_note().await {
                        Ok(note) => note,
                        Err(error) => {
                            tracing::warn!(%error, "could not read the public-request policy");
                            None
                        }
                    };
                    Json(json!({
                        "response_action": "update",
                        "view": forms::details_view(&answers, &recommendation, public_note),
                    }))
                    .into_response()
                }
                Err(errors) => {
                    let blocks: Vec<&str> = errors.iter().map(|e| e.field).collect();
                    Json(forms::field_errors(&errors, &blocks)).into_response()
                }
            };
        }
        Some(forms::DETAILS) => return submit_details(state, view, &team_id, &user_id).await,
        _ => {}
    }
    let Ok(origin) =
        serde_json::from_str::<ModalOrigin>(view["private_metadata"].as_str().unwrap_or_default())
    else {
        return StatusCode::OK.into_response();
    };
    let values = &view["state"]["values"];
    let reason = values["reason"]["value"]["value"]
        .as_str()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let field_error = |block: &str, text: &str| {
        Json(json!({ "response_action": "errors", "errors": { block: text } })).into_response()
    };
    let callback = view["callback_id"].as_str().unwrap_or_default();
    if reason.is_empty() {
        let text = if callback == "reject" {
            "A rejection needs a reason."
        } else {
            "A delegation needs a reason."
        };
        return field_error("reason", text);
    }
    // The modal stays open, with the reason typed, when there is no place for it.
    let _place = match state.chat.admission().admit("slack").await {
        Ok(place) => place,
        Err(busy) => return field_error("reason", &busy.to_string()),
    };
    let ctx = match state.context(&team_id, &user_id).await {
        Ok(ctx) => ctx,
        Err(message) => return field_error("reason", &message),
    };
    let commands = state.chat.commands();
    let number = origin.number.clone();
    let decided = match callback {
        "reject" => {
            decide(
                commands,
                &ctx,
                Decision::Reject,
                &number,
                Some(&reason),
                None,
            )
            .await
        }
        "delegate" => {
            let Some(delegate_id) = values["delegate"]["value"]["selected_user"].as_str() else {
                return field_error("delegate", "Choose a person.");
            };
            let email =
                match identity::resolve(&state.chat, &state.api, &team_id, delegate_id).await {
                    Ok((email, _)) => email,
                    Err(error) => return field_error("delegate", &error.to_string()),
                };
            let to = email.to_string();
            decide(
                commands,
                &ctx,
                Decision::Delegate,
                &number,
                Some(&reason),
                Some(&to),
            )
            .await
        }
        _ => return StatusCode::OK.into_response(),
    };
    match decided {
        Ok(Decided::Final(reply)) => {
            if let Some(url) = origin.response_url {
                let api = state.api.clone();
                let message = render::replacing(&reply);
                crate::telemetry::trace::spawn(async move {
                    if let Err(error) = api.respond(&url, &message).await {
                        tracing::warn!(
                            error = format!("{error:#}"),
                            "could not update the approval message"
                        );
                    }
                });
            }
            StatusCode::OK.into_response()
        }
        Ok(Decided::Partial(note)) => field_error("reason", &note),
        Err(error) => field_error("reason", &polite(&error)),
    }
}

/// `POST /slack/events`: the URL check, and `app_home_opened` (the person's page is
/// published in the background); retries are acknowledged without doing anything twice.
async fn events(
    State(state): State<SlackState>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if body["type"] == "url_verification" {
        return Json(json!({ "challenge": body["challenge"] })).into_response();
    }
    if headers.contains_key("x-slack-retry-num") {
        return StatusCode::OK.into_response();
    }
    let event = &body["event"];
    if body["type"] == "event_callback"
        && event["type"] == "app_home_opened"
        && event["tab"] == "home"
    {
        let team_id = body["team_id"].as_str().unwrap_or_default().to_owned();
        let user_id = event["user"].as_str().unwrap_or_default().to_owned();
        // Through the same gate as commands; a page that finds no place is not published
        // (it is, the next time it is opened).
        if let Ok(place) = state.chat.admission().admit("slack").await {
            crate::telemetry::trace::spawn(async move {
                let _place = place;
                home_opened(&state, &team_id, &user_id).await;
            });
        }
    }
    StatusCode::OK.into_response()
}

/// Publishes the page of the person who opened the Home tab.
async fn home_opened(state: &SlackState, team_id: &str, user_id: &str) {
    let published = match state.context(team_id, user_id).await {
        Ok(ctx) => home::publish(&state.chat, &state.api, team_id, user_id, &ctx.email, None).await,
        Err(message) => {
            state
                .api
                .publish_view(user_id, home::unavailable(&message))
                .await
        }
    };
    if let Err(error) = published {
        tracing::warn!(
            error = format!("{error:#}"),
            "could not publish a Slack Home tab"
        );
    }
}

/// The request form's last step: record the request, or show what to fix next to the fields.
async fn submit_details(state: SlackState, view: &Value, team_id: &str, user_id: &str) -> Response {
    let Ok(answers) = serde_json::from_str(view["private_metadata"].as_str().unwrap_or_default())
    else {
        return StatusCode::OK.into_response();
    };
    let form = forms::request_form(&view["state"]["values"], answers);
    // The form stays open, with everything typed in it, when there is no place for it.
    let _place = match state.chat.admission().admit("slack").await {
        Ok(place) => place,
        Err(busy) => {
            return Json(forms::detail_errors(&[
                crate::domain::values::ValueError::new("common_name", busy.to_string()),
            ]))
            .into_response();
        }
    };
    let ctx = match state.context(team_id, user_id).await {
        Ok(ctx) => ctx,
        Err(message) => {
            return Json(forms::detail_errors(&[
                crate::domain::values::ValueError::new("common_name", message),
            ]))
            .into_response();
        }
    };
    match state.chat.commands().submit_request(&ctx, form).await {
        Ok(submitted) => {
            let api = state.api.clone();
            let user = user_id.to_owned();
            let text = format!("{} You will hear back here.", submitted.confirmation());
            crate::telemetry::trace::spawn(async move {
                let told = async {
                    let channel = api.open_dm(&user).await?;
                    api.post_message(&channel, &json!({ "text": text })).await
                }
                .await;
                if let Err(error) = told {
                    tracing::warn!(error = format!("{error:#}"), "could not tell the requester");
                }
            });
            Json(json!({ "response_action": "clear" })).into_response()
        }
        Err(CommandError::Invalid(errors)) => Json(forms::detail_errors(&errors)).into_response(),
        Err(error) => Json(forms::detail_errors(&[
            crate::domain::values::ValueError::new("business_justification", polite(&error)),
        ]))
        .into_response(),
    }
}
