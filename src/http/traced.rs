//! Each request to a surface that acts for a person — a chat platform's webhooks, a download
//! link — is the root span of its trace: the commands it runs, and everything they cause,
//! continue it (see [`crate::telemetry::trace`]). The span names the route template, never
//! the path (a download link's path is its token).

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument as _;

/// Runs `request` in a root span of `surface`; returns the answer and the route template.
pub(super) async fn in_root_span(
    surface: &'static str,
    request: Request,
    next: Next,
) -> (Response, String) {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        surface,
        http.request.method = %request.method(),
        http.route = %route,
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    (response, route)
}

/// Middleware: `surface`'s routes, each request in a root span.
pub(super) async fn traced(
    State(surface): State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    in_root_span(surface, request, next).await.0
}
