//! `bench dashboard`: the dashboard's overview and a filtered certificate page over N
//! certificates (the read model `bench scrape` seeds), as an auditor gets them from the
//! service `serve` builds, signed in by a link; against `GET /healthz` of the same service
//! (the HTTP round trip and nothing read) and the same queries called directly.

use std::fmt::Write as _;
use std::time::Instant;

use super::support::{Running, Scratch, latency_row as row};
use crate::commands::{CommandContext, Commands};
use crate::domain::actor::{Platform, Role};
use crate::domain::values::Email;
use crate::pki::envelope::KeyEncryptionKey;

pub(super) async fn run(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    certificates: u32,
    pages: usize,
) -> anyhow::Result<String> {
    let started = Instant::now();
    super::scrape::seed(&scratch.pool, certificates).await?;
    let loaded = started.elapsed();

    let mut config = crate::config::Config::load_from(None, Vec::new())?;
    config.auth.admins = vec!["root@example.com".to_owned()];
    let service = Running::start(config, &scratch.pool).await?;
    let commands = Commands::new(scratch.pool.clone(), kek, &["root@example.com".to_owned()]);
    let auditor = Email::parse("auditor@example.com").map_err(|e| anyhow::anyhow!(e.message))?;
    let root = CommandContext::new(
        Email::parse("root@example.com").map_err(|e| anyhow::anyhow!(e.message))?,
        Platform::Cli,
    );
    commands.grant_role(&root, &auditor, Role::Auditor).await?;
    let token = commands
        .dashboard_link(&CommandContext::new(auditor, Platform::Cli))
        .await?;
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
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the sign-in set no cookie"))?;

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
    writeln!(
        out,
        "{}",
        row("`GET /dashboard` (the overview), signed in", &overview)
    )?;
    writeln!(
        out,
        "{}",
        row(
            "`GET /dashboard/certificates?expiring=90` (first page of 50)",
            &quarter
        )
    )?;
    writeln!(
        out,
        "{}",
        row(
            "`GET /dashboard/requests?status=issued` (first page of 50)",
            &requests
        )
    )?;
    writeln!(
        out,
        "{}",
        row("of the overview: its queries, called directly", &queries)
    )?;
    writeln!(
        out,
        "{}",
        row("baseline: `GET /healthz` of the same service", &health)
    )?;
    writeln!(
        out,
        "\nEach page's session is checked and its view recorded as an auditor's (an event). \
         Target: the overview in ≤ 200 ms over 1M certificates. Loading the rows took {:.1} s \
         (not measured).",
        loaded.as_secs_f64()
    )?;
    Ok(out)
}
