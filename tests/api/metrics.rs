//! `/metrics` as Prometheus scrapes it: after a real flow through Slack (a request, a forged
//! post, a refusal, an approval by button, issuance by the embedded CA) on a service that
//! runs as `serve` runs it, both exposition formats parse with an OpenMetrics/Prometheus
//! parser, and the certificates, the requests, the lag and the chat latency are there and
//! moved. The alert rules and the dashboard only name series the service exports.

use std::collections::BTreeSet;
use std::time::Duration;

use cert_assistant::app::Outbound;
use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};

use crate::fixtures::service;
use crate::helpers::{Background, TestDb, eventually};
use crate::slack::{SlackTest, slack_app_started, text_of};

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// `GET /metrics` with `accept` (if any): the body, once the answer is 200 with a content
/// type starting with `content_type`.
async fn fetch(base: &str, accept: Option<&str>, content_type: &str) -> String {
    let mut request = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(accept) = accept {
        request = request.header("accept", accept);
    }
    let response = request.send().await.expect("scraped");
    assert_eq!(response.status(), 200);
    let answered = response.headers()["content-type"].to_str().expect("ascii");
    assert!(answered.starts_with(content_type), "{answered}");
    response.text().await.expect("body")
}

/// Scrapes as Prometheus does (asking for OpenMetrics), and parses strictly.
async fn scrape(base: &str) -> Exposition {
    let body = fetch(
        base,
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
        "application/openmetrics-text",
    )
    .await;
    openmetrics_parser::openmetrics::parse_openmetrics(&body)
        .unwrap_or_else(|error| panic!("not valid OpenMetrics ({error:?}):\n{body}"))
}

/// Scrapes as curl does: the classic text format.
async fn scrape_text(base: &str) -> String {
    fetch(base, None, "text/plain; version=0.0.4").await
}

/// The value of `family`'s series with (at least) `labels`; histograms give their count.
fn value(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let family = exposition.families.get(family)?;
    family.iter_samples().find_map(|sample| {
        let set = sample.get_labelset().ok()?;
        labels
            .iter()
            .all(|(name, want)| set.get_label_value(name) == Some(want))
            .then(|| match &sample.value {
                OpenMetricsValue::Gauge(n) | OpenMetricsValue::Unknown(n) => n.as_f64(),
                OpenMetricsValue::Counter(c) => c.value.as_f64(),
                OpenMetricsValue::Histogram(h) => h.count.unwrap_or_default() as f64,
                other => panic!("unexpected value {other:?}"),
            })
    })
}

fn or_zero(exposition: &Exposition, family: &str, labels: &[(&str, &str)]) -> f64 {
    value(exposition, family, labels).unwrap_or(0.0)
}

async fn running_slack() -> SlackTest {
    slack_app_started(
        TestDb::new().await,
        |_| {},
        Background::Running,
        Outbound::default(),
    )
    .await
}

