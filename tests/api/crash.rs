//! Crash consistency: the real `cert-assistant serve` is killed with SIGKILL at random moments
//! while signed Slack commands arrive, then started again, several times. Afterwards: every
//! acknowledged request exists, no approved request got two certificates (a submission cut
//! off mid-way goes to an operator instead of being repeated), and the projected tables equal
//! a full replay of the events.

use std::process::Command;
use std::time::Duration;

use crate::fixtures::KEK;
use crate::helpers::TestDb;
use crate::served::{Served, free_port, people};

/// A fingerprint of the projected tables (what a replay must reproduce).
async fn fingerprint(db: &TestDb) -> Vec<String> {
    let mut prints = Vec::new();
    for (table, order) in [
        ("certificate_requests", "id"),
        ("approvals", "id"),
        ("certificates", "id"),
        ("users", "id"),
    ] {
        let print: Option<String> = sqlx::query_scalar(&format!(
            "SELECT md5(string_agg(to_jsonb(t)::text, '|' ORDER BY {order})) FROM {table} t"
        ))
        .fetch_one(&db.pool)
        .await
        .expect("fingerprint");
        prints.push(format!("{table}:{}", print.unwrap_or_default()));
    }
    prints
}

#[tokio::test]
async fn killing_the_service_at_random_loses_no_acknowledged_command_and_issues_nothing_twice() {
    let db = TestDb::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    people(&db).await;
    let port = free_port();
    let mut acknowledged = Vec::new();
    let mut seed: u64 = 0x00c0_ffee;
    for round in 0..5 {
        let mut service = Served::start(&db, dir.path(), port, &[]);
        service.ready().await;
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let budget = Duration::from_millis(300 + seed % 900);
        let load = async {
            let mut i = 0;
            loop {
                let text = format!("request cn=crash{round}-{i}.example.com days=90 why=crash");
                if let Some(reply) = service.cert("UJOHN", &text).await
                    && reply.contains("REQ-")
                {
                    let number = crate::helpers::request_number_in(&reply);
                    acknowledged.push(number.clone());
                    let _ = service.cert("UJANE", &format!("approve {number}")).await;
                }
                i += 1;
            }
        };
        let _ = tokio::time::timeout(budget, load).await;
        service.child.kill().expect("SIGKILL");
        service.child.wait().expect("reaped");
    }
    assert!(!acknowledged.is_empty(), "some commands were acknowledged");

    // A last, calm run lets the saga finish what it can; then a clean stop.
    let service = Served::start(&db, dir.path(), port, &[]);
    service.ready().await;
    // The killed workers' leases would run out in a minute; let them run out now.
    sqlx::query(
        "UPDATE jobs SET locked_until = NULL, run_at = now() \
          WHERE kind = 'issuance' AND state = 'queued'",
    )
    .execute(&db.pool)
    .await
    .expect("leases");
    for _ in 0..100 {
        let open: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'issuance' AND state = 'queued'",
        )
        .fetch_one(&db.pool)
        .await
        .expect("open jobs");
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let stuck: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'issuance' AND state = 'queued'",
    )
    .fetch_one(&db.pool)
    .await
    .expect("open jobs");
    assert_eq!(
        stuck, 0,
        "every approved request was issued, failed or handed to an operator"
    );
    assert!(service.stop().success(), "a clean stop");

    crate::helpers::project(&db.pool).await;
    // Every acknowledged request exists.
    for number in &acknowledged {
        let created: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE event_type = 'RequestCreated' \
               AND payload -> 'RequestCreated' ->> 'request_number' = $1",
        )
        .bind(number)
        .fetch_one(&db.pool)
        .await
        .expect("count");
        assert_eq!(created, 1, "{number} was acknowledged and must exist once");
    }
    // Nothing was issued twice: one CA certificate per issued certificate, at most one per
    // request.
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT request_id FROM certificates GROUP BY request_id \
           HAVING count(*) > 1) d",
    )
    .fetch_one(&db.pool)
    .await
    .expect("duplicates");
    assert_eq!(twice, 0, "a request got two certificates");
    // No request was submitted to the CA twice: every certificate the CA signed names a
    // different request's host. One signed but not recorded (killed right after the CA
    // answered) is an operator's task, never a second submission.
    let signed: Vec<String> =
        sqlx::query_scalar("SELECT certificate_pem FROM embedded_ca_certificates")
            .fetch_all(&db.pool)
            .await
            .expect("CA certificates");
    let mut names: Vec<String> = signed
        .iter()
        .map(|pem| {
            let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
            let certificate = pem.parse_x509().expect("x509");
            certificate
                .subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    names.sort();
    let submitted = names.len();
    names.dedup();
    assert_eq!(
        names.len(),
        submitted,
        "a request was submitted to the CA twice"
    );
    let (recorded, operator_tasks): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM certificates), \
                (SELECT count(*) FROM jobs WHERE kind = 'issuance' AND state = 'failed')",
    )
    .fetch_one(&db.pool)
    .await
    .expect("counts");
    let orphans = i64::try_from(submitted).unwrap_or_default() - recorded;
    let unrecorded: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT r.common_name, r.status, j.state, j.last_error FROM certificate_requests r \
           LEFT JOIN jobs j ON j.id = r.id AND j.kind = 'issuance' \
          WHERE r.common_name = ANY($1) \
            AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.request_id = r.id)",
    )
    .bind(&names)
    .fetch_all(&db.pool)
    .await
    .expect("unrecorded");
    assert!(
        (0..=operator_tasks).contains(&orphans),
        "{orphans} signed but unrecorded certificates, {operator_tasks} operator tasks: {unrecorded:?}"
    );

    // The projections equal a full replay.
    let before = fingerprint(&db).await;
    let mut replay = Command::new(env!("CARGO_BIN_EXE_cert-assistant"));
    replay
        .arg("replay")
        .env("DATABASE_URL", db.url())
        .env("CERT_ASSISTANT_KEYS__ENCRYPTION_KEY", KEK);
    let replay = crate::helpers::output(replay).await;
    assert!(replay.status.success(), "{replay:?}");
    assert_eq!(
        fingerprint(&db).await,
        before,
        "the projections equal a full replay"
    );
}
