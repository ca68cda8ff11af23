//! The composition root: [`Application::build`] turns a configuration into the whole
//! running service — the HTTP routes of every configured surface, a chat notifier for every
//! configured platform, every feed consumer and every worker — and `serve` and the
//! integration tests both start it through here. Tests change only what the configuration
//! points at (their local Slack, Teams, Discord, CA, S3 and SES servers) and the clock.

mod ca_calls;
mod outside;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::adapters::artifacts::ArtifactStore;
use crate::adapters::clock::{Clock, SystemClock};
use crate::chat::outbound::alerts::FailedJobAlerts;
use crate::chat::outbound::{ChatNotifier, ChatOutbox};
use crate::commands::Commands;
use crate::config::Config;
use crate::feed::{FeedConsumer, Projector, Wakeups};
use crate::http::{self, AppState};
use crate::saga::ca_renewal::CaRenewals;
use crate::saga::escalation::EscalationWorker;
use crate::saga::expiry::ExpiryWorker;
use crate::saga::issuance::{IssuanceFeed, IssuanceWorker};
use crate::saga::mail::{MailOutbox, MailWorker};
use crate::saga::revocation::{RevocationFeed, RevocationWorker};

pub use ca_calls::{CaCallStatus, CaCalls, ca_calls};
pub use outside::*;

/// How often the expiry and escalation passes run.
const SCHEDULED_PASS_EVERY: Duration = Duration::from_secs(600);

/// What the tests may swap besides the configuration's endpoints.
#[derive(Debug, Clone)]
pub struct Outbound {
    /// The clock of the scheduled passes (expiry, escalation).
    pub clock: Arc<dyn Clock>,
    /// AWS credentials for the public CA (ACM, Route 53) instead of the default chain's
    /// (environment, profile, instance role), which `serve` uses.
    pub aws_credentials: Option<crate::adapters::aws::Credentials>,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            aws_credentials: None,
        }
    }
}

/// Everything that runs in the background, built from the configuration. A test can step
/// each part itself ([`Application::serve_until`] then runs only the routes).
#[derive(Debug, Clone)]
pub struct Workers {
    /// The command service they all share.
    pub commands: Commands,
    /// The issuance saga's worker.
    pub issuance: IssuanceWorker,
    /// Revocation at the CA.
    pub revocation: RevocationWorker,
    /// E-mail delivery.
    pub mail: MailWorker,
    /// Expiry reminders and expiry (a scheduled pass).
    pub expiry: ExpiryWorker,
    /// Approval reminders, escalation and stale requests (a scheduled pass).
    pub escalation: EscalationWorker,
    /// The chat outbox, queueing for every configured platform.
    pub outbox: ChatOutbox,
    /// One notifier per configured chat platform.
    pub notifiers: Vec<ChatNotifier>,
    /// Tells the admins about given-up jobs.
    pub alerts: FailedJobAlerts,
    store: Arc<dyn ArtifactStore>,
}

impl Workers {
    /// The notifier of `platform` (`slack`, `discord`, `teams`), if it is configured.
    pub fn notifier(&self, platform: &str) -> Option<&ChatNotifier> {
        self.notifiers.iter().find(|n| n.platform() == platform)
    }

    /// Starts every feed consumer and worker; they stop when `stopped` turns true.
    fn spawn(
        self,
        pool: &PgPool,
        stopped: &watch::Receiver<bool>,
    ) -> Vec<(&'static str, JoinHandle<()>)> {
        let wakeups = Wakeups::listen(pool, when_stopped(stopped.clone()));
        let mut tasks = vec![
            consume(
                pool,
                &wakeups,
                stopped,
                crate::projections::projector::ReadModel,
            ),
            consume(pool, &wakeups, stopped, IssuanceFeed),
            consume(pool, &wakeups, stopped, MailOutbox),
            consume(pool, &wakeups, stopped, RevocationFeed),
            // The outbox runs even with no chat platform configured (it then queues
            // nothing), so its checkpoint keeps up and `projections status` tells the truth.
            consume(pool, &wakeups, stopped, self.outbox.clone()),
            (
                "audit maintenance",
                tokio::spawn(maintain_audit_trail(
                    pool.clone(),
                    self.store,
                    stopped.clone(),
                )),
            ),
            (
                "issuance worker",
                tokio::spawn(self.issuance.run(stopped.clone())),
            ),
            ("mail worker", tokio::spawn(self.mail.run(stopped.clone()))),
            (
                "revocation worker",
                tokio::spawn(self.revocation.run(stopped.clone())),
            ),
            (
                "expiry job",
                tokio::spawn(self.expiry.run(SCHEDULED_PASS_EVERY, stopped.clone())),
            ),
            (
                "escalation job",
                tokio::spawn(self.escalation.run(SCHEDULED_PASS_EVERY, stopped.clone())),
            ),
            (
                "failed-job alerts",
                tokio::spawn(self.alerts.run(stopped.clone())),
            ),
        ];
        for notifier in self.notifiers {
            tasks.push(("chat notifier", tokio::spawn(notifier.run(stopped.clone()))));
        }
        tasks
    }
}

