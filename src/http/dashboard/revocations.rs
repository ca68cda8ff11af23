//! The revocations: newest first, by RFC 5280 reason, with who asked, who approved and when
//! the CA's CRL listed each.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use sqlx::PgPool;

use super::lists::{self, Filtered, Found, Listing};
use super::{DashboardState, NotShown, page};
use crate::domain::actor::Actor;
use crate::domain::values::RevocationReason;
use crate::projections::reports;

/// The revocation list's query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct RevocationQuery {
    reason: Option<String>,
    page: Option<i64>,
}

impl RevocationQuery {
    /// The reason filtered by, when it is one.
    fn reason(&self) -> Option<RevocationReason> {
        self.reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .and_then(|r| RevocationReason::parse(r).ok())
    }
}

impl Filtered for RevocationQuery {
    const LIST: &'static str = "revocations";
    const LINKS_TO: &'static str = "/dashboard/certificates";

    fn page(&self) -> Option<i64> {
        self.page
    }

    fn link(&self, page: Option<i64>) -> String {
        let reason = self.reason().map(|reason| reason.as_str().to_owned());
        lists::query_string([("reason", reason)], page)
    }

    fn rows<'a>(
        &'a self,
        reads: &'a PgPool,
        _: &Actor,
        offset: i64,
        limit: i64,
    ) -> Result<impl Future<Output = Found> + Send + 'a, NotShown> {
        let reason = self.reason().map(|r| r.as_str());
        Ok(reports::revocations(reads, reason, offset, limit))
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
pub(super) async fn revocations(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<RevocationQuery>,
) -> Response {
    let (viewer, list) = match lists::listing(&state, &headers, &query).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let reason = query.reason();
    page(
        StatusCode::OK,
        &RevocationsPage {
            viewer: viewer.email.to_string(),
            reasons: RevocationReason::ALL
                .iter()
                .map(|r| (r.as_str(), reason == Some(*r)))
                .collect(),
            list,
        },
    )
}
