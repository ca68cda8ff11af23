//! The probes a load balancer uses.

use cert_assistant::http::{AppState, router};
use sqlx::postgres::PgPoolOptions;

use crate::helpers::spawn_app;

#[tokio::test]
async fn healthz_answers_200_while_the_process_is_up() {
    let app = spawn_app().await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn readyz_answers_200_when_the_database_answers() {
    let app = spawn_app().await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn readyz_and_metrics_answer_503_without_details_when_the_database_is_unreachable() {
    // The routes over a pool that points at a port nobody listens on: a database that went
    // away after the service started (the service itself does not start without one).
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let pool = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy(&format!(
            "postgres://secret_user:secret_password@127.0.0.1:{closed_port}/nowhere"
        ))
        .expect("lazy pool");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = format!("http://{}", listener.local_addr().expect("addr"));
    let state = AppState {
        scrapes: cert_assistant::http::metrics::Scrapes::new(pool.clone()),
        pool,
        ca: None,
    };
    let routes = router(state.clone(), None, None, None, None, None)
        .merge(cert_assistant::http::metrics_router(state));
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let response = reqwest::get(format!("{address}/readyz"))
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let body = response.text().await.expect("body");
    assert!(body.contains("unavailable"), "{body}");
    assert!(
        !body.contains("secret"),
        "no connection details leak: {body}"
    );

    // A scrape says so too, as plainly.
    let response = reqwest::get(format!("{address}/metrics"))
        .await
        .expect("request");
    assert_eq!(response.status(), 503);
    let body = response.text().await.expect("body");
    assert!(
        body.contains("database did not answer") && !body.contains("secret"),
        "{body}"
    );

    // Liveness is independent of the database.
    let response = reqwest::get(format!("{address}/healthz"))
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn unknown_paths_are_404() {
    let app = spawn_app().await;
    assert_eq!(app.get("/no-such-page").await.status(), 404);
}
