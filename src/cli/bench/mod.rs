//! `cert-assistant bench SCENARIO`: measurements against a baseline taken in the same run (on
//! shared machines absolute numbers drift; ratios hold). Each scenario works in a scratch
//! database on the configured server (or the private cluster), which it drops afterwards, and
//! appends its table to a Markdown file with the command, the machine and the PostgreSQL
//! settings.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Row};

use crate::commands::{CommandContext, Commands, RequestForm};
use crate::domain::actor::Platform;
use crate::domain::values::Email;
use crate::pki::envelope::KeyEncryptionKey;

mod replay;

/// `bench` scenarios.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Time to find the certificates due for expiry reminders among N active ones (the
    /// expiry job's query, on `idx_certificates_active_expiring`), against the same query
    /// with index scans disabled.
    ExpiryScan {
        /// Active certificates to scan.
        #[arg(long, default_value_t = 1_000_000)]
        certificates: u32,
        /// Where to append the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Latency of signed `/cert status` slash commands under an open-loop load at fixed
    /// rates, against a bare endpoint (`/healthz`) of the same server at the same rates.
    Ack {
        /// Requests per second, comma-separated.
        #[arg(long, default_value = "100,300,1000")]
        rates: String,
        /// Seconds per rate.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Approve clicks per second (each on its own pending request; 0 skips them).
        #[arg(long, default_value_t = 300)]
        click_rate: u32,
        /// Where to append the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Time from a command's commit to its row in `certificate_requests`, with the projector
    /// running as in `serve`, under a sustained load of submitted requests.
    ProjectionLag {
        /// Requests submitted per second.
        #[arg(long, default_value_t = 100)]
        rate: u32,
        /// Seconds of load.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Where to append the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Events/s rebuilding every projection (tables and audit chain) from N events, against
    /// reading the same events in the same batches and applying nothing.
    Replay {
        /// Events in the store to replay.
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        /// Events per batch.
        #[arg(long, default_value_t = 500)]
        batch: i64,
        /// Where to append the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Commands/s through the full write path (submit a request: validate, generate the key
    /// and CSR, append request and approval events) at each number of concurrent callers,
    /// against pgbench single-row INSERT transactions at the same concurrency.
    Append {
        /// Concurrent callers, comma-separated.
        #[arg(long, default_value = "1,8,32")]
        callers: String,
        /// Seconds per measurement.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Where to append the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
}

/// The admin the benchmarks act as.
const BENCH_ADMIN: &str = "bench-admin@example.com";

/// A database for one benchmark, dropped afterwards.
struct Scratch {
    server: PgPool,
    name: String,
    pool: PgPool,
}

impl Scratch {
    async fn create(server: &PgPool, connections: u32) -> anyhow::Result<Self> {
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
    fn commands(&self, kek: KeyEncryptionKey) -> Commands {
        Commands::new(self.pool.clone(), kek, &[BENCH_ADMIN.to_owned()])
    }

    async fn drop(self) -> anyhow::Result<()> {
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

/// Runs a scenario against the server behind `server`.
pub async fn run(
    server: PgPool,
    kek: KeyEncryptionKey,
    command: BenchCommand,
) -> anyhow::Result<()> {
    let invoked = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    let (out, section) = match command {
        BenchCommand::ExpiryScan { certificates, out } => {
            let scratch = Scratch::create(&server, 4).await?;
            let section = expiry_scan(&scratch.pool, certificates).await;
            scratch.drop().await?;
            (out, section?)
        }
        BenchCommand::Ack {
            rates,
            seconds,
            click_rate,
            out,
        } => {
            let rates = numbers(&rates).context("--rates takes numbers, e.g. 100,300,1000")?;
            let scratch = Scratch::create(&server, 20).await?;
            let section = ack(
                &scratch,
                kek,
                &rates,
                click_rate,
                Duration::from_secs(seconds),
            )
            .await;
            scratch.drop().await?;
            (out, section?)
        }
        BenchCommand::ProjectionLag { rate, seconds, out } => {
            let scratch = Scratch::create(&server, 40).await?;
            let section = projection_lag(&scratch, kek, rate, Duration::from_secs(seconds)).await;
            scratch.drop().await?;
            (out, section?)
        }
        BenchCommand::Replay { events, batch, out } => {
            let scratch = Scratch::create(&server, 4).await?;
            let section = replay::run(&scratch, kek, events, batch.max(1)).await;
            scratch.drop().await?;
            (out, section?)
        }
        BenchCommand::Append {
            callers,
            seconds,
            out,
        } => {
            let callers = numbers(&callers).context("--callers takes numbers, e.g. 1,8,32")?;
            let most = callers.iter().copied().max().unwrap_or(1);
            let scratch = Scratch::create(&server, most + 4).await?;
            let section = append(&scratch, kek, &callers, Duration::from_secs(seconds)).await;
            scratch.drop().await?;
            (out, section?)
        }
    };
    let report = format!(
        "{section}\nCommand: `cert-assistant {invoked}`. {}\n\n",
        environment(&server).await?
    );
    super::say_raw(&report);
    append_report(&out, &report)
}

/// `100,300,1000` → `[100, 300, 1000]`.
fn numbers(list: &str) -> Result<Vec<u32>, std::num::ParseIntError> {
    list.split(',').map(|n| n.trim().parse()).collect()
}

fn append_report(out: &Path, report: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let fresh = !out.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("could not open {}", out.display()))?;
    if fresh {
        writeln!(
            file,
            "# Benchmarks\n\nEach figure is measured against a baseline in the same run \
             (`cert-assistant bench …`); sections are appended as they are run.\n"
        )?;
    }
    file.write_all(report.as_bytes())?;
    Ok(())
}

/// The machine and the server's relevant settings.
async fn environment(pool: &PgPool) -> anyhow::Result<String> {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or_else(
            || "?".to_owned(),
            |kb| format!("{:.1} GiB", kb as f64 / 1_048_576.0),
        );
    let row = sqlx::query(
        "SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync, \
                current_setting('synchronous_commit') AS sync, \
                current_setting('shared_buffers') AS buffers",
    )
    .fetch_one(pool)
    .await?;
    Ok(format!(
        "Machine: {cores} cores, {memory}; {} build; PostgreSQL {} (fsync {}, synchronous_commit {}, shared_buffers {}).",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        row.try_get::<String, _>("version")?,
        row.try_get::<String, _>("fsync")?,
        row.try_get::<String, _>("sync")?,
        row.try_get::<String, _>("buffers")?,
    ))
}

/// Median and worst of `runs` timings of `query`.
async fn time_query(
    pool: &PgPool,
    setup: &str,
    query: &str,
    runs: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(setup).execute(&mut *conn).await?;
    let horizon = chrono::Utc::now() + chrono::Duration::days(90);
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = sqlx::query(query)
            .bind(horizon)
            .fetch_all(&mut *conn)
            .await?
            .len();
        times.push(started.elapsed());
    }
    sqlx::query("RESET ALL").execute(&mut *conn).await?;
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1], rows))
}

async fn expiry_scan(pool: &PgPool, certificates: u32) -> anyhow::Result<String> {
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO users (id, email) VALUES ('00000000-0000-0000-0000-0000000000b1', 'bench@example.com')",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO certificate_requests (id, request_number, user_id, common_name, certificate_type, \
             key_algorithm, validity_period_days, csr_type, csr_content, business_justification) \
         VALUES ('00000000-0000-0000-0000-0000000000b2', 'REQ-20260101-00001', \
             '00000000-0000-0000-0000-0000000000b1', 'bench.example.com', 'web_server', 'ECC_P256', \
             365, 'generated', 'csr', 'benchmark')",
    )
    .execute(pool)
    .await?;
    // Validity spread evenly over the next two years; a tenth revoked or expired, as in life.
    sqlx::query(
        "INSERT INTO certificates (request_id, user_id, serial_number, common_name, subject_dn, \
             issuer_dn, valid_from, valid_to, key_algorithm, key_size, s3_bucket, s3_key_certificate, status) \
         SELECT '00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000b1', \
                lpad(to_hex(i), 32, '0'), 'host' || i || '.example.com', 'CN=host' || i, 'CN=Bench CA', \
                now() - interval '30 days', now() + (i % 730) * interval '1 day' + (i % 86400) * interval '1 second', \
                'ECC_P256', 256, 'local', 'certs/' || i, \
                CASE WHEN i % 10 = 0 THEN 'revoked' ELSE 'active' END \
           FROM generate_series(1, $1) AS i",
    )
    .bind(i64::from(certificates))
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE certificates").execute(pool).await?;
    let loaded = started.elapsed();
    let query = crate::saga::expiry::DUE_CERTIFICATES;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        query.replace("$1", "now() + interval '90 days'")
    ))
    .fetch_all(pool)
    .await?;
    let uses_index = plan
        .iter()
        .any(|line| line.contains("idx_certificates_active_expiring"));
    let (indexed, indexed_worst, due) =
        time_query(pool, "SET enable_seqscan = on", query, 7).await?;
    let (baseline, baseline_worst, _) = time_query(
        pool,
        "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off",
        query,
        7,
    )
    .await?;
    let mut out = String::new();
    writeln!(out, "## Expiry scan: {certificates} certificates\n")?;
    writeln!(out, "| query | median | worst | due rows |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| expiry job (partial index) | {:.1} ms | {:.1} ms | {due} |",
        ms(indexed),
        ms(indexed_worst)
    )?;
    writeln!(
        out,
        "| baseline: same query, index scans off | {:.1} ms | {:.1} ms | {due} |",
        ms(baseline),
        ms(baseline_worst)
    )?;
    writeln!(
        out,
        "\nRatio baseline/indexed: {:.1}×. The plan {} `idx_certificates_active_expiring`:\n\n```\n{}\n```\nLoading the rows took {:.1} s (not measured).",
        baseline.as_secs_f64() / indexed.as_secs_f64().max(1e-9),
        if uses_index { "uses" } else { "does NOT use" },
        plan.join("\n"),
        loaded.as_secs_f64()
    )?;
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn append(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    callers: &[u32],
    window: Duration,
) -> anyhow::Result<String> {
    let commands = scratch.commands(kek);
    sqlx::query("CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, v integer NOT NULL)")
        .execute(&scratch.pool)
        .await?;
    let mut out = String::new();
    writeln!(
        out,
        "## Command append throughput ({} s per measurement)\n",
        window.as_secs()
    )?;
    writeln!(
        out,
        "| callers | commands/s (submit request) | baseline: pgbench INSERT tx/s | ratio |"
    )?;
    writeln!(out, "|---|---|---|---|")?;
    for &n in callers {
        let commands_per_second = submit_load(&commands, n, window).await?;
        let baseline = pgbench(scratch, n, window)?;
        writeln!(
            out,
            "| {n} | {commands_per_second:.0} | {baseline:.0} | {:.2} |",
            commands_per_second / baseline.max(1e-9)
        )?;
    }
    Ok(out)
}

