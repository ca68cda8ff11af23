//! The audit trail: one `audit_logs` row per event (refusals included), chained by hashes so
//! that any later change to a row, or a removed row, is detected by [`verify`].

mod content;
pub(crate) mod fresh;

use anyhow::Context;
use chrono::{DateTime, Datelike, SubsecRound, Utc};
use serde_json::{Value, json};
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use sha2::{Digest, Sha256};

use crate::domain::actor::Actor;
use crate::feed::StoredEvent;

/// Namespace of audit row ids: an event's audit row id is a UUIDv5 of its identity, so a
/// rebuild produces the same ids.
const AUDIT_NAMESPACE: Uuid = Uuid::from_u128(0x5f0e_2a61_8c3d_4b7a_9e10_3d4c_2b1a_0f99);

/// The hash that precedes the first row.
const GENESIS: [u8; 32] = [0; 32];

/// How an event appears in the audit trail.
#[derive(Debug, Clone)]
pub(crate) struct AuditEntry {
    /// `request_created`, `approval_granted`, ...
    pub event_type: String,
    /// `authentication`, `authorization`, `certificate`, `request`, `approval`, `system`.
    pub category: &'static str,
    /// `info`, `warning`, `error`, `critical`.
    pub severity: &'static str,
    /// Who acted; falls back to the actor in the event's metadata.
    pub actor: Option<Actor>,
    /// `request`, `certificate`, `user`, `config`.
    pub resource_type: &'static str,
    /// The resource's id.
    pub resource_id: Option<Uuid>,
    /// Request number, serial, e-mail, config key.
    pub resource_identifier: Option<String>,
    /// `create`, `submit`, `approve`, `reject`, `revoke`, `download`, ...
    pub action: String,
    /// `success` or `failure`.
    pub result: &'static str,
    /// For failures.
    pub error_message: Option<String>,
    /// Event-specific details.
    pub details: Value,
}

impl AuditEntry {
    pub(crate) fn new(
        event_type: &str,
        category: &'static str,
        resource_type: &'static str,
        action: &str,
    ) -> Self {
        Self {
            event_type: event_type.to_owned(),
            category,
            severity: "info",
            actor: None,
            resource_type,
            resource_id: None,
            resource_identifier: None,
            action: action.to_owned(),
            result: "success",
            error_message: None,
            details: Value::Null,
        }
    }

    pub(crate) fn actor(mut self, actor: &Actor) -> Self {
        self.actor = Some(actor.clone());
        self
    }

    pub(crate) fn resource(mut self, id: Option<Uuid>, identifier: Option<String>) -> Self {
        self.resource_id = id;
        self.resource_identifier = identifier;
        self
    }

    pub(crate) fn severity(mut self, severity: &'static str) -> Self {
        self.severity = severity;
        self
    }

    pub(crate) fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    pub(crate) fn failure(mut self, message: impl Into<String>) -> Self {
        self.result = "failure";
        self.error_message = Some(message.into());
        self
    }
}

/// The audit row id of an event.
pub fn audit_id(event: &StoredEvent) -> Uuid {
    Uuid::new_v5(
        &AUDIT_NAMESPACE,
        format!(
            "{}/{}/{}",
            event.aggregate_type, event.aggregate_id, event.sequence
        )
        .as_bytes(),
    )
}

