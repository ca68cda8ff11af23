//! The three documented views: their columns, filters, ordering and computed fields.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::helpers::TestDb;

async fn user(pool: &PgPool, email: &str, name: &str) -> Uuid {
    sqlx::query_scalar("INSERT INTO users (email, display_name) VALUES ($1, $2) RETURNING id")
        .bind(email)
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("user")
}

/// A request created `created_at` (an SQL expression) with `status`.
async fn request(pool: &PgPool, owner: Uuid, number: &str, status: &str, created_at: &str) -> Uuid {
    sqlx::query_scalar(&format!(
        "INSERT INTO certificate_requests (request_number, user_id, common_name, certificate_type, \
             key_algorithm, validity_period_days, csr_type, csr_content, business_justification, \
             status, created_at, submitted_at) \
         VALUES ($1, $2, $3, 'web_server', 'ECC_P256', 90, 'generated', 'csr', 'because', $4, {created_at}, {created_at}) \
         RETURNING id"
    ))
    .bind(number)
    .bind(owner)
    .bind(format!("{}.example.com", number.to_lowercase()))
    .bind(status)
    .fetch_one(pool)
    .await
    .expect("request")
}

/// A certificate valid until `valid_to` (an SQL expression).
async fn certificate(
    pool: &PgPool,
    owner: Uuid,
    request: Uuid,
    serial: &str,
    valid_to: &str,
    status: &str,
    deleted: bool,
) {
    sqlx::query(&format!(
        "INSERT INTO certificates (request_id, user_id, serial_number, common_name, subject_dn, \
             issuer_dn, valid_from, valid_to, key_algorithm, key_size, s3_bucket, s3_key_certificate, \
             status, deleted_at) \
         VALUES ($1, $2, $3, $3, 'CN=' || $3, 'CN=CA', now() - interval '1 day', {valid_to}, \
             'ECC_P256', 256, 'b', 'k', $4, {})",
        if deleted { "now()" } else { "NULL" }
    ))
    .bind(request)
    .bind(owner)
    .bind(serial)
    .bind(status)
    .execute(pool)
    .await
    .expect("certificate");
}

async fn view_columns(pool: &PgPool, view: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
          WHERE table_schema = 'public' AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(view)
    .fetch_all(pool)
    .await
    .expect("columns")
}

