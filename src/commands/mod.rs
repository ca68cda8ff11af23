//! The application layer: what chat surfaces, the CLI and the saga call. Each operation
//! resolves the acting user, turns raw input into domain types, and executes commands on the
//! aggregates through cqrs-es with the event store in PostgreSQL.
//!
//! Nothing here calls an external system inside an aggregate's `handle`: keys and CSRs are
//! made before the command, so a retried command never repeats a side effect.

mod approvals;
mod certificates;
mod config;
pub mod dashboard;
mod directory;
mod downloads;
mod errors;
mod history;
pub mod numbers;
pub mod people;
mod policy;
mod renewal;
mod requests;
mod users;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{Aggregate, AggregateContext, AggregateError, EventStore};
use postgres_es::{PostgresCqrs, PostgresEventRepository, postgres_cqrs, postgres_snapshot_cqrs};
use sqlx::PgPool;
use tracing::Instrument as _;
use uuid::Uuid;

pub use crate::eventstore::StoryEntry;
pub use approvals::Decision;
pub use certificates::{Revocation, RevocationForm};
pub use downloads::{
    Download, DownloadLink, LINK_TTL_MINUTES, LINKS_PER_HOUR, LinkError, NewLink, PreparedDownload,
    file_name,
};
pub use errors::CommandError;
pub use history::{CertificateAsOf, Recalled};
pub use policy::{PublicRequests, Settings};
pub use requests::{CertificateSummary, RequestForm, RequestView, SubmittedRequest};

use crate::domain::actor::{Actor, Platform};
use crate::domain::approval::Approval;
use crate::domain::certificate::Certificate;
use crate::domain::config::Config;
use crate::domain::notification::Notification;
use crate::domain::refusal::{RecordRefusal, Refusal, RefusedAttempt};
use crate::domain::request::CertificateRequest;
use crate::domain::user::User;
use crate::domain::values::Email;
use crate::pki::envelope::KeyEncryptionKey;

/// How often a command is retried after losing an optimistic-concurrency race.
const CONFLICT_RETRIES: usize = 8;

/// Who is asking, from where. Goes into every event's metadata.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The acting person's e-mail (their identity on every platform).
    pub email: Email,
    /// A name to show, if the platform knows one.
    pub display_name: Option<String>,
    /// Where the command came from.
    pub platform: Platform,
    /// Ties together everything one user action caused.
    pub correlation_id: Uuid,
    /// The client's address, where known.
    pub ip_address: Option<IpAddr>,
    /// The client's user agent, where known.
    pub user_agent: Option<String>,
}

impl CommandContext {
    /// A context for `email` on `platform` with a fresh correlation id.
    pub fn new(email: Email, platform: Platform) -> Self {
        Self {
            email,
            display_name: None,
            platform,
            correlation_id: crate::telemetry::trace::correlation_id(),
            ip_address: None,
            user_agent: None,
        }
    }

    fn metadata(&self, actor: Option<&Actor>) -> HashMap<String, String> {
        let mut metadata = HashMap::from([
            ("correlation_id".to_owned(), self.correlation_id.to_string()),
            ("platform".to_owned(), self.platform.as_str().to_owned()),
        ]);
        if let Some(actor) = actor {
            metadata.insert("actor_id".to_owned(), actor.user_id.to_string());
            metadata.insert("actor_email".to_owned(), actor.email.to_string());
            metadata.insert("actor_role".to_owned(), actor.role.as_str().to_owned());
        }
        if let Some(ip) = self.ip_address {
            metadata.insert("ip_address".to_owned(), ip.to_string());
        }
        if let Some(agent) = &self.user_agent {
            metadata.insert("user_agent".to_owned(), agent.clone());
        }
        metadata
    }
}

/// One aggregate type's command side and a loader for reading its current state.
struct Side<A: Aggregate> {
    cqrs: PostgresCqrs<A>,
    store: PersistedEventStore<PostgresEventRepository, A>,
}

impl<A> Side<A>
where
    A: Aggregate<Services = ()>,
{
    fn new(pool: &PgPool, snapshot_every: Option<usize>) -> Self {
        let cqrs = match snapshot_every {
            Some(size) => postgres_snapshot_cqrs(pool.clone(), Vec::new(), size, ()),
            None => postgres_cqrs(pool.clone(), Vec::new(), ()),
        };
        let repository = PostgresEventRepository::new(pool.clone());
        let store = match snapshot_every {
            Some(size) => PersistedEventStore::new_snapshot_store(repository, size),
            None => PersistedEventStore::new_event_store(repository),
        };
        Self { cqrs, store }
    }

    /// Executes `command()` against a fresh load, retrying when another writer got there
    /// first. `command` is called again for each attempt.
    async fn execute(
        &self,
        id: Uuid,
        metadata: &HashMap<String, String>,
        command: impl Fn() -> A::Command,
    ) -> Result<(), AggregateError<A::Error>> {
        let id = id.to_string();
        let span = tracing::info_span!(
            "command",
            otel.name = %format!("command {}", A::TYPE),
            otel.status_code = tracing::field::Empty,
            aggregate = A::TYPE,
            aggregate_id = %id,
        );
        let mut metadata = metadata.clone();
        let outcome = async {
            // The events name the span that appended them; what they cause continues it.
            crate::telemetry::trace::stamp(&mut metadata);
            let mut attempt = 0;
            loop {
                match self
                    .cqrs
                    .execute_with_metadata(&id, command(), metadata.clone())
                    .await
                {
                    Err(AggregateError::AggregateConflict) if attempt < CONFLICT_RETRIES => {
                        attempt += 1;
                        tracing::debug!(aggregate = A::TYPE, %id, attempt, "conflict; retrying");
                    }
                    other => return other,
                }
            }
        }
        .instrument(span.clone())
        .await;
        if matches!(&outcome, Err(error) if !matches!(error, AggregateError::UserError(_))) {
            span.record("otel.status_code", "ERROR");
        }
        outcome
    }

    /// The current state.
    async fn load(&self, id: Uuid) -> Result<A, AggregateError<A::Error>> {
        let mut context = self.store.load_aggregate(&id.to_string()).await?;
        Ok(std::mem::take(context.aggregate()))
    }
}