/// Requests submitted per second by `callers` concurrent callers during `window`.
async fn submit_load(commands: &Commands, callers: u32, window: Duration) -> anyhow::Result<f64> {
    let deadline = Instant::now() + window;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for caller in 0..callers {
        let commands = commands.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = person(&format!("bench{caller}@example.com"))?;
            let mut done = 0u64;
            while Instant::now() < deadline {
                let form = bench_request(format!("b{caller}-{done}.example.com"));
                commands.submit_request(&ctx, form).await?;
                done += 1;
            }
            anyhow::Ok(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// pgbench's transactions per second for single-row INSERTs at `clients` connections.
fn pgbench(scratch: &Scratch, clients: u32, window: Duration) -> anyhow::Result<f64> {
    let options = scratch.pool.connect_options();
    let script =
        std::env::temp_dir().join(format!("cert-assistant-bench-{}.sql", std::process::id()));
    std::fs::write(&script, "INSERT INTO bench_baseline (v) VALUES (1);\n")?;
    let host = options.get_socket().map_or_else(
        || options.get_host().to_owned(),
        |s| s.display().to_string(),
    );
    let output = std::process::Command::new(pgbench_program())
        .args(["-n", "-c", &clients.to_string(), "-j", &clients.to_string()])
        .args(["-T", &window.as_secs().to_string(), "-f"])
        .arg(&script)
        .args([
            "-h",
            &host,
            "-p",
            &options.get_port().to_string(),
            "-U",
            options.get_username(),
        ])
        .arg(&scratch.name)
        .output()
        .context("running pgbench (it comes with the PostgreSQL server programs)")?;
    let _ = std::fs::remove_file(&script);
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            line.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| {
            format!(
                "pgbench said: {text} {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
}

/// `pgbench` from PATH, else from the server programs' directory.
fn pgbench_program() -> PathBuf {
    let on_path = std::process::Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if on_path {
        return PathBuf::from("pgbench");
    }
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin/pgbench"))
        .filter(|path| path.is_file())
        .max()
        .unwrap_or_else(|| PathBuf::from("pgbench"))
}

/// Latencies of an open-loop load: each request is due at its own time (`i / rate` after the
/// start) whether or not earlier ones have answered, and is timed from when it was due, so a
/// slow server cannot hide its queueing (no coordinated omission).
async fn open_loop(
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
fn spread(sorted: &[Duration]) -> String {
    format!(
        "{:.2} ms | {:.2} ms | {:.2} ms",
        ms(percentile(sorted, 0.50)),
        ms(percentile(sorted, 0.99)),
        ms(sorted.last().copied().unwrap_or_default()),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

/// Signed `/cert status` slash commands against a bare endpoint of the same server.
async fn ack(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    rates: &[u32],
    click_rate: u32,
    window: Duration,
) -> anyhow::Result<String> {
    const SECRET: &str = "bench-signing-secret";
    let commands = scratch.commands(kek);
    // The person is known already (as after their first command), so Slack is never called.
    crate::chat::identities::remember(
        &scratch.pool,
        "slack",
        "T1",
        "UBENCH",
        "bench@example.com",
        None,
    )
    .await?;
    let submitted = commands
        .submit_request(
            &person("bench@example.com")?,
            bench_request("ack.example.com".to_owned()),
        )
        .await?;
    crate::feed::Projector::new(scratch.pool.clone())
        .catch_up(Duration::from_secs(60))
        .await?;
    // The service as `serve` builds it, with Slack pointed at a port nobody answers on.
    let mut config = crate::config::Config::load_from(None, Vec::new())?;
    config.http.listen = "127.0.0.1:0".to_owned();
    config.slack.signing_secret = Some(SECRET.to_owned().into());
    config.slack.bot_token = Some("xoxb-bench".to_owned().into());
    config.slack.api_base_url = "http://127.0.0.1:9/api".to_owned();
    let application = crate::app::Application::build(
        &config,
        scratch.pool.clone(),
        crate::app::Outbound::default(),
    )
    .await?;
    let base = format!("http://{}", application.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async move {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let body = format!(
        "token=x&team_id=T1&team_domain=bench&channel_id=C1&channel_name=bench&user_id=UBENCH\
         &user_name=bench&command=%2Fcert&text=status+{}&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fr\
         &trigger_id=t",
        submitted.request_number
    );
    let signed = |http: &reqwest::Client| {
        let (timestamp, signature) = slack_signature(SECRET, &body);
        http.post(format!("{base}/slack/commands"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body.clone())
    };
    let bare = |http: &reqwest::Client| http.get(format!("{base}/healthz"));
    // Warm the connection pool and the caches.
    let _ = open_loop(&http, 50, Duration::from_secs(1), &signed).await;
    let mut out = String::new();
    writeln!(
        out,
        "## Slash-command ack latency ({} s per rate, open loop, load generator in the same process)\n",
        window.as_secs()
    )?;
    writeln!(
        out,
        "| endpoint | rate req/s | achieved req/s | p50 | p99 | max | failed |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for &rate in rates {
        for (name, which) in [
            (
                "`/cert status REQ-…` (signature check, identity, request read)",
                0,
            ),
            ("baseline: `/healthz`", 1),
        ] {
            let (latencies, failed, achieved) = if which == 0 {
                open_loop(&http, rate, window, &signed).await
            } else {
                open_loop(&http, rate, window, &bare).await
            };
            writeln!(
                out,
                "| {name} | {rate} | {achieved:.0} | {} | {failed} |",
                spread(&latencies),
            )?;
        }
    }
    if click_rate > 0 {
        clicks(
            scratch, &commands, &http, &base, SECRET, click_rate, window, &mut out,
        )
        .await?;
    }
    let _ = stop.send(());
    server.await??;
    if let Some(peak) = peak_rss_mib() {
        writeln!(
            out,
            "\nPeak RSS of the process (server and load generator together): {peak:.0} MiB."
        )?;
    }
    Ok(out)
}

/// The process's peak resident set (`VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
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

/// Approve clicks at `rate`, each on its own pending request; acknowledged at once, decided
/// (durably appended) in the background — the table says how long until all were recorded.
#[expect(clippy::too_many_arguments, reason = "one benchmark's whole setting")]
async fn clicks(
    scratch: &Scratch,
    commands: &Commands,
    http: &reqwest::Client,
    base: &str,
    secret: &'static str,
    rate: u32,
    window: Duration,
    out: &mut String,
) -> anyhow::Result<()> {
    let total = usize::try_from(u64::from(rate) * window.as_secs()).unwrap_or(usize::MAX);
    let root = person(BENCH_ADMIN)?;
    commands
        .grant_role(
            &root,
            &Email::parse("approver@example.com").map_err(|e| anyhow::anyhow!(e.message))?,
            crate::domain::actor::Role::Approver,
        )
        .await?;
    crate::chat::identities::remember(
        &scratch.pool,
        "slack",
        "T1",
        "UAPPROVER",
        "approver@example.com",
        None,
    )
    .await?;
    // The pending requests, submitted by 8 callers.
    let numbers = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let mut tasks = Vec::new();
    for caller in 0..8 {
        let commands = commands.clone();
        let numbers = numbers.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = person(&format!("requester{caller}@example.com"))?;
            for i in (caller..total).step_by(8) {
                let form = bench_request(format!("click{i}.example.com"));
                let submitted = commands.submit_request(&ctx, form).await?;
                numbers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(submitted.request_number.to_string());
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let numbers: Vec<String> = numbers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let click = |http: &reqwest::Client| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % numbers.len().max(1);
        let payload = serde_json::json!({
            "type": "block_actions",
            "team": { "id": "T1" },
            "user": { "id": "UAPPROVER", "team_id": "T1" },
            "trigger_id": "t",
            "response_url": "http://127.0.0.1:9/r",
            "message": { "blocks": [] },
            "actions": [ { "action_id": "approve", "value": numbers[i] } ],
        });
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let (timestamp, signature) = slack_signature(secret, &body);
        http.post(format!("{base}/slack/interactivity"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body)
    };
    let (latencies, failed, achieved) = open_loop(http, rate, window, &click).await;
    let clicked_at = Instant::now();
    let mut recorded = 0_i64;
    for _ in 0..600 {
        recorded = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'ApprovalPolicySatisfied'",
        )
        .fetch_one(&scratch.pool)
        .await?;
        if usize::try_from(recorded).unwrap_or_default() >= latencies.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writeln!(
        out,
        "\n| Approve click (ack; decided and appended in the background) | rate req/s | achieved req/s | p50 | p99 | max | failed |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    writeln!(
        out,
        "| each on its own pending request | {rate} | {achieved:.0} | {} | {failed} |",
        spread(&latencies),
    )?;
    writeln!(
        out,
        "\n{recorded} of {} approvals were recorded as events {:.1} s after the last click.",
        latencies.len(),
        clicked_at.elapsed().as_secs_f64()
    )?;
    Ok(())
}

/// Submits requests open-loop at `rate` while the projector runs, and measures for each the
/// time from its command's return (commit) until its row is visible in the read model.
async fn projection_lag(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    rate: u32,
    window: Duration,
) -> anyhow::Result<String> {
    let commands = scratch.commands(kek);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wakeups =
        crate::feed::Wakeups::listen(&scratch.pool, crate::app::when_stopped(stopped.clone()));
    let projector = tokio::spawn(
        crate::feed::Projector::new(scratch.pool.clone())
            .run(wakeups, crate::app::when_stopped(stopped)),
    );
    let committed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let total = u64::from(rate) * window.as_secs();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for i in 0..total {
        let commands = commands.clone();
        let committed = committed.clone();
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(due).await;
            let ctx = person(&format!("lag{}@example.com", i % 16))?;
            let form = bench_request(format!("lag{i}.example.com"));
            let submitted = commands.submit_request(&ctx, form).await?;
            committed
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push((submitted.request_number.to_string(), Instant::now()));
            anyhow::Ok(())
        }));
    }
    // Watch the read model: when does each committed request's row appear?
    let mut seen: std::collections::HashMap<String, Duration> = std::collections::HashMap::new();
    let watch_until = Instant::now() + window + Duration::from_secs(30);
    while Instant::now() < watch_until {
        let waiting: Vec<(String, Instant)> = committed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(number, _)| !seen.contains_key(number))
            .cloned()
            .collect();
        if waiting.is_empty() && tasks.iter().all(tokio::task::JoinHandle::is_finished) {
            break;
        }
        let numbers: Vec<&str> = waiting.iter().map(|(n, _)| n.as_str()).collect();
        let visible: Vec<String> = sqlx::query_scalar(
            "SELECT request_number FROM certificate_requests WHERE request_number = ANY($1)",
        )
        .bind(&numbers)
        .fetch_all(&scratch.pool)
        .await?;
        let now = Instant::now();
        for (number, at) in waiting {
            if visible.contains(&number) {
                seen.insert(number, now.saturating_duration_since(at));
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut failed = 0;
    for task in tasks {
        if !matches!(task.await, Ok(Ok(()))) {
            failed += 1;
        }
    }
    let _ = stop.send(true);
    projector.await?;
    let mut lags: Vec<Duration> = seen.into_values().collect();
    lags.sort();
    let mut out = String::new();
    writeln!(
        out,
        "## Projection lag under {rate} submitted requests/s ({} s)\n",
        window.as_secs()
    )?;
    writeln!(out, "| rows seen | failed commands | p50 | p99 | max |")?;
    writeln!(out, "|---|---|---|---|---|")?;
    writeln!(
        out,
        "| {} of {total} | {failed} | {:.1} ms | {:.1} ms | {:.1} ms |",
        lags.len(),
        ms(percentile(&lags, 0.50)),
        ms(percentile(&lags, 0.99)),
        ms(lags.last().copied().unwrap_or_default()),
    )?;
    writeln!(
        out,
        "\nFrom the command's return (its commit) to the row in `certificate_requests`, polled every 5 ms; the projector wakes on NOTIFY (and polls every 500 ms)."
    )?;
    Ok(out)
}

/// A person acting from the command line, by e-mail.
fn person(email: &str) -> anyhow::Result<CommandContext> {
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!(e.message))?;
    Ok(CommandContext::new(email, Platform::Cli))
}

/// A request for `common_name` as the benchmarks submit it (generated P-256 key, 90 days).
fn bench_request(common_name: String) -> RequestForm {
    RequestForm {
        common_name,
        certificate_type: "web_server".to_owned(),
        validity_days: Some("90".to_owned()),
        justification: "benchmark".to_owned(),
        ..RequestForm::default()
    }
}

/// Slack's signature headers for `body`, now: (timestamp, `v0=…`).
fn slack_signature(secret: &str, body: &str) -> (String, String) {
    let timestamp = chrono::Utc::now().timestamp();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    (timestamp.to_string(), format!("v0={hex}"))
}
