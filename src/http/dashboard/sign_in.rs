//! Signing in to the dashboard, and who is signed in.
//!
//! - By link: `/cert dashboard` hands out a one-time link; spent, it becomes a session.
//! - Through the organisation's identity provider (OpenID Connect), when configured:
//!   `/dashboard/oidc/login` sends the browser there with a fresh `state`, `nonce` and PKCE
//!   challenge, which it carries meanwhile in a signed cookie; `/dashboard/oidc/callback`
//!   checks the `state`, has the code exchanged and the ID token verified, and signs in the
//!   e-mail address it vouches for.
//!
//! Either way the session is a signed cookie (HttpOnly, SameSite=Strict, Secure over HTTPS,
//! expiring), and the answer is a page that goes on to the overview by itself: a
//! `SameSite=Strict` cookie is not sent on a redirect from another site (a chat client in
//! the browser, the provider), but is on a navigation this page starts.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::{DashboardState, Message, message, page};
use crate::commands::dashboard::{LINK_MINUTES, SESSION_HOURS, Session, SignInError};
use crate::domain::actor::Actor;

/// The session cookie's name.
const COOKIE: &str = "cert_dashboard";

/// The cookie that carries a provider sign-in under way.
const PROVIDER_COOKIE: &str = "cert_dashboard_oidc";

/// The value of the cookie `name` that came with the request.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| {
            cookie
                .trim()
                .strip_prefix(name)
                .and_then(|rest| rest.strip_prefix('='))
                .map(str::to_owned)
        })
}

/// A page saying the person is not signed in (`status`), and why, with the ways in.
fn not_signed_in(state: &DashboardState, status: StatusCode, why: &str) -> Response {
    let link = state.provider.as_ref().map(|provider| {
        (
            "/dashboard/oidc/login",
            format!("Sign in with {}", provider.name()),
        )
    });
    page(
        status,
        &Message {
            title: "Not signed in",
            text: why,
            link,
        },
    )
}

fn refused(state: &DashboardState, error: SignInError) -> Response {
    let status = match error {
        SignInError::NotAllowed => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    };
    not_signed_in(state, status, &error.to_string())
}

#[derive(Template)]
#[template(path = "dashboard/signed_in.html")]
struct SignedIn {
    email: String,
    until: String,
}

/// Sets the cookie `name=value` on `response`: HttpOnly, limited to `path`, with
/// `same_site`, for `seconds` (0: removed), and Secure when people come over HTTPS.
fn set_cookie(
    state: &DashboardState,
    response: &mut Response,
    (name, value): (&str, &str),
    (path, same_site, seconds): (&str, &str, i64),
) {
    let secure = if state.secure { "; Secure" } else { "" };
    let cookie = format!(
        "{name}={value}; Path={path}; HttpOnly; SameSite={same_site}; Max-Age={seconds}{secure}"
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// The answer to a sign-in: the session cookie, and a page that goes on to the overview.
fn signed_in(state: &DashboardState, session: &Session) -> Response {
    let mut response = page(
        StatusCode::OK,
        &SignedIn {
            email: session.email.to_string(),
            until: session.expires.format("%Y-%m-%d %H:%M").to_string(),
        },
    );
    let session_cookie = (COOKIE, session.token.as_str());
    set_cookie(
        state,
        &mut response,
        session_cookie,
        ("/dashboard", "Strict", SESSION_HOURS * 3600),
    );
    let under_way = (PROVIDER_COOKIE, "");
    set_cookie(
        state,
        &mut response,
        under_way,
        ("/dashboard/oidc", "Lax", 0),
    );
    response
}

/// `GET /dashboard/sign-in/{token}`: spends the link and signs its person in.
pub(super) async fn by_link(
    State(state): State<DashboardState>,
    Path(token): Path<String>,
) -> Response {
    match state.commands.sign_in(&token, Utc::now()).await {
        Ok(session) => signed_in(&state, &session),
        Err(error) => refused(&state, error),
    }
}

/// `GET /dashboard/oidc/login`: to the identity provider, the sign-in under way carried in
/// a signed cookie (`SameSite=Lax`: it must come back with the provider's redirect).
pub(super) async fn through_provider(State(state): State<DashboardState>) -> Response {
    let Some(provider) = &state.provider else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in through an identity provider is not set up here.",
        );
    };
    let started = match provider.start().await {
        Ok(started) => started,
        Err(error) => return not_signed_in(&state, StatusCode::BAD_GATEWAY, &error.to_string()),
    };
    let sealed = state.commands.seal_provider_sign_in(
        started.state,
        started.nonce,
        started.verifier,
        Utc::now(),
    );
    let Ok(sealed) = sealed else {
        return not_signed_in(
            &state,
            StatusCode::INTERNAL_SERVER_ERROR,
            "The sign-in could not be started.",
        );
    };
    let mut response = Redirect::to(&started.url).into_response();
    set_cookie(
        &state,
        &mut response,
        (PROVIDER_COOKIE, &sealed),
        ("/dashboard/oidc", "Lax", LINK_MINUTES * 60),
    );
    response
}

/// What the provider sends the browser back with.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /dashboard/oidc/callback?code=…&state=…`: the sign-in finished, if it is the one this
/// browser started and the provider vouches for someone.
pub(super) async fn back_from_provider(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(callback): Query<Callback>,
) -> Response {
    let Some(provider) = &state.provider else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "Signing in through an identity provider is not set up here.",
        );
    };
    let start_again = |why: &str| not_signed_in(&state, StatusCode::UNAUTHORIZED, why);
    if let Some(error) = callback.error.as_deref() {
        let error: String = error.chars().take(100).collect();
        tracing::info!(%error, "the identity provider did not sign someone in");
        return start_again("The identity provider did not sign you in.");
    }
    let now = Utc::now();
    let under_way = cookie(&headers, PROVIDER_COOKIE)
        .ok_or(SignInError::Forged)
        .and_then(|sealed| state.commands.open_provider_sign_in(&sealed, now));
    let Ok(under_way) = under_way else {
        return start_again("This sign-in was not started here, or took too long; start again.");
    };
    let (Some(code), Some(returned)) = (callback.code.as_deref(), callback.state.as_deref()) else {
        return start_again("The identity provider's answer is incomplete; start again.");
    };
    if returned != under_way.state {
        return start_again("This sign-in was not started here; start again.");
    }
    let email = match provider
        .finish(code, &under_way.nonce, &under_way.verifier)
        .await
    {
        Ok(email) => email,
        Err(error) => return start_again(&error.to_string()),
    };
    match state.commands.sign_in_vouched(&email, now).await {
        Ok(session) => signed_in(&state, &session),
        Err(error) => refused(&state, error),
    }
}

/// The person whose session cookie came with the request, their view recorded.
pub(super) async fn viewer(
    state: &DashboardState,
    headers: &HeaderMap,
    page: &str,
) -> Result<Actor, Response> {
    let Some(session) = cookie(headers, COOKIE) else {
        return Err(not_signed_in(
            state,
            StatusCode::UNAUTHORIZED,
            "Ask for a sign-in link with /cert dashboard in chat.",
        ));
    };
    let viewer = state
        .commands
        .dashboard_viewer(&session, Utc::now())
        .await
        .map_err(|error| refused(state, error))?;
    state.commands.record_view(&viewer, page).await;
    Ok(viewer)
}
