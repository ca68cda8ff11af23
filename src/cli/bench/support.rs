//! What the scenarios share: the scratch database, the acting person and request, the
//! open-loop load generator and its statistics, Slack's signature.

use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

use crate::commands::{CommandContext, Commands, RequestForm};
use crate::domain::actor::Platform;
use crate::domain::values::Email;
use crate::pki::envelope::KeyEncryptionKey;

/// The service as `serve` builds and runs it (every worker included), over a scratch
/// database, until [`Running::stop`].
pub(super) struct Running {
    /// Its base URL.
    pub(super) base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Builds the service from `config` over `pool` on a free port and starts it.
    pub(super) async fn start(
        mut config: crate::config::Config,
        pool: &PgPool,
    ) -> anyhow::Result<Self> {
        config.http.listen = "127.0.0.1:0".to_owned();
        let application =
            crate::app::Application::build(&config, pool.clone(), crate::app::Outbound::default())
                .await?;
        let base = format!("http://{}", application.local_addr());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(application.run_until(async move {
            let _ = stopped.await;
        }));
        Ok(Self { base, stop, served })
    }

    /// Stops it, once what it is doing is done.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.served.await?
    }
}

/// The admin the benchmarks act as.
pub(super) const BENCH_ADMIN: &str = "bench-admin@example.com";

/// A database for one benchmark, dropped afterwards.
pub(super) struct Scratch {
    server: PgPool,
    pub(super) name: String,
    pub(super) pool: PgPool,
}

impl Scratch {
    pub(super) async fn create(server: &PgPool, connections: u32) -> anyhow::Result<Self> {
        let name = format!("cert_assistant_bench_{}", std::process::id());
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(server)
            .await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(server)
            .await
            .context("creating the scratch database")?;
        let options = server.connect_options().as_ref().clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .connect_with(options)
            .await?;
        crate::db::migrate(&pool).await?;
        Ok(Self {
            server: server.clone(),
            name,
            pool,
        })
    }

    /// The commands over this database, with the benchmarks' admin.
    pub(super) fn commands(&self, kek: KeyEncryptionKey) -> Commands {
        Commands::new(self.pool.clone(), kek, &[BENCH_ADMIN.to_owned()])
    }

    pub(super) async fn drop(self) -> anyhow::Result<()> {
        self.pool.close().await;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&self.server)
        .await?;
        Ok(())
    }
}

/// A table row of sorted latencies: `| name | median | p95 | worst |`.
pub(super) fn latency_row(name: &str, sorted: &[Duration]) -> String {
    format!(
        "| {name} | {:.1} ms | {:.1} ms | {:.1} ms |",
        ms(percentile(sorted, 0.5)),
        ms(percentile(sorted, 0.95)),
        ms(sorted.last().copied().unwrap_or(Duration::ZERO)),
    )
}

pub(super) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latencies of an open-loop load: each request is due at its own time (`i / rate` after the
/// start) whether or not earlier ones have answered, and is timed from when it was due, so a
/// slow server cannot hide its queueing (no coordinated omission).
pub(super) async fn open_loop(
    http: &reqwest::Client,
    rate: u32,
    window: Duration,
    request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
) -> (Vec<Duration>, usize, f64) {
    let total = (f64::from(rate) * window.as_secs_f64()) as u64;
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        let pending = request(http);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let ok = pending
                .send()
                .await
                .is_ok_and(|response| response.status().is_success());
            (ok, due.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok((true, latency)) => latencies.push(latency),
            _ => failed += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let achieved = latencies.len() as f64 / elapsed.max(1e-9);
    (latencies, failed, achieved)
}

/// `p50 | p99 | max` of sorted latencies, as table cells.
pub(super) fn spread(sorted: &[Duration]) -> String {
    format!(
        "{:.2} ms | {:.2} ms | {:.2} ms",
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default()),
    )
}

pub(super) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// The process's peak resident set (`VmHWM`), in MiB.
pub(super) fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: f64 = status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kib / 1024.0)
}

/// A person acting from the command line, by e-mail.
pub(super) fn person(email: &str) -> anyhow::Result<CommandContext> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!(e.message))?;
    Ok(CommandContext::new(email, Platform::Cli))
}

/// A request for `common_name` as the benchmarks submit it (generated P-256 key, 90 days).
pub(super) fn bench_request(common_name: String) -> RequestForm {
    RequestForm {
        common_name,
        certificate_type: "web_server".to_owned(),
        validity_days: Some("90".to_owned()),
        justification: "benchmark".to_owned(),
        ..RequestForm::default()
    }
}

/// Slack's signature headers for `body`, now: (timestamp, `v0=…`).
pub(super) fn slack_signature(secret: &str, body: &str) -> (String, String) {
    let timestamp = chrono::Utc::now().timestamp();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (timestamp.to_string(), format!("v0={hex}"))
}
