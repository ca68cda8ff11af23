//! The overview: requests per day by outcome (an SVG chart drawn on the server), what waits
//! for approval, what expires when, recent revocations and failures, and the read side's
//! health.

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::{DashboardState, failed, page, viewer};
use crate::commands::CommandError;
use crate::projections::reports::{self, Overview};

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
pub(super) async fn overview(State(state): State<DashboardState>, headers: HeaderMap) -> Response {
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

#[cfg(test)]
mod tests {
    use super::*;

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
