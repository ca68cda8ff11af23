//! The requests: the list (by status and text, newest first) and each request's page, its
//! whole story from the events and its state at any past instant (time travel).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::lists::{self, Filtered, Found, Listing};
use super::story::{self, AsOfQuery, StoryLine, TimeTravel};
use super::{DashboardState, NotShown, failed, message, page};
use crate::chat::outbound::cards::RequestCard;
use sqlx::PgPool;

use crate::commands::CommandError;
use crate::domain::actor::Actor;
use crate::domain::values::RequestNumber;
use crate::projections::reports::{self, RequestFilter};

/// The request list's query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ListQuery {
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
            status: lists::one_of(self.status.as_deref(), &STATUSES),
            text: lists::typed(self.q.as_deref()),
        }
    }
}

impl Filtered for ListQuery {
    const LIST: &'static str = "requests";
    const LINKS_TO: &'static str = "/dashboard/requests";

    fn page(&self) -> Option<i64> {
        self.page
    }

    fn link(&self, page: Option<i64>) -> String {
        let filter = self.filter();
        lists::query_string([("status", filter.status), ("q", filter.text)], page)
    }

    fn rows<'a>(
        &'a self,
        reads: &'a PgPool,
        _: &Actor,
        offset: i64,
        limit: i64,
    ) -> Result<impl Future<Output = Found> + Send + 'a, NotShown> {
        let filter = self.filter();
        Ok(async move { reports::requests(reads, &filter, offset, limit).await })
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
pub(super) async fn requests(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Response {
    let (viewer, list) = match lists::listing(&state, &headers, &query).await {
        Ok(listed) => listed,
        Err(response) => return response,
    };
    let filter = query.filter();
    page(
        StatusCode::OK,
        &RequestsPage {
            viewer: viewer.email.to_string(),
            statuses: lists::options(&STATUSES, filter.status.as_deref()),
            filter_text: filter.text.unwrap_or_default(),
            list,
        },
    )
}

#[derive(Template)]
#[template(path = "dashboard/request.html")]
struct RequestPage {
    viewer: String,
    number: String,
    travel: TimeTravel,
    status: String,
    requester: String,
    approvals: Vec<(String, &'static str)>,
    /// The certificate's serial and how it stood.
    certificate: Option<(String, String)>,
    fields: Vec<(String, String)>,
    story: Vec<StoryLine>,
}

/// `GET /dashboard/requests/{number}?as_of=…`.
pub(super) async fn request(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    Query(query): Query<AsOfQuery>,
) -> Response {
    let path = format!("/dashboard/requests/{number}");
    let (viewer, as_of) = match story::visit(&state, &headers, &path, &query).await {
        Ok(visit) => visit,
        Err(response) => return response,
    };
    let Ok(number) = RequestNumber::parse(&number) else {
        return message(
            StatusCode::NOT_FOUND,
            "Not found",
            "That is not a request number.",
        );
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
    page(
        StatusCode::OK,
        &RequestPage {
            viewer: viewer.email.to_string(),
            number: number.to_string(),
            travel: TimeTravel::new(path, as_of, &story),
            status: view.status.as_str().replace('_', " "),
            requester: view.requester.email.to_string(),
            approvals: view
                .approval_lines()
                .into_iter()
                .map(|(who, part)| (who.email.to_string(), part))
                .collect(),
            certificate: view.certificate.as_ref().map(|c| {
                (
                    c.serial.to_string(),
                    format!(
                        "{}, valid to {}",
                        c.status.as_str(),
                        c.valid_to.format("%Y-%m-%d")
                    ),
                )
            }),
            fields,
            story: story::lines(story, as_of),
        },
    )
}
