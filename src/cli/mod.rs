//! The command line: `cert-assistant <command>`. Each command is a thin shell around the
//! library; `main.rs` only parses and calls [`run`].

mod bench;
mod certificates;
mod config;
mod dev;
mod jobs;
mod requests;

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{self, Application};
use crate::commands::Commands;
use crate::config::{Config, LogFormat};
use crate::db::{self, Database};
use crate::feed::Projector;
use crate::projections::catalog::{self, Format};
use crate::projections::{audit, replay};
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
    /// Work with issued certificates: download, revoke, renew. `--as EMAIL` names the person acting.
    #[command(subcommand)]
    Certificate(certificates::CertificateCommand),
    /// Manage users' roles.
    #[command(subcommand)]
    User(requests::UserCommand),
    /// Discord: register the `/cert` command.
    #[command(subcommand)]
    Discord(DiscordCommand),
    /// Measure a scenario against a baseline taken in the same run, in a scratch database;
    /// the table is printed and appended to BENCHMARKS.md.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// App manifests for chat platforms.
    #[command(subcommand)]
    Manifest(ManifestCommand),
    /// Read and change the settings in system_config.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Demo data and measurements for trying the service out (never on production data).
    #[command(subcommand, hide = true)]
    Dev(dev::DevCommand),
    /// Rebuild every projected table from the event store (in one transaction; readers see
    /// the old tables until it commits) and report the throughput.
    Replay {
        /// Events applied per step.
        #[arg(long, default_value_t = 1000)]
        batch_size: i64,
    },
    /// The projector: status, or catch up once.
    #[command(subcommand)]
    Projections(ProjectionsCommand),
    /// Background jobs (issuance, mail, revocation, chat): status, and retrying given-up ones.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// A one-time sign-in link to the dashboard (as `/cert dashboard` answers in chat), for
    /// an approver, admin or auditor; valid 10 minutes.
    Dashboard {
        /// Whose link (their e-mail).
        #[arg(long = "as", value_name = "EMAIL")]
        actor: String,
    },
    /// ADCS Web Enrollment, as configured (`adcs.*`).
    #[command(subcommand)]
    Adcs(AdcsCommand),
    /// Run one of the auditors' named queries (projections/*.sql) read-only, as the
    /// cert_assistant_auditor role. Without a name, list them.
    Query {
        /// The query's name.
        name: Option<String>,
        /// A parameter, `name=value` (repeatable).
        #[arg(long = "param", value_name = "NAME=VALUE")]
        params: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

impl Command {
    /// What a one-shot command is called in its trace; `None` for the long-running ones.
    fn action(&self) -> Option<&'static str> {
        Some(match self {
            Self::Serve { .. } | Self::Bench(_) | Self::Dev(_) => return None,
            Self::Migrate => "migrate",
            Self::Request(_) => "request",
            Self::Certificate(_) => "certificate",
            Self::User(_) => "user",
            Self::Discord(_) => "discord",
            Self::Manifest(_) => "manifest",
            Self::Config(_) => "config",
            Self::Replay { .. } => "replay",
            Self::Projections(_) => "projections",
            Self::Jobs(_) => "jobs",
            Self::Audit(_) => "audit",
            Self::Dashboard { .. } => "dashboard",
            Self::Adcs(_) => "adcs",
            Self::Query { .. } => "query",
        })
    }
}

/// `adcs` subcommands.
#[derive(Debug, Subcommand)]
pub enum AdcsCommand {
    /// Try the configured server as the service would — reachability, TLS, the login, the
    /// CA chain — and say in plain words what is wrong. Submits nothing.
    Check,
}

/// `discord` subcommands.
#[derive(Debug, Subcommand)]
pub enum DiscordCommand {
    /// Register (or update) the `/cert` command with Discord: globally, or in one guild
    /// (guild commands appear at once; global ones can take a while).
    Register {
        /// A guild (server) id.
        #[arg(long)]
        guild: Option<String>,
    },
}