/// `text` without NUL characters (PostgreSQL text cannot hold them), at most `max`
/// characters long (a cut one ends in `…`).
fn bounded(text: &str, max: usize) -> String {
    let clean: String = text.chars().filter(|c| *c != '\0').collect();
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Removes NUL characters from every string in `value` (jsonb refuses `\u0000`).
fn without_nul(value: &mut Value) {
    match value {
        Value::String(text) if text.contains('\0') => text.retain(|c| c != '\0'),
        Value::Array(items) => items.iter_mut().for_each(without_nul),
        Value::Object(fields) => {
            if fields.keys().any(|key| key.contains('\0')) {
                *fields = std::mem::take(fields)
                    .into_iter()
                    .map(|(key, value)| (key.replace('\0', ""), value))
                    .collect();
            }
            fields.values_mut().for_each(without_nul);
        }
        _ => {}
    }
}

/// `at`, unless its year has other than four digits (the audit trail's text form of a time
/// has four), then `recorded`.
fn within_four_digit_years(at: DateTime<Utc>, recorded: DateTime<Utc>) -> DateTime<Utc> {
    if (1..=9999).contains(&at.year()) {
        at
    } else {
        recorded
    }
}

/// An address as PostgreSQL's `host()` prints it: as Rust does, but an IPv4-compatible
/// IPv6 address (`::a.b.c.d`) keeps its dotted quad.
fn host_text(ip: std::net::IpAddr) -> String {
    match ip {
        std::net::IpAddr::V6(v6) => {
            let s = v6.segments();
            if s[..6].iter().all(|w| *w == 0) && s[6] != 0 {
                let [.., a, b, c, d] = v6.octets();
                return format!("::{a}.{b}.{c}.{d}");
            }
            v6.to_string()
        }
        std::net::IpAddr::V4(v4) => v4.to_string(),
    }
}

/// An event's audit row, ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct AuditRow {
    id: Uuid,
    entry: AuditEntry,
    user_id: Option<Uuid>,
    email: Option<String>,
    role: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    session_id: Option<String>,
    metadata: Value,
    timestamp: DateTime<Utc>,
}

impl AuditRow {
    /// The row of `event`, described by `entry`; the actor falls back to the event's metadata.
    pub(crate) fn new(event: &StoredEvent, mut entry: AuditEntry) -> Self {
        let (user_id, email, role) = match &entry.actor {
            Some(actor) => (
                Some(actor.user_id),
                Some(actor.email.to_string()),
                Some(actor.role.as_str().to_owned()),
            ),
            None => (
                event
                    .meta("actor_id")
                    .and_then(|id| id.parse::<Uuid>().ok()),
                event.meta("actor_email").map(str::to_owned),
                event.meta("actor_role").map(str::to_owned),
            ),
        };
        let mut metadata = json!({
            "event": event.event_type,
            "event_version": event.event_version,
            "aggregate_type": event.aggregate_type,
            "aggregate_id": event.aggregate_id,
            "sequence": event.sequence,
            "global_seq": event.global_seq,
        });
        for key in ["correlation_id", "platform"] {
            if let Some(value) = event.meta(key) {
                metadata[key] = json!(value);
            }
        }
        let details = std::mem::take(&mut entry.details);
        if !details.is_null() {
            metadata["details"] = details;
        }
        without_nul(&mut metadata);
        // Whatever an event carries, its audit row fits the documented columns: an event
        // that cannot be written would stop the read model.
        entry.event_type = bounded(&entry.event_type, 100);
        entry.action = bounded(&entry.action, 100);
        entry.resource_identifier = entry.resource_identifier.map(|id| bounded(&id, 255));
        entry.error_message = entry.error_message.map(|text| bounded(&text, 10_000));
        Self {
            id: audit_id(event),
            entry,
            user_id,
            email: email.map(|email| bounded(&email, 255)),
            role: role.map(|role| bounded(&role, 50)),
            // In the form `host()` prints it, which the chain's hash is taken over.
            ip_address: event
                .meta("ip_address")
                .and_then(|ip| ip.parse::<std::net::IpAddr>().ok())
                .map(host_text),
            user_agent: event.meta("user_agent").map(|agent| bounded(agent, 1_000)),
            session_id: event.meta("correlation_id").map(|id| bounded(id, 100)),
            metadata,
            timestamp: within_four_digit_years(event.at(), event.recorded_at).trunc_subsecs(6),
        }
    }

    /// The acting user (id, e-mail, role), when the row names one completely; the `users`
    /// row must exist before the audit row refers to it.
    pub(crate) fn actor(&self) -> Option<(Uuid, &str, &str)> {
        match (self.user_id, &self.email, &self.role) {
            (Some(id), Some(email), Some(role)) => Some((id, email, role)),
            _ => None,
        }
    }

