//! `bench expiry-scan`: the expiry job's due query over many certificates, with and
//! without its index.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::support::ms;

/// Median and worst of `runs` timings of `query`.
pub(super) async fn time_query(
    pool: &PgPool,
    setup: &str,
    query: &str,
    runs: usize,
) -> anyhow::Result<(Duration, Duration, usize)> {
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql(setup).execute(&mut *conn).await?;
    let horizon = chrono::Utc::now() + chrono::Duration::days(90);
    let mut times = Vec::with_capacity(runs);
    let mut rows = 0;
    for _ in 0..runs {
        let started = Instant::now();
        rows = sqlx::query(query)
            .bind(horizon)
            .fetch_all(&mut *conn)
            .await?
            .len();
        times.push(started.elapsed());
    }
    sqlx::query("RESET ALL").execute(&mut *conn).await?;
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1], rows))
}

pub(super) async fn run(pool: &PgPool, certificates: u32) -> anyhow::Result<String> {
    let started = Instant::now();
    sqlx::query(
        "INSERT INTO users (id, email) VALUES ('00000000-0000-0000-0000-0000000000b1', 'bench@example.com')",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO certificate_requests (id, request_number, user_id, common_name, certificate_type, \
             key_algorithm, validity_period_days, csr_type, csr_content, business_justification) \
         VALUES ('00000000-0000-0000-0000-0000000000b2', 'REQ-20260101-00001', \
             '00000000-0000-0000-0000-0000000000b1', 'bench.example.com', 'web_server', 'ECC_P256', \
             365, 'generated', 'csr', 'benchmark')",
    )
    .execute(pool)
    .await?;
    // Validity spread evenly over the next two years; a tenth revoked or expired, as in life.
    sqlx::query(
        "INSERT INTO certificates (request_id, user_id, serial_number, common_name, subject_dn, \
             issuer_dn, valid_from, valid_to, key_algorithm, key_size, s3_bucket, s3_key_certificate, status) \
         SELECT '00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000b1', \
                lpad(to_hex(i), 32, '0'), 'host' || i || '.example.com', 'CN=host' || i, 'CN=Bench CA', \
                now() - interval '30 days', now() + (i % 730) * interval '1 day' + (i % 86400) * interval '1 second', \
                'ECC_P256', 256, 'local', 'certs/' || i, \
                CASE WHEN i % 10 = 0 THEN 'revoked' ELSE 'active' END \
           FROM generate_series(1, $1) AS i",
    )
    .bind(i64::from(certificates))
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE certificates").execute(pool).await?;
    let loaded = started.elapsed();
    let query = crate::saga::expiry::DUE_CERTIFICATES;
    let plan: Vec<String> = sqlx::query_scalar(&format!(
        "EXPLAIN {}",
        query.replace("$1", "now() + interval '90 days'")
    ))
    .fetch_all(pool)
    .await?;
    let uses_index = plan
        .iter()
        .any(|line| line.contains("idx_certificates_active_expiring"));
    let (indexed, indexed_worst, due) =
        time_query(pool, "SET enable_seqscan = on", query, 7).await?;
    let (baseline, baseline_worst, _) = time_query(
        pool,
        "SET enable_indexscan = off; SET enable_bitmapscan = off; SET enable_indexonlyscan = off",
        query,
        7,
    )
    .await?;
    let mut out = String::new();
    writeln!(out, "## Expiry scan: {certificates} certificates\n")?;
    writeln!(out, "| query | median | worst | due rows |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| expiry job (partial index) | {:.1} ms | {:.1} ms | {due} |",
        ms(indexed),
        ms(indexed_worst)
    )?;
    writeln!(
        out,
        "| baseline: same query, index scans off | {:.1} ms | {:.1} ms | {due} |",
        ms(baseline),
        ms(baseline_worst)
    )?;
    writeln!(
        out,
        "\nRatio baseline/indexed: {:.1}×. The plan {} `idx_certificates_active_expiring`:\n\n```\n{}\n```\nLoading the rows took {:.1} s (not measured).",
        baseline.as_secs_f64() / indexed.as_secs_f64().max(1e-9),
        if uses_index { "uses" } else { "does NOT use" },
        plan.join("\n"),
        loaded.as_secs_f64()
    )?;
    Ok(out)
}
