//! `cert-assistant dev ...`: tools for trying the service out and measuring it. They write
//! demo data: never point them at a production database.

use std::io::Write as _;
use std::time::{Duration, Instant};

use clap::Subcommand;

use crate::commands::{CommandContext, Commands, RequestForm};
use crate::domain::actor::{Platform, Role};
use crate::domain::values::Email;
use crate::feed::Projector;

/// `dev` subcommands.
#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Submit demo requests through the full write path (key generation included) while the
    /// projector runs, approve most and reject some, and report command throughput and
    /// projection lag (command committed → row visible in certificate_requests).
    Seed {
        /// How many requests.
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// How many concurrent requesters.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Run a certsrv (ADCS Web Enrollment) emulator over a throw-away CA, for trying the ADCS
    /// path: templates WebServer, User, CodeSigning, EmailProtection and Machine issue at once,
    /// ManualApproval holds requests until `POST /admin/requests/ID/approve` (or `/deny`).
    AdcsEmulator {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// The account certsrv accepts (`DOMAIN\\user` or `user@domain` for NTLM).
        #[arg(long, default_value = "certsrv")]
        username: String,
        /// Its password.
        #[arg(
            long,
            env = "CERT_ASSISTANT_EMULATOR_PASSWORD",
            default_value = "certsrv"
        )]
        password: String,
        /// Which logins certsrv takes: `windows` (NTLM, as ADCS is installed), `basic`, or
        /// `both`.
        #[arg(long, value_enum, default_value_t = crate::dev::adcs_emulator::Logins::Both)]
        logins: crate::dev::adcs_emulator::Logins,
        /// How often the emulated CA certificate was renewed (certcarc.asp's count).
        #[arg(long, default_value_t = 0)]
        renewals: u32,
    },
}

fn say(text: &str) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

fn ctx(email: &str) -> anyhow::Result<CommandContext> {
    Ok(CommandContext::new(Email::parse(email)?, Platform::Cli))
}

/// Runs a `dev` subcommand. `commands` must know `seed-admin@example.com` as an admin.
pub async fn run(commands: Commands, command: DevCommand) -> anyhow::Result<()> {
    let (requests, concurrency) = match command {
        DevCommand::Seed {
            requests,
            concurrency,
        } => (requests, concurrency),
        DevCommand::AdcsEmulator { .. } => {
            anyhow::bail!("the emulator needs no database; run it with `dev adcs-emulator`")
        }
    };
    let concurrency = concurrency.clamp(1, 64);
    let pool = commands.pool().clone();
    let admin = ctx("seed-admin@example.com")?;
    for i in 0..4 {
        commands
            .grant_role(
                &admin,
                &Email::parse(&format!("approver{i}@example.com"))?,
                Role::Approver,
            )
            .await?;
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let wakeups = crate::feed::Wakeups::listen(&pool, crate::app::when_stopped(stopped.clone()));
    let projector =
        tokio::spawn(Projector::new(pool.clone()).run(wakeups, crate::app::when_stopped(stopped)));
    let events_before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let commands = commands.clone();
        let pool = pool.clone();
        let share = requests / concurrency + usize::from(worker < requests % concurrency);
        workers.push(tokio::spawn(async move {
            let mut lags = Vec::with_capacity(share);
            for n in 0..share {
                let requester = ctx(&format!("user{worker}@example.com"))?;
                let form = RequestForm {
                    common_name: format!("svc{worker}-{n}.example.com"),
                    certificate_type: "web_server".to_owned(),
                    validity_days: Some("90".to_owned()),
                    justification: "demo data".to_owned(),
                    department: Some(format!("dept-{}", worker % 3)),
                    ..RequestForm::default()
                };
                let submitted = commands.submit_request(&requester, form).await?;
                let committed = Instant::now();
                loop {
                    let visible: bool = sqlx::query_scalar(
                        "SELECT EXISTS (SELECT 1 FROM certificate_requests WHERE id = $1)",
                    )
                    .bind(submitted.request_id)
                    .fetch_one(&pool)
                    .await?;
                    if visible {
                        break;
                    }
                    if committed.elapsed() > Duration::from_secs(30) {
                        anyhow::bail!("the projector did not show a request within 30 s");
                    }
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                lags.push(committed.elapsed());
                let approver = ctx(&format!("approver{}@example.com", n % 4))?;
                match n % 10 {
                    0 => {
                        commands
                            .reject(&approver, &submitted.request_number, "demo rejection")
                            .await?;
                    }
                    1 | 2 => {}
                    _ => {
                        commands
                            .approve(&approver, &submitted.request_number, None)
                            .await?;
                    }
                }
            }
            anyhow::Ok(lags)
        }));
    }
    let mut lags = Vec::new();
    for worker in workers {
        lags.extend(worker.await??);
    }
    let elapsed = started.elapsed();
    Projector::new(pool.clone())
        .catch_up(Duration::from_secs(60))
        .await?;
    let _ = stop.send(true);
    let _ = projector.await;
    let events_after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    lags.sort();
    let percentile = |p: f64| {
        let index = ((lags.len() as f64 - 1.0) * p).round() as usize;
        lags.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let events = events_after - events_before;
    say(&format!(
        "{requests} requests ({events} events) in {:.2} s with {concurrency} requesters: \
         {:.0} requests/s, {:.0} events/s",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        events as f64 / elapsed.as_secs_f64()
    ));
    say(&format!(
        "projection lag (commit -> row visible): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(0.5),
        percentile(0.99),
        percentile(1.0)
    ));
    Ok(())
}

/// Runs the certsrv emulator until Ctrl-C.
pub async fn adcs_emulator(
    listen: &str,
    username: &str,
    password: &str,
    logins: crate::dev::adcs_emulator::Logins,
    renewals: u32,
) -> anyhow::Result<()> {
    let emulator = crate::dev::adcs_emulator::Emulator::new(username, password)?
        .with_logins(logins)
        .with_renewals(renewals);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    say(&format!(
        "certsrv emulator on http://{} (user {username}, logins: {logins:?}); its root CA:\n{}",
        listener.local_addr()?,
        emulator.root_pem()
    ));
    emulator
        .serve(listener, crate::app::shutdown_signal())
        .await?;
    Ok(())
}
