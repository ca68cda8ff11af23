//! The embedded CA's public face: its CRL and its chain.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// `GET /ca/crl.der`: the current CRL, signed by the issuing CA.
pub async fn crl(State(state): State<AppState>) -> Response {
    let Some(ca) = state.ca else {
        return (StatusCode::NOT_FOUND, "no embedded CA").into_response();
    };
    match ca.crl_der().await {
        Ok(der) => ([(header::CONTENT_TYPE, "application/pkix-crl")], der).into_response(),
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "could not produce the CRL");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

/// `GET /ca/chain.pem`: issuing CA, then root.
pub async fn chain(State(state): State<AppState>) -> Response {
    match state.ca {
        Some(ca) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            ca.chain_pem(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no embedded CA").into_response(),
    }
}