#[tokio::test]
async fn a_scrape_after_a_real_flow_parses_and_shows_certificates_requests_lag_and_chat_latency() {
    let t = running_slack().await;
    crate::fixtures::approver(&service(&t.db), "jane@example.com").await;
    crate::helpers::until_known_as_approver(&t.db.pool, "jane@example.com").await;
    let before = scrape(&t.app).await;
    let commands = [
        ("platform", "slack"),
        ("route", "/slack/commands"),
        ("status", "2xx"),
    ];
    let answers = [("platform", "slack"), ("route", "/slack/commands")];
    let revokes = [("ca", "embedded"), ("operation", "revoke")];
    let forged = [("platform", "slack"), ("reason", "signature")];
    let refused = [("platform", "slack"), ("reason", "authorization")];
    let submits = [("ca", "embedded"), ("operation", "submit")];
    let issued = [("kind", "issuance"), ("outcome", "done")];

    let reply = t
        .cert(
            "UJOHN",
            "request cn=metrics.example.com days=90 why=\"Watching it\"",
        )
        .await;
    let number = crate::helpers::request_number_in(&text_of(&reply));
    // A forged post and a refused command.
    let body = t.command_body("UJOHN", "help");
    let now = chrono::Utc::now().timestamp();
    let response = t.post_signed("/slack/commands", body, now, "v0=00").await;
    assert_eq!(response.status(), 401);
    let refusal = t.cert("UJOHN", "approvals").await;
    assert!(text_of(&refusal).contains("only approvers"), "{refusal}");
    // Jane approves; the saga issues through the embedded CA.
    t.interact(t.button("UJANE", "approve", &number, "jane"))
        .await;
    t.wait_for_response("jane", 1).await;

    let within = Duration::from_secs(60);
    eventually("the issued certificate is scraped", within, || async {
        let after = scrape(&t.app).await;
        value(
            &after,
            "cert_assistant_certificate_expiration_timestamp_seconds",
            &[("common_name", "metrics.example.com")],
        )
        .is_some()
            && value(&after, "cert_assistant_requests", &[("status", "issued")]) == Some(1.0)
    })
    .await;
    let after = scrape(&t.app).await;

    // The certificate, labelled like the certificate exporters' series.
    let family = &after.families["cert_assistant_certificate_expiration_timestamp_seconds"];
    let labels: BTreeSet<&str> = family
        .get_label_names()
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        labels,
        BTreeSet::from([
            "serial_number",
            "common_name",
            "issuer",
            "type",
            "department"
        ])
    );
    let not_after = value(
        &after,
        "cert_assistant_certificate_expiration_timestamp_seconds",
        &[
            ("common_name", "metrics.example.com"),
            ("type", "web_server"),
        ],
    )
    .expect("the certificate's expiry");
    let in_days = (not_after - chrono::Utc::now().timestamp() as f64) / 86_400.0;
    assert!(
        (89.0..=91.0).contains(&in_days),
        "expires in {in_days} days"
    );
    let serial: String = sqlx::query_scalar("SELECT serial_number FROM certificates")
        .fetch_one(&t.db.pool)
        .await
        .expect("the certificate");
    assert!(
        value(
            &after,
            "cert_assistant_certificate_expiration_timestamp_seconds",
            &[("serial_number", &serial)],
        )
        .is_some()
    );
    assert_eq!(
        value(
            &after,
            "cert_assistant_certificates",
            &[("status", "active")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &after,
            "cert_assistant_approvals",
            &[("status", "approved")]
        ),
        Some(1.0)
    );

    // The spine: every consumer's lag is there; nothing is parked.
    for consumer in ["read_model", "issuance", "chat_outbox", "mail_outbox"] {
        let lag = value(
            &after,
            "cert_assistant_feed_consumer_lag_seconds",
            &[("consumer", consumer)],
        );
        assert!(lag.is_some_and(|s| s >= 0.0), "{consumer}: {lag:?}");
        assert_eq!(
            value(
                &after,
                "cert_assistant_feed_parked_streams",
                &[("consumer", consumer)]
            ),
            Some(0.0)
        );
    }
    assert!(
        or_zero(
            &after,
            "cert_assistant_feed_consumer_events_applied",
            &[("consumer", "read_model")]
        ) > 0.0
    );

    // What moved in the process: chat requests and their latency, both refusals, the CA
    // call and the issuance job. (Other tests in this binary count too: at least.)
    for (family, labels) in [
        ("cert_assistant_chat_requests", &commands[..]),
        ("cert_assistant_chat_answer_seconds", &answers[..]),
        ("cert_assistant_refusals", &forged[..]),
        ("cert_assistant_refusals", &refused[..]),
        ("cert_assistant_ca_request_seconds", &submits[..]),
        ("cert_assistant_job_runs", &issued[..]),
    ] {
        let (was, is) = (
            or_zero(&before, family, labels),
            or_zero(&after, family, labels),
        );
        assert!(is > was, "{family} {labels:?} did not move: {was} -> {is}");
    }
    let commands_answered = or_zero(&after, "cert_assistant_chat_requests", &commands)
        - or_zero(&before, "cert_assistant_chat_requests", &commands);
    assert!(commands_answered >= 2.0, "{commands_answered}");

    // The process and its pool.
    assert!(or_zero(&after, "process_resident_memory_bytes", &[]) > 0.0);
    assert!(or_zero(&after, "cert_assistant_db_pool_max_connections", &[]) > 0.0);

    // curl's format parses too, with the same certificate in it.
    let text = scrape_text(&t.app).await;
    let classic = openmetrics_parser::prometheus::parse_prometheus(&text)
        .unwrap_or_else(|error| panic!("not valid Prometheus text ({error:?}):\n{text}"));
    assert!(
        classic
            .families
            .contains_key("cert_assistant_certificate_expiration_timestamp_seconds")
    );
    assert!(
        text.contains(&format!("serial_number=\"{serial}\"")),
        "{text}"
    );
    if let Some(promtool) = promtool() {
        let lint = run_with_stdin(&promtool, &["check", "metrics"], &text);
        assert!(lint.status.success(), "promtool check metrics: {lint:?}");
    }

    // Revoked (at the CA too), the certificate leaves the expiry series and is counted as
    // revoked.
    let revoked = t
        .cert("UJOHN", &format!("revoke {serial} key_compromise"))
        .await;
    assert!(text_of(&revoked).contains("revok"), "{revoked}");
    eventually(
        "the revoked certificate leaves the series",
        within,
        || async {
            let now = scrape(&t.app).await;
            value(
                &now,
                "cert_assistant_certificate_expiration_timestamp_seconds",
                &[("serial_number", &serial)],
            )
            .is_none()
                && value(
                    &now,
                    "cert_assistant_certificates",
                    &[("status", "revoked")],
                ) == Some(1.0)
                && or_zero(&now, "cert_assistant_ca_request_seconds", &revokes)
                    > or_zero(&before, "cert_assistant_ca_request_seconds", &revokes)
        },
    )
    .await;
}