/// `manifest` subcommands.
#[derive(Debug, Subcommand)]
pub enum ManifestCommand {
    /// Write the Teams app manifest (`manifest.json`) for `teams.app_id`; zip it with a
    /// 192×192 `color.png` and a 32×32 `outline.png` and upload it in Teams.
    Teams {
        /// The public host Teams reaches the service at (`validDomains`).
        #[arg(long)]
        host: String,
        /// Where to write it.
        #[arg(long, default_value = "manifest.json")]
        out: PathBuf,
    },
}

/// `projections` subcommands.
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Each consumer's checkpoint and how far it lags behind the event store.
    Status,
    /// Apply every pending event now, then exit.
    CatchUp,
    /// Apply the waiting events of parked streams again, once the cause is fixed: all of
    /// them, or the one whose first failed event is at global position EVENT.
    Retry {
        /// The global position shown by `projections status`.
        event: Option<i64>,
    },
}

/// `audit` subcommands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the audit trail's hash chain and report the first row that does not match.
    Verify,
    /// A request or a certificate as it was at an instant (folded from its events up to
    /// it), and what happened to it since.
    AsOf {
        /// The instant: 2026-03-01T09:30 (UTC), 2026-03-01 (its midnight, UTC) or RFC 3339
        /// (2026-03-01T10:30:00+01:00).
        time: String,
        /// A request number (REQ-YYYYMMDD-XXXXX) or a certificate's serial.
        resource: String,
    },
    /// Export audit rows older than the retention period to the artifact store (JSON Lines),
    /// then delete them; create the monthly partitions ahead. `serve` does this every 6 h.
    Archive {
        /// Override `audit.retention.days`.
        #[arg(long)]
        older_than_days: Option<i64>,
    },
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
    let quiet = !matches!(cli.command, Command::Serve { .. } | Command::Migrate);
    let filter = if quiet && config.log.filter == "info,sqlx=warn" {
        "warn"
    } else {
        config.log.filter.as_str()
    };
    let tracing = telemetry::init(config.log.format, filter, &config.telemetry)?;
    // A one-shot command is one action: one trace, whose id its events' correlation id is.
    // `serve` is not one: each request starts its own.
    let outcome = match cli.command.action() {
        Some(action) => {
            let span = tracing::info_span!("cli", otel.name = %format!("cli {action}"));
            tracing::Instrument::instrument(execute(cli.command, config), span).await
        }
        None => execute(cli.command, config).await,
    };
    tracing.shutdown().await;
    outcome
}