/// The events `command` makes on aggregate `id`, which has none yet, ready to be written
/// with others in one transaction ([`crate::eventstore::append_new`]).
async fn first_events<A>(
    id: Uuid,
    command: A::Command,
) -> Result<crate::eventstore::NewStream, CommandError>
where
    A: Aggregate<Services = ()>,
    A::Error: Into<CommandError>,
{
    let mut aggregate = A::default();
    let sink = EventSink::default();
    aggregate
        .handle(command, &(), &sink)
        .await
        .map_err(Into::into)?;
    Ok(crate::eventstore::NewStream::new::<A>(
        id,
        &sink.collect().await,
    )?)
}

/// The application service. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Commands {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    kek: KeyEncryptionKey,
    admins: Vec<String>,
    users: Side<User>,
    requests: Side<CertificateRequest>,
    approvals: Side<Approval>,
    certificates: Side<Certificate>,
    refusals: Side<Refusal>,
    config: Side<Config>,
    notifications: Side<Notification>,
    /// People and settings, from memory while it follows their changes.
    directory: Arc<directory::Directory>,
    /// This process's turn on the request-number counter.
    numbers: numbers::Numbers,
    /// Whether a public CA (ACM) issues requests for the public CA.
    public_ca: bool,
}

impl std::fmt::Debug for Commands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Commands")
            .field("kek", &self.inner.kek)
            .finish_non_exhaustive()
    }
}

impl Commands {
    /// Builds the service on a migrated database. `admins` are e-mail addresses that become
    /// admins when first seen.
    pub fn new(pool: PgPool, kek: KeyEncryptionKey, admins: &[String]) -> Self {
        Self::with_public_ca(pool, kek, admins, false)
    }

    /// [`new`](Self::new), saying whether a public CA (ACM) is configured: without one, a
    /// request for the public CA is refused or sent internal (`certificate.public_requests`).
    pub fn with_public_ca(
        pool: PgPool,
        kek: KeyEncryptionKey,
        admins: &[String],
        public_ca: bool,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                users: Side::new(&pool, None),
                requests: Side::new(&pool, None),
                approvals: Side::new(&pool, None),
                // Downloads accumulate on certificates; a snapshot every 20 events keeps
                // loading them short.
                certificates: Side::new(&pool, Some(20)),
                refusals: Side::new(&pool, None),
                config: Side::new(&pool, None),
                notifications: Side::new(&pool, None),
                directory: directory::Directory::new(pool.clone()),
                numbers: numbers::Numbers::default(),
                admins: admins
                    .iter()
                    .map(|a| match Email::parse(a) {
                        Ok(email) => email.identity(),
                        Err(_) => a.trim().to_ascii_lowercase(),
                    })
                    .collect(),
                kek,
                pool,
                public_ca,
            }),
        }
    }

    /// The database pool.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// Whether people and settings are answered from memory (its listener is connected and
    /// has loaded them); otherwise every lookup reads the database.
    pub fn remembers(&self) -> bool {
        self.inner.directory.remembers()
    }

    /// The settings in force (from memory while it follows their changes).
    pub async fn settings(&self) -> Result<Arc<Settings>, CommandError> {
        self.inner.directory.settings().await
    }

    /// Passes `result` through; when it is a refusal (the domain said no), records the
    /// attempt first so the audit trail shows it.
    pub async fn audit_refusal<T>(
        &self,
        ctx: &CommandContext,
        actor: Option<&Actor>,
        attempt: Attempt<'_>,
        result: Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        if let Err(CommandError::Refused(reason)) = &result {
            crate::telemetry::metrics::instruments().authorization_refused(ctx.platform.as_str());
            let refusal = RefusedAttempt {
                actor: actor.cloned(),
                action: attempt.action.to_owned(),
                resource_type: attempt.resource_type.to_owned(),
                resource_id: attempt.resource_id,
                resource_identifier: attempt.resource_identifier.map(str::to_owned),
                reason: reason.clone(),
                at: chrono::Utc::now(),
            };
            let recorded = self
                .inner
                .refusals
                .execute(Uuid::new_v4(), &ctx.metadata(actor), || {
                    RecordRefusal(refusal.clone())
                })
                .await;
            if let Err(error) = recorded {
                tracing::error!(%error, action = attempt.action, "could not record a refused attempt");
            }
        }
        result
    }
}

/// What a person attempted, for the audit trail of refusals.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// `approve`, `reject`, `revoke`, ...
    pub action: &'a str,
    /// `request`, `certificate`, `user`.
    pub resource_type: &'a str,
    /// The resource's id.
    pub resource_id: Option<Uuid>,
    /// Its number, serial or e-mail.
    pub resource_identifier: Option<&'a str>,
}
