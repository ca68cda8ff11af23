//! Discord: the `/cert` application command over the HTTP interactions endpoint, with typed
//! options and autocomplete ([`options`]), the questionnaire in select menus then the request
//! form as a modal ([`questionnaire`]), and approvals as buttons, all behind Ed25519
//! verification.
//! Payloads are read as JSON; answers are interaction responses (message, deferred message,
//! update of the clicked message, modal). Everything runs through the same chat core as Slack.

pub mod api;
pub mod identity;
pub mod options;
pub mod platform;
pub mod questionnaire;
pub mod render;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::post;
use axum::{Router, middleware};
use serde_json::{Value, json};

use super::command::ChatCommand;
use super::decide::Decided;
use super::reply::{Action, Decision, Reply};
use super::service::ChatService;
use crate::adapters::mail::Mailer;
use crate::commands::{CommandContext, CommandError};
use crate::domain::actor::Platform;
use crate::domain::values::Email;
use api::DiscordApi;
use verify::Verifier;

/// Discord wants the first answer within 3 s; longer work is deferred and the answer edited
/// in afterwards.
const ACK_BUDGET: Duration = Duration::from_millis(2500);

/// Interaction types.
const PING: u64 = 1;
const APPLICATION_COMMAND: u64 = 2;
const MESSAGE_COMPONENT: u64 = 3;
const AUTOCOMPLETE: u64 = 4;
const MODAL_SUBMIT: u64 = 5;

/// Response types.
const PONG: u64 = 1;
const CHANNEL_MESSAGE: u64 = 4;
const DEFERRED_CHANNEL_MESSAGE: u64 = 5;
const UPDATE_MESSAGE: u64 = 7;
const AUTOCOMPLETE_RESULT: u64 = 8;
const MODAL: u64 = 9;

/// What the Discord route needs.
#[derive(Debug, Clone)]
pub struct DiscordState {
    verifier: Verifier,
    api: DiscordApi,
    chat: ChatService,
    mailer: Arc<dyn Mailer>,
}

impl DiscordState {
    /// Discord on top of the chat service; `mailer` sends account-link codes.
    pub fn new(
        verifier: Verifier,
        api: DiscordApi,
        chat: ChatService,
        mailer: Arc<dyn Mailer>,
    ) -> Self {
        Self {
            verifier,
            api,
            chat,
            mailer,
        }
    }

    /// The worker that delivers the chat outbox to Discord.
    pub fn notifier(&self) -> crate::chat::outbound::ChatNotifier {
        let pool = self.chat.commands().pool().clone();
        crate::chat::outbound::ChatNotifier::new(
            pool.clone(),
            Arc::new(platform::DiscordPlatform::new(pool, self.api.clone())),
            None,
        )
    }

    /// The REST client (for `discord register`).
    pub fn api(&self) -> &DiscordApi {
        &self.api
    }
}

/// The Discord route, verified before its handler runs.
pub fn router(state: DiscordState) -> Router {
    let verifier = state.verifier.clone();
    Router::new()
        .route("/discord/interactions", post(interactions))
        .route_layer(middleware::from_fn_with_state(verifier, verify::verified))
        .with_state(state)
}

pub use options::application_commands;

fn answer(kind: u64, data: Value) -> Response {
    Json(json!({ "type": kind, "data": data })).into_response()
}

fn private(text: impl Into<String>) -> Response {
    answer(CHANNEL_MESSAGE, render::message(&Reply::text(text)))
}

/// The person behind an interaction: their Discord id and display name.
pub(crate) fn who(body: &Value) -> (String, Option<String>) {
    let user = if body["member"]["user"].is_object() {
        &body["member"]["user"]
    } else {
        &body["user"]
    };
    (
        user["id"].as_str().unwrap_or_default().to_owned(),
        user["global_name"]
            .as_str()
            .or_else(|| user["username"].as_str())
            .map(str::to_owned),
    )
}

