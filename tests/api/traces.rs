//! Traces over OTLP, from the real `cert-assistant serve` to an OTLP/HTTP receiver built on
//! the protocol's own message types: one approval click is one trace, from the click through
//! its command, the feed batches that apply its events and the issuance job to the CA call,
//! and the correlation id in the events is that trace's id.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use prost::Message as _;
use uuid::Uuid;

use crate::helpers::{TestDb, eventually, request_number_in};
use crate::served::{Served, free_port, people};

/// A span as the collector received it.
#[derive(Debug, Clone)]
struct Received {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: i32,
    attributes: HashMap<String, String>,
    service: String,
}

#[derive(Debug, Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Received>>>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(Any::StringValue(s)) => s.clone(),
        Some(Any::IntValue(i)) => i.to_string(),
        Some(Any::BoolValue(b)) => b.to_string(),
        Some(Any::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

async fn export(State(collector): State<Collector>, body: Bytes) -> Vec<u8> {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf request");
    let mut spans = collector.spans.lock().expect("spans");
    for resource in request.resource_spans {
        let service = resource
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|a| a.key == "service.name")
            .map(|a| text(a.value.as_ref()))
            .unwrap_or_default();
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(Received {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| (a.key.clone(), text(a.value.as_ref())))
                        .collect(),
                    service: service.clone(),
                });
            }
        }
    }
    ExportTraceServiceResponse::default().encode_to_vec()
}

/// An OTLP/HTTP receiver on a port of its own; returns its base URL.
async fn collector() -> (String, Collector) {
    let collector = Collector::default();
    let app = Router::new()
        .route("/v1/traces", post(export))
        .with_state(collector.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, collector)
}

/// Waits until `count` (a query) counts one.
async fn until_one(db: &TestDb, what: &str, count: &'static str) {
    eventually(what, Duration::from_secs(60), || {
        let pool = db.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(count)
                .fetch_one(&pool)
                .await
                .expect("count")
                == 1
        }
    })
    .await;
}