    /// Appends the text its chain hash is taken over: what `audit_log_content(audit_logs)`
    /// gives for the stored row.
    pub(crate) fn content(&self, out: &mut String) {
        let e = &self.entry;
        let (id, user_id, resource_id) = (
            self.id.to_string(),
            self.user_id.map(|v| v.to_string()),
            e.resource_id.map(|v| v.to_string()),
        );
        let fields: [Option<&str>; 16] = [
            Some(&id),
            Some(&e.event_type),
            Some(e.category),
            Some(e.severity),
            user_id.as_deref(),
            self.email.as_deref(),
            self.role.as_deref(),
            self.ip_address.as_deref(),
            self.user_agent.as_deref(),
            self.session_id.as_deref(),
            Some(e.resource_type),
            resource_id.as_deref(),
            e.resource_identifier.as_deref(),
            Some(&e.action),
            Some(e.result),
            e.error_message.as_deref(),
        ];
        out.push('[');
        for field in fields {
            match field {
                Some(text) => content::write_string(text, out),
                None => out.push_str("null"),
            }
            out.push_str(", ");
        }
        content::write_jsonb(&self.metadata, out);
        out.push_str(", ");
        content::write_string(
            &self
                .timestamp
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            out,
        );
        out.push(']');
    }
}

/// The table a batch's audit rows go into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Destination {
    /// `audit_logs`, where a row written before is skipped by its key.
    Live,
    /// A rebuild's fresh copy ([`fresh`]), which has no key yet: the rebuild applies each
    /// event once, so every row is new.
    Fresh,
}

impl Destination {
    /// The table of the chain entries.
    fn chain(self) -> &'static str {
        match self {
            Self::Live => "audit_log_chain",
            Self::Fresh => fresh::CHAIN,
        }
    }

    /// The insert of a batch's rows, as columns, returning the ids written.
    fn insert(self) -> String {
        let (table, on_conflict) = match self {
            Self::Live => ("audit_logs", "ON CONFLICT (id, \"timestamp\") DO NOTHING"),
            Self::Fresh => (fresh::LOGS, ""),
        };
        format!(
            "INSERT INTO {table} (id, event_type, event_category, severity, user_id, \
                 user_email, user_role, ip_address, user_agent, session_id, resource_type, \
                 resource_id, resource_identifier, action, result, error_message, metadata, \
                 \"timestamp\") \
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::uuid[], \
                         $6::text[], $7::text[], $8::inet[], $9::text[], $10::text[], \
                         $11::text[], $12::uuid[], $13::text[], $14::text[], $15::text[], \
                         $16::text[], $17::jsonb[], $18::timestamptz[]) \
             {on_conflict} RETURNING id"
        )
    }
}

