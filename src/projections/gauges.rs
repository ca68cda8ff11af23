//! What the read model says now, for the operators' `/metrics`: every active certificate's
//! expiry with the labels certificate exporters use, and counts of certificates, requests and
//! approvals by status.
//!
//! The counts are read at scrape time. The active certificates (a series each, a hundred
//! thousand in a large organisation) are kept in memory instead by [`ActiveCertificates`]:
//! loaded once, then followed through `LISTEN active_certificates` (triggers on
//! `certificates` and `users` name each row whose series may have changed, on every
//! replica's commit), with a version that moves whenever they do, so a scrape re-encodes
//! them only after a change. Until the listener has loaded them, and after it lost its
//! connection, they are read from the database on every scrape.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

use crate::db::follow::{Follower, Following};

/// The channel the triggers notify (`certificates_notify_active`).
const CHANNEL: &str = "active_certificates";

/// The certificates' labels and expiry, joined from the request and the owner.
const SELECT: &str = "SELECT c.id, (c.status = 'active' AND c.deleted_at IS NULL) AS active, \
        c.serial_number, c.common_name, c.issuer_dn AS issuer, cr.certificate_type, \
        coalesce(u.department, '') AS department, \
        extract(epoch FROM c.valid_to)::float8 AS not_after \
   FROM certificates c \
   JOIN certificate_requests cr ON cr.id = c.request_id \
   JOIN users u ON u.id = c.user_id";

/// An active certificate, as `/metrics` labels it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ActiveCertificate {
    /// `certificates.serial_number`.
    pub serial_number: String,
    /// `certificates.common_name`.
    pub common_name: String,
    /// `certificates.issuer_dn`.
    pub issuer: String,
    /// The request's `certificate_type` (`web_server`, ...).
    pub certificate_type: String,
    /// The owner's department ('' when none is recorded).
    pub department: String,
    /// `valid_to`, seconds since the epoch.
    pub not_after: f64,
}

/// The read model's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadModelGauges {
    /// Certificates by status.
    pub certificates: Vec<(String, i64)>,
    /// Requests by status.
    pub requests: Vec<(String, i64)>,
    /// Approvals by status (a decided one is `approved`, `rejected` or `delegated`).
    pub approvals: Vec<(String, i64)>,
    /// The age in seconds of the oldest pending approval, if any is pending.
    pub oldest_pending_approval_seconds: Option<f64>,
}

/// Reads the counts, the queries side by side on connections of `pool`.
pub async fn read(pool: &PgPool) -> Result<ReadModelGauges, sqlx::Error> {
    let by_status = |sql: &'static str| sqlx::query_as::<_, (String, i64)>(sql).fetch_all(pool);
    let oldest = sqlx::query_scalar::<_, Option<f64>>(
        "SELECT extract(epoch FROM now() - min(created_at))::float8 \
           FROM approvals WHERE status = 'pending'",
    )
    .fetch_one(pool);
    let (certificates, requests, approvals, oldest) = tokio::try_join!(
        by_status(
            "SELECT status, count(*) FROM certificates WHERE deleted_at IS NULL \
              GROUP BY status ORDER BY status"
        ),
        by_status(
            "SELECT status, count(*) FROM certificate_requests WHERE deleted_at IS NULL \
              GROUP BY status ORDER BY status"
        ),
        by_status("SELECT status, count(*) FROM approvals GROUP BY status ORDER BY status"),
        oldest,
    )?;
    Ok(ReadModelGauges {
        certificates,
        requests,
        approvals,
        oldest_pending_approval_seconds: oldest,
    })
}

/// Every active certificate, read from the database now.
pub async fn read_active(pool: &PgPool) -> Result<Vec<ActiveCertificate>, sqlx::Error> {
    Ok(active_rows(pool)
        .await?
        .into_iter()
        .map(|row| row.certificate)
        .collect())
}

async fn active_rows(pool: &PgPool) -> Result<Vec<Row>, sqlx::Error> {
    sqlx::query_as(&format!(
        "{SELECT} WHERE c.status = 'active' AND c.deleted_at IS NULL"
    ))
    .fetch_all(pool)
    .await
}

/// A row of [`SELECT`].
#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    active: bool,
    #[sqlx(flatten)]
    certificate: ActiveCertificate,
}

/// The active certificates at one moment, soonest expiry first.
#[derive(Debug, Clone)]
pub struct Active {
    /// Moves whenever they change; `None` when they were read from the database (no memory
    /// answers yet), so nothing may be kept for them.
    pub version: Option<u64>,
    /// The certificates.
    pub certificates: Arc<Vec<Arc<ActiveCertificate>>>,
}