#[tokio::test]
async fn one_approval_click_is_one_trace_from_the_click_to_the_ca_call_and_names_the_events() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    people(&db).await;
    let (endpoint, received) = collector().await;
    // Nothing is exported before the stop: what arrives shows that stopping flushes.
    let served = Served::start(
        &db,
        dir.path(),
        free_port(),
        &[
            ("CERT_ASSISTANT_TELEMETRY__OTLP_ENDPOINT", endpoint.as_str()),
            (
                "CERT_ASSISTANT_TELEMETRY__SERVICE_NAME",
                "cert-assistant-traced",
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
        ],
    );
    served.ready().await;

    let reply = served
        .cert(
            "UJOHN",
            "request cn=traced.example.com days=90 why=\"Tracing\"",
        )
        .await
        .expect("a reply");
    let number = request_number_in(&reply);
    crate::helpers::until_known_as_approver(&db.pool, "jane@example.com").await;
    assert!(
        served.click("UJANE", "approve", &number).await,
        "acknowledged"
    );
    until_one(
        &db,
        "the certificate is issued",
        "SELECT count(*) FROM events WHERE event_type = 'CertificateIssued'",
    )
    .await;
    // The issuance job records its outcome after the certificate's events: wait for it too.
    until_one(
        &db,
        "the issuance job is done",
        "SELECT count(*) FROM jobs WHERE kind = 'issuance' AND state = 'done'",
    )
    .await;
    // A download link is a trace of its own as well.
    let serial: String = sqlx::query_scalar("SELECT serial FROM embedded_ca_certificates LIMIT 1")
        .fetch_one(&db.pool)
        .await
        .expect("serial");
    let link = served
        .cert("UJOHN", &format!("download {serial}"))
        .await
        .expect("a link");
    let token = crate::helpers::download_token_in(&link);
    let downloaded = reqwest::get(format!("{}/downloads/{token}", served.url()))
        .await
        .expect("downloaded");
    assert_eq!(downloaded.status(), 200);
    until_one(
        &db,
        "the download is recorded",
        "SELECT count(*) FROM events WHERE event_type = 'CertificateDownloaded'",
    )
    .await;
    assert!(served.stop().success(), "a clean stop");
    // A one-shot command is one trace too, from its own process.
    let mut cli = crate::helpers::binary();
    cli.args([
        "request",
        "create",
        "--as",
        "john@example.com",
        "--cn",
        "cli.example.com",
        "--why",
        "From the command line",
        "--days",
        "90",
    ])
    .env("DATABASE_URL", db.url())
    .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", crate::fixtures::KEK)
    .env("CERT_ASSISTANT_TELEMETRY__OTLP_ENDPOINT", endpoint.as_str())
    .env(
        "CERT_ASSISTANT_TELEMETRY__SERVICE_NAME",
        "cert-assistant-traced",
    );
    let created = crate::helpers::output(cli).await;
    assert!(created.status.success(), "{created:?}");
    eventually("the spans arrive", Duration::from_secs(10), || {
        let received = received.clone();
        async move { !received.spans.lock().expect("spans").is_empty() }
    })
    .await;
    let spans = received.spans.lock().expect("spans").clone();
    assert!(spans.iter().all(|s| s.service == "cert-assistant-traced"));

    // The click is the root of its trace.
    let click = spans
        .iter()
        .find(|s| s.name == "POST /slack/interactivity")
        .unwrap_or_else(|| panic!("the click's span: {spans:#?}"));
    assert_eq!(click.parent_span_id, "", "a click starts its trace");
    assert_eq!(click.kind, SpanKind::Server as i32);
    assert_eq!(click.attributes["surface"], "slack");
    assert_eq!(click.attributes["http.response.status_code"], "200");
    let trace: Vec<&Received> = spans
        .iter()
        .filter(|s| s.trace_id == click.trace_id)
        .collect();
    let names: HashSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
    for step in [
        "command Approval",
        "command CertificateRequest",
        "feed read_model",
        "feed issuance",
        "job issuance",
        "embedded submit",
        "command Certificate",
    ] {
        assert!(
            names.contains(step),
            "{step} is in the click's trace: {names:?}"
        );
    }
    // One tree: every other span's parent is in the trace.
    let ids: HashSet<&str> = trace.iter().map(|s| s.span_id.as_str()).collect();
    for span in &trace {
        if span.span_id != click.span_id {
            assert!(
                ids.contains(span.parent_span_id.as_str()),
                "{} hangs from a span of the trace",
                span.name
            );
        }
    }
    let by_id: HashMap<&str, &Received> = trace.iter().map(|s| (s.span_id.as_str(), *s)).collect();
    let parent_name = |name: &str| {
        let span = trace.iter().find(|s| s.name == name).expect("span");
        by_id[span.parent_span_id.as_str()].name.clone()
    };
    assert_eq!(parent_name("embedded submit"), "job issuance");
    assert_eq!(parent_name("command Approval"), "POST /slack/interactivity");
    let ca = trace
        .iter()
        .find(|s| s.name == "embedded submit")
        .expect("ca");
    assert_eq!(ca.kind, SpanKind::Client as i32);
    assert_eq!(ca.attributes["ca.operation"], "submit");

    // The events the click caused carry its trace id as their correlation id, and name the
    // span that appended them.
    let click_trace = Uuid::parse_str(&click.trace_id).expect("a UUID");
    let correlated: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT event_type, metadata FROM events WHERE metadata ->> 'correlation_id' = $1 \
          ORDER BY global_seq",
    )
    .bind(click_trace.to_string())
    .fetch_all(&db.pool)
    .await
    .expect("events");
    let types: Vec<&str> = correlated.iter().map(|(t, _)| t.as_str()).collect();
    for caused in ["ApprovalGranted", "RequestApproved", "CertificateIssued"] {
        assert!(
            types.contains(&caused),
            "{caused} carries the click's id: {types:?}"
        );
    }
    for (event_type, metadata) in &correlated {
        let traceparent = metadata["traceparent"].as_str().unwrap_or_default();
        let span = traceparent.split('-').nth(2).unwrap_or_default();
        assert!(
            traceparent.starts_with(&format!("00-{}-", click.trace_id)) && ids.contains(span),
            "{event_type} names a span of the trace: {traceparent:?}"
        );
    }
    // The submission is a trace of its own, and its events say so.
    let submitted = spans
        .iter()
        .find(|s| s.name == "POST /slack/commands")
        .expect("the command's span");
    assert_ne!(submitted.trace_id, click.trace_id);
    let created: String = sqlx::query_scalar(
        "SELECT metadata ->> 'correlation_id' FROM events WHERE event_type = 'RequestCreated'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("created");
    assert_eq!(created.replace('-', ""), submitted.trace_id);

    let cli_span = spans
        .iter()
        .find(|s| s.name == "cli request")
        .unwrap_or_else(|| panic!("the command line's span: {spans:#?}"));
    let cli_events: Vec<String> = sqlx::query_scalar(
        "SELECT metadata ->> 'correlation_id' FROM events WHERE aggregate_id IN \
           (SELECT aggregate_id FROM events WHERE event_type = 'RequestCreated' \
             AND payload::text LIKE '%\"cli.example.com\"%')",
    )
    .fetch_all(&db.pool)
    .await
    .expect("the command line's events");
    assert!(!cli_events.is_empty());
    for correlation in cli_events {
        assert_eq!(correlation.replace('-', ""), cli_span.trace_id);
    }

    let download = spans
        .iter()
        .find(|s| s.name == "GET /downloads/{token}")
        .unwrap_or_else(|| panic!("the download's span: {spans:#?}"));
    assert_eq!(download.parent_span_id, "");
    assert_eq!(download.attributes["surface"], "downloads");
    let recorded: String = sqlx::query_scalar(
        "SELECT metadata ->> 'correlation_id' FROM events WHERE event_type = 'CertificateDownloaded'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("the download's event");
    assert_eq!(recorded.replace('-', ""), download.trace_id);
    assert!(
        !format!("{spans:?}").contains(&token),
        "a link's token is never in a span"
    );

    // Nothing secret is in a span.
    let everything = format!("{spans:?}");
    for secret in [
        "served-signing-secret",
        "xoxb-served",
        crate::fixtures::KEK,
        "PRIVATE KEY",
    ] {
        assert!(!everything.contains(secret), "{secret} is in a span");
    }
}