/// Writes `rows` into `destination` and appends those that were new to the hash chain, in
/// their order: one insert of the rows, one read of the chain's last hash, one insert of
/// the chain entries, however many rows there are. The hashes are computed here, over the
/// same text that `audit_log_content` gives in SQL (which `verify` recomputes).
pub(crate) async fn append(
    conn: &mut PgConnection,
    rows: &[AuditRow],
    tip: &mut ChainTip,
    destination: Destination,
) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // Bound by reference: a batch's rows are not copied to be sent.
    let column =
        |f: for<'r> fn(&'r AuditRow) -> Option<&'r str>| rows.iter().map(f).collect::<Vec<_>>();
    let insert = destination.insert();
    let written: Vec<Uuid> = sqlx::query_scalar(&insert)
        .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
        .bind(column(|r| Some(&r.entry.event_type)))
        .bind(column(|r| Some(r.entry.category)))
        .bind(column(|r| Some(r.entry.severity)))
        .bind(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind(column(|r| r.email.as_deref()))
        .bind(column(|r| r.role.as_deref()))
        .bind(column(|r| r.ip_address.as_deref()))
        .bind(column(|r| r.user_agent.as_deref()))
        .bind(column(|r| r.session_id.as_deref()))
        .bind(column(|r| Some(r.entry.resource_type)))
        .bind(rows.iter().map(|r| r.entry.resource_id).collect::<Vec<_>>())
        .bind(column(|r| r.entry.resource_identifier.as_deref()))
        .bind(column(|r| Some(&r.entry.action)))
        .bind(column(|r| Some(r.entry.result)))
        .bind(column(|r| r.entry.error_message.as_deref()))
        .bind(rows.iter().map(|r| &r.metadata).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.timestamp).collect::<Vec<_>>())
        .fetch_all(&mut *conn)
        .await
        .context("writing the audit rows")?;
    if written.is_empty() {
        return Ok(());
    }
    let written: std::collections::HashSet<Uuid> = written.into_iter().collect();
    let (mut position, mut hash) = match tip.0.take() {
        Some(known) => known,
        None => sqlx::query_as(
            "SELECT position, hash FROM audit_log_chain ORDER BY position DESC LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await
        .context("reading the end of the audit chain")?
        .unwrap_or((0, GENESIS.to_vec())),
    };
    let mut chain = Chain::default();
    let mut content = String::new();
    for row in rows.iter().filter(|row| written.contains(&row.id)) {
        content.clear();
        row.content(&mut content);
        let next = Sha256::new()
            .chain_update(&hash)
            .chain_update(content.as_bytes())
            .finalize()
            .to_vec();
        position += 1;
        chain.positions.push(position);
        chain.ids.push(row.id);
        chain.timestamps.push(row.timestamp);
        chain
            .previous
            .push(std::mem::replace(&mut hash, next.clone()));
        chain.hashes.push(next);
    }
    sqlx::query(&format!(
        "INSERT INTO {} (position, audit_id, audit_timestamp, prev_hash, hash) \
         SELECT * FROM unnest($1::bigint[], $2::uuid[], $3::timestamptz[], $4::bytea[], $5::bytea[])",
        destination.chain()
    ))
    .bind(&chain.positions)
    .bind(&chain.ids)
    .bind(&chain.timestamps)
    .bind(&chain.previous)
    .bind(&chain.hashes)
    .execute(&mut *conn)
    .await
    .context("chaining the audit rows")?;
    tip.0 = Some((position, hash));
    Ok(())
}

/// Where the chain ends (its last position and hash), when the caller knows it: a rebuild,
/// one transaction throughout, remembers it between batches rather than look it up behind
/// the entries it deleted (an index scan that would step over every one of them).
#[derive(Debug, Clone, Default)]
pub(crate) struct ChainTip(Option<(i64, Vec<u8>)>);

impl ChainTip {
    /// Not known: [`append`] looks it up.
    pub(crate) fn unknown() -> Self {
        Self(None)
    }

    /// An empty chain.
    pub(crate) fn empty() -> Self {
        Self(Some((0, GENESIS.to_vec())))
    }
}

/// The chain entries of one batch, as columns.
#[derive(Default)]
struct Chain {
    positions: Vec<i64>,
    ids: Vec<Uuid>,
    timestamps: Vec<DateTime<Utc>>,
    previous: Vec<Vec<u8>>,
    hashes: Vec<Vec<u8>>,
}

/// The outcome of a chain check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every row matches its hash and links to its predecessor.
    Intact {
        /// Rows checked.
        rows: i64,
    },
    /// The first row that does not match.
    Broken {
        /// Its chain position.
        position: i64,
        /// Its audit row id (or `None` when the row itself is gone).
        audit_id: Option<Uuid>,
        /// What is wrong.
        problem: String,
    },
}

/// One audit row of a resource, with whether the chain vouches for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VouchedRow {
    /// When.
    pub at: DateTime<Utc>,
    /// The audit event (`certificate_issued`, …).
    pub event_type: String,
    /// Who, by e-mail, when a person acted.
    pub by: Option<String>,
    /// `Ok` when the row matches its chain entry and that entry links to the one before it;
    /// otherwise what is wrong.
    pub chain: Result<(), String>,
}

/// The columns that check an audit row `a` against the hash chain (`position`, `matches`,
/// `links`), with [`VOUCHING_JOINS`] after its `FROM audit_logs a`: its content hashed with
/// its entry's previous hash gives its entry's hash, and that previous hash is the hash of
/// the entry before (an entry whose predecessor was archived links to nothing left to
/// check). [`vouched`] reads them.
pub(crate) const VOUCHING_COLUMNS: &str = "c.position, \
    c.hash = sha256(c.prev_hash || convert_to(audit_log_content(a), 'UTF8')) AS matches, \
    p.hash IS NOT DISTINCT FROM c.prev_hash \
      OR (p.position IS NULL AND c.position = (SELECT min(position) FROM audit_log_chain)) \
      AS links";