/// Runs `consumer` on the event feed until `stopped`.
fn consume<C: FeedConsumer>(
    pool: &PgPool,
    wakeups: &Wakeups,
    stopped: &watch::Receiver<bool>,
    consumer: C,
) -> (&'static str, JoinHandle<()>) {
    let name = consumer.name();
    let projector = Projector::for_consumer(pool.clone(), consumer);
    let run = projector.run(wakeups.clone(), when_stopped(stopped.clone()));
    (name, tokio::spawn(run))
}

/// Every feed consumer the service runs, for operators' commands on all of them.
#[derive(Debug, Clone)]
pub struct Consumers {
    read_model: crate::projections::projector::ReadModel,
    outbox: ChatOutbox,
}

impl Consumers {
    /// The consumers `config` makes the service run (the chat outbox queues for its
    /// configured platforms).
    pub fn of(config: &Config) -> Self {
        Self {
            read_model: crate::projections::projector::ReadModel,
            outbox: ChatOutbox::new(chat_platforms(config)),
        }
    }

    /// Retries the parked streams of every consumer (or the one whose first failed event is
    /// at global position `only`).
    pub async fn retry_parked(
        &self,
        pool: &PgPool,
        only: Option<i64>,
    ) -> anyhow::Result<Vec<crate::feed::Retried>> {
        let mut outcomes = Vec::new();
        outcomes.extend(retry(pool, self.read_model, only).await?);
        outcomes.extend(retry(pool, IssuanceFeed, only).await?);
        outcomes.extend(retry(pool, MailOutbox, only).await?);
        outcomes.extend(retry(pool, RevocationFeed, only).await?);
        outcomes.extend(retry(pool, self.outbox.clone(), only).await?);
        Ok(outcomes)
    }
}

async fn retry<C: FeedConsumer>(
    pool: &PgPool,
    consumer: C,
    only: Option<i64>,
) -> anyhow::Result<Vec<crate::feed::Retried>> {
    Projector::for_consumer(pool.clone(), consumer)
        .retry_parked(only)
        .await
}

/// The service, bound and built, not yet running.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// `/metrics`' own listener, when it has one.
    metrics: Option<(TcpListener, axum::Router)>,
    pool: PgPool,
    workers: Workers,
}