impl DiscordState {
    /// The command context of a linked user, or what to tell an unlinked one.
    async fn context(&self, body: &Value) -> Result<CommandContext, String> {
        let (user_id, name) = who(body);
        match identity::linked(self.chat.commands().pool(), &user_id).await {
            Ok(Some(email)) => {
                let mut ctx = CommandContext::new(email, Platform::Discord);
                ctx.display_name = name;
                Ok(ctx)
            }
            Ok(None) => Err(
                "Link your Discord account to your work e-mail first: `/cert link \
                 you@example.com` (a code is mailed to you)."
                    .to_owned(),
            ),
            Err(error) => {
                tracing::error!(
                    error = format!("{error:#}"),
                    "discord identity lookup failed"
                );
                Err(
                    "Your account could not be looked up right now, so nothing was done; please \
                     try again in a minute (`/cert help` answers meanwhile)."
                        .to_owned(),
                )
            }
        }
    }

    /// `<@123>` → the linked e-mail of user 123; anything else is kept.
    async fn unmention(&self, text: &str) -> Result<String, String> {
        let Some(id) = text
            .strip_prefix("<@")
            .and_then(|t| t.strip_suffix('>'))
            .map(|t| t.trim_start_matches('!'))
        else {
            return Ok(text.to_owned());
        };
        match identity::linked(self.chat.commands().pool(), id).await {
            Ok(Some(email)) => Ok(email.to_string()),
            _ => Err("That person has not linked their Discord account yet.".to_owned()),
        }
    }
}

/// `POST /discord/interactions`.
async fn interactions(State(state): State<DiscordState>, Json(body): Json<Value>) -> Response {
    match body["type"].as_u64() {
        Some(PING) => Json(json!({ "type": PONG })).into_response(),
        Some(APPLICATION_COMMAND) => application_command(state, body).await,
        Some(MESSAGE_COMPONENT) => component(state, body).await,
        Some(AUTOCOMPLETE) => autocomplete(state, body).await,
        Some(MODAL_SUBMIT) => modal_submit(state, body).await,
        _ => (StatusCode::BAD_REQUEST, "unknown interaction type").into_response(),
    }
}

async fn application_command(state: DiscordState, body: Value) -> Response {
    let _place = match state.chat.admission().admit("discord").await {
        Ok(place) => place,
        Err(busy) => return private(busy.to_string()),
    };
    let (name, options) = options::subcommand(&body);
    if name == "link" {
        // Typed (email, code), or as an earlier version registered it (text).
        let text = options.get("text").cloned().unwrap_or_else(|| {
            let email = options.get("email").cloned().unwrap_or_default();
            let code = options.get("code").cloned().unwrap_or_default();
            format!("{email} {code}")
        });
        return link(&state, &body, text.trim()).await;
    }
    let mut parsed = match options::command(name, &options) {
        Ok(parsed) => parsed,
        Err(usage) => return private(usage.message),
    };
    if matches!(&parsed, ChatCommand::Recommend(answers) if answers.is_empty()) {
        let first = questionnaire::step(questionnaire::Purpose::Recommend, &[]);
        return answer(CHANNEL_MESSAGE, first);
    }
    if let Some(reply) = state.chat.answer_anyone(&parsed).await {
        return answer(CHANNEL_MESSAGE, render::message(&reply));
    }
    let ctx = match state.context(&body).await {
        Ok(ctx) => ctx,
        Err(message) => return private(message),
    };
    if parsed == ChatCommand::RequestForm {
        let first = questionnaire::step(questionnaire::Purpose::Request, &[]);
        return answer(CHANNEL_MESSAGE, first);
    }
    if let ChatCommand::Grant { user, .. } = &mut parsed {
        match state.unmention(user).await {
            Ok(email) => *user = email,
            Err(message) => return private(message),
        }
    }
    let chat = state.chat.clone();
    let mut work = crate::telemetry::trace::spawn(async move { chat.handle(&ctx, parsed).await });
    match tokio::time::timeout(ACK_BUDGET, &mut work).await {
        Ok(Ok(reply)) => answer(CHANNEL_MESSAGE, render::message(&reply)),
        Ok(Err(error)) => {
            tracing::error!(%error, "discord command task failed");
            private("Something went wrong on our side; the details are in the service log.")
        }
        Err(_) => {
            let api = state.api.clone();
            let token = body["token"].as_str().unwrap_or_default().to_owned();
            crate::telemetry::trace::spawn(async move {
                let reply = work
                    .await
                    .unwrap_or_else(|_| Reply::text("Something went wrong on our side."));
                if let Err(error) = api.edit_original(&token, &render::posted(&reply)).await {
                    tracing::warn!(error = format!("{error:#}"), "could not send a late reply");
                }
            });
            answer(
                DEFERRED_CHANNEL_MESSAGE,
                json!({ "flags": render::EPHEMERAL }),
            )
        }
    }
}

