//! `bench ack`: signed `/cert status` (and Approve clicks) answered per second at fixed
//! offered rates, against the bare `/healthz`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::pki::envelope::KeyEncryptionKey;

use super::support::{
    Running, Scratch, bench_request, open_loop, peak_rss_mib, person, slack_signature, spread,
};

/// Signed `/cert status` slash commands against a bare endpoint of the same server.
pub(super) async fn run(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    rates: &[u32],
    click_rate: u32,
    window: Duration,
) -> anyhow::Result<String> {
    const SECRET: &str = "bench-signing-secret";
    let commands = scratch.commands(kek);
    // The person is known already (as after their first command), so Slack is never called.
    crate::chat::identities::remember(
        &scratch.pool,
        "slack",
        "T1",
        "UBENCH",
        "bench@example.com",
        None,
    )
    .await?;
    let submitted = commands
        .submit_request(
            &person("bench@example.com")?,
            bench_request("ack.example.com".to_owned()),
        )
        .await?;
    crate::feed::Projector::new(scratch.pool.clone())
        .catch_up(Duration::from_secs(60))
        .await?;
    // The service as `serve` builds it, with Slack pointed at a port nobody answers on.
    let mut config = crate::config::Config::load_from(None, Vec::new())?;
    config.slack.signing_secret = Some(SECRET.to_owned().into());
    config.slack.bot_token = Some("xoxb-bench".to_owned().into());
    config.slack.api_base_url = "http://127.0.0.1:9/api".to_owned();
    let service = Running::start(config, &scratch.pool).await?;
    let base = service.base.clone();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let body = format!(
        "token=x&team_id=T1&team_domain=bench&channel_id=C1&channel_name=bench&user_id=UBENCH\
         &user_name=bench&command=%2Fcert&text=status+{}&response_url=http%3A%2F%2F127.0.0.1%3A9%2Fr\
         &trigger_id=t",
        submitted.request_number
    );
    let signed = |http: &reqwest::Client| {
        let (timestamp, signature) = slack_signature(SECRET, &body);
        http.post(format!("{base}/slack/commands"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body.clone())
    };
    let bare = |http: &reqwest::Client| http.get(format!("{base}/healthz"));
    // Warm the connection pool and the caches.
    let _ = open_loop(&http, 50, Duration::from_secs(1), &signed).await;
    let mut out = String::new();
    writeln!(
        out,
        "## Slash-command ack latency ({} s per rate, open loop, load generator in the same process)\n",
        window.as_secs()
    )?;
    writeln!(
        out,
        "| endpoint | rate req/s | achieved req/s | p50 | p99 | max | failed |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for &rate in rates {
        for (name, which) in [
            (
                "`/cert status REQ-…` (signature check, identity, request read)",
                0,
            ),
            ("baseline: `/healthz`", 1),
        ] {
            let (latencies, failed, achieved) = if which == 0 {
                open_loop(&http, rate, window, &signed).await
            } else {
                open_loop(&http, rate, window, &bare).await
            };
            writeln!(
                out,
                "| {name} | {rate} | {achieved:.0} | {} | {failed} |",
                spread(&latencies),
            )?;
        }
    }
    if click_rate > 0 {
        super::clicks::run(
            scratch, &commands, &http, &base, SECRET, click_rate, window, &mut out,
        )
        .await?;
    }
    service.stop().await?;
    if let Some(peak) = peak_rss_mib() {
        writeln!(
            out,
            "\nPeak RSS of the process (server and load generator together): {peak:.0} MiB."
        )?;
    }
    Ok(out)
}
