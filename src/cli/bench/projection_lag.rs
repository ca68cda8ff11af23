//! `bench projection-lag`: commit-to-row time with the projector running, under a
//! sustained submit load.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::pki::envelope::KeyEncryptionKey;

use super::support::{Scratch, bench_request, ms, percentile, person};

/// Submits requests open-loop at `rate` while the projector runs, and measures for each the
/// time from its command's return (commit) until its row is visible in the read model.
pub(super) async fn run(
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
