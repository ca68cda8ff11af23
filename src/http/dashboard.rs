//! `/dashboard`: the read-only pages for approvers, admins and auditors — the overview, the
//! requests (filtered, paged, exported as CSV or JSON) and each request's story, with time
//! travel to any instant. Signed in by a one-time link from `/cert dashboard`, which becomes
//! a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS). Nothing here changes
//! anything but the audit trail of who looked. Pages are server-rendered (askama) and carry
//! no script; their headers forbid framing, caching and referrers (a sign-in link's path is
//! its token).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::chat::outbound::cards::RequestCard;
use crate::commands::dashboard::{SESSION_HOURS, SignInError};
use crate::commands::{CommandError, Commands};
use crate::domain::actor::Actor;
use crate::domain::values::{RequestNumber, parse_instant};
use crate::projections::catalog::{Format, QueryResult};
use crate::projections::reports::{self, Overview, PAGE, RequestFilter};

/// The session cookie's name.
const COOKIE: &str = "cert_dashboard";

/// What the dashboard needs.
#[derive(Debug, Clone)]
pub struct DashboardState {
    /// The application service.
    pub commands: Commands,
    /// Where the pages read (a replica's pool, with `database.read_url`; else the primary's).
    pub reads: sqlx::PgPool,
    /// Whether people reach the service over HTTPS (the cookie is then `Secure`).
    pub secure: bool,
}

/// The dashboard's routes.
pub fn router(state: DashboardState) -> Router {
    Router::new()
        .route("/dashboard/sign-in/{token}", get(sign_in))
        .route("/dashboard", get(overview))
        .route("/dashboard/requests", get(requests))
        .route(
            "/dashboard/requests.csv",
            get(|s, h, q| export_requests(s, h, q, Format::Csv)),
        )
        .route(
            "/dashboard/requests.json",
            get(|s, h, q| export_requests(s, h, q, Format::Json)),
        )
        .route("/dashboard/requests/{number}", get(request))
        .route("/dashboard/certificates", get(certificates))
        .route(
            "/dashboard/certificates.csv",
            get(|s, h, q| export_certificates(s, h, q, Format::Csv)),
        )
        .route(
            "/dashboard/certificates.json",
            get(|s, h, q| export_certificates(s, h, q, Format::Json)),
        )
        .route("/dashboard/certificates/{serial}", get(certificate))
        .route("/dashboard/revocations", get(revocations))
        .route(
            "/dashboard/revocations.csv",
            get(|s, h, q| export_revocations(s, h, q, Format::Csv)),
        )
        .route(
            "/dashboard/revocations.json",
            get(|s, h, q| export_revocations(s, h, q, Format::Json)),
        )
        .layer(axum::middleware::map_response(guarded))
        .with_state(state)
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
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, &Message { title, text })
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