impl Application {
    /// Builds the whole service from `config` over `pool` (migrated) and binds the
    /// configured address.
    pub async fn build(config: &Config, pool: PgPool, outbound: Outbound) -> anyhow::Result<Self> {
        crate::db::warm(&pool).await?;
        let kek = key_encryption_key(config, &pool).await?;
        let (ca, embedded) = certificate_authority(config, &pool, &kek).await?;
        let commands = commands(config, pool.clone(), kek);
        let store = artifact_store(config).await;
        let mailer = mailer(config).await;

        let chat = chat_service(config, commands.clone());
        let slack = slack_state(config, chat.clone());
        let discord = discord_state(config, chat.clone(), mailer.clone())?;
        let teams = teams_state(config, chat);
        // One list of the configured platforms: every one gets a notifier, and the outbox
        // queues jobs for exactly these.
        let notifiers: Vec<ChatNotifier> = [
            slack
                .as_ref()
                .map(|slack| slack.notifier(config.slack.approvals_channel.clone())),
            discord
                .as_ref()
                .map(crate::chat::discord::DiscordState::notifier),
            teams.as_ref().map(crate::chat::teams::TeamsState::notifier),
        ]
        .into_iter()
        .flatten()
        .collect();
        let outbox = ChatOutbox::new(notifiers.iter().map(ChatNotifier::platform));
        debug_assert_eq!(
            notifiers
                .iter()
                .map(ChatNotifier::platform)
                .collect::<Vec<_>>(),
            chat_platforms(config),
            "one rule says which platforms are configured"
        );

        let state = AppState {
            pool: pool.clone(),
            ca: embedded,
            scrapes: http::metrics::Scrapes::new(pool.clone()),
        };
        let metrics = http::metrics_router(state.clone());
        let router = http::router(
            state,
            slack,
            discord,
            teams,
            Some(http::downloads::DownloadState {
                commands: commands.clone(),
                artifacts: store.clone(),
            }),
            Some(http::dashboard::DashboardState {
                commands: commands.clone(),
                reads: crate::db::open_reads(&config.database)
                    .await?
                    .unwrap_or_else(|| pool.clone()),
                secure: public_url(config).starts_with("https://"),
                artifacts: store.clone(),
                provider: identity_provider(config)?,
            }),
        );
        let public =
            public_certificate_authority(config, &pool, outbound.aws_credentials.clone()).await;
        let renewals = public
            .clone()
            .map(|acm| CaRenewals::new(commands.clone(), acm, store.clone()));
        let workers = Workers {
            issuance: IssuanceWorker::new(commands.clone(), ca.clone(), store.clone())
                .with_public_ca(public.clone()),
            revocation: RevocationWorker::new(commands.clone(), ca).with_public_ca(public),
            mail: MailWorker::new(commands.clone(), mailer),
            expiry: ExpiryWorker::new(commands.clone(), outbound.clock.clone())
                .with_ca_renewals(renewals),
            escalation: EscalationWorker::new(commands.clone(), outbound.clock),
            alerts: FailedJobAlerts::new(pool.clone(), outbox.clone()),
            outbox,
            notifiers,
            commands,
            store,
        };

        let addr = config
            .listen_addr()
            .map_err(anyhow::Error::msg)
            .context("invalid listen address")?;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("could not listen on {addr}"))?;
        // `/metrics` on a listener of its own when one is configured, else beside the rest.
        let (router, metrics) = match config
            .metrics_addr()
            .map_err(anyhow::Error::msg)
            .context("invalid metrics address")?
        {
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("could not listen on {addr} for /metrics"))?;
                (router, Some((listener, metrics)))
            }
            None => {
                if !addr.ip().is_loopback() {
                    tracing::warn!(
                        %addr,
                        "/metrics is served beside the chat webhooks and names every active \
                         certificate; where this address faces the internet, set metrics.listen \
                         to a private one"
                    );
                }
                (router.merge(metrics), None)
            }
        };
        Ok(Self {
            listener,
            router,
            metrics,
            pool,
            workers,
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// The address `/metrics` is served at on a listener of its own, if it has one.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
            .as_ref()
            .and_then(|(listener, _)| listener.local_addr().ok())
    }

    /// Its background parts, for a test that steps them itself.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Runs everything until `shutdown` completes: the routes, then every feed consumer and
    /// worker, which finish what they are doing before this returns.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let tasks = self.workers.spawn(&self.pool, &stopped);
        let served = serve(self.listener, self.router, self.metrics, async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await;
        for (name, task) in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, task = name, "a background task failed");
            }
        }
        served
    }

    /// Serves the routes only, until `shutdown` completes; the background stays with
    /// whoever holds [`Application::workers`] (tests that step it themselves).
    pub async fn serve_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        serve(self.listener, self.router, self.metrics, shutdown).await
    }
}

/// Serves `router` on `listener` (and `/metrics` on its own listener, if it has one) until
/// `shutdown` completes.
async fn serve(
    listener: TcpListener,
    router: axum::Router,
    metrics: Option<(TcpListener, axum::Router)>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("the listener has no address")?;
    tracing::info!(%addr, "listening");
    let (stop, stopped) = watch::channel(false);
    let metrics = metrics.map(|(listener, router)| {
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving /metrics");
        }
        tokio::spawn(
            axum::serve(listener, router)
                .with_graceful_shutdown(when_stopped(stopped.clone()))
                .into_future(),
        )
    });
    let served = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = stop.send(true);
        })
        .await
        .context("the HTTP server failed");
    if let Some(metrics) = metrics {
        metrics
            .await
            .context("the /metrics server stopped")?
            .context("the /metrics server failed")?;
    }
    served
}