#[test]
fn the_alert_rules_load_in_prometheus_and_pass_their_own_tests() {
    let Some(promtool) = promtool() else {
        eprintln!("promtool is not installed: the rules are checked by the unit tests only");
        return;
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring");
    for args in [
        &["check", "rules", "prometheus-rules.yaml"][..],
        &["test", "rules", "prometheus-rules.test.yaml"][..],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool ran");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// promtool, where it is installed: `PROMTOOL` (which CI sets, so there it must work), else
/// the PATH.
fn promtool() -> Option<String> {
    if let Ok(required) = std::env::var("PROMTOOL") {
        return Some(required);
    }
    std::process::Command::new("promtool")
        .arg("--version")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|_| "promtool".to_owned())
}

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("started");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("written");
    child.wait_with_output().expect("finished")
}

/// A read-model certificate, written as the projector writes one.
async fn certificate_row(pool: &sqlx::PgPool, owner: uuid::Uuid, common_name: &str) -> uuid::Uuid {
    let request: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO certificate_requests (request_number, user_id, common_name, certificate_type, \
             key_algorithm, validity_period_days, csr_type, csr_content, business_justification) \
         VALUES ('REQ-20261207-' || lpad((floor(random() * 99999))::int::text, 5, '0'), $1, $2, \
             'vpn', 'ECC_P256', 90, 'generated', 'csr', 'test') RETURNING id",
    )
    .bind(owner)
    .bind(common_name)
    .fetch_one(pool)
    .await
    .expect("request");
    sqlx::query_scalar(
        "INSERT INTO certificates (request_id, user_id, serial_number, common_name, subject_dn, \
             issuer_dn, valid_from, valid_to, key_algorithm, key_size, s3_bucket, s3_key_certificate) \
         VALUES ($1, $2, upper(md5($3)), $3, 'CN=' || $3, 'CN=Corp CA', now(), \
             now() + interval '90 days', 'ECC_P256', 256, 'b', 'k') RETURNING id",
    )
    .bind(request)
    .bind(owner)
    .bind(common_name)
    .fetch_one(pool)
    .await
    .expect("certificate")
}