/// `/cert link you@example.com [CODE]`.
async fn link(state: &DiscordState, body: &Value, text: &str) -> Response {
    let (user_id, name) = who(body);
    let mut words = text.split_whitespace();
    let Some(Ok(email)) = words.next().map(Email::parse) else {
        return private("Give your work e-mail: `/cert link you@example.com`.");
    };
    let commands = state.chat.commands();
    let outcome = match words.next() {
        None => identity::start(commands, &state.mailer, &user_id, &email).await,
        Some(code) => identity::finish(commands, &user_id, &email, code, name.as_deref()).await,
    };
    private(outcome.unwrap_or_else(|message| message))
}

/// A button: a decision (approve at once; reject and delegate ask in a modal) or an action
/// that runs a command.
async fn component(state: DiscordState, body: Value) -> Response {
    let custom_id = body["data"]["custom_id"].as_str().unwrap_or_default();
    let Some((kind, value)) = custom_id.split_once(':') else {
        return private("That button is not known.");
    };
    let _place = match state.chat.admission().admit("discord").await {
        Ok(place) => place,
        Err(busy) => return private(busy.to_string()),
    };
    // The questionnaire's answers and its request buttons need nobody looked up.
    match kind {
        questionnaire::ANSWER => return answer_question(&state, &body, custom_id).await,
        questionnaire::REQUEST => {
            return questionnaire::details_modal(custom_id).map_or_else(
                || private("That questionnaire is not known; start again with `/cert request`."),
                |modal| answer(MODAL, modal),
            );
        }
        _ => {}
    }
    let ctx = match state.context(&body).await {
        Ok(ctx) => ctx,
        Err(message) => return private(message),
    };
    if let Some(action) = Action::from_parts(kind, value) {
        let reply = state.chat.handle(&ctx, action.command()).await;
        return answer(CHANNEL_MESSAGE, render::message(&reply));
    }
    match Decision::from_action_id(kind) {
        Some(Decision::Approve) => {
            decided(&state, &ctx, &body, Decision::Approve, value, None, None).await
        }
        Some(decision) => answer(MODAL, render::reason_modal(decision, value)),
        None => private("That button is not known."),
    }
}

/// An answer in the questionnaire: the message becomes the next question, or the
/// recommendation.
async fn answer_question(state: &DiscordState, body: &Value, custom_id: &str) -> Response {
    let selected = questionnaire::selected(body);
    let public_note = match state.chat.commands().public_ca_note().await {
        Ok(note) => note,
        Err(error) => {
            tracing::warn!(%error, "could not read the public-request policy");
            None
        }
    };
    let today = chrono::Utc::now().date_naive();
    let recommend = |answers: &crate::domain::recommendation::Answers| {
        (
            crate::domain::recommendation::recommend(answers, today),
            public_note,
        )
    };
    match questionnaire::answered(custom_id, &selected, recommend) {
        Some(next) => answer(UPDATE_MESSAGE, next),
        None => private("That answer is not known; start again with `/cert request`."),
    }
}

