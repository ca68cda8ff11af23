//! The loops background workers run until shutdown: a job worker steps again at once while
//! it finds full batches, waits a second when idle and five after an error; a scheduled
//! job runs a pass every period. Errors are logged, never fatal.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch::Receiver;

/// Runs `step` (which claims at most `batch` jobs and says how many) until `stopped`.
pub async fn poll_jobs<F, Fut>(name: &str, batch: usize, mut stopped: Receiver<bool>, step: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<usize>>,
{
    loop {
        let pause = match step().await {
            Ok(claimed) if claimed >= batch => Duration::ZERO,
            Ok(_) => Duration::from_secs(1),
            Err(error) => {
                tracing::error!(error = format!("{error:#}"), "{name} step failed");
                Duration::from_secs(5)
            }
        };
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Runs `pass` every `every` until `stopped`.
pub async fn every<F, Fut, T>(name: &str, every: Duration, mut stopped: Receiver<bool>, pass: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    tracing::info!(every_s = every.as_secs(), "{name} job started");
    loop {
        if let Err(error) = pass().await {
            tracing::error!(error = format!("{error:#}"), "{name} pass failed");
        }
        tokio::select! {
            _ = stopped.wait_for(|stop| *stop) => break,
            () = tokio::time::sleep(every) => {}
        }
    }
}
