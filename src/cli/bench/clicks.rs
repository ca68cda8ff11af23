//! `bench ack --click-rate`: Approve clicks at a fixed rate, each on its own pending
//! request, and when all were appended.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::commands::Commands;
use crate::domain::values::Email;

use super::support::{
    BENCH_ADMIN, Scratch, bench_request, open_loop, person, slack_signature, spread,
};

/// Approve clicks at `rate`, each on its own pending request; acknowledged at once, decided
/// (durably appended) in the background — the table says how long until all were recorded.
#[expect(clippy::too_many_arguments, reason = "one benchmark's whole setting")]
pub(super) async fn run(
    scratch: &Scratch,
    commands: &Commands,
    http: &reqwest::Client,
    base: &str,
    secret: &'static str,
    rate: u32,
    window: Duration,
    out: &mut String,
) -> anyhow::Result<()> {
    let total = usize::try_from(u64::from(rate) * window.as_secs()).unwrap_or(usize::MAX);
    let root = person(BENCH_ADMIN)?;
    commands
        .grant_role(
            &root,
            &Email::parse("approver@example.com").map_err(|e| anyhow::anyhow!(e.message))?,
            crate::domain::actor::Role::Approver,
        )
        .await?;
    crate::chat::identities::remember(
        &scratch.pool,
        "slack",
        "T1",
        "UAPPROVER",
        "approver@example.com",
        None,
    )
    .await?;
    // The pending requests, submitted by 8 callers.
    let numbers = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let mut tasks = Vec::new();
    for caller in 0..8 {
        let commands = commands.clone();
        let numbers = numbers.clone();
        tasks.push(tokio::spawn(async move {
            let ctx = person(&format!("requester{caller}@example.com"))?;
            for i in (caller..total).step_by(8) {
                let form = bench_request(format!("click{i}.example.com"));
                let submitted = commands.submit_request(&ctx, form).await?;
                numbers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(submitted.request_number.to_string());
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let numbers: Vec<String> = numbers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let click = |http: &reqwest::Client| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % numbers.len().max(1);
        let payload = serde_json::json!({
            "type": "block_actions",
            "team": { "id": "T1" },
            "user": { "id": "UAPPROVER", "team_id": "T1" },
            "trigger_id": "t",
            "response_url": "http://127.0.0.1:9/r",
            "message": { "blocks": [] },
            "actions": [ { "action_id": "approve", "value": numbers[i] } ],
        });
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("payload", &payload.to_string())
            .finish();
        let (timestamp, signature) = slack_signature(secret, &body);
        http.post(format!("{base}/slack/interactivity"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body)
    };
    let (latencies, failed, achieved) = open_loop(http, rate, window, &click).await;
    let clicked_at = Instant::now();
    let mut recorded = 0_i64;
    for _ in 0..600 {
        recorded = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'ApprovalPolicySatisfied'",
        )
        .fetch_one(&scratch.pool)
        .await?;
        if usize::try_from(recorded).unwrap_or_default() >= latencies.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writeln!(
        out,
        "\n| Approve click (ack; decided and appended in the background) | rate req/s | achieved req/s | p50 | p99 | max | failed |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    writeln!(
        out,
        "| each on its own pending request | {rate} | {achieved:.0} | {} | {failed} |",
        spread(&latencies),
    )?;
    writeln!(
        out,
        "\n{recorded} of {} approvals were recorded as events {:.1} s after the last click.",
        latencies.len(),
        clicked_at.elapsed().as_secs_f64()
    )?;
    Ok(())
}
