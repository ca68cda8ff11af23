//! `bench replay`: events/s rebuilding every projection from N events, against reading the
//! same events in the same batches and applying nothing.
//!
//! The events are real: a template of requests is submitted, approved and rejected through
//! the commands, then its request and approval events are copied under new identities (a
//! UUIDv5 of the request id and the copy, the request number moved to another day) until
//! the store holds N events. The people stay the same, as they would in a real store.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Days, NaiveDate, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::support::{BENCH_ADMIN, Scratch, bench_request, person};
use crate::domain::values::RequestNumber;
use crate::pki::envelope::KeyEncryptionKey;
use crate::projections::replay;

/// Requests in the template: submitted by ten people, four in five approved, the rest
/// rejected.
const TEMPLATE_REQUESTS: usize = 100;

/// Namespace of the copies' request ids.
const COPY_NAMESPACE: Uuid = Uuid::from_u128(0x8d1e_6b0a_52c4_4f7e_b3a9_0c61_7e2d_4f18);

/// Copies written per COPY statement.
const COPIES_PER_CHUNK: u64 = 20;

/// One template request: the strings that make a copy a different request.
struct Flow {
    request_id: String,
    request_number: String,
    counter: String,
}

pub(super) async fn run(
    scratch: &Scratch,
    kek: KeyEncryptionKey,
    target_events: u64,
    batch_size: i64,
) -> anyhow::Result<String> {
    let pool = &scratch.pool;
    let loading = Instant::now();
    let flows = template(scratch, kek).await?;
    let template = template_events(pool).await?;
    let already: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let per_copy = template.len() as u64;
    let missing = target_events.saturating_sub(u64::try_from(already).unwrap_or(0));
    let copies = missing.div_ceil(per_copy.max(1));
    copy_template(pool, &flows, &template, copies).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    sqlx::query("VACUUM ANALYZE events").execute(pool).await?;
    let loaded_in = loading.elapsed();

    let baseline = replay::read_feed(pool, batch_size).await?;
    let rebuilt = replay::replay(pool, batch_size).await?;
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM certificate_requests")
        .fetch_one(pool)
        .await?;
    let expected_requests = TEMPLATE_REQUESTS as u64 * (copies + 1);
    anyhow::ensure!(
        u64::try_from(requests).unwrap_or(0) == expected_requests,
        "the replay projected {requests} requests, expected {expected_requests}"
    );

    // Again, over the full read model, while a reader queries it: how long does it wait?
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let probe_pool = pool.clone();
    let probe = tokio::spawn(async move {
        let (mut longest, mut reads) = (std::time::Duration::ZERO, 0_u32);
        while !*stopped.borrow_and_update() {
            let asked = Instant::now();
            // The requests, and the newest audit row: the audit trail is swapped in at the
            // end, and its readers wait for the swap.
            sqlx::query_as::<_, (i64, Option<DateTime<Utc>>)>(
                "SELECT (SELECT count(*) FROM certificate_requests), \
                        (SELECT max(\"timestamp\") FROM audit_logs)",
            )
            .fetch_one(&probe_pool)
            .await?;
            longest = longest.max(asked.elapsed());
            reads += 1;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        anyhow::Ok((longest, reads))
    });
    let again = replay::replay(pool, batch_size).await?;
    let _ = stop.send(true);
    let (longest, reads) = probe.await??;

    let mut out = String::new();
    writeln!(
        out,
        "## Replay: rebuilding every projection from {events} events (batches of {batch_size})\n"
    )?;
    writeln!(out, "| pass | events | time | events/s |")?;
    writeln!(out, "|---|---|---|---|")?;
    writeln!(
        out,
        "| replay (every table, audit chain) | {} | {:.1} s | {:.0} |",
        rebuilt.events,
        rebuilt.elapsed.as_secs_f64(),
        rebuilt.events_per_second()
    )?;
    writeln!(
        out,
        "| baseline: reading the same feed, applying nothing | {} | {:.1} s | {:.0} |",
        baseline.events,
        baseline.elapsed.as_secs_f64(),
        baseline.events_per_second()
    )?;
    writeln!(
        out,
        "| replay again over the full read model, a reader querying it (requests, newest audit row) every 100 ms | {} | {:.1} s | {:.0} |",
        again.events,
        again.elapsed.as_secs_f64(),
        again.events_per_second()
    )?;
    writeln!(
        out,
        "\nThe reader's longest wait during the second replay: {:.1} ms ({reads} reads).",
        longest.as_secs_f64() * 1000.0
    )?;
    writeln!(
        out,
        "\nThe store: {TEMPLATE_REQUESTS} requests submitted, approved or rejected through the \
         commands ({per_copy} request and approval events), copied {copies} times under new \
         ids; {requests} requests projected. Loading took {:.1} s (not measured).",
        loaded_in.as_secs_f64()
    )?;
    Ok(out)
}

/// Submits the template requests and decides them; returns their identities.
async fn template(scratch: &Scratch, kek: KeyEncryptionKey) -> anyhow::Result<Vec<Flow>> {
    let commands = scratch.commands(kek);
    let admin = person(BENCH_ADMIN)?;
    let mut flows = Vec::with_capacity(TEMPLATE_REQUESTS);
    for i in 0..TEMPLATE_REQUESTS {
        let requester = person(&format!("replay{}@example.com", i % 10))?;
        let submitted = commands
            .submit_request(&requester, bench_request(format!("replay{i}.example.com")))
            .await?;
        let number = &submitted.request_number;
        if i % 5 == 4 {
            commands
                .reject(&admin, number, "not for this benchmark")
                .await?;
        } else {
            commands.approve(&admin, number, Some("fine")).await?;
        }
        let counter = number
            .as_ref()
            .rsplit('-')
            .next()
            .context("request numbers end with a counter")?
            .to_owned();
        flows.push(Flow {
            request_id: submitted.request_id.to_string(),
            request_number: number.to_string(),
            counter,
        });
    }
    Ok(flows)
}

/// A template event, as text.
#[derive(sqlx::FromRow)]
struct TemplateEvent {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

async fn template_events(pool: &PgPool) -> anyhow::Result<Vec<TemplateEvent>> {
    Ok(sqlx::query_as(
        "SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, \
                payload::text AS payload, metadata::text AS metadata \
           FROM events WHERE aggregate_type IN ('CertificateRequest', 'Approval') \
          ORDER BY global_seq",
    )
    .fetch_all(pool)
    .await?)
}

/// Appends `copies` copies of the template, in order, `COPIES_PER_CHUNK` per COPY.
async fn copy_template(
    pool: &PgPool,
    flows: &[Flow],
    template: &[TemplateEvent],
    copies: u64,
) -> anyhow::Result<()> {
    let by_id: HashMap<&str, &Flow> = flows.iter().map(|f| (f.request_id.as_str(), f)).collect();
    let first_day = NaiveDate::from_ymd_opt(2000, 1, 1).context("a valid date")?;
    let mut copy = 1;
    while copy <= copies {
        let last = (copy + COPIES_PER_CHUNK - 1).min(copies);
        let mut data = String::new();
        for k in copy..=last {
            let day = first_day
                .checked_add_days(Days::new(k))
                .context("too many copies for distinct request numbers")?;
            let renamed: HashMap<&str, (String, String)> = flows
                .iter()
                .map(|flow| {
                    let id = Uuid::new_v5(
                        &COPY_NAMESPACE,
                        format!("{}/{k}", flow.request_id).as_bytes(),
                    );
                    let counter = flow.counter.parse().unwrap_or(1);
                    let number = RequestNumber::new(day, counter).map(|n| n.to_string());
                    (
                        flow.request_id.as_str(),
                        (id.to_string(), number.unwrap_or_default()),
                    )
                })
                .collect();
            for event in template {
                let flow = by_id
                    .get(event.aggregate_id.as_str())
                    .with_context(|| format!("{} is not a template request", event.aggregate_id))?;
                let (id, number) = &renamed[flow.request_id.as_str()];
                let rename = |text: &str| {
                    text.replace(&flow.request_id, id)
                        .replace(&flow.request_number, number)
                };
                for (i, column) in [
                    event.aggregate_type.clone(),
                    id.clone(),
                    event.sequence.to_string(),
                    event.event_type.clone(),
                    event.event_version.clone(),
                    rename(&event.payload),
                    rename(&event.metadata),
                ]
                .iter()
                .enumerate()
                {
                    if i > 0 {
                        data.push('\t');
                    }
                    copy_text_escape(&mut data, column);
                }
                data.push('\n');
            }
        }
        let mut conn = pool.acquire().await?;
        let mut sink = conn
            .copy_in_raw(
                "COPY events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) FROM STDIN",
            )
            .await?;
        sink.send(data.into_bytes()).await?;
        sink.finish().await.context("copying the template")?;
        copy = last + 1;
    }
    Ok(())
}

/// Appends `value` in COPY's text format.
fn copy_text_escape(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}
