//! The audit trail: every audit row, newest first, by category, result, text and time
//! range, each with whether the hash chain vouches for it; for auditors and admins.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::PgPool;

use super::lists::{self, Filtered, Found, Listing};
use super::{DashboardState, NotShown, page};
use crate::domain::actor::{Actor, Role};
use crate::domain::values::parse_instant;
use crate::projections::reports::{self, AuditFilter};

/// The audit trail's query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AuditQuery {
    category: Option<String>,
    result: Option<String>,
    q: Option<String>,
    from: Option<String>,
    until: Option<String>,
    page: Option<i64>,
}

/// The categories of the documented schema, and `access` (who viewed the dashboard).
const CATEGORIES: [&str; 7] = [
    "access",
    "authentication",
    "authorization",
    "request",
    "approval",
    "certificate",
    "system",
];

/// The results an audit row records.
const RESULTS: [&str; 3] = ["success", "failure", "partial"];

impl AuditQuery {
    /// The filter, or what is wrong with a time typed.
    fn filter(&self) -> Result<AuditFilter, String> {
        let instant = |field, text: &Option<String>| {
            lists::typed(text.as_deref())
                .map(|text| parse_instant(field, &text).map_err(|e| e.to_string()))
                .transpose()
        };
        Ok(AuditFilter {
            category: lists::one_of(self.category.as_deref(), &CATEGORIES),
            result: lists::one_of(self.result.as_deref(), &RESULTS),
            text: lists::typed(self.q.as_deref()),
            from: instant("from", &self.from)?,
            until: instant("until", &self.until)?,
        })
    }
}

impl Filtered for AuditQuery {
    const LIST: &'static str = "audit";
    const LINKS_TO: &'static str = "";

    fn page(&self) -> Option<i64> {
        self.page
    }

    fn link(&self, page: Option<i64>) -> String {
        let filter = self.filter().unwrap_or_default();
        let instant =
            |at: Option<DateTime<Utc>>| at.map(|at| at.format("%Y-%m-%dT%H:%M:%S").to_string());
        lists::query_string(
            [
                ("category", filter.category),
                ("result", filter.result),
                ("q", filter.text),
                ("from", instant(filter.from)),
                ("until", instant(filter.until)),
            ],
            page,
        )
    }

    fn rows<'a>(
        &'a self,
        reads: &'a PgPool,
        viewer: &Actor,
        offset: i64,
        limit: i64,
    ) -> Result<impl Future<Output = Found> + Send + 'a, NotShown> {
        may_read(viewer)?;
        let filter = self
            .filter()
            .map_err(|error| NotShown::new(StatusCode::BAD_REQUEST, error))?;
        Ok(async move { reports::audit_trail(reads, &filter, offset, limit).await })
    }
}

/// The audit trail is for those who answer for it.
fn may_read(viewer: &Actor) -> Result<(), NotShown> {
    if matches!(viewer.role, Role::Auditor | Role::Admin) {
        return Ok(());
    }
    Err(NotShown::new(
        StatusCode::FORBIDDEN,
        "The audit trail is for auditors and admins.",
    ))
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct AuditPage {
    viewer: String,
    categories: Vec<(&'static str, bool)>,
    results: Vec<(&'static str, bool)>,
    filter_text: String,
    from: String,
    until: String,
    list: Listing,
}

/// `GET /dashboard/audit?category=…&result=…&q=…&from=…&until=…&page=…`.
pub(super) async fn audit(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Response {
    let (viewer, list) = match lists::listing(&state, &headers, &query).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let filter = query.filter().unwrap_or_default();
    let input = |at: Option<DateTime<Utc>>| {
        at.map(|at| at.format("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default()
    };
    page(
        StatusCode::OK,
        &AuditPage {
            viewer: viewer.email.to_string(),
            categories: lists::options(&CATEGORIES, filter.category.as_deref()),
            results: lists::options(&RESULTS, filter.result.as_deref()),
            filter_text: filter.text.clone().unwrap_or_default(),
            from: input(filter.from),
            until: input(filter.until),
            list,
        },
    )
}