/// Every active certificate, from memory while it follows their changes (see the module
/// documentation).
#[derive(Debug)]
pub struct ActiveCertificates {
    pool: PgPool,
    /// Its listener; dropped with this, which stops it.
    following: Following,
    /// Held while memory is (re)loaded or changed.
    loading: Mutex<()>,
    memory: RwLock<Memory>,
    /// The version of memory, sent as it moves.
    versions: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Memory {
    rows: HashMap<Uuid, Arc<ActiveCertificate>>,
    version: u64,
    /// The rows in order, as of `version`, once asked for.
    sorted: Option<(u64, Arc<Vec<Arc<ActiveCertificate>>>)>,
}

impl ActiveCertificates {
    /// Over `pool`; nothing is read or started before [`start`](Self::start) or the first
    /// [`now`](Self::now).
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            following: Following::new(CHANNEL),
            loading: Mutex::new(()),
            memory: RwLock::new(Memory::default()),
            versions: watch::channel(0).0,
        })
    }

    /// Completes each time memory changes (and when this is dropped: then with an error).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.versions.subscribe()
    }

    /// Starts following the read model now (else on the first [`now`](Self::now)), so the
    /// first scrape after a start finds memory loaded.
    pub fn start(self: &Arc<Self>) {
        self.following.start(self);
    }

    /// The active certificates now.
    pub async fn now(self: &Arc<Self>) -> Result<Active, sqlx::Error> {
        self.start();
        if self.following.answering() {
            let mut memory = self.write();
            let version = memory.version;
            if let Some((at, sorted)) = &memory.sorted
                && *at == version
            {
                return Ok(Active {
                    version: Some(version),
                    certificates: sorted.clone(),
                });
            }
            let sorted = Arc::new(in_order(memory.rows.values().cloned().collect()));
            memory.sorted = Some((version, sorted.clone()));
            return Ok(Active {
                version: Some(version),
                certificates: sorted,
            });
        }
        let rows = self.all().await?;
        Ok(Active {
            version: None,
            certificates: Arc::new(in_order(rows.into_values().collect())),
        })
    }

    /// Whether memory answers now.
    pub fn remembers(&self) -> bool {
        self.following.answering()
    }

    async fn all(&self) -> Result<HashMap<Uuid, Arc<ActiveCertificate>>, sqlx::Error> {
        Ok(active_rows(&self.pool)
            .await?
            .into_iter()
            .map(|row| (row.id, Arc::new(row.certificate)))
            .collect())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Memory> {
        self.memory
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Soonest expiry first, then by serial: the order a person reading a scrape expects.
fn in_order(mut certificates: Vec<Arc<ActiveCertificate>>) -> Vec<Arc<ActiveCertificate>> {
    certificates.sort_by(|a, b| {
        a.not_after
            .total_cmp(&b.not_after)
            .then_with(|| a.serial_number.cmp(&b.serial_number))
    });
    certificates
}

impl Follower for ActiveCertificates {
    const WHAT: &'static str = "active certificates";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn following(&self) -> &Following {
        &self.following
    }

    async fn load_all(&self) -> anyhow::Result<()> {
        let _loading = self.loading.lock().await;
        let rows = self.all().await?;
        let version = {
            let mut memory = self.write();
            memory.rows = rows;
            memory.version += 1;
            memory.version
        };
        self.versions.send_replace(version);
        Ok(())
    }

    /// `certificate <id>`: that row is read again; `owner <user id>`: that owner's rows;
    /// `all`: everything.
    async fn follow(&self, payloads: &[String]) -> anyhow::Result<()> {
        let mut certificates = Vec::new();
        let mut owners = Vec::new();
        for payload in payloads {
            match payload.split_once(' ') {
                Some(("certificate", id)) => certificates.extend(id.parse::<Uuid>().ok()),
                Some(("owner", id)) => owners.extend(id.parse::<Uuid>().ok()),
                _ if payload == "all" => return self.load_all().await,
                _ => {}
            }
        }
        if certificates.is_empty() && owners.is_empty() {
            return Ok(());
        }
        let _loading = self.loading.lock().await;
        let rows = sqlx::query_as::<_, Row>(&format!(
            "{SELECT} WHERE c.id = ANY($1) OR c.user_id = ANY($2)"
        ))
        .bind(&certificates)
        .bind(&owners)
        .fetch_all(&self.pool)
        .await?;
        let version = {
            let mut memory = self.write();
            // A certificate named but not found was deleted.
            for id in &certificates {
                memory.rows.remove(id);
            }
            for row in rows {
                if row.active {
                    memory.rows.insert(row.id, Arc::new(row.certificate));
                } else {
                    memory.rows.remove(&row.id);
                }
            }
            memory.version += 1;
            memory.version
        };
        self.versions.send_replace(version);
        Ok(())
    }
}
