//! Liveness and readiness probes for load balancers and orchestrators.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::AppState;

/// How long `/readyz` waits for the database before calling it unavailable.
const READINESS_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up and serving HTTP. Never touches the database, so a
/// database outage does not make an orchestrator restart healthy replicas.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: 200 when the database answers, 503 otherwise. The reason is logged, not
/// returned: connection errors can name hosts and users.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let check = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.pool);
    match tokio::time::timeout(READINESS_TIMEOUT, check).await {
        Ok(Ok(_)) => (
            StatusCode::OK,
            Json(json!({ "status": "ready", "database": "ok" })),
        ),
        Ok(Err(error)) => {
            tracing::warn!(%error, "readiness check: the database did not answer");
            unavailable()
        }
        Err(_) => {
            tracing::warn!(
                timeout_ms = READINESS_TIMEOUT.as_millis() as u64,
                "readiness check: the database timed out"
            );
            unavailable()
        }
    }
}

fn unavailable() -> (StatusCode, Json<Value>) {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "status": "unavailable", "database": "unreachable" })),
    )
}
