//! What every list shares: its query string ([`Filtered`]), one page of rows with links to
//! the pages around it ([`listing`]), and its export as CSV or JSON ([`export`]: every row
//! its filter matches, not one page).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sqlx::PgPool;

use super::{DashboardState, NotShown, failed, viewer};
use crate::commands::CommandError;
use crate::domain::actor::Actor;
use crate::projections::catalog::{Format, QueryResult};
use crate::projections::reports::{COUNTED, EXPORT_LIMIT, PAGE};

/// Rows a list found, and how many match in all.
pub(super) type Found = Result<(QueryResult, i64), sqlx::Error>;

/// A list's query string: what it is filtered by, and the rows that filter finds.
pub(super) trait Filtered: serde::de::DeserializeOwned + Send {
    /// The list's name: its path under `/dashboard` and its table's id.
    const LIST: &'static str;
    /// Where the first column of a row links, with the cell appended (empty: nowhere).
    const LINKS_TO: &'static str;

    /// The page asked for.
    fn page(&self) -> Option<i64>;

    /// The query string of this filter at page `page` (`None`: no page).
    fn link(&self, page: Option<i64>) -> String;

    /// The rows `viewer` may see, `limit` after `offset`; or why they are not shown (the
    /// viewer's role, a filter that does not parse).
    fn rows<'a>(
        &'a self,
        reads: &'a PgPool,
        viewer: &Actor,
        offset: i64,
        limit: i64,
    ) -> Result<impl Future<Output = Found> + Send + 'a, NotShown>;
}

/// What every list page shows: one page of rows, links to the pages around it, and the
/// query string of its filter (for the exports).
pub(super) struct Listing {
    pub(super) query: String,
    pub(super) result: QueryResult,
    pub(super) table_id: &'static str,
    pub(super) link_base: &'static str,
    pub(super) total: i64,
    pub(super) first: i64,
    pub(super) last: i64,
    pub(super) previous: Option<String>,
    pub(super) next: Option<String>,
}

/// The signed-in viewer (their view recorded) and the page of the list `query` asks for.
pub(super) async fn listing<Q: Filtered>(
    state: &DashboardState,
    headers: &HeaderMap,
    query: &Q,
) -> Result<(Actor, Listing), Response> {
    let shown = format!("/dashboard/{}?{}", Q::LIST, query.link(query.page()));
    let viewer = viewer(state, headers, &shown).await?;
    let number = query.page().unwrap_or(1).clamp(1, 100_000);
    let offset = (number - 1) * PAGE;
    let rows = query
        .rows(&state.reads, &viewer, offset, PAGE)
        .map_err(IntoResponse::into_response)?;
    let (result, total) = rows
        .await
        .map_err(|error| failed(&CommandError::Internal(error.into())))?;
    let shown = i64::try_from(result.rows.len()).unwrap_or(0);
    let listing = Listing {
        query: query.link(None),
        table_id: Q::LIST,
        link_base: Q::LINKS_TO,
        total,
        first: offset + 1,
        last: offset + shown,
        previous: (number > 1).then(|| query.link(Some(number - 1))),
        // Past the counted matches a full page may have more after it.
        next: (offset + shown < total || (total > COUNTED && shown == PAGE))
            .then(|| query.link(Some(number + 1))),
        result,
    };
    Ok((viewer, listing))
}

/// `GET /dashboard/LIST.csv|json?…`: every row the list's filter finds, not one page, when
/// the viewer may have them; CSV cells that would start a spreadsheet formula are made text.
pub(super) async fn export<Q: Filtered>(
    State(state): State<DashboardState>,
    headers: HeaderMap,
    Query(query): Query<Q>,
    format: Format,
) -> Response {
    let (extension, content_type) = match format {
        Format::Csv => ("csv", "text/csv; charset=utf-8"),
        _ => ("json", "application/json"),
    };
    let list = Q::LIST;
    let shown = format!("/dashboard/{list}.{extension}?{}", query.link(None));
    let viewer = match viewer(&state, &headers, &shown).await {
        Ok(viewer) => viewer,
        Err(response) => return response,
    };
    let rows = match query.rows(&state.reads, &viewer, 0, EXPORT_LIMIT) {
        Ok(rows) => rows,
        Err(not_shown) => return not_shown.into_response(),
    };
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

/// A list filter's query string: those of its `fields` that are set, then the page (`None`:
/// no page).
pub(super) fn query_string<const N: usize>(
    fields: [(&'static str, Option<String>); N],
    page: Option<i64>,
) -> String {
    let pairs: Vec<(&str, String)> = fields
        .into_iter()
        .chain([("page", page.map(|page| page.to_string()))])
        .filter_map(|(name, value)| Some((name, value?)))
        .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

/// Text typed to filter by: trimmed; `None` when there is none.
pub(super) fn typed(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|text| !text.is_empty())
        .map(str::to_owned)
}

/// `chosen` when it is one of `offered`; anything else filters nothing.
pub(super) fn one_of(chosen: Option<&str>, offered: &[&str]) -> Option<String> {
    chosen.filter(|c| offered.contains(c)).map(str::to_owned)
}

/// Each of `offered`, and whether it is `chosen` (for a `<select>`).
pub(super) fn options(offered: &[&'static str], chosen: Option<&str>) -> Vec<(&'static str, bool)> {
    offered.iter().map(|o| (*o, chosen == Some(*o))).collect()
}
