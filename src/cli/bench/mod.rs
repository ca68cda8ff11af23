//! `cert-assistant bench SCENARIO`: measurements against a baseline taken in the same run (on
//! shared machines absolute numbers drift; ratios hold). Each scenario works in a scratch
//! database on the configured server (or the private cluster), which it drops afterwards, and
//! appends its table to a Markdown file with the command, the machine and the PostgreSQL
//! settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use sqlx::{PgPool, Row};

use crate::pki::envelope::KeyEncryptionKey;

mod ack;
mod append;
mod clicks;
mod dashboard;
mod expiry_scan;
mod projection_lag;
mod replay;
mod scrape;
mod support;

use support::Scratch;

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
    /// `GET /metrics` of the service over N active certificates, against fetching the same
    /// read-model rows and encoding nothing.
    Scrape {
        /// Active certificates (a tenth as many revoked ones are added).
        #[arg(long, default_value_t = 100_000)]
        certificates: u32,
        /// Scrapes to time.
        #[arg(long, default_value_t = 20)]
        scrapes: usize,
        /// Where to append the results.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// The dashboard's overview and list pages over N certificates, signed in as an
    /// auditor, against `GET /healthz` of the same service.
    Dashboard {
        /// Active certificates (each with its own request).
        #[arg(long, default_value_t = 100_000)]
        certificates: u32,
        /// Views of each page to time.
        #[arg(long, default_value_t = 20)]
        pages: usize,
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
            let section = expiry_scan::run(&scratch.pool, certificates).await;
            scratch.drop().await?;
            (out, section?)
        }
        BenchCommand::Scrape {
            certificates,
            scrapes,
            out,
        } => {
            let scratch = Scratch::create(&server, 12).await?;
            let section = scrape::run(&scratch, certificates, scrapes.max(1)).await;
            scratch.drop().await?;
            (out, section?)
        }
        BenchCommand::Dashboard {
            certificates,
            pages,
            out,
        } => {
            let scratch = Scratch::create(&server, 12).await?;
            let section = dashboard::run(&scratch, kek, certificates, pages.max(1)).await;
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
            let section = ack::run(
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
            let section =
                projection_lag::run(&scratch, kek, rate, Duration::from_secs(seconds)).await;
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
            let section = append::run(&scratch, kek, &callers, Duration::from_secs(seconds)).await;
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
