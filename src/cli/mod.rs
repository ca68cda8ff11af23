//! The command line: `cert-assistant <command>`. Each command is a thin shell around the
//! library; `main.rs` only parses and calls [`run`].

mod requests;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, Application};
use crate::commands::Commands;
use crate::config::{Config, LogFormat};
use crate::db::{self, Database};
use crate::telemetry;

/// Certificates on request from chat: requests, approvals, issuance, expiry and revocation,
/// every change recorded as an event.
///
/// Configuration comes from environment variables (`DATABASE_URL`,
/// `CERT_ASSISTANT_<SECTION>__<FIELD>`) and an optional TOML file; see README.md. With no
/// `DATABASE_URL`, a private PostgreSQL cluster is started from the server programs on this
/// machine.
#[derive(Debug, Parser)]
#[command(name = "cert-assistant", version, about, long_about)]
pub struct Cli {
    /// TOML configuration file; environment variables override it.
    #[arg(
        long,
        short,
        global = true,
        env = "CERT_ASSISTANT_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    /// Log format (overrides `log.format`).
    #[arg(long, global = true, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: apply pending migrations, then serve HTTP (`/healthz`, `/readyz`,
    /// chat webhooks) until SIGINT or SIGTERM. Without DATABASE_URL it starts a private
    /// PostgreSQL cluster and stops it again on shutdown.
    Serve {
        /// Address to listen on (overrides `http.listen`, default 127.0.0.1:8080).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply pending database migrations (the event store and the documented schema), then
    /// exit. Safe to run while other replicas are serving.
    Migrate,
    /// Work with certificate requests without chat: create, show, approve, reject, delegate,
    /// cancel. `--as EMAIL` names the person acting.
    #[command(subcommand)]
    Request(requests::RequestCommand),
    /// Manage users' roles.
    #[command(subcommand)]
    User(requests::UserCommand),
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    if let Command::Serve {
        listen: Some(listen),
    } = &cli.command
    {
        config.http.listen = listen.clone();
        config.validate()?;
    }
    // One-shot commands print their answer; routine progress logs would only be noise.
    let quiet = matches!(cli.command, Command::Request(_) | Command::User(_));
    let filter = if quiet && config.log.filter == "info" {
        "warn"
    } else {
        config.log.filter.as_str()
    };
    telemetry::init(config.log.format, filter);

    match cli.command {
        Command::Serve { .. } => serve(config).await,
        Command::Request(command) => {
            with_commands(&config, |commands| async move {
                requests::run_request(&commands, command).await
            })
            .await
        }
        Command::User(command) => {
            with_commands(&config, |commands| async move {
                requests::run_user(&commands, command).await
            })
            .await
        }
        Command::Migrate => {
            let database = Database::open(&config.database).await?;
            let result = db::migrate(database.pool()).await;
            database.close().await?;
            result?;
            tracing::info!("migrations applied");
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let database = Database::open(&config.database).await?;
    let result = async {
        db::migrate(database.pool()).await?;
        let application = Application::build(&config, database.pool().clone()).await?;
        application.run_until(app::shutdown_signal()).await
    }
    .await;
    // Stop the private cluster whatever happened, then report the first failure.
    let closed = database.close().await.context("shutting down the database");
    result.and(closed)
}

/// Opens the database, runs `work` with the command service, and closes everything again.
/// Refusals are reported in the domain's own words; internal errors with their cause.
async fn with_commands<F, Fut>(config: &Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(Commands) -> Fut,
    Fut: Future<Output = Result<(), crate::commands::CommandError>>,
{
    let kek = app::load_key_encryption_key(config)?;
    let database = Database::open(&config.database).await?;
    let result = async {
        db::migrate(database.pool()).await?;
        let commands = Commands::new(database.pool().clone(), kek, &config.auth.admins);
        work(commands).await.map_err(|error| match error {
            crate::commands::CommandError::Internal(cause) => cause,
            other => anyhow::Error::msg(other.to_string()),
        })
    }
    .await;
    let closed = database.close().await;
    result.and(closed)
}