#[tokio::test]
async fn active_certificates_are_bucketed_by_expiry_and_ordered_by_it() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let owner = user(pool, "owner@example.com", "Owner").await;
    let req = request(pool, owner, "REQ-20261127-00001", "issued", "now()").await;
    // Half a day of slack keeps the whole-day counts stable however long the test takes.
    certificate(
        pool,
        owner,
        req,
        "valid",
        "now() + interval '200 days 12 hours'",
        "active",
        false,
    )
    .await;
    certificate(
        pool,
        owner,
        req,
        "expiring",
        "now() + interval '45 days 12 hours'",
        "active",
        false,
    )
    .await;
    certificate(
        pool,
        owner,
        req,
        "soon",
        "now() + interval '10 days 12 hours'",
        "active",
        false,
    )
    .await;
    certificate(
        pool,
        owner,
        req,
        "overdue",
        "now() - interval '3 days 12 hours'",
        "active",
        false,
    )
    .await;
    certificate(
        pool,
        owner,
        req,
        "revoked",
        "now() + interval '100 days'",
        "revoked",
        false,
    )
    .await;
    certificate(
        pool,
        owner,
        req,
        "deleted",
        "now() + interval '100 days'",
        "active",
        true,
    )
    .await;

    assert_eq!(
        view_columns(pool, "v_active_certificates").await,
        [
            "id",
            "serial_number",
            "common_name",
            "valid_from",
            "valid_to",
            "status",
            "owner_email",
            "owner_name",
            "request_number",
            "days_until_expiry",
            "expiry_status",
        ]
    );
    let rows = sqlx::query(
        "SELECT serial_number, days_until_expiry::float8 AS days, expiry_status, owner_email, \
                owner_name, request_number, status \
           FROM v_active_certificates",
    )
    .fetch_all(pool)
    .await
    .expect("view");
    let got: Vec<(String, f64, String)> = rows
        .iter()
        .map(|r| {
            (
                r.get("serial_number"),
                r.get("days"),
                r.get("expiry_status"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("overdue".to_owned(), -3.0, "expired".to_owned()),
            ("soon".to_owned(), 10.0, "expiring_soon".to_owned()),
            ("expiring".to_owned(), 45.0, "expiring".to_owned()),
            ("valid".to_owned(), 200.0, "valid".to_owned()),
        ]
    );
    let first = &rows[0];
    assert_eq!(first.get::<String, _>("owner_email"), "owner@example.com");
    assert_eq!(first.get::<String, _>("owner_name"), "Owner");
    assert_eq!(
        first.get::<String, _>("request_number"),
        "REQ-20261127-00001"
    );
    assert_eq!(first.get::<String, _>("status"), "active");
}

#[tokio::test]
async fn pending_approvals_list_only_pending_ones_of_live_requests_oldest_first() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let requester = user(pool, "req@example.com", "Requester").await;
    let approver = user(pool, "appr@example.com", "Approver").await;
    let older = request(
        pool,
        requester,
        "REQ-20261127-00010",
        "pending_approval",
        "now()",
    )
    .await;
    let newer = request(
        pool,
        requester,
        "REQ-20261127-00011",
        "pending_approval",
        "now()",
    )
    .await;
    let decided = request(pool, requester, "REQ-20261127-00012", "approved", "now()").await;
    let deleted = request(
        pool,
        requester,
        "REQ-20261127-00013",
        "pending_approval",
        "now()",
    )
    .await;
    sqlx::query("UPDATE certificate_requests SET deleted_at = now() WHERE id = $1")
        .bind(deleted)
        .execute(pool)
        .await
        .expect("soft delete");
    for (req, status, age) in [
        (newer, "pending", "2 hours 10 minutes"),
        (older, "pending", "5 hours 30 minutes"),
        (decided, "approved", "9 hours"),
        (deleted, "pending", "1 hour"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO approvals (request_id, approver_id, status, created_at) \
             VALUES ($1, $2, $3, now() - interval '{age}')"
        ))
        .bind(req)
        .bind(approver)
        .bind(status)
        .execute(pool)
        .await
        .expect("approval");
    }

    assert_eq!(
        view_columns(pool, "v_pending_approvals").await,
        [
            "approval_id",
            "request_id",
            "request_number",
            "common_name",
            "certificate_type",
            "requester_email",
            "requester_name",
            "approver_email",
            "approver_name",
            "submitted_at",
            "approval_created_at",
            "pending_hours",
        ]
    );
    let rows: Vec<(String, String, String, f64)> = sqlx::query_as(
        "SELECT request_number, requester_email, approver_email, pending_hours::float8 \
           FROM v_pending_approvals",
    )
    .fetch_all(pool)
    .await
    .expect("view");
    assert_eq!(
        rows,
        [
            (
                "REQ-20261127-00010".to_owned(),
                "req@example.com".to_owned(),
                "appr@example.com".to_owned(),
                5.0
            ),
            (
                "REQ-20261127-00011".to_owned(),
                "req@example.com".to_owned(),
                "appr@example.com".to_owned(),
                2.0
            ),
        ]
    );
}

#[tokio::test]
async fn the_request_summary_counts_each_status_per_day_newest_first() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let owner = user(pool, "o@example.com", "O").await;
    let day1 = "'2026-11-01T12:00:00Z'::timestamptz";
    let day2 = "'2026-11-02T12:00:00Z'::timestamptz";
    let mut n = 0;
    let mut add = |status: &'static str, day: &'static str| {
        n += 1;
        (format!("REQ-20261101-{n:05}"), status, day)
    };
    let rows = [
        add("pending_approval", day1),
        add("pending_approval", day1),
        add("approved", day1),
        add("issued", day1),
        add("rejected", day1),
        add("failed", day1),
        add("draft", day1),
        add("issued", day2),
        add("issued", day2),
        add("cancelled", day2),
    ];
    for (number, status, day) in &rows {
        request(pool, owner, number, status, day).await;
    }
    let deleted = request(pool, owner, "REQ-20261102-99999", "failed", day2).await;
    sqlx::query("UPDATE certificate_requests SET deleted_at = now() WHERE id = $1")
        .bind(deleted)
        .execute(pool)
        .await
        .expect("soft delete");

    assert_eq!(
        view_columns(pool, "v_request_summary").await,
        [
            "request_date",
            "total_requests",
            "pending",
            "approved",
            "rejected",
            "issued",
            "failed"
        ]
    );
    let summary: Vec<(String, i64, i64, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT request_date::text, total_requests, pending, approved, rejected, issued, failed \
           FROM v_request_summary",
    )
    .fetch_all(pool)
    .await
    .expect("view");
    // DATE() of a timestamptz follows the session time zone; the cluster runs in UTC or
    // close to it, and noon keeps both days on their own date either way.
    assert_eq!(
        summary,
        [
            ("2026-11-02".to_owned(), 3, 0, 0, 0, 2, 0),
            ("2026-11-01".to_owned(), 7, 2, 1, 1, 1, 1),
        ]
    );
}
