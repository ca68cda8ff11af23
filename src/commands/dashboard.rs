//! Signing in to the read-only dashboard without another password: `/cert dashboard` hands
//! an approver, admin or auditor a one-time link, valid minutes, signed by the service; used
//! once, it becomes a session (a signed cookie, valid hours). The role is read again on every
//! page, so a role taken away takes the dashboard with it. Sign-ins and every page an
//! auditor views are events on the person's user record, so the audit trail holds them.

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Attempt, CommandContext, CommandError, Commands};
use crate::domain::actor::{Actor, Platform, Role};
use crate::domain::user::UserCommand;
use crate::domain::values::Email;

/// How long a sign-in link works.
pub const LINK_MINUTES: i64 = 10;
/// How long a session lasts.
pub const SESSION_HOURS: i64 = 8;

/// What a link or session token says, signed (the purpose keeps one from passing as the
/// other, or as a download link).
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The person.
    u: String,
    /// This token's own id (a link's is spent on use).
    n: Uuid,
    /// Expiry (Unix seconds).
    e: i64,
}

/// A sign-in through the organisation's identity provider, under way: what the browser
/// carries (signed) from the redirect to the provider until it comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSignIn {
    /// The `state` sent to the provider (it must come back unchanged).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Expiry (Unix seconds).
    e: i64,
}

/// Something signed that expires.
trait Expiring {
    fn expiry(&self) -> i64;
}

impl Expiring for Claims {
    fn expiry(&self) -> i64 {
        self.e
    }
}

impl Expiring for ProviderSignIn {
    fn expiry(&self) -> i64 {
        self.e
    }
}

const SIGN_IN: &str = "dashboard-sign-in";
const SESSION: &str = "dashboard-session";
const PROVIDER_SIGN_IN: &str = "dashboard-provider-sign-in";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a link or session was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignInError {
    /// Not signed by this service (or not for this).
    #[error("this link is not valid")]
    Forged,
    /// Past its time.
    #[error("this link has expired; ask for a new one with /cert dashboard")]
    Expired,
    /// Used already.
    #[error("this link was used already; ask for a new one with /cert dashboard")]
    Used,
    /// The person's role does not (or no longer) include the dashboard.
    #[error("the dashboard is for approvers, admins and auditors")]
    NotAllowed,
}

/// A session, as its cookie carries it.
#[derive(Debug, Clone)]
pub struct Session {
    /// Whose it is.
    pub email: Email,
    /// The cookie's value.
    pub token: String,
    /// When it ends.
    pub expires: DateTime<Utc>,
}

impl Commands {
    fn sign(&self, purpose: &str, claims: &impl Serialize) -> Result<String, CommandError> {
        let payload = serde_json::to_vec(claims).map_err(CommandError::internal)?;
        let tag = self
            .inner
            .kek
            .sign_link(&[purpose.as_bytes(), b"\0", &payload].concat());
        Ok(format!("{}.{}", B64.encode(&payload), B64.encode(tag)))
    }