/// Runs one command with its configuration.
async fn execute(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { .. } => serve(config).await,
        Command::Request(command) => {
            with_commands(&config, |commands| async move {
                requests::run_request(&commands, command).await
            })
            .await
        }
        Command::Replay { batch_size } => {
            with_database(&config, |pool| async move {
                let report = replay::replay(&pool, batch_size).await?;
                say(&format!(
                    "replayed {} events in {:.2} s ({:.0} events/s)",
                    report.events,
                    report.elapsed.as_secs_f64(),
                    report.events_per_second()
                ));
                if report.parked > 0 {
                    say(&format!(
                        "{} stream(s) could not be applied and are parked: see \
                         `cert-assistant projections status`, then `projections retry`",
                        report.parked
                    ));
                }
                // Events that committed during the rebuild are applied by the live projector.
                let rest = Projector::new(pool)
                    .catch_up(std::time::Duration::from_secs(60))
                    .await?;
                if rest > 0 {
                    say(&format!("then applied {rest} events committed meanwhile"));
                }
                Ok(())
            })
            .await
        }
        Command::Projections(ProjectionsCommand::Status) => {
            with_database(&config, |pool| async move {
                for status in Projector::status(&pool).await? {
                    say(&format!(
                        "{}: {} events applied, at global position {}, {} behind{}, last moved {}",
                        status.name,
                        status.events_applied,
                        status.last_global_seq,
                        status.lag_events,
                        status
                            .lag_seconds
                            .map(|s| format!(" (oldest waiting {s:.1} s)"))
                            .unwrap_or_default(),
                        status.updated_at.format("%Y-%m-%d %H:%M:%S UTC")
                    ));
                }
                for call in app::ca_calls(&pool).await? {
                    let at = |at: Option<chrono::DateTime<chrono::Utc>>| {
                        at.map_or_else(
                            || "never".to_owned(),
                            |at| at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                        )
                    };
                    say(&format!(
                        "CA {} {}: {} calls, {} failed; last worked {}, last failed {}{}",
                        call.ca,
                        call.operation,
                        call.calls,
                        call.failures,
                        at(call.last_success_at),
                        at(call.last_failure_at),
                        call.last_failure
                            .map(|why| format!(" ({why})"))
                            .unwrap_or_default(),
                    ));
                }
                for stream in crate::feed::parking::list(&pool).await? {
                    say(&format!(
                        "PARKED {}: {} {} waits from event {} ({} #{}) since {}, {} attempts: {}\n  \
                         fix the cause, then: cert-assistant projections retry {}",
                        stream.consumer,
                        stream.aggregate_type,
                        stream.aggregate_id,
                        stream.first_global_seq,
                        stream.event_type,
                        stream.sequence,
                        stream.first_failed_at.format("%Y-%m-%d %H:%M:%S UTC"),
                        stream.attempts,
                        stream.error,
                        stream.first_global_seq,
                    ));
                }
                Ok(())
            })
            .await
        }
        Command::Projections(ProjectionsCommand::Retry { event }) => {
            let consumers = app::Consumers::of(&config);
            with_database(&config, |pool| async move {
                let outcomes = consumers.retry_parked(&pool, event).await?;
                if outcomes.is_empty() {
                    say("no parked stream to retry");
                }
                let mut failing = 0;
                for outcome in outcomes {
                    match outcome {
                        crate::feed::Retried::Resumed { stream, events } => say(&format!(
                            "{}: {} {} applied again ({events} events)",
                            stream.consumer, stream.aggregate_type, stream.aggregate_id
                        )),
                        crate::feed::Retried::StillFailing { stream, error } => {
                            failing += 1;
                            say(&format!(
                                "{}: {} {} still fails: {error}",
                                stream.consumer, stream.aggregate_type, stream.aggregate_id
                            ));
                        }
                    }
                }
                anyhow::ensure!(failing == 0, "{failing} stream(s) stay parked");
                Ok(())
            })
            .await
        }
        Command::Jobs(command) => with_database(&config, |pool| jobs::run(pool, command)).await,
        Command::Projections(ProjectionsCommand::CatchUp) => {
            with_database(&config, |pool| async move {
                let applied = Projector::new(pool)
                    .catch_up(std::time::Duration::from_secs(60))
                    .await?;
                say(&format!("applied {applied} events"));
                Ok(())
            })
            .await
        }
        Command::Adcs(AdcsCommand::Check) => {
            let Some(client) = app::adcs_client(&config)? else {
                anyhow::bail!("adcs.url is not set: the embedded CA issues");
            };
            let mut failed = false;
            for (what, outcome) in client.check().await {
                match outcome {
                    Ok(found) => say(&format!("ok      {what}: {found}")),
                    Err(problem) => {
                        failed = true;
                        say(&format!("FAILED  {what}: {problem}"));
                    }
                }
            }
            anyhow::ensure!(!failed, "ADCS is not usable as configured");
            Ok(())
        }
        Command::Audit(AuditCommand::Verify) => {
            with_database(&config, |pool| async move {
                match audit::verify(&pool).await? {
                    audit::ChainReport::Intact { rows } => {
                        say(&format!("the audit trail is intact ({rows} rows)"));
                        Ok(())
                    }
                    audit::ChainReport::Broken {
                        position,
                        audit_id,
                        problem,
                    } => anyhow::bail!(
                        "the audit trail is broken at position {position}{}: {problem}",
                        audit_id
                            .map(|id| format!(" (audit row {id})"))
                            .unwrap_or_default()
                    ),
                }
            })
            .await
        }
        Command::Audit(AuditCommand::AsOf { time, resource }) => {
            let at = crate::domain::values::parse_instant("time", &time)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            with_commands(&config, |commands| async move {
                let recalled = commands.recall(&resource, at).await?;
                say(&format!(
                    "{} as it was at {}:",
                    recalled.what,
                    at.format("%Y-%m-%d %H:%M:%S UTC")
                ));
                for (label, value) in &recalled.facts {
                    say(&format!("  {label}: {value}"));
                }
                if recalled.since.is_empty() {
                    say("nothing happened to it since");
                } else {
                    say("since then:");
                }
                for line in &recalled.since {
                    say(&format!("  {line}"));
                }
                Ok(())
            })
            .await
        }
        Command::Audit(AuditCommand::Archive { older_than_days }) => {
            let store = app::artifact_store(&config).await;
            with_database(&config, |pool| async move {
                use crate::projections::retention;
                retention::ensure_partitions(&pool, 3).await?;
                let days = match older_than_days {
                    Some(days) if days > 0 => days,
                    Some(_) => anyhow::bail!("--older-than-days must be at least 1"),
                    None => retention::retention_days(&pool).await?,
                };
                let report =
                    retention::archive(&pool, store.as_ref(), retention::cutoff_for(days), 10_000)
                        .await?;
                if report.busy {
                    say("another archive run is in progress; nothing done");
                    return Ok(());
                }
                say(&format!(
                    "archived {} audit rows older than {days} days into {} file(s) at {}",
                    report.rows_archived,
                    report.files.len(),
                    store.location()
                ));
                for file in &report.files {
                    say(&format!("  {file}"));
                }
                if report.rows_changed > 0 {
                    say(&format!(
                        "kept {} rows that changed while being archived; run again",
                        report.rows_changed
                    ));
                }
                Ok(())
            })
            .await
        }
        Command::Query {
            name,
            params,
            format,
        } => {
            let Some(name) = name else {
                for query in catalog::catalog() {
                    let params: Vec<String> = query
                        .params
                        .iter()
                        .map(|p| match &p.default {
                            Some(d) => format!("{}={d}", p.name),
                            None => p.name.clone(),
                        })
                        .collect();
                    say(&format!(
                        "{:<24} {}  [{}]",
                        query.name,
                        query.purpose,
                        params.join(", ")
                    ));
                }
                return Ok(());
            };
            let query = catalog::find(&name)?;
            let mut values = std::collections::BTreeMap::new();
            for param in params {
                let (key, value) = param
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("--param takes NAME=VALUE, not {param:?}"))?;
                values.insert(key.trim().to_owned(), value.to_owned());
            }
            let reads = db::open_reads(&config.database).await?;
            with_database(&config, |pool| async move {
                // Catch up first, so the answer includes everything already committed.
                Projector::new(pool.clone())
                    .catch_up(std::time::Duration::from_secs(10))
                    .await?;
                // A replica, when there is one, answers (it may lag the primary a moment).
                let result = query.run(reads.as_ref().unwrap_or(&pool), &values).await?;
                say_raw(&result.render(format));
                Ok(())
            })
            .await
        }
        Command::Dev(dev::DevCommand::AdcsEmulator {
            listen,
            username,
            password,
            logins,
            renewals,
        }) => dev::adcs_emulator(&listen, &username, &password, logins, renewals).await,
        Command::Dev(command) => {
            let mut config = config;
            config.auth.admins.push("seed-admin@example.com".to_owned());
            let admins = config.auth.admins.clone();
            let config = &config;
            with_database(config, |pool| async move {
                let kek = app::key_encryption_key(config, &pool).await?;
                dev::run(Commands::new(pool, kek, &admins), command).await
            })
            .await
        }
        Command::Config(command) => {
            with_commands(&config, |commands| async move {
                // Reads come from the read model: bring it up to date first.
                Projector::new(commands.pool().clone())
                    .catch_up(std::time::Duration::from_secs(10))
                    .await
                    .map_err(crate::commands::CommandError::Internal)?;
                config::run(&commands, command).await
            })
            .await
        }
        Command::Certificate(command) => {
            let artifacts = app::artifact_store(&config).await;
            with_commands(&config, |commands| async move {
                certificates::run(&commands, artifacts.as_ref(), command).await
            })
            .await
        }
        Command::Discord(DiscordCommand::Register { guild }) => {
            let (Some(application_id), Some(token)) =
                (&config.discord.application_id, &config.discord.bot_token)
            else {
                anyhow::bail!(
                    "Discord is not configured: set discord.application_id and discord.bot_token \
                     (CERT_ASSISTANT_DISCORD__APPLICATION_ID, …__BOT_TOKEN)"
                );
            };
            let api = crate::chat::discord::api::DiscordApi::new(
                &config.discord.api_base_url,
                application_id,
                token.clone(),
            );
            let registered = api
                .register_commands(
                    guild.as_deref(),
                    &crate::chat::discord::application_commands(),
                )
                .await?;
            let count = registered.as_array().map_or(0, Vec::len);
            let mut out = std::io::stdout().lock();
            // A closed stdout is not worth failing a registration that happened.
            let _ = writeln!(
                out,
                "Registered {count} command(s) {}.",
                guild.map_or_else(|| "globally".to_owned(), |g| format!("in guild {g}"))
            );
            Ok(())
        }
        Command::Bench(command) => {
            let config = &config;
            with_database(config, |pool| async move {
                let kek = app::key_encryption_key(config, &pool).await?;
                bench::run(pool, kek, command).await
            })
            .await
        }
        Command::Manifest(ManifestCommand::Teams { host, out }) => {
            let Some(app_id) = &config.teams.app_id else {
                anyhow::bail!("set teams.app_id (CERT_ASSISTANT_TEAMS__APP_ID) first");
            };
            let manifest = crate::chat::teams::manifest::manifest(app_id, &host);
            std::fs::write(&out, serde_json::to_string_pretty(&manifest)?)
                .with_context(|| format!("could not write {}", out.display()))?;
            let _ = writeln!(std::io::stdout().lock(), "Wrote {}.", out.display());
            Ok(())
        }
        Command::Dashboard { actor } => {
            let email = crate::domain::values::Email::parse(&actor)
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
            let base = app::public_url(&config);
            with_commands(&config, |commands| async move {
                let ctx = crate::commands::CommandContext::new(
                    email,
                    crate::domain::actor::Platform::Cli,
                );
                let token = commands.dashboard_link(&ctx).await?;
                say(&format!(
                    "{}/dashboard/sign-in/{token}",
                    base.trim_end_matches('/')
                ));
                say("(valid 10 minutes, once; keep it to yourself)");
                Ok(())
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
        Application::build(&config, database.pool().clone(), app::Outbound::default())
            .await?
            .run_until(app::shutdown_signal())
            .await
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
    let database = Database::open(&config.database).await?;
    let result = async {
        db::migrate(database.pool()).await?;
        let kek = app::key_encryption_key(config, database.pool()).await?;
        let commands = app::commands(config, database.pool().clone(), kek);
        work(commands).await.map_err(|error| match error {
            crate::commands::CommandError::Internal(cause) => cause,
            other => anyhow::Error::msg(other.to_string()),
        })
    }
    .await;
    let closed = database.close().await;
    result.and(closed)
}

/// Opens the database (migrated), runs `work` with its pool, and closes it again.
async fn with_database<F, Fut>(config: &Config, work: F) -> anyhow::Result<()>
where
    F: FnOnce(sqlx::PgPool) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let database = Database::open(&config.database).await?;
    let result = async {
        db::migrate(database.pool()).await?;
        work(database.pool().clone()).await
    }
    .await;
    let closed = database.close().await;
    result.and(closed)
}

fn say(text: &str) {
    say_raw(&format!("{text}\n"));
}

fn say_raw(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    // A closed stdout (piped into `head`) is not worth failing for.
    let _ = out.write_all(text.as_bytes());
}
