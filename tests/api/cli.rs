//! The `cert-assistant` binary as an operator runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{TestDb, database_url};

fn cert_assistant() -> Command {
    crate::helpers::binary()
}

#[tokio::test]
async fn migrate_creates_the_whole_schema_in_an_empty_database_and_is_idempotent() {
    let (name, options) = TestDb::empty().await;
    for _ in 0..2 {
        let output = cert_assistant()
            .arg("migrate")
            .env("DATABASE_URL", database_url(&name))
            .output()
            .expect("run migrate");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let pool = sqlx::PgPool::connect_with(options).await.expect("connect");
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' \
           AND table_name IN ('users', 'certificate_requests', 'recommendation_answers', 'approvals', \
               'certificates', 'certificate_revocations', 'audit_logs', 'notifications', \
               'system_config', 'private_keys', 'events', 'snapshots')",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert_eq!(tables, 12);
}

#[test]
fn a_bad_configuration_is_refused_with_every_problem_and_no_secret() {
    let output = cert_assistant()
        .arg("migrate")
        .env("DATABASE_URL", "mysql://root:topsecret@db/x")
        .env("CERT_ASSISTANT_HTTP__LISTEN", "nowhere")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("http.listen"), "{stderr}");
    assert!(!stderr.contains("topsecret"), "{stderr}");
}

#[test]
fn help_explains_every_command() {
    let output = cert_assistant().arg("--help").output().expect("run");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for word in ["serve", "migrate", "DATABASE_URL"] {
        assert!(help.contains(word), "{word} missing from:\n{help}");
    }
}

/// Runs `serve` with no DATABASE_URL, in a private data directory, and returns it with the
/// address it listens on (read from its JSON log).
fn serve_privately(data_dir: &std::path::Path) -> (Child, String, Vec<String>) {
    let mut child = cert_assistant()
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("CERT_ASSISTANT_DATABASE__PRIVATE__DATA_DIR", data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        seen.push(line.clone());
        if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
            && entry["message"] == "listening"
        {
            let addr = entry["addr"].as_str().expect("addr").to_owned();
            // Keep draining stderr so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return (child, addr, seen);
        }
    }
    child.kill().ok();
    child.wait().ok();
    panic!("serve did not start listening:\n{}", seen.join("\n"));
}

fn terminate_and_wait(mut child: Child) -> std::process::ExitStatus {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "serve did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn serve_with_no_configuration_runs_its_own_postgres_reuses_it_and_stops_it() {
    let dir = tempfile::Builder::new()
        .prefix("ca-serve-")
        .tempdir()
        .expect("tempdir");
    let data_dir = dir.path().join("pg");

    let (child, addr, log) = serve_privately(&data_dir);
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    assert!(
        log.iter()
            .any(|l| l.contains("creating the private PostgreSQL cluster")),
        "first start creates the cluster:\n{}",
        log.join("\n")
    );
    let status = terminate_and_wait(child);
    assert!(status.success(), "serve exits cleanly on SIGTERM: {status}");
    assert!(
        !data_dir.join("pgdata/postmaster.pid").exists(),
        "the private server was stopped"
    );

    // Second start: the same cluster, already migrated, no initdb.
    let (child, addr, log) = serve_privately(&data_dir);
    let ready = reqwest::get(format!("http://{addr}/readyz"))
        .await
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    assert!(
        !log.iter()
            .any(|l| l.contains("creating the private PostgreSQL cluster")),
        "second start reuses the cluster:\n{}",
        log.join("\n")
    );
    assert!(terminate_and_wait(child).success());
}
