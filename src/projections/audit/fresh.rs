//! A rebuild's audit trail, written beside the live one and swapped in at the end.
//!
//! An audit row costs most of its insert in the indexes of `audit_logs` (eleven, a GIN index
//! on `metadata` among them) and of `audit_log_chain`: a rebuild that wrote every row
//! through them spent half its time there. So a rebuild writes the trail into fresh copies
//! of both tables, in the schema `cert_rebuild`: the same columns, defaults, checks and
//! partitions, with no index and no key. At the end ([`FreshTrail::swap`]) the copies get
//! the live tables' keys and indexes, each built once over all its rows, and take the live
//! ones' places, names, partitions and grants included. The replaced tables are dropped
//! after the rebuild commits ([`drop_retired`]).
//!
//! Readers keep reading the live trail while the copy is built, and wait only for the swap
//! itself, which is catalog work: the indexes are built, and every partition carries a
//! check of its bounds (so attaching it needs no scan), before it takes the tables' locks.
//! Everything happens in the rebuild's transaction: a failure leaves no trace.

use anyhow::Context;
use sqlx::PgConnection;

/// The schema of the fresh copies; it exists only inside a rebuild's transaction.
const SCHEMA: &str = "cert_rebuild";

/// The copy of `audit_logs` a rebuild inserts its audit rows into.
pub(crate) const LOGS: &str = "cert_rebuild.audit_logs";

/// The copy of `audit_log_chain` a rebuild inserts its chain entries into.
pub(crate) const CHAIN: &str = "cert_rebuild.audit_log_chain";

/// Where the replaced tables wait, after the swap, to be dropped in a transaction of their
/// own: dropping them in the swap would unlink their files (gigabytes, for a large trail)
/// before the rebuild's locks are released, with every reader of the trail waiting.
const RETIRED: &str = "cert_retired";

/// The check that carries a fresh partition's bounds until it is attached.
const BOUND_CHECK: &str = "cert_rebuild_bounds";

/// The fresh copies of the trail during a rebuild.
#[derive(Debug)]
pub(crate) struct FreshTrail {
    /// The partitions of `audit_logs` (name, `FOR VALUES …` or `DEFAULT`), the default last.
    partitions: Vec<(String, String)>,
}

impl FreshTrail {
    /// Creates the empty copies, one partition for each live one. Takes what keeps the live
    /// tables' shape still until the swap: the lock that partitions are created under, and
    /// table locks that let readers in but no writer (the live projector is held off by its
    /// lease already; the archive job waits).
    pub(crate) async fn create(conn: &mut PgConnection) -> anyhow::Result<Self> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('cert-assistant audit partitions'))")
            .execute(&mut *conn)
            .await?;
        sqlx::query(
            "LOCK TABLE public.audit_logs, public.audit_log_chain IN SHARE ROW EXCLUSIVE MODE",
        )
        .execute(&mut *conn)
        .await
        .context("locking the audit trail against writers")?;
        // What the swap cannot carry over must not be lost without a word.
        let uncarried: Vec<String> = sqlx::query_scalar(
            "SELECT t.tgrelid::regclass || ' has the trigger ' || t.tgname FROM pg_trigger t \
              WHERE NOT t.tgisinternal AND (t.tgrelid IN ('public.audit_logs'::regclass, \
                    'public.audit_log_chain'::regclass) OR t.tgrelid IN (SELECT inhrelid \
                    FROM pg_inherits WHERE inhparent = 'public.audit_logs'::regclass)) \
             UNION ALL \
             SELECT p.polrelid::regclass || ' has the row policy ' || p.polname FROM pg_policy p \
              WHERE p.polrelid IN ('public.audit_logs'::regclass, 'public.audit_log_chain'::regclass) \
             UNION ALL \
             SELECT 'audit_log_chain has column privileges' FROM pg_attribute \
              WHERE attrelid = 'public.audit_log_chain'::regclass AND attacl IS NOT NULL",
        )
        .fetch_all(&mut *conn)
        .await?;
        anyhow::ensure!(
            uncarried.is_empty(),
            "a rebuild would not carry these over to the rebuilt audit trail: {}",
            uncarried.join("; ")
        );
        let key: String =
            sqlx::query_scalar("SELECT pg_get_partkeydef('public.audit_logs'::regclass)")
                .fetch_one(&mut *conn)
                .await?;
        run(
            conn,
            "creating the fresh audit trail",
            [
                format!("CREATE SCHEMA {SCHEMA}"),
                format!(
                    "CREATE TABLE {LOGS} (LIKE public.audit_logs INCLUDING DEFAULTS \
                     INCLUDING CONSTRAINTS) PARTITION BY {key}"
                ),
                format!(
                    "CREATE TABLE {CHAIN} (LIKE public.audit_log_chain INCLUDING DEFAULTS \
                     INCLUDING CONSTRAINTS)"
                ),
            ],
        )
        .await?;
        let partitions: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, pg_get_expr(c.relpartbound, c.oid) \
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
              WHERE i.inhparent = 'public.audit_logs'::regclass \
              ORDER BY pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', c.relname",
        )
        .fetch_all(&mut *conn)
        .await?;
        run(
            conn,
            "creating a fresh partition",
            partitions.iter().map(|(name, bounds)| {
                format!(
                    "CREATE TABLE {SCHEMA}.{} PARTITION OF {LOGS} {bounds}",
                    ident(name)
                )
            }),
        )
        .await?;
        Ok(Self { partitions })
    }

    /// Gives the copies the live tables' keys and indexes, then puts them in place of the
    /// live ones (whose rows the rebuild has deleted), which move to a schema of their own
    /// for [`drop_retired`].
    pub(crate) async fn swap(self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let mut statements = index_statements(conn, "audit_logs", LOGS).await?;
        statements.extend(index_statements(conn, "audit_log_chain", CHAIN).await?);
        run(conn, "indexing the rebuilt audit trail", statements).await?;
        let checks: Vec<String> = sqlx::query_scalar(
            "SELECT format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%s)', i.inhrelid::regclass, \
                           $2::text, pg_get_partition_constraintdef(i.inhrelid)) \
               FROM pg_inherits i \
              WHERE i.inhparent = $1::regclass \
                AND pg_get_partition_constraintdef(i.inhrelid) IS NOT NULL",
        )
        .bind(LOGS)
        .bind(BOUND_CHECK)
        .fetch_all(&mut *conn)
        .await?;
        run(conn, "checking the bounds of a fresh partition", checks).await?;
        let grants = grant_statements(conn, "audit_log_chain").await?;

        // From here readers of the trail wait, until the rebuild commits.
        let mut swap = Vec::new();
        for (name, _) in &self.partitions {
            swap.push(format!(
                "ALTER TABLE {LOGS} DETACH PARTITION {SCHEMA}.{}",
                ident(name)
            ));
        }
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
              WHERE i.inhparent = 'public.audit_logs'::regclass",
        )
        .fetch_all(&mut *conn)
        .await?;
        swap.push(format!("CREATE SCHEMA {RETIRED}"));
        for name in &live {
            let name = ident(name);
            swap.extend([
                format!("ALTER TABLE public.audit_logs DETACH PARTITION public.{name}"),
                format!("ALTER TABLE public.{name} SET SCHEMA {RETIRED}"),
            ]);
        }
        for (name, bounds) in &self.partitions {
            let name = ident(name);
            swap.extend([
                format!("ALTER TABLE {SCHEMA}.{name} SET SCHEMA public"),
                format!("ALTER TABLE public.audit_logs ATTACH PARTITION public.{name} {bounds}"),
                format!("ALTER TABLE public.{name} DROP CONSTRAINT IF EXISTS {BOUND_CHECK}"),
            ]);
        }
        swap.extend([
            format!("ALTER TABLE public.audit_log_chain SET SCHEMA {RETIRED}"),
            format!("ALTER TABLE {CHAIN} SET SCHEMA public"),
        ]);
        swap.extend(grants);
        swap.push(format!("DROP SCHEMA {SCHEMA} CASCADE"));
        run(conn, "swapping in the rebuilt audit trail", swap).await
    }
}

