//! `bench append`: submitted requests per second against pgbench's single-row INSERT on
//! the same server.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::commands::Commands;
use crate::pki::envelope::KeyEncryptionKey;

use super::support::{Scratch, bench_request, person};

pub(super) async fn run(
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
pub(super) async fn submit_load(
    commands: &Commands,
    callers: u32,
    window: Duration,
) -> anyhow::Result<f64> {
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
pub(super) fn pgbench(scratch: &Scratch, clients: u32, window: Duration) -> anyhow::Result<f64> {
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
pub(super) fn pgbench_program() -> PathBuf {
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
