//! `bench dashboard`: the dashboard's overview, filtered list pages and the audit trail over
//! N certificates (the read model `bench scrape` seeds) and N audit rows, as an auditor gets
//! them from the service `serve` builds, signed in by a link; against `GET /healthz` of the
//! same service (the HTTP round trip and nothing read) and the same queries called directly.

use std::fmt::Write as _;
use std::time::Instant;

use super::support::{Running, Scratch, latency_row as row, person};
use crate::commands::Commands;
use crate::domain::actor::Role;
use crate::pki::envelope::KeyEncryptionKey;

pub(super) async fn run(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    certificates: u32,
    pages: usize,
) -> anyhow::Result<String> {
    let started = Instant::now();
    super::scrape::seed(&scratch.pool, certificates).await?;
    seed_audit(&scratch.pool, certificates).await?;
    let loaded = started.elapsed();

    let mut config = crate::config::Config::load_from(None, Vec::new())?;
    config.auth.admins = vec!["root@example.com".to_owned()];
    let service = Running::start(config, &scratch.pool).await?;
    let commands = Commands::new(scratch.pool.clone(), kek, &["root@example.com".to_owned()]);
    let auditor = person("auditor@example.com")?;
    commands
        .grant_role(&person("root@example.com")?, &auditor.email, Role::Auditor)
        .await?;
    let token = commands.dashboard_link(&auditor).await?;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = &service.base;
    let signed_in = http
        .get(format!("{base}/dashboard/sign-in/{token}"))
        .send()
        .await?;
    let cookie = signed_in
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|cookie| cookie.starts_with("cert_dashboard="))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the sign-in set no session cookie"))?;

    let time = |path: &'static str| {
        let http = http.clone();
        let cookie = cookie.clone();
        let url = format!("{base}{path}");
        async move {
            let mut times = Vec::with_capacity(pages);
            for _ in 0..pages {
                let started = Instant::now();
                http.get(&url)
                    .header(reqwest::header::COOKIE, &cookie)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
                times.push(started.elapsed());
            }
            times.sort();
            Ok::<_, anyhow::Error>(times)
        }
    };
    let overview = time("/dashboard").await?;
    let quarter = time("/dashboard/certificates?expiring=90").await?;
    let requests = time("/dashboard/requests?status=issued").await?;
    let trail = time("/dashboard/audit").await?;
    let failures = time("/dashboard/audit?category=certificate&result=failure").await?;
    let someone = time("/dashboard/audit?q=user7%40example.com").await?;
    let part = time("/dashboard/audit?q=user7%40example").await?;
    let health = time("/healthz").await?;
    let mut queries = Vec::with_capacity(pages);
    for _ in 0..pages {
        let started = Instant::now();
        crate::projections::reports::overview(&scratch.pool).await?;
        queries.push(started.elapsed());
    }
    queries.sort();
    service.stop().await?;

    let mut out = String::new();
    writeln!(
        out,
        "## Dashboard pages: {certificates} active certificates, as many requests ({pages} views each)\n"
    )?;
    writeln!(out, "| what | median | p95 | worst |")?;
    writeln!(out, "|---|---|---|---|")?;
    for (what, times) in [
        ("`GET /dashboard` (the overview), signed in", &overview),
        (
            "`GET /dashboard/certificates?expiring=90` (first page of 50)",
            &quarter,
        ),
        (
            "`GET /dashboard/requests?status=issued` (first page of 50)",
            &requests,
        ),
        ("`GET /dashboard/audit` (first page of 50)", &trail),
        (
            "`GET /dashboard/audit?category=certificate&result=failure` (1 row in 100)",
            &failures,
        ),
        (
            "`GET /dashboard/audit?q=user7@example.com` (a whole address: 1 row in 1,000)",
            &someone,
        ),
        (
            "`GET /dashboard/audit?q=user7@example` (a part of one: the whole trail is read)",
            &part,
        ),
        ("of the overview: its queries, called directly", &queries),
        ("baseline: `GET /healthz` of the same service", &health),
    ] {
        writeln!(out, "{}", row(what, times))?;
    }
    writeln!(
        out,
        "\nEach page's session is checked and its view recorded as an auditor's (an event). \
         Target: the overview in ≤ 200 ms over 1M certificates. The audit rows (as many as \
         certificates, over the last six days) each have a chain entry, whose hash the page \
         recomputes (the seeded hashes do not match, which costs the same). Loading the rows \
         took {:.1} s (not measured).",
        loaded.as_secs_f64()
    )?;
    Ok(out)
}

/// `rows` audit rows over the last six days (one in 50 a failure; a thousand people; four
/// kinds of event), each with an entry in the hash chain after those there are.
async fn seed_audit(pool: &sqlx::PgPool, rows: u32) -> anyhow::Result<()> {
    let rows = i64::from(rows);
    sqlx::query(
        "INSERT INTO audit_logs (id, event_type, event_category, severity, user_email, user_role, \
                 resource_type, resource_identifier, action, result, metadata, \"timestamp\") \
         SELECT md5('bench-audit-' || i)::uuid, \
                (ARRAY['request_created', 'approval_granted', 'certificate_issued', \
                       'certificate_downloaded'])[1 + i % 4], \
                (ARRAY['request', 'approval', 'certificate', 'certificate'])[1 + i % 4], \
                'info', 'user' || (i % 1000) || '@example.com', 'user', 'request', \
                'REQ-20261201-' || lpad(i::text, 7, '0'), 'create', \
                CASE WHEN i % 50 = 3 THEN 'failure' ELSE 'success' END, \
                '{\"platform\": \"slack\"}'::jsonb, \
                now() - make_interval(secs => i * 518400.0 / $1) \
           FROM generate_series(1, $1) i \
         ON CONFLICT DO NOTHING",
    )
    .bind(rows)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO audit_log_chain (position, audit_id, audit_timestamp, prev_hash, hash) \
         SELECT coalesce((SELECT max(position) FROM audit_log_chain), 0) \
                  + row_number() OVER (ORDER BY a.\"timestamp\", a.id), \
                a.id, a.\"timestamp\", sha256(a.id::text::bytea), sha256(a.event_type::bytea) \
           FROM audit_logs a \
          WHERE a.resource_identifier LIKE 'REQ-20261201-%' \
            AND NOT EXISTS (SELECT 1 FROM audit_log_chain c WHERE c.audit_id = a.id)",
    )
    .execute(pool)
    .await?;
    sqlx::query("ANALYZE audit_logs").execute(pool).await?;
    sqlx::query("ANALYZE audit_log_chain").execute(pool).await?;
    Ok(())
}