    fn verified<T: serde::de::DeserializeOwned + Expiring>(
        &self,
        purpose: &str,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<T, SignInError> {
        let (payload, tag) = token.split_once('.').ok_or(SignInError::Forged)?;
        let payload = B64.decode(payload).map_err(|_| SignInError::Forged)?;
        let tag = B64.decode(tag).map_err(|_| SignInError::Forged)?;
        let signed = [purpose.as_bytes(), b"\0", &payload].concat();
        if !self.inner.kek.verify_link(&signed, &tag) {
            return Err(SignInError::Forged);
        }
        let claims: T = serde_json::from_slice(&payload).map_err(|_| SignInError::Forged)?;
        if now.timestamp() > claims.expiry() {
            return Err(SignInError::Expired);
        }
        Ok(claims)
    }

    /// A one-time sign-in link's token for `ctx`'s person; refused (and audited) for anyone
    /// but approvers, admins and auditors.
    pub async fn dashboard_link(&self, ctx: &CommandContext) -> Result<String, CommandError> {
        let by = self.actor(ctx).await?;
        if by.role == Role::User {
            let refused: Result<(), _> = Err(CommandError::Refused(
                "the dashboard is for approvers, admins and auditors".to_owned(),
            ));
            let attempt = Attempt {
                action: "sign_in",
                resource_type: "dashboard",
                resource_id: None,
                resource_identifier: None,
            };
            self.audit_refusal(ctx, Some(&by), attempt, refused).await?;
        }
        self.sign(
            SIGN_IN,
            &Claims {
                u: by.email.to_string(),
                n: Uuid::new_v4(),
                e: (Utc::now() + chrono::Duration::minutes(LINK_MINUTES)).timestamp(),
            },
        )
    }

    /// Spends a sign-in link: a session for its person, and the sign-in on their record.
    pub async fn sign_in(&self, token: &str, now: DateTime<Utc>) -> Result<Session, SignInError> {
        let claims: Claims = self.verified(SIGN_IN, token, now)?;
        let spent = sqlx::query(
            "INSERT INTO dashboard_sign_ins (id, expires_at) VALUES ($1, to_timestamp($2)) \
             ON CONFLICT DO NOTHING",
        )
        .bind(claims.n)
        .bind(claims.e as f64)
        .execute(self.pool())
        .await
        .map_err(|error| {
            tracing::error!(%error, "could not record a dashboard sign-in");
            SignInError::Forged
        })?;
        if spent.rows_affected() == 0 {
            return Err(SignInError::Used);
        }
        self.open_session(&claims.u, now).await
    }

    /// A session for `email`, as the organisation's identity provider vouched for them
    /// (an ID token verified by the caller), and the sign-in on their record.
    pub async fn sign_in_vouched(
        &self,
        email: &Email,
        now: DateTime<Utc>,
    ) -> Result<Session, SignInError> {
        self.open_session(email.as_ref(), now).await
    }

    async fn open_session(&self, email: &str, now: DateTime<Utc>) -> Result<Session, SignInError> {
        let viewer = self.dashboard_viewer_of(email).await?;
        self.record_view(&viewer, "sign-in").await;
        let expires = now + chrono::Duration::hours(SESSION_HOURS);
        let token = self
            .sign(
                SESSION,
                &Claims {
                    u: viewer.email.to_string(),
                    n: Uuid::new_v4(),
                    e: expires.timestamp(),
                },
            )
            .map_err(|_| SignInError::Forged)?;
        Ok(Session {
            email: viewer.email,
            token,
            expires,
        })
    }

    /// A provider sign-in's `state`, `nonce` and PKCE `verifier`, signed for the browser to
    /// carry; good for as long as a sign-in link.
    pub fn seal_provider_sign_in(
        &self,
        state: String,
        nonce: String,
        verifier: String,
        now: DateTime<Utc>,
    ) -> Result<String, CommandError> {
        self.sign(
            PROVIDER_SIGN_IN,
            &ProviderSignIn {
                state,
                nonce,
                verifier,
                e: (now + chrono::Duration::minutes(LINK_MINUTES)).timestamp(),
            },
        )
    }

    /// What [`Commands::seal_provider_sign_in`] sealed, if this service sealed it and it is
    /// still good.
    pub fn open_provider_sign_in(
        &self,
        sealed: &str,
        now: DateTime<Utc>,
    ) -> Result<ProviderSignIn, SignInError> {
        self.verified(PROVIDER_SIGN_IN, sealed, now)
    }

    /// The person a session cookie belongs to, with their role as it is now.
    pub async fn dashboard_viewer(
        &self,
        session: &str,
        now: DateTime<Utc>,
    ) -> Result<Actor, SignInError> {
        let claims: Claims = self.verified(SESSION, session, now)?;
        self.dashboard_viewer_of(&claims.u).await
    }

    async fn dashboard_viewer_of(&self, email: &str) -> Result<Actor, SignInError> {
        let email = Email::parse(email).map_err(|_| SignInError::Forged)?;
        let ctx = CommandContext::new(email, Platform::Web);
        let actor = self.actor(&ctx).await.map_err(|error| {
            tracing::error!(%error, "could not look up a dashboard viewer");
            SignInError::NotAllowed
        })?;
        if actor.role == Role::User {
            return Err(SignInError::NotAllowed);
        }
        Ok(actor)
    }

    /// Records that `viewer` viewed `page` (auditors' views, and every sign-in), for the
    /// audit trail. A view that cannot be recorded is logged; the page is still shown.
    pub async fn record_view(&self, viewer: &Actor, page: &str) {
        if page != "sign-in" && viewer.role != Role::Auditor {
            return;
        }
        let ctx = CommandContext::new(viewer.email.clone(), Platform::Web);
        let metadata = ctx.metadata(Some(viewer));
        let recorded = self
            .inner
            .users
            .execute(viewer.user_id, &metadata, || UserCommand::ViewDashboard {
                page: page.to_owned(),
                at: Utc::now(),
            })
            .await;
        if let Err(error) = recorded {
            tracing::warn!(error = %error, "could not record a dashboard view");
        }
    }
}
