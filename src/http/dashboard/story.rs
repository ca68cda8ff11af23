//! What the request and certificate pages share: the time-travel control (`?as_of=…`) and
//! the story told from the events, each line marked when it happened after the instant
//! shown.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{DashboardState, NotShown, viewer};
use crate::commands::StoryEntry;
use crate::domain::actor::Actor;
use crate::domain::values::parse_instant;

/// A detail page's query string.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AsOfQuery {
    as_of: Option<String>,
}

impl AsOfQuery {
    fn typed(&self) -> Option<&str> {
        self.as_of
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }

    /// The page's path with this query, as its view is recorded.
    pub(super) fn shown(&self, path: &str) -> String {
        match self.typed() {
            Some(at) => format!(
                "{path}?{}",
                serde_urlencoded::to_string([("as_of", at)]).unwrap_or_default()
            ),
            None => path.to_owned(),
        }
    }

    /// The instant asked for (`None`: now), or what is wrong with it.
    pub(super) fn instant(&self) -> Result<Option<DateTime<Utc>>, NotShown> {
        self.typed()
            .map(|text| parse_instant("as_of", text))
            .transpose()
            .map_err(|error| NotShown::new(StatusCode::BAD_REQUEST, error.message))
    }
}

/// Who views the detail page at `path` (their view recorded, with the instant asked for),
/// and that instant (`None`: now).
pub(super) async fn visit(
    state: &DashboardState,
    headers: &HeaderMap,
    path: &str,
    query: &AsOfQuery,
) -> Result<(Actor, Option<DateTime<Utc>>), Response> {
    let viewer = viewer(state, headers, &query.shown(path)).await?;
    let as_of = query.instant().map_err(IntoResponse::into_response)?;
    Ok((viewer, as_of))
}

/// The time-travel control and heading of a detail page.
pub(super) struct TimeTravel {
    /// The page's own path (the control's "now").
    pub(super) path: String,
    /// The instant shown, if not now.
    pub(super) as_of: Option<DateTime<Utc>>,
    /// That instant, for people.
    pub(super) shown: String,
    /// The control's value.
    pub(super) input: String,
    /// The control's earliest value: the story's first event.
    pub(super) first: String,
}

impl TimeTravel {
    pub(super) fn new(path: String, as_of: Option<DateTime<Utc>>, story: &[StoryEntry]) -> Self {
        let input = |at: DateTime<Utc>| at.format("%Y-%m-%dT%H:%M:%S").to_string();
        Self {
            path,
            as_of,
            shown: as_of.map_or_else(String::new, |at| {
                at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
            }),
            input: input(as_of.unwrap_or_else(Utc::now)),
            first: input(story.first().map_or_else(Utc::now, |entry| entry.at)),
        }
    }
}

/// One line of a story.
pub(super) struct StoryLine {
    pub(super) at: String,
    pub(super) what: String,
    pub(super) by: String,
    pub(super) platform: String,
    /// Whether it happened after the instant shown.
    pub(super) since: bool,
}

/// `story` as lines, those after `as_of` marked.
pub(super) fn lines(story: Vec<StoryEntry>, as_of: Option<DateTime<Utc>>) -> Vec<StoryLine> {
    story
        .into_iter()
        .map(|entry| StoryLine {
            at: entry.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            what: in_words(&entry.event_type),
            by: entry.by.unwrap_or_default(),
            platform: entry.platform.unwrap_or_default(),
            since: as_of.is_some_and(|as_of| entry.at > as_of),
        })
        .collect()
}

/// An event's name in words: `ApprovalPolicySatisfied` → `Approval policy satisfied`.
fn in_words(event_type: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for c in event_type.chars() {
        match words.last_mut() {
            Some(word) if !c.is_uppercase() => word.push(c),
            _ => words.push(c.to_string()),
        }
    }
    words
        .iter()
        .enumerate()
        .map(|(n, word)| match word.as_str() {
            // Initialisms read as letters, wherever they stand.
            "Ca" | "Acm" | "Csr" | "Dns" => word.to_uppercase(),
            _ if n > 0 => word.to_lowercase(),
            _ => word.clone(),
        })
        .collect::<Vec<_>>()
        .join(" ")
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
        assert_eq!(in_words("CaRequestRecorded"), "CA request recorded");
        assert_eq!(
            in_words("CertificateRenewedAtCa"),
            "Certificate renewed at CA"
        );
    }
}
