//! The certificates: the list (by status, expiry window and text, soonest expiry first) and
//! each certificate's page: what it says, what it was at any past instant, who approved it,
//! its story, and its audit rows checked against the hash chain.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use sqlx::PgPool;

use super::lists::{self, Filtered, Found, Listing};
use super::story::{self, AsOfQuery, StoryLine, TimeTravel};
use super::{DashboardState, NotShown, failed, message, page, viewer};
use chrono::Utc;

use crate::commands::{CommandContext, CommandError};
use crate::domain::actor::{Actor, Platform};
use crate::domain::certificate::Artifact;
use crate::domain::values::SerialNumber;
use crate::projections::reports;

/// The certificate list's query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct CertificateQuery {
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
            status: lists::one_of(self.status.as_deref(), &CERTIFICATE_STATUSES),
            expiring_within_days: self.expiring.filter(|days| (1..=36_500).contains(days)),
            text: lists::typed(self.q.as_deref()),
        }
    }
}

impl Filtered for CertificateQuery {
    const LIST: &'static str = "certificates";
    const LINKS_TO: &'static str = "/dashboard/certificates";

    fn page(&self) -> Option<i64> {
        self.page
    }

    fn link(&self, page: Option<i64>) -> String {
        let filter = self.filter();
        let within = filter.expiring_within_days.map(|days| days.to_string());
        lists::query_string(
            [
                ("status", filter.status),
                ("expiring", within),
                ("q", filter.text),
            ],
            page,
        )
    }

    fn rows<'a>(
        &'a self,
        reads: &'a PgPool,
        _: &Actor,
        offset: i64,
        limit: i64,
    ) -> Result<impl Future<Output = Found> + Send + 'a, NotShown> {
        let filter = self.filter();
        Ok(async move { reports::certificates(reads, &filter, offset, limit).await })
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
pub(super) async fn certificates(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<CertificateQuery>,
) -> Response {
    let (viewer, list) = match lists::listing(&state, &headers, &query).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let filter = query.filter();
    page(
        StatusCode::OK,
        &CertificatesPage {
            viewer: viewer.email.to_string(),
            statuses: lists::options(&CERTIFICATE_STATUSES, filter.status.as_deref()),
            windows: WINDOWS
                .iter()
                .map(|(days, label)| (*days, *label, filter.expiring_within_days == Some(*days)))
                .collect(),
            filter_text: filter.text.unwrap_or_default(),
            list,
        },
    )
}

#[derive(Template)]
#[template(path = "dashboard/certificate.html")]
struct CertificatePage {
    viewer: String,
    serial: String,
    travel: TimeTravel,
    /// What it was at the instant shown (empty: not issued yet then).
    then: Vec<(&'static str, String)>,
    /// Its request's approvers then, and their part.
    approvals: Vec<(String, &'static str)>,
    fields: Vec<(&'static str, String)>,
    request_number: String,
    story: Vec<StoryLine>,
    intact: bool,
    rows: Vec<(String, String, String, String)>,
}

/// `GET /dashboard/certificates/{serial}?as_of=…`: what it says; what it was at an instant
/// (folded from its events), who approved it and its whole story; and its audit rows
/// checked against the hash chain.
pub(super) async fn certificate(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path(serial): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Response {
    let path = format!("/dashboard/certificates/{serial}");
    let (viewer, as_of) = match story::visit(&state, &headers, &path, &query).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let Ok(serial) = SerialNumber::parse(&serial) else {
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
    let then = match state.commands.certificate_as_of(&serial, as_of).await {
        Ok(then) => then,
        Err(error) => return failed(&error),
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
            travel: TimeTravel::new(path, as_of, &then.story),
            then: then.facts(as_of.unwrap_or_else(Utc::now)),
            approvals: then
                .request
                .approval_lines()
                .into_iter()
                .map(|(who, part)| (who.email.to_string(), part))
                .collect(),
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
            story: story::lines(then.story, as_of),
            fields: detail.fields,
            request_number: detail.request_number,
        },
    )
}

/// `GET /dashboard/certificates/{serial}/certificate.pem|chain.pem`: the certificate or its
/// chain, for its owner, admins and auditors (the certificate decides), the download
/// recorded as any other is.
pub(super) async fn download(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path((serial, file)): Path<(String, String)>,
) -> Response {
    let shown = format!("/dashboard/certificates/{serial}/{file}");
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let artifact = match file.as_str() {
        "certificate.pem" => Artifact::Certificate,
        "chain.pem" => Artifact::Chain,
        _ => return message(StatusCode::NOT_FOUND, "Not found", "There is no such file."),
    };
    let Ok(serial) = SerialNumber::parse(&serial) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a serial number.",
        );
    };
    let ctx = CommandContext::new(viewer.email, Platform::Web);
    let downloaded = state
        .commands
        .download(&ctx, serial.as_ref(), artifact, state.artifacts.as_ref())
        .await;
    match downloaded {
        Ok(download) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", download.filename),
                ),
            ],
            download.pem,
        )
            .into_response(),
        Err(CommandError::Refused(why)) => message(StatusCode::FORBIDDEN, "Not shown", &why),
        Err(error) => failed(&error),
    }
}