#[tokio::test]
async fn active_certificates_follow_the_read_model_and_memory_never_outlives_its_listener() {
    use cert_assistant::projections::gauges::ActiveCertificates;
    let within = Duration::from_secs(30);
    let db = TestDb::new().await;
    let pool = db.pool.clone();
    let owner: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO users (email, department) VALUES ('owner@example.com', 'Ops') RETURNING id",
    )
    .fetch_one(&pool)
    .await
    .expect("owner");
    let kept = certificate_row(&pool, owner, "kept.example.com").await;
    let active = ActiveCertificates::new(pool.clone());
    // Before the listener has loaded them, they come from the database, unversioned.
    let first = active.now().await.expect("read");
    assert_eq!(first.certificates.len(), 1);
    eventually("memory answers", within, || async { active.remembers() }).await;
    let names = || async {
        let now = active.now().await.expect("read");
        let names: Vec<(String, String)> = now
            .certificates
            .iter()
            .map(|c| (c.common_name.clone(), c.department.clone()))
            .collect();
        (now.version, names)
    };
    let (loaded, _) = names().await;
    assert!(loaded.is_some());

    // A new certificate, a department change and a revocation are followed; a download is not
    // a change of any series.
    let gone = certificate_row(&pool, owner, "gone.example.com").await;
    eventually("the new certificate is followed", within, || async {
        names().await.1.len() == 2
    })
    .await;
    sqlx::query("UPDATE users SET department = 'Platform' WHERE id = $1")
        .bind(owner)
        .execute(&pool)
        .await
        .expect("moved");
    eventually("the department is followed", within, || async {
        names().await.1.iter().all(|(_, d)| d == "Platform")
    })
    .await;
    sqlx::query("UPDATE certificates SET status = 'revoked' WHERE id = $1")
        .bind(gone)
        .execute(&pool)
        .await
        .expect("revoked");
    eventually("the revoked certificate leaves", within, || async {
        names().await.1 == vec![("kept.example.com".to_owned(), "Platform".to_owned())]
    })
    .await;
    let (settled, _) = names().await;
    sqlx::query("UPDATE certificates SET download_count = download_count + 1 WHERE id = $1")
        .bind(kept)
        .execute(&pool)
        .await
        .expect("downloaded");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(names().await.0, settled, "a download changes no series");

    // A lost connection: memory stops answering at once; what changes meanwhile is read
    // from the database, then followed again.
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
          WHERE datname = current_database() AND query ILIKE 'LISTEN%active_certificates%'",
    )
    .fetch_all(&pool)
    .await
    .expect("terminate");
    assert_eq!(terminated, vec![true]);
    certificate_row(&pool, owner, "meanwhile.example.com").await;
    eventually(
        "the certificate issued meanwhile is seen",
        within,
        || async { names().await.1.len() == 2 },
    )
    .await;
    eventually("memory answers again", within, || async {
        active.remembers() && names().await.0.is_some()
    })
    .await;
    assert_eq!(names().await.1.len(), 2);
}

#[tokio::test]
async fn with_metrics_listen_set_the_scrape_is_served_there_only() {
    let db = TestDb::new().await;
    let files = crate::helpers::test_files();
    let mut config = crate::helpers::test_config(files.path());
    config.metrics.listen = Some("127.0.0.1:0".to_owned());
    let application =
        cert_assistant::app::Application::build(&config, db.pool.clone(), Outbound::default())
            .await
            .expect("the service builds");
    let main = format!("http://{}", application.local_addr());
    let private = format!(
        "http://{}",
        application.metrics_addr().expect("a listener of its own")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    assert_eq!(
        reqwest::get(format!("{main}/metrics"))
            .await
            .expect("asked")
            .status(),
        404
    );
    assert_eq!(
        reqwest::get(format!("{main}/healthz"))
            .await
            .expect("asked")
            .status(),
        200
    );
    let exposition = scrape(&private).await;
    assert!(
        exposition
            .families
            .contains_key("cert_assistant_feed_consumer_lag_seconds")
    );
    // Both listeners stop with the service.
    let _ = stop.send(());
    served.await.expect("joined").expect("stopped cleanly");
    assert!(reqwest::get(format!("{private}/metrics")).await.is_err());
}
