//! `GET /downloads/{token}`: a signed, short-lived download link, as `/cert download` hands
//! out. The link names the person, certificate and artifact; the download is checked by the
//! certificate aggregate and recorded when the link is used, so a private-key link works once.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;

use crate::adapters::artifacts::ArtifactStore;
use crate::commands::{CommandError, Commands, LinkError};

/// What the download route needs.
#[derive(Clone)]
pub struct DownloadState {
    /// The application service.
    pub commands: Commands,
    /// Where the artifacts are.
    pub artifacts: Arc<dyn ArtifactStore>,
}

impl std::fmt::Debug for DownloadState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DownloadState")
            .field("artifacts", &self.artifacts.location())
            .finish_non_exhaustive()
    }
}

/// The route.
pub fn router(state: DownloadState) -> Router {
    Router::new()
        .route("/downloads/{token}", get(download))
        .with_state(state)
}

async fn download(State(state): State<DownloadState>, Path(token): Path<String>) -> Response {
    let link = match state.commands.open_download_link(&token, Utc::now()) {
        Ok(link) => link,
        Err(error) => {
            let status = match error {
                LinkError::Forged => StatusCode::FORBIDDEN,
                LinkError::Expired => StatusCode::GONE,
            };
            return (status, format!("{error}\n")).into_response();
        }
    };
    let result = state
        .commands
        .download_by_link(&link, &token, state.artifacts.as_ref())
        .await;
    match result {
        Ok(download) => (
            [
                (header::CONTENT_TYPE, "application/x-pem-file".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{}\"", download.filename),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            download.pem,
        )
            .into_response(),
        Err(CommandError::Internal(error)) => {
            tracing::error!(error = format!("{error:#}"), "download failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the download could not be prepared; try again later\n",
            )
                .into_response()
        }
        Err(CommandError::NotFound(message)) => {
            (StatusCode::NOT_FOUND, format!("{message}\n")).into_response()
        }
        Err(other) => (StatusCode::FORBIDDEN, format!("{other}\n")).into_response(),
    }
}