/// Suggestions for the option being typed: the person's own request numbers or serials
/// (and what waits for their decision), at most 25; none for someone not linked.
async fn autocomplete(state: DiscordState, body: Value) -> Response {
    let choices = match (options::focused(&body), state.context(&body).await) {
        (Some((suggest, typed)), Ok(ctx)) => {
            match state.chat.suggestions(&ctx, suggest, &typed).await {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(%error, "discord autocomplete failed");
                    Vec::new()
                }
            }
        }
        _ => Vec::new(),
    };
    let choices: Vec<Value> = choices
        .into_iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    Json(json!({ "type": AUTOCOMPLETE_RESULT, "data": { "choices": choices } })).into_response()
}

/// The values of a modal's text inputs.
pub(crate) fn modal_value<'a>(body: &'a Value, id: &str) -> Option<&'a str> {
    body["data"]["components"]
        .as_array()?
        .iter()
        .filter_map(|row| row["components"].as_array())
        .flatten()
        .find(|input| input["custom_id"] == id)
        .and_then(|input| input["value"].as_str())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

async fn modal_submit(state: DiscordState, body: Value) -> Response {
    let custom_id = body["data"]["custom_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let _place = match state.chat.admission().admit("discord").await {
        Ok(place) => place,
        Err(busy) => return private(busy.to_string()),
    };
    let ctx = match state.context(&body).await {
        Ok(ctx) => ctx,
        Err(message) => return private(message),
    };
    let field = |id: &str| modal_value(&body, id).map(str::to_owned);
    let today = chrono::Utc::now().date_naive();
    let recommended = questionnaire::request_form(&custom_id, field, |answers| {
        crate::domain::recommendation::recommend(answers, today).ca_type
    });
    if custom_id == "request" || recommended.is_some() {
        let form = recommended.unwrap_or_else(|| super::short_form::request_form(field));
        let reply = match state.chat.commands().submit_request(&ctx, form).await {
            Ok(submitted) => Reply::text(format!(
                "{} You'll hear back here.",
                submitted.confirmation()
            )),
            Err(error) => Reply::text(format!("The request was not filed: {error}")),
        };
        return answer(CHANNEL_MESSAGE, render::message(&reply));
    }
    let Some((kind, subject)) = custom_id.split_once(':') else {
        return private("That form is not known.");
    };
    let Some(decision) = Decision::from_action_id(kind) else {
        return private("That form is not known.");
    };
    let reason = modal_value(&body, "reason").map(str::to_owned);
    let to = modal_value(&body, "to").map(str::to_owned);
    decided(&state, &ctx, &body, decision, subject, reason, to).await
}

/// Takes a decision from a button or its modal and answers by updating the clicked message
/// (or privately, when refused or not final yet).
async fn decided(
    state: &DiscordState,
    ctx: &CommandContext,
    body: &Value,
    decision: Decision,
    subject: &str,
    reason: Option<String>,
    to: Option<String>,
) -> Response {
    let outcome = super::decide::decide(
        state.chat.commands(),
        ctx,
        decision,
        subject,
        reason.as_deref(),
        to.as_deref(),
    )
    .await;
    match outcome {
        Ok(Decided::Final(reply)) if body["message"].is_object() => {
            answer(UPDATE_MESSAGE, render::posted(&reply))
        }
        Ok(Decided::Final(reply)) => answer(CHANNEL_MESSAGE, render::message(&reply)),
        Ok(Decided::Partial(text)) => private(text),
        Err(error) => {
            if let CommandError::Internal(cause) = &error {
                tracing::error!(error = format!("{cause:#}"), "discord decision failed");
            }
            private(format!(":warning: {error}"))
        }
    }
}
