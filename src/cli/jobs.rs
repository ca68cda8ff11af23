//! `cert-assistant jobs`: what the background is doing, and given-up work run again.

use clap::Subcommand;
use sqlx::PgPool;
use uuid::Uuid;

use super::say;

/// `jobs` subcommands.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Jobs by kind and state, and the ones given up with their last error.
    Status,
    /// Queue given-up jobs again (all of them, or the one named) once their cause is fixed.
    Retry {
        /// A job's id, from `jobs status` or the admins' alert.
        id: Option<Uuid>,
    },
}

/// Runs a `jobs` subcommand.
pub async fn run(pool: PgPool, command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::Status => {
            let counts = crate::jobs::counts(&pool).await?;
            if counts.is_empty() {
                say("no jobs yet");
            }
            for (kind, state, count) in counts {
                say(&format!("{kind}: {count} {state}"));
            }
            for failure in crate::jobs::failed(&pool, 50).await? {
                say(&format!(
                    "failed {} {} after {} attempts: {}",
                    failure.kind, failure.id, failure.attempts, failure.error
                ));
            }
        }
        JobsCommand::Retry { id } => {
            let queued = crate::jobs::retry_failed(&pool, id).await?;
            match (queued, id) {
                (0, Some(id)) => anyhow::bail!("there is no failed job {id}"),
                (n, _) => say(&format!("queued {n} failed job(s) again")),
            }
        }
    }
    Ok(())
}