fn refused(error: SignInError) -> Response {
    let status = match error {
        SignInError::NotAllowed => StatusCode::FORBIDDEN,
        _ => StatusCode::UNAUTHORIZED,
    };
    message(status, "Not signed in", &error.to_string())
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

/// `GET /dashboard/sign-in/{token}`: spends the link, sets the session, goes to the overview.
async fn sign_in(State(state): State<DashboardState>, Path(token): Path<String>) -> Response {
    match state.commands.sign_in(&token, Utc::now()).await {
        Ok(session) => {
            let secure = if state.secure { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                session.token,
                SESSION_HOURS * 3600
            );
            let mut response = Redirect::to("/dashboard").into_response();
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(error) => refused(error),
    }
}

/// The person whose session cookie came with the request, their view recorded.
async fn viewer(
    state: &DashboardState,
    headers: &HeaderMap,
    page: &str,
) -> Result<Actor, Response> {
    let session = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .find_map(|cookie| {
            cookie
                .trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        });
    let Some(session) = session else {
        return Err(message(
            StatusCode::UNAUTHORIZED,
            "Not signed in",
            "Ask for a sign-in link with /cert dashboard in chat.",
        ));
    };
    let viewer = state
        .commands
        .dashboard_viewer(&session, Utc::now())
        .await
        .map_err(refused)?;
    state.commands.record_view(&viewer, page).await;
    Ok(viewer)
}

/// A bar of the requests chart.
struct Bar {
    x: i64,
    y: i64,
    width: i64,
    height: i64,
    color: &'static str,
    title: String,
}

/// A day's label under the chart.
struct Label {
    x: i64,
    text: String,
}

/// The requests-per-day chart, drawn as SVG on the server.
struct Chart {
    width: i64,
    height: i64,
    bars: Vec<Bar>,
    labels: Vec<Label>,
}

impl Chart {
    fn of(days: &[reports::Day]) -> Self {
        const SLOT: i64 = 30;
        const PLOT: i64 = 120;
        let most = days
            .iter()
            .map(|d| d.issued + d.refused + d.open + d.failed)
            .max()
            .unwrap_or(0)
            .max(1);
        let mut bars = Vec::new();
        let mut labels = Vec::new();
        for (n, day) in (0_i64..).zip(days) {
            let x = n * SLOT + 4;
            let mut top = PLOT;
            for (count, color, what) in [
                (day.issued, "#2a9d8f", "issued"),
                (day.open, "#e9c46a", "open"),
                (day.refused, "#8d99ae", "rejected or cancelled"),
                (day.failed, "#e63946", "failed"),
            ] {
                if count == 0 {
                    continue;
                }
                let height = (count * PLOT / most).max(2);
                top -= height;
                bars.push(Bar {
                    x,
                    y: top,
                    width: SLOT - 8,
                    height,
                    color,
                    title: format!("{}: {count} {what}", day.day),
                });
            }
            labels.push(Label {
                x: x + (SLOT - 8) / 2,
                text: day.day.format("%d").to_string(),
            });
        }
        Self {
            width: SLOT * i64::try_from(days.len()).unwrap_or(14),
            height: PLOT + 14,
            bars,
            labels,
        }
    }
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    viewer: String,
    overview: Overview,
    chart: Chart,
}

/// `GET /dashboard`.
async fn overview(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
    let viewer = match viewer(&state, &headers, "/dashboard").await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    match reports::overview(&state.reads).await {
        Ok(overview) => page(
            StatusCode::OK,
            &OverviewPage {
                viewer: viewer.email.to_string(),
                chart: Chart::of(&overview.days),
                overview,
            },
        ),
        Err(error) => failed(&CommandError::Internal(error)),
    }
}

/// What every list page shows: one page of rows, links to the pages around it, and the
/// query string of its filter (for the exports).
struct Listing {
    query: String,
    result: QueryResult,
    table_id: &'static str,
    link_base: &'static str,
    total: i64,
    first: i64,
    last: i64,
    previous: Option<String>,
    next: Option<String>,
}

impl Listing {
    /// Page `number` (from 1) of rows found after `offset`, `total` matching in all;
    /// `link(page)` is the filter's query string at a page (`None`: no page).
    fn new(
        (result, total): (QueryResult, i64),
        number: i64,
        offset: i64,
        link: impl Fn(Option<i64>) -> String,
        (table_id, link_base): (&'static str, &'static str),
    ) -> Self {
        let shown = i64::try_from(result.rows.len()).unwrap_or(0);
        Self {
            query: link(None),
            table_id,
            link_base,
            total,
            first: offset + 1,
            last: offset + shown,
            previous: (number > 1).then(|| link(Some(number - 1))),
            next: (offset + shown < total).then(|| link(Some(number + 1))),
            result,
        }
    }
}

/// A list's page number from its query string, and the offset of its first row.
fn page_of(page: Option<i64>) -> (i64, i64) {
    let number = page.unwrap_or(1).clamp(1, 100_000);
    (number, (number - 1) * PAGE)
}

/// The request list's query string.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    status: Option<String>,
    q: Option<String>,
    page: Option<i64>,
}

/// The statuses a request can have, for the filter.
const STATUSES: [&str; 9] = [
    "draft",
    "pending_approval",
    "approved",
    "in_progress",
    "issued",
    "rejected",
    "failed",
    "cancelled",
    "revoked",
];

impl ListQuery {
    fn filter(&self) -> RequestFilter {
        RequestFilter {
            status: self
                .status
                .as_deref()
                .filter(|s| STATUSES.contains(s))
                .map(str::to_owned),
            text: self
                .q
                .as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
        }
    }

    /// The query string of this filter at page `page` (none: no page).
    fn link(&self, page: Option<i64>) -> String {
        let filter = self.filter();
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(status) = filter.status {
            pairs.push(("status", status));
        }
        if let Some(text) = filter.text {
            pairs.push(("q", text));
        }
        if let Some(page) = page {
            pairs.push(("page", page.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "dashboard/requests.html")]
struct RequestsPage {
    viewer: String,
    /// Each status, and whether the list is filtered by it.
    statuses: Vec<(&'static str, bool)>,
    filter_text: String,
    list: Listing,
}

/// `GET /dashboard/requests?status=…&q=…&page=…`.
async fn requests(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let shown = format!("/dashboard/requests?{}", query.link(query.page));
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let (number, offset) = page_of(query.page);
    let filter = query.filter();
    let found = match reports::requests(&state.reads, &filter, offset, PAGE).await {
        Ok(found) => found,
        Err(error) => return failed(&CommandError::Internal(error.into())),
    };
    page(
        StatusCode::OK,
        &RequestsPage {
            viewer: viewer.email.to_string(),
            statuses: STATUSES
                .iter()
                .map(|s| (*s, filter.status.as_deref() == Some(*s)))
                .collect(),
            filter_text: filter.text.clone().unwrap_or_default(),
            list: Listing::new(
                found,
                number,
                offset,
                |page| query.link(page),
                ("requests", "/dashboard/requests"),
            ),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
struct AsOfQuery {
    as_of: Option<String>,
}

/// An event's name in words: `ApprovalPolicySatisfied` → `Approval policy satisfied`.
fn in_words(event_type: &str) -> String {
    let mut words = String::new();
    for (n, c) in event_type.chars().enumerate() {
        if c.is_uppercase() && n > 0 {
            words.push(' ');
            words.extend(c.to_lowercase());
        } else {
            words.push(c);
        }
    }
    words
}

/// One line of a request's story.
struct StoryLine {
    at: String,
    what: String,
    by: String,
    platform: String,
    since: bool,
}

#[derive(Template)]
#[template(path = "dashboard/request.html")]
struct RequestPage {
    viewer: String,
    number: String,
    as_of: Option<DateTime<Utc>>,
    as_of_shown: String,
    as_of_input: String,
    first_input: String,
    status: String,
    requester: String,
    approvals: Vec<(String, &'static str)>,
    certificate: Option<String>,
    fields: Vec<(String, String)>,
    story: Vec<StoryLine>,
}

/// `GET /dashboard/requests/{number}?as_of=…`.
async fn request(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Response {
    let as_of_text = query
        .as_of
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty());
    let shown = match as_of_text {
        Some(at) => format!("/dashboard/requests/{number}?as_of={at}"),
        None => format!("/dashboard/requests/{number}"),
    };
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let Ok(number) = RequestNumber::parse(&number) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a request number.",
        );
    };
    let as_of = match as_of_text.map(|text| parse_instant("as_of", text)) {
        None => None,
        Some(Ok(at)) => Some(at),
        Some(Err(error)) => return message(StatusCode::BAD_REQUEST, "Not shown", &error.message),
    };
    let commands = &state.commands;
    let (view, story) = match commands.request_as_of(&number, as_of).await {
        Ok(found) => found,
        Err(error) => return failed(&error),
    };
    let fields = match RequestCard::load(commands.pool(), view.request_id).await {
        Ok(card) => card.fields(),
        Err(error) => return failed(&CommandError::Internal(error)),
    };
    let input = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let first = story.first().map(|entry| entry.at).unwrap_or_else(Utc::now);
    page(
        StatusCode::OK,
        &RequestPage {
            viewer: viewer.email.to_string(),
            number: number.to_string(),
            as_of,
            as_of_shown: as_of.map_or_else(String::new, |at| {
                at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            }),
            as_of_input: input(as_of.unwrap_or_else(Utc::now)),
            first_input: input(first),
            status: view.status.as_str().replace('_', " "),
            requester: view.requester.email.to_string(),
            approvals: view
                .approval_lines()
                .into_iter()
                .map(|(who, part)| (who.email.to_string(), part))
                .collect(),
            certificate: view.certificate.as_ref().map(|c| {
                format!(
                    "{} ({}, valid to {})",
                    c.serial,
                    c.status.as_str(),
                    c.valid_to.format("%Y-%m-%d")
                )
            }),
            fields,
            story: story
                .into_iter()
                .map(|entry| StoryLine {
                    at: entry.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    what: in_words(&entry.event_type),
                    by: entry.by.unwrap_or_default(),
                    platform: entry.platform.unwrap_or_default(),
                    since: as_of.is_some_and(|as_of| entry.at > as_of),
                })
                .collect(),
        },
    )
}

/// The certificate list's query string.
#[derive(Debug, Default, Deserialize)]
struct CertificateQuery {
    status: Option<String>,
    expiring: Option<i64>,
    q: Option<String>,
    page: Option<i64>,
}

/// A certificate's statuses, for the filter.
const CERTIFICATE_STATUSES: [&str; 4] = ["active", "revoked", "expired", "suspended"];

/// The expiry windows offered (days, label): a week to a year; a quarter is 90 days.
const WINDOWS: [(i64, &str); 7] = [
    (7, "7 days"),
    (14, "14 days"),
    (30, "30 days"),
    (60, "60 days"),
    (90, "90 days (a quarter)"),
    (180, "180 days"),
    (365, "a year"),
];

impl CertificateQuery {
    fn filter(&self) -> reports::CertificateFilter {
        reports::CertificateFilter {
            status: self
                .status
                .as_deref()
                .filter(|s| CERTIFICATE_STATUSES.contains(s))
                .map(str::to_owned),
            expiring_within_days: self.expiring.filter(|days| (1..=36_500).contains(days)),
            text: self
                .q
                .as_deref()
                .map(str::trim)
                .filter(|q| !q.is_empty())
                .map(str::to_owned),
        }
    }

    fn link(&self, page: Option<i64>) -> String {
        let filter = self.filter();
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(status) = filter.status {
            pairs.push(("status", status));
        }
        if let Some(days) = filter.expiring_within_days {
            pairs.push(("expiring", days.to_string()));
        }
        if let Some(text) = filter.text {
            pairs.push(("q", text));
        }
        if let Some(page) = page {
            pairs.push(("page", page.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "dashboard/certificates.html")]
struct CertificatesPage {
    viewer: String,
    statuses: Vec<(&'static str, bool)>,
    windows: Vec<(i64, &'static str, bool)>,
    filter_text: String,
    list: Listing,
}

/// `GET /dashboard/certificates?status=…&expiring=DAYS&q=…&page=…`.
async fn certificates(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<CertificateQuery>,
) -> Response {
    let shown = format!("/dashboard/certificates?{}", query.link(query.page));
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let (number, offset) = page_of(query.page);
    let filter = query.filter();
    let found = match reports::certificates(&state.reads, &filter, offset, PAGE).await {
        Ok(found) => found,
        Err(error) => return failed(&CommandError::Internal(error.into())),
    };
    page(
        StatusCode::OK,
        &CertificatesPage {
            viewer: viewer.email.to_string(),
            statuses: CERTIFICATE_STATUSES
                .iter()
                .map(|s| (*s, filter.status.as_deref() == Some(*s)))
                .collect(),
            windows: WINDOWS
                .iter()
                .map(|(days, label)| (*days, *label, filter.expiring_within_days == Some(*days)))
                .collect(),
            filter_text: filter.text.clone().unwrap_or_default(),
            list: Listing::new(
                found,
                number,
                offset,
                |page| query.link(page),
                ("certificates", "/dashboard/certificates"),
            ),
        },
    )
}

#[derive(Template)]
#[template(path = "dashboard/certificate.html")]
struct CertificatePage {
    viewer: String,
    serial: String,
    fields: Vec<(&'static str, String)>,
    request_number: String,
    intact: bool,
    rows: Vec<(String, String, String, String)>,
}

/// `GET /dashboard/certificates/{serial}`: what it says, and its audit rows checked against
/// the hash chain.
async fn certificate(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path(serial): Path<String>,
) -> Response {
    let shown = format!("/dashboard/certificates/{serial}");
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let Ok(serial) = crate::domain::values::SerialNumber::parse(&serial) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a serial number.",
        );
    };
    let pool = &state.reads;
    let detail = match reports::certificate(pool, serial.as_ref()).await {
        Ok(Some(detail)) => detail,
        Ok(None) => {
            return message(
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such certificate.",
            );
        }
        Err(error) => return failed(&CommandError::Internal(error.into())),
    };
    let rows = match crate::projections::audit::resource_rows(pool, detail.id).await {
        Ok(rows) => rows,
        Err(error) => return failed(&CommandError::Internal(error)),
    };
    page(
        StatusCode::OK,
        &CertificatePage {
            viewer: viewer.email.to_string(),
            serial: serial.to_string(),
            intact: rows.iter().all(|row| row.chain.is_ok()),
            rows: rows
                .into_iter()
                .map(|row| {
                    (
                        row.at.format("%Y-%m-%d %H:%M:%S").to_string(),
                        row.event_type.replace('_', " "),
                        row.by.unwrap_or_default(),
                        row.chain.err().unwrap_or_else(|| "vouched for".to_owned()),
                    )
                })
                .collect(),
            fields: detail.fields,
            request_number: detail.request_number,
        },
    )
}

/// The revocation list's query string.
#[derive(Debug, Default, Deserialize)]
struct RevocationQuery {
    reason: Option<String>,
    page: Option<i64>,
}

impl RevocationQuery {
    /// The reason filtered by, when it is one.
    fn reason(&self) -> Option<crate::domain::values::RevocationReason> {
        self.reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .and_then(|r| crate::domain::values::RevocationReason::parse(r).ok())
    }

    fn link(&self, page: Option<i64>) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(reason) = self.reason() {
            pairs.push(("reason", reason.as_str().to_owned()));
        }
        if let Some(page) = page {
            pairs.push(("page", page.to_string()));
        }
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }
}

#[derive(Template)]
#[template(path = "dashboard/revocations.html")]
struct RevocationsPage {
    viewer: String,
    reasons: Vec<(&'static str, bool)>,
    list: Listing,
}

/// `GET /dashboard/revocations?reason=…&page=…`.
async fn revocations(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<RevocationQuery>,
) -> Response {
    let shown = format!("/dashboard/revocations?{}", query.link(query.page));
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let (number, offset) = page_of(query.page);
    let reason = query.reason();
    let found = reports::revocations(&state.reads, reason.map(|r| r.as_str()), offset, PAGE).await;
    let found = match found {
        Ok(found) => found,
        Err(error) => return failed(&CommandError::Internal(error.into())),
    };
    page(
        StatusCode::OK,
        &RevocationsPage {
            viewer: viewer.email.to_string(),
            reasons: crate::domain::values::RevocationReason::ALL
                .iter()
                .map(|r| (r.as_str(), reason == Some(*r)))
                .collect(),
            list: Listing::new(
                found,
                number,
                offset,
                |page| query.link(page),
                ("revocations", "/dashboard/certificates"),
            ),
        },
    )
}

/// `GET /dashboard/LIST.csv|json?…`: every row `rows` finds for the list's filter (`query`),
/// not one page; CSV cells that would start a spreadsheet formula are made text.
async fn export(
    state: &DashboardState,
    headers: &HeaderMap,
    (list, query): (&str, String),
    format: Format,
    rows: impl Future<Output = Result<(QueryResult, i64), sqlx::Error>>,
) -> Response {
    let (extension, content_type) = match format {
        Format::Csv => ("csv", "text/csv; charset=utf-8"),
        _ => ("json", "application/json"),
    };
    let shown = format!("/dashboard/{list}.{extension}?{query}");
    if let Err(response) = viewer(state, headers, &shown).await {
        return response;
    }
    match rows.await {
        Ok((result, _)) => (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, content_type.to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{list}.{extension}\""),
                ),
            ],
            result.render(format),
        )
            .into_response(),
        Err(error) => failed(&CommandError::Internal(error.into())),
    }
}

async fn export_requests(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
    format: Format,
) -> Response {
    let filter = query.filter();
    let rows = reports::requests(&state.reads, &filter, 0, reports::EXPORT_LIMIT);
    export(
        &state,
        &headers,
        ("requests", query.link(None)),
        format,
        rows,
    )
    .await
}

async fn export_certificates(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<CertificateQuery>,
    format: Format,
) -> Response {
    let filter = query.filter();
    let rows = reports::certificates(&state.reads, &filter, 0, reports::EXPORT_LIMIT);
    export(
        &state,
        &headers,
        ("certificates", query.link(None)),
        format,
        rows,
    )
    .await
}

async fn export_revocations(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<RevocationQuery>,
    format: Format,
) -> Response {
    let reason = query.reason();
    let rows = reports::revocations(
        &state.reads,
        reason.map(|r| r.as_str()),
        0,
        reports::EXPORT_LIMIT,
    );
    export(
        &state,
        &headers,
        ("revocations", query.link(None)),
        format,
        rows,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_read_as_words() {
        assert_eq!(
            in_words("ApprovalPolicySatisfied"),
            "Approval policy satisfied"
        );
    }

    #[test]
    fn the_chart_scales_to_the_busiest_day() {
        let day = |n: u32, issued: i64| reports::Day {
            day: chrono::NaiveDate::from_ymd_opt(2026, 12, n).expect("day"),
            issued,
            refused: 0,
            open: 1,
            failed: 0,
        };
        let chart = Chart::of(&[day(1, 3), day(2, 0)]);
        let busiest: i64 = chart
            .bars
            .iter()
            .filter(|b| b.x == 4)
            .map(|b| b.height)
            .sum();
        assert_eq!(busiest, 120, "the busiest day fills the plot");
        assert!(chart.bars.iter().all(|b| b.y >= 0), "within the plot");
        assert_eq!(chart.labels.len(), 2);
        assert!(chart.bars[0].title.contains("3 issued"));
    }
}