/// The joins [`VOUCHING_COLUMNS`] reads.
pub(crate) const VOUCHING_JOINS: &str = "LEFT JOIN audit_log_chain c ON c.audit_id = a.id \
    LEFT JOIN audit_log_chain p ON p.position = c.position - 1";

/// Whether the chain vouches for a row read with [`VOUCHING_COLUMNS`]: `Ok`, or what is
/// wrong.
pub(crate) fn vouched(row: &sqlx::postgres::PgRow) -> Result<Result<(), String>, sqlx::Error> {
    let position: Option<i64> = row.try_get("position")?;
    let matches: Option<bool> = row.try_get("matches")?;
    let links: Option<bool> = row.try_get("links")?;
    Ok(match (position, matches, links) {
        (None, _, _) => Err("not in the chain".to_owned()),
        (_, Some(false), _) => Err("changed after it was written".to_owned()),
        (_, _, Some(false)) => Err("does not link to the entry before it".to_owned()),
        _ => Ok(()),
    })
}

/// The audit rows about `resource_id`, oldest first, each checked against the hash chain.
pub async fn resource_rows(pool: &PgPool, resource_id: Uuid) -> anyhow::Result<Vec<VouchedRow>> {
    let rows = sqlx::query(&format!(
        "SELECT a.\"timestamp\" AS at, a.event_type, u.email, {VOUCHING_COLUMNS} \
           FROM audit_logs a LEFT JOIN users u ON u.id = a.user_id {VOUCHING_JOINS} \
          WHERE a.resource_id = $1 ORDER BY a.\"timestamp\", c.position"
    ))
    .bind(resource_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(VouchedRow {
                at: row.try_get("at")?,
                event_type: row.try_get("event_type")?,
                by: row.try_get("email")?,
                chain: vouched(row)?,
            })
        })
        .collect()
}

/// Recomputes the whole chain in order.
pub async fn verify(pool: &PgPool) -> anyhow::Result<ChainReport> {
    let rows = sqlx::query(
        "SELECT c.position, c.audit_id, c.prev_hash, c.hash, \
                CASE WHEN a.id IS NULL THEN NULL \
                     ELSE sha256(c.prev_hash || convert_to(audit_log_content(a), 'UTF8')) END AS recomputed \
           FROM audit_log_chain c \
           LEFT JOIN audit_logs a ON a.id = c.audit_id AND a.\"timestamp\" = c.audit_timestamp \
          ORDER BY c.position",
    )
    .fetch_all(pool)
    .await?;
    let audit_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_logs")
        .fetch_one(pool)
        .await?;
    let mut previous: Option<(i64, Vec<u8>)> = None;
    let mut checked = 0;
    for row in rows {
        let position: i64 = row.try_get("position")?;
        let audit_id: Uuid = row.try_get("audit_id")?;
        let prev_hash: Vec<u8> = row.try_get("prev_hash")?;
        let hash: Vec<u8> = row.try_get("hash")?;
        let recomputed: Option<Vec<u8>> = row.try_get("recomputed")?;
        let broken = |problem: &str| ChainReport::Broken {
            position,
            audit_id: Some(audit_id),
            problem: problem.to_owned(),
        };
        if let Some((last_position, last_hash)) = &previous {
            if position != last_position + 1 {
                return Ok(broken("a chain entry before this one is missing"));
            }
            if &prev_hash != last_hash {
                return Ok(broken("it does not link to the entry before it"));
            }
        }
        match recomputed {
            None => return Ok(broken("its audit row was deleted")),
            Some(recomputed) if recomputed != hash => {
                return Ok(broken("the audit row was changed after it was written"));
            }
            Some(_) => {}
        }
        previous = Some((position, hash));
        checked += 1;
    }
    if checked != audit_rows {
        return Ok(ChainReport::Broken {
            position: previous.map_or(0, |(p, _)| p + 1),
            audit_id: None,
            problem: format!("{} audit rows are not in the chain", audit_rows - checked),
        });
    }
    Ok(ChainReport::Intact { rows: checked })
}
