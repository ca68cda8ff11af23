//! A rebuild's audit trail, written beside the live one and swapped in at the end.
//!
//! An `audit_logs` row costs most of its insert in the table's documented indexes (eleven,
//! a GIN index on `metadata` among them): a rebuild that wrote every row through them spent
//! half its time there. So a rebuild writes its rows into a fresh copy of the partitioned
//! table, in the schema `cert_rebuild`: the same columns, defaults, checks and partitions,
//! with no index and no key. At the end ([`FreshTrail::swap`]) the copy gets the live
//! table's keys and indexes, each built once over all its rows, and its partitions replace
//! the live ones, names and all.
//!
//! Readers keep reading the live partitions while the copy is built, and wait only for the
//! swap itself, which is catalog work: the indexes are built, and every partition carries a
//! check of its bounds (so attaching it needs no scan), before it takes the table's lock.
//! Everything happens in the rebuild's transaction: a failure leaves no trace.

use anyhow::Context;
use sqlx::PgConnection;

/// The schema of the fresh copy; it exists only inside a rebuild's transaction.
const SCHEMA: &str = "cert_rebuild";

/// The table a rebuild's audit rows are inserted into.
pub(crate) const TABLE: &str = "cert_rebuild.audit_logs";

/// The check that carries a fresh partition's bounds until it is attached.
const BOUND_CHECK: &str = "cert_rebuild_bounds";

/// The fresh copy of `audit_logs` during a rebuild: its partitions, by name and bounds.
#[derive(Debug)]
pub(crate) struct FreshTrail {
    /// (name, `FOR VALUES …` or `DEFAULT`), the default partition last.
    partitions: Vec<(String, String)>,
}

impl FreshTrail {
    /// Creates the empty copy, one partition for each live one. Takes what keeps the live
    /// table's shape still until the swap: the lock that partitions are created under, and
    /// a table lock that lets readers in but no writer (the live projector is held off by
    /// its lease already; the archive job waits).
    pub(crate) async fn create(conn: &mut PgConnection) -> anyhow::Result<Self> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cert-assistant audit partitions'))")
            .execute(&mut *conn)
            .await?;
        sqlx::query("LOCK TABLE public.audit_logs IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *conn)
            .await
            .context("locking audit_logs against writers")?;
        let key: String =
            sqlx::query_scalar("SELECT pg_get_partkeydef('public.audit_logs'::regclass)")
                .fetch_one(&mut *conn)
                .await?;
        for statement in [
            format!("CREATE SCHEMA {SCHEMA}"),
            format!(
                "CREATE TABLE {TABLE} (LIKE public.audit_logs INCLUDING DEFAULTS \
                 INCLUDING CONSTRAINTS) PARTITION BY {key}"
            ),
        ] {
            sqlx::query(&statement).execute(&mut *conn).await?;
        }
        let partitions: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) \
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
              WHERE i.inhparent = 'public.audit_logs'::regclass \
              ORDER BY pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.relname",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (name, bounds) in &partitions {
            sqlx::query(&format!(
                "CREATE TABLE {SCHEMA}.{} PARTITION OF {TABLE} {bounds}",
                ident(name)
            ))
            .execute(&mut *conn)
            .await
            .with_context(|| format!("creating the fresh partition {name}"))?;
        }
        Ok(Self { partitions })
    }

    /// Gives the copy the live table's keys and indexes, then puts its partitions in place
    /// of the live ones (whose rows the rebuild has deleted).
    pub(crate) async fn swap(self, conn: &mut PgConnection) -> anyhow::Result<()> {
        for statement in index_statements(conn).await? {
            sqlx::query(&statement)
                .execute(&mut *conn)
                .await
                .with_context(|| format!("building the fresh audit trail's index: {statement}"))?;
        }
        for (name, _) in &self.partitions {
            let bounds: Option<String> =
                sqlx::query_scalar("SELECT pg_get_partition_constraintdef(to_regclass($1))")
                    .bind(format!("{SCHEMA}.{}", ident(name)))
                    .fetch_one(&mut *conn)
                    .await?;
            if let Some(bounds) = bounds {
                sqlx::query(&format!(
                    "ALTER TABLE {SCHEMA}.{} ADD CONSTRAINT {BOUND_CHECK} CHECK ({bounds})",
                    ident(name)
                ))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("checking the bounds of {name}"))?;
            }
        }

        // From here readers of audit_logs wait, until the rebuild commits.
        for (name, _) in &self.partitions {
            sqlx::query(&format!(
                "ALTER TABLE {TABLE} DETACH PARTITION {SCHEMA}.{}",
                ident(name)
            ))
            .execute(&mut *conn)
            .await?;
        }
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
              WHERE i.inhparent = 'public.audit_logs'::regclass",
        )
        .fetch_all(&mut *conn)
        .await?;
        for name in &live {
            sqlx::query(&format!("DROP TABLE public.{}", ident(name)))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("dropping the replaced partition {name}"))?;
        }
        for (name, bounds) in &self.partitions {
            let name = ident(name);
            for statement in [
                format!("ALTER TABLE {SCHEMA}.{name} SET SCHEMA public"),
                format!("ALTER TABLE public.audit_logs ATTACH PARTITION public.{name} {bounds}"),
                format!("ALTER TABLE public.{name} DROP CONSTRAINT IF EXISTS {BOUND_CHECK}"),
            ] {
                sqlx::query(&statement)
                    .execute(&mut *conn)
                    .await
                    .with_context(|| format!("swapping in the rebuilt audit trail: {statement}"))?;
            }
        }
        sqlx::query(&format!("DROP SCHEMA {SCHEMA} CASCADE"))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}

/// The statements that give the copy the live table's keys (primary, unique, foreign) and
/// indexes, read from the catalog: whatever a migration adds, a rebuild carries over.
async fn index_statements(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    let constraints: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
          WHERE conrelid = 'public.audit_logs'::regclass AND contype IN ('p', 'u', 'x', 'f') \
          ORDER BY contype = 'f', conname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
          WHERE i.indrelid = 'public.audit_logs'::regclass \
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                             WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid) \
          ORDER BY i.indexrelid",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut statements: Vec<String> = constraints
        .into_iter()
        .map(|(name, definition)| {
            format!(
                "ALTER TABLE {TABLE} ADD CONSTRAINT {} {definition}",
                ident(&name)
            )
        })
        .collect();
    for definition in indexes {
        // `CREATE INDEX name ON ONLY public.audit_logs USING …`: the same index on the copy
        // (and, without ONLY, on each of its partitions), named alike in its own schema.
        let on_copy =
            definition.replacen(" ON ONLY public.audit_logs ", &format!(" ON {TABLE} "), 1);
        anyhow::ensure!(
            on_copy != definition,
            "cannot carry the audit_logs index over to a rebuild: {definition}"
        );
        statements.push(on_copy);
    }
    Ok(statements)
}

/// `name` quoted as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
