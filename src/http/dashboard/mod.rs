//! `/dashboard`: the read-only pages for approvers, admins and auditors — the overview; the
//! requests, certificates, revocations and audit trail (filtered, paged, exported as CSV or
//! JSON); and each request's and certificate's story, with time travel to any instant.
//! People sign in by a one-time link from `/cert dashboard`, or through the organisation's
//! identity provider (OpenID Connect) when one is configured ([`sign_in`]). Nothing here
//! changes anything but the audit trail of who looked (and a download's count). Pages are
//! server-rendered (askama) and carry no script; their headers forbid framing, caching and
//! referrers (a sign-in link's path is its token).

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};

use crate::adapters::oidc::IdentityProvider;
use crate::commands::{CommandError, Commands};
use crate::projections::catalog::Format;

mod audit;
mod certificates;
mod lists;
mod overview;
mod requests;
mod revocations;
mod sign_in;
mod story;

use sign_in::viewer;

/// What the dashboard needs.
#[derive(Debug, Clone)]
pub struct DashboardState {
    /// The application service.
    pub commands: Commands,
    /// Where the pages read (a replica's pool, with `database.read_url`; else the primary's).
    pub reads: sqlx::PgPool,
    /// Whether people reach the service over HTTPS (the cookie is then `Secure`).
    pub secure: bool,
    /// Where certificates and chains are kept, for their downloads.
    pub artifacts: std::sync::Arc<dyn crate::adapters::artifacts::ArtifactStore>,
    /// The organisation's identity provider, when people may sign in through it.
    pub provider: Option<std::sync::Arc<IdentityProvider>>,
}

/// The dashboard's routes.
pub fn router(state: DashboardState) -> Router {
    let router = Router::new()
        .route("/dashboard/sign-in/{token}", get(sign_in::by_link))
        .route("/dashboard/oidc/login", get(sign_in::through_provider))
        .route("/dashboard/oidc/callback", get(sign_in::back_from_provider))
        .route("/dashboard", get(overview::overview))
        .route("/dashboard/requests/{number}", get(requests::request))
        .route(
            "/dashboard/certificates/{serial}",
            get(certificates::certificate),
        )
        .route(
            "/dashboard/certificates/{serial}/{file}",
            get(certificates::download),
        );
    let router = list::<requests::ListQuery>(router, get(requests::requests));
    let router = list::<certificates::CertificateQuery>(router, get(certificates::certificates));
    let router = list::<revocations::RevocationQuery>(router, get(revocations::revocations));
    let router = list::<audit::AuditQuery>(router, get(audit::audit));
    router
        .layer(axum::middleware::map_response(guarded))
        .with_state(state)
}

/// A list's routes: its page (`page`) at `/dashboard/LIST`, and its exports beside it
/// (`LIST.csv`, `LIST.json`).
fn list<Q: lists::Filtered + 'static>(
    router: Router<DashboardState>,
    page: MethodRouter<DashboardState>,
) -> Router<DashboardState> {
    let path = format!("/dashboard/{}", Q::LIST);
    router
        .route(&path, page)
        .route(
            &format!("{path}.csv"),
            get(|s, h, q| lists::export::<Q>(s, h, q, Format::Csv)),
        )
        .route(
            &format!("{path}.json"),
            get(|s, h, q| lists::export::<Q>(s, h, q, Format::Json)),
        )
}

/// Every answer: no caching, no framing, no scripts, no referrer.
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
struct Message<'a> {
    title: &'a str,
    text: &'a str,
    /// A way on: where, and what it says.
    link: Option<(&'a str, String)>,
}

/// A page or export not shown to this viewer, and why (what a check hands back; it becomes
/// a message page).
struct NotShown {
    status: StatusCode,
    why: String,
}

impl NotShown {
    fn new(status: StatusCode, why: impl Into<String>) -> Self {
        Self {
            status,
            why: why.into(),
        }
    }
}

impl IntoResponse for NotShown {
    fn into_response(self) -> Response {
        message(self.status, "Not shown", &self.why)
    }
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(
        status,
        &Message {
            title,
            text,
            link: None,
        },
    )
}

fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            html,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "a dashboard page could not be rendered");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn failed(error: &CommandError) -> Response {
    match error {
        CommandError::NotFound(what) => message(StatusCode::NOT_FOUND, "Not found", what),
        CommandError::Internal(cause) => {
            tracing::error!(error = format!("{cause:#}"), "a dashboard page failed");
            message(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "The details are in the service log.",
            )
        }
        other => message(StatusCode::BAD_REQUEST, "Not shown", &other.to_string()),
    }
}