/// Drops the tables a rebuild replaced, once it has committed (or, should that not have
/// happened, before the next one). Nobody reads them: they are out of the trail.
pub(crate) async fn drop_retired(pool: &sqlx::PgPool) -> anyhow::Result<()> {
    sqlx::query(&format!("DROP SCHEMA IF EXISTS {RETIRED} CASCADE"))
        .execute(pool)
        .await
        .context("dropping the audit tables a rebuild replaced")?;
    Ok(())
}

/// Runs `statements` in order; an error says what they were for, and which one failed.
async fn run(
    conn: &mut PgConnection,
    what: &str,
    statements: impl IntoIterator<Item = String>,
) -> anyhow::Result<()> {
    for statement in statements {
        sqlx::query(&statement)
            .execute(&mut *conn)
            .await
            .with_context(|| format!("{what}: {statement}"))?;
    }
    Ok(())
}

/// The statements that give `copy` the keys (primary, unique, foreign) and indexes of the
/// live `table`, read from the catalog: whatever a migration adds, a rebuild carries over.
async fn index_statements(
    conn: &mut PgConnection,
    table: &str,
    copy: &str,
) -> anyhow::Result<Vec<String>> {
    let live = format!("public.{table}");
    let constraints: Vec<(String, String)> = sqlx::query_as(
        "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint \
          WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x', 'f') \
          ORDER BY contype = 'f', conname",
    )
    .bind(&live)
    .fetch_all(&mut *conn)
    .await?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i \
          WHERE i.indrelid = $1::regclass \
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                             WHERE c.conrelid = i.indrelid AND c.conindid = i.indexrelid) \
          ORDER BY i.indexrelid",
    )
    .bind(&live)
    .fetch_all(&mut *conn)
    .await?;
    let mut statements: Vec<String> = constraints
        .into_iter()
        .map(|(name, definition)| {
            format!(
                "ALTER TABLE {copy} ADD CONSTRAINT {} {definition}",
                ident(&name)
            )
        })
        .collect();
    for definition in indexes {
        // `CREATE INDEX name ON [ONLY] public.table USING …`: the same index on the copy
        // (and, without ONLY, on each of its partitions), named alike in its own schema.
        let on_copy = [" ON ONLY ", " ON "].iter().find_map(|on| {
            let pattern = format!("{on}{live} ");
            definition
                .contains(&pattern)
                .then(|| definition.replacen(&pattern, &format!(" ON {copy} "), 1))
        });
        let on_copy = on_copy.with_context(|| {
            format!("cannot carry the {table} index over to a rebuild: {definition}")
        })?;
        statements.push(on_copy);
    }
    Ok(statements)
}

/// The grants on the live `table`, as statements that give them to the copy that replaces it.
async fn grant_statements(conn: &mut PgConnection, table: &str) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT format('GRANT %s ON public.%I TO %s%s', a.privilege_type, $1, \
                       CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END, \
                       CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) \
           FROM pg_class c, aclexplode(c.relacl) a \
          WHERE c.oid = format('public.%I', $1)::regclass",
    )
    .bind(table)
    .fetch_all(&mut *conn)
    .await?)
}

/// `name` quoted as an SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
