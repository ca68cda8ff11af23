//! `bench scrape`: `GET /metrics` of the service as `serve` builds it, over N active
//! certificates (each with its own request and one of a thousand owners), against fetching
//! the same certificate rows from the same database and encoding nothing.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::support::{Running, Scratch, latency_row as row, ms, percentile};

/// Fills the read model: `certificates` active certificates and a tenth as many revoked
/// ones, each with its own request (made over the last two years, as a store grows); a
/// thousand owners in five departments.
pub(super) async fn seed(pool: &PgPool, certificates: u32) -> anyhow::Result<()> {
    let total = i64::from(certificates) + i64::from(certificates / 10);
    sqlx::query(
        "INSERT INTO users (id, email, display_name, department) \
         SELECT md5('owner' || i)::uuid, \
                'owner' || i || '@example.com', 'Owner ' || i, \
                (ARRAY['Operations', 'Finance', 'Sales', 'Platform', 'Security'])[1 + i % 5] \
           FROM generate_series(1, 1000) AS i",
    )
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO certificate_requests (id, request_number, user_id, common_name, \
             certificate_type, key_algorithm, validity_period_days, csr_type, csr_content, \
             business_justification, status, created_at) \
         SELECT md5('request' || i)::uuid, \
                'REQ-' || to_char(date '2026-01-01' + (i / 50000)::int, 'YYYYMMDD') || '-' \
                    || lpad((i % 50000)::text, 5, '0'), \
                md5('owner' || (1 + i % 1000))::uuid, \
                'host' || i || '.example.com', \
                (ARRAY['web_server', 'vpn', 'database', 'email'])[1 + i % 4], \
                'ECC_P256', 365, 'generated', 'csr', 'benchmark', 'issued', \
                now() - (i % 730) * interval '1 day' \
           FROM generate_series(1, $1) AS i",
    )
    .bind(total)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO certificates (request_id, user_id, serial_number, common_name, subject_dn, \
             issuer_dn, valid_from, valid_to, key_algorithm, key_size, s3_bucket, \
             s3_key_certificate, status) \
         SELECT md5('request' || i)::uuid, \
                md5('owner' || (1 + i % 1000))::uuid, \
                upper(lpad(to_hex(i), 32, '0')), 'host' || i || '.example.com', \
                'CN=host' || i || '.example.com', 'CN=Example Issuing CA 1,O=Example Corp', \
                now() - interval '30 days', now() + (i % 730) * interval '1 day', \
                'ECC_P256', 256, 'local', 'certs/' || i, \
                CASE WHEN i > $2 THEN 'revoked' ELSE 'active' END \
           FROM generate_series(1, $1) AS i",
    )
    .bind(total)
    .bind(i64::from(certificates))
    .execute(pool)
    .await?;
    // Vacuumed as autovacuum keeps a table that has settled (index-only scans see it).
    sqlx::raw_sql("VACUUM ANALYZE users, certificate_requests, certificates")
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn run(
    scratch: &Scratch,
    certificates: u32,
    scrapes: usize,
) -> anyhow::Result<String> {
    let started = Instant::now();
    seed(&scratch.pool, certificates).await?;
    let loaded = started.elapsed();

    let service = Running::start(
        crate::config::Config::load_from(None, Vec::new())?,
        &scratch.pool,
    )
    .await?;
    let base = &service.base;
    let http = reqwest::Client::new();
    let scrape = || async {
        let started = Instant::now();
        let body = http
            .get(format!("{base}/metrics"))
            .header("accept", "application/openmetrics-text;version=1.0.0")
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
        Ok::<_, anyhow::Error>((started.elapsed(), body))
    };
    // The first scrape reads the certificates from the database (memory is not loaded yet).
    let (cold, body) = scrape().await?;
    let series = String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("cert_assistant_certificate_expiration_timestamp_seconds{"))
        .count();
    anyhow::ensure!(
        series == certificates as usize,
        "the scrape has {series} certificate series, not {certificates}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut steady = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        steady.push(scrape().await?.0);
    }
    steady.sort();
    // One certificate changes between scrapes (as when one is issued or revoked): memory
    // follows it, and the series are encoded again, ahead of the scrape when there is time.
    let mut ahead = Vec::with_capacity(scrapes);
    let mut inline = Vec::with_capacity(scrapes);
    for i in 0..2 * scrapes {
        sqlx::query(
            "UPDATE certificates SET valid_to = valid_to + interval '1 second' \
              WHERE serial_number = upper(lpad(to_hex($1), 32, '0'))",
        )
        .bind(i64::try_from(i + 1)?)
        .execute(&scratch.pool)
        .await?;
        if i % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            ahead.push(scrape().await?.0);
        } else {
            inline.push(scrape().await?.0);
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    ahead.sort();
    inline.sort();
    let mut counted = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        let started = Instant::now();
        crate::http::metrics::Scraped::read(&scratch.pool).await?;
        counted.push(started.elapsed());
    }
    counted.sort();
    let mut fetched = Vec::with_capacity(scrapes);
    for _ in 0..scrapes {
        let started = Instant::now();
        let rows = crate::projections::gauges::read_active(&scratch.pool).await?;
        anyhow::ensure!(rows.len() == certificates as usize);
        fetched.push(started.elapsed());
    }
    fetched.sort();
    service.stop().await?;

    let mut out = String::new();
    writeln!(
        out,
        "## `/metrics` scrape: {certificates} active certificates ({scrapes} scrapes)\n"
    )?;
    writeln!(out, "| what | median | p95 | worst |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "{}",
        row(
            "`GET /metrics`, nothing changed since the last scrape",
            &steady
        )
    )?;
    writeln!(
        out,
        "{}",
        row(
            "`GET /metrics`, one certificate changed 500 ms before (series encoded ahead)",
            &ahead
        )
    )?;
    writeln!(
        out,
        "{}",
        row(
            "`GET /metrics`, one certificate changed the moment before (series encoded in the scrape)",
            &inline
        )
    )?;
    writeln!(
        out,
        "{}",
        row(
            "of which: the counts, lag and backlog read at every scrape",
            &counted
        )
    )?;
    writeln!(
        out,
        "{}",
        row(
            "baseline: reading the active certificates from the database (fetched and decoded, nothing encoded or sent)",
            &fetched
        )
    )?;
    writeln!(
        out,
        "\nOpenMetrics, whole body read by the client. Ratio baseline/scrape (median): {:.1}× \
         unchanged, {:.1}× after a change encoded ahead, {:.1}× encoded in the scrape. The first \
         scrape after the start (memory not loaded \
         yet, certificates read from the database): {:.1} ms. Body: {:.1} MB, {series} \
         certificate series. Loading the rows took {:.1} s (not measured).",
        percentile(&fetched, 0.5).as_secs_f64() / percentile(&steady, 0.5).as_secs_f64().max(1e-9),
        percentile(&fetched, 0.5).as_secs_f64() / percentile(&ahead, 0.5).as_secs_f64().max(1e-9),
        percentile(&fetched, 0.5).as_secs_f64() / percentile(&inline, 0.5).as_secs_f64().max(1e-9),
        ms(cold),
        body.len() as f64 / 1e6,
        loaded.as_secs_f64()
    )?;
    Ok(out)
}
