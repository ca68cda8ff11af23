//! `/downloads/{token}`: a signed, short-lived download link, as `/cert download` hands out.
//! The link names the person, certificate and artifact; the download is checked by the
//! certificate aggregate and recorded when the link is used, so a private-key link works once.
//! A private key's link opens a page whose button fetches the key (a POST): link previews,
//! mail scanners and `HEAD` requests, which follow links on their own, cannot spend its one
//! download. A `HEAD` never changes anything.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::domain::certificate::Artifact;
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
        .route("/downloads/{token}", get(open).head(look).post(download))
        .with_state(state)
}

/// The link, verified, or the status and words to answer with.
fn verified(
    state: &DownloadState,
    token: &str,
) -> Result<crate::commands::DownloadLink, (StatusCode, String)> {
    state
        .commands
        .open_download_link(token, Utc::now())
        .map_err(|error| {
            let status = match error {
                LinkError::Forged => StatusCode::FORBIDDEN,
                LinkError::Expired => StatusCode::GONE,
            };
            (status, format!("{error}\n"))
        })
}

/// `GET`: a certificate or chain at once; for a private key, the page with its button.
async fn open(State(state): State<DownloadState>, Path(token): Path<String>) -> Response {
    let link = match verified(&state, &token) {
        Ok(link) => link,
        Err(answer) => return answer.into_response(),
    };
    if link.artifact != Artifact::PrivateKey {
        return download(State(state), Path(token)).await;
    }
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        KEY_PAGE,
    )
        .into_response()
}

/// `HEAD`: whether the link is good, nothing more.
async fn look(State(state): State<DownloadState>, Path(token): Path<String>) -> Response {
    match verified(&state, &token) {
        Ok(_) => ([(header::CACHE_CONTROL, "no-store")], "").into_response(),
        Err(answer) => answer.into_response(),
    }
}

/// The private key's page: what happens, and the one button.
const KEY_PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"robots\" content=\"noindex\"><title>Download your private key</title>\
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;\
line-height:1.5}button{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}</style></head>\
<body><h1>Download your private key</h1>\
<p>This key can be downloaded <strong>once</strong>. It comes encrypted under the passphrase \
shown with the link in chat; keep both safe.</p>\
<form method=\"post\"><button type=\"submit\">Download the private key</button></form>\
</body></html>\n";

/// `POST` (and `GET` for certificates and chains): the download, recorded.
async fn download(State(state): State<DownloadState>, Path(token): Path<String>) -> Response {
    let link = match verified(&state, &token) {
        Ok(link) => link,
        Err(answer) => return answer.into_response(),
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
