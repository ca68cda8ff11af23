//! The migrated schema is exactly the documented one (shared/design/database-schema.md):
//! columns, CHECK constraints, keys, indexes, triggers, views and seed rows.

use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::helpers::TestDb;

/// (column, type as `format_type` prints it, NOT NULL).
type Column = (&'static str, &'static str, bool);

/// (table, columns in documented order), transcribed from the schema document.
const DOCUMENTED_COLUMNS: &[(&str, &[Column])] = &[
    (
        "users",
        &[
            ("id", "uuid", true),
            ("email", "character varying(255)", true),
            ("first_name", "character varying(100)", false),
            ("last_name", "character varying(100)", false),
            ("display_name", "character varying(200)", false),
            ("department", "character varying(100)", false),
            ("organization", "character varying(100)", false),
            ("role", "character varying(50)", true),
            ("is_active", "boolean", true),
            ("sso_provider", "character varying(50)", false),
            ("sso_user_id", "character varying(255)", false),
            ("last_login_at", "timestamp with time zone", false),
            ("created_at", "timestamp with time zone", true),
            ("updated_at", "timestamp with time zone", true),
            ("deleted_at", "timestamp with time zone", false),
        ],
    ),
    (
        "certificate_requests",
        &[
            ("id", "uuid", true),
            ("request_number", "character varying(20)", true),
            ("user_id", "uuid", true),
            ("approver_id", "uuid", false),
            ("common_name", "character varying(255)", true),
            ("organization", "character varying(255)", false),
            ("organizational_unit", "character varying(255)", false),
            ("locality", "character varying(100)", false),
            ("state_province", "character varying(100)", false),
            ("country", "character(2)", false),
            ("email_address", "character varying(255)", false),
            ("subject_alternative_names", "text[]", false),
            ("certificate_type", "character varying(50)", true),
            ("key_algorithm", "character varying(20)", true),
            ("validity_period_days", "integer", true),
            ("csr_type", "character varying(20)", true),
            ("csr_content", "text", true),
            ("business_justification", "text", true),
            ("department", "character varying(100)", false),
            ("cost_center", "character varying(50)", false),
            ("project_code", "character varying(50)", false),
            ("additional_notes", "text", false),
            ("status", "character varying(50)", true),
            ("submitted_at", "timestamp with time zone", false),
            ("approved_at", "timestamp with time zone", false),
            ("rejected_at", "timestamp with time zone", false),
            ("issued_at", "timestamp with time zone", false),
            ("adcs_request_id", "character varying(100)", false),
            ("adcs_status", "character varying(50)", false),
            ("adcs_error_message", "text", false),
            ("retry_count", "integer", false),
            ("recommended_ca_type", "character varying(20)", false),
            ("override_requested", "boolean", false),
            ("override_reason", "text", false),
            ("created_at", "timestamp with time zone", true),
            ("updated_at", "timestamp with time zone", true),
            ("deleted_at", "timestamp with time zone", false),
        ],
    ),
    (
        "recommendation_answers",
        &[
            ("id", "uuid", true),
            ("request_id", "uuid", true),
            ("service_type", "character varying(50)", false),
            ("publicly_accessible", "character varying(20)", false),
            ("expected_lifespan", "character varying(20)", false),
            ("browser_trust_required", "character varying(20)", false),
            ("environment_type", "character varying(20)", false),
            ("certificate_count", "character varying(20)", false),
            ("domain_type", "character varying(20)", false),
            ("criticality_level", "character varying(20)", false),
            ("compliance_requirements", "text[]", false),
            ("renewal_preference", "character varying(20)", false),
            ("recommended_ca_type", "character varying(20)", true),
            ("recommendation_reason", "text", false),
            ("recommendation_confidence", "numeric(3,2)", false),
            ("created_at", "timestamp with time zone", true),
        ],
    ),
    (
        "approvals",
        &[
            ("id", "uuid", true),
            ("request_id", "uuid", true),
            ("approver_id", "uuid", true),
            ("status", "character varying(20)", true),
            ("decision", "character varying(20)", false),
            ("comments", "text", false),
            ("decided_at", "timestamp with time zone", false),
            ("delegated_to_id", "uuid", false),
            ("delegation_reason", "text", false),
            ("notified_at", "timestamp with time zone", false),
            ("reminder_count", "integer", false),
            ("last_reminder_at", "timestamp with time zone", false),
            ("created_at", "timestamp with time zone", true),
            ("updated_at", "timestamp with time zone", true),
        ],
    ),
    (
        "certificates",
        &[
            ("id", "uuid", true),
            ("request_id", "uuid", true),
            ("user_id", "uuid", true),
            ("serial_number", "character varying(100)", true),
            ("thumbprint_sha1", "character varying(40)", false),
            ("thumbprint_sha256", "character varying(64)", false),
            ("common_name", "character varying(255)", true),
            ("subject_dn", "text", true),
            ("issuer_dn", "text", true),
            ("subject_alternative_names", "text[]", false),
            ("valid_from", "timestamp with time zone", true),
            ("valid_to", "timestamp with time zone", true),
            ("key_algorithm", "character varying(20)", true),
            ("key_size", "integer", true),
            ("signature_algorithm", "character varying(50)", false),
            ("s3_bucket", "character varying(100)", true),
            ("s3_key_certificate", "character varying(255)", true),
            ("s3_key_chain", "character varying(255)", false),
            ("s3_key_private_key", "character varying(255)", false),
            ("status", "character varying(20)", true),
            ("download_count", "integer", false),
            ("first_downloaded_at", "timestamp with time zone", false),
            ("last_downloaded_at", "timestamp with time zone", false),
            ("expiry_notification_sent", "boolean", false),
            ("expiry_notifications", "jsonb", false),
            ("created_at", "timestamp with time zone", true),
            ("updated_at", "timestamp with time zone", true),
            ("deleted_at", "timestamp with time zone", false),
        ],
    ),
    (
        "certificate_revocations",
        &[
            ("id", "uuid", true),
            ("certificate_id", "uuid", true),
            ("request_id", "uuid", false),
            ("user_id", "uuid", true),
            ("reason_code", "character varying(50)", true),
            ("reason_text", "text", false),
            ("revoked_at", "timestamp with time zone", true),
            ("adcs_revocation_id", "character varying(100)", false),
            ("adcs_status", "character varying(50)", false),
            ("adcs_error_message", "text", false),
            ("crl_updated_at", "timestamp with time zone", false),
            ("ocsp_updated_at", "timestamp with time zone", false),
            ("approver_id", "uuid", false),
            ("approved_at", "timestamp with time zone", false),
            ("approval_required", "boolean", false),
            ("created_at", "timestamp with time zone", true),
        ],
    ),
    (
        "audit_logs",
        &[
            ("id", "uuid", true),
            ("event_type", "character varying(100)", true),
            ("event_category", "character varying(50)", true),
            ("severity", "character varying(20)", true),
            ("user_id", "uuid", false),
            ("user_email", "character varying(255)", false),
            ("user_role", "character varying(50)", false),
            ("ip_address", "inet", false),
            ("user_agent", "text", false),
            ("session_id", "character varying(100)", false),
            ("resource_type", "character varying(50)", false),
            ("resource_id", "uuid", false),
            ("resource_identifier", "character varying(255)", false),
            ("action", "character varying(100)", true),
            ("result", "character varying(20)", true),
            ("error_message", "text", false),
            ("metadata", "jsonb", false),
            ("timestamp", "timestamp with time zone", true),
        ],
    ),
    (
        "notifications",
        &[
            ("id", "uuid", true),
            ("user_id", "uuid", true),
            ("recipient_email", "character varying(255)", true),
            ("notification_type", "character varying(50)", true),
            ("subject", "character varying(255)", true),
            ("body", "text", true),
            ("channel", "character varying(20)", true),
            ("resource_type", "character varying(50)", false),
            ("resource_id", "uuid", false),
            ("status", "character varying(20)", true),
            ("sent_at", "timestamp with time zone", false),
            ("error_message", "text", false),
            ("retry_count", "integer", false),
            ("external_message_id", "character varying(255)", false),
            ("created_at", "timestamp with time zone", true),
        ],
    ),
    (
        "system_config",
        &[
            ("id", "uuid", true),
            ("config_key", "character varying(100)", true),
            ("config_value", "text", true),
            ("value_type", "character varying(20)", true),
            ("description", "text", false),
            ("is_sensitive", "boolean", false),
            ("updated_by", "uuid", false),
            ("created_at", "timestamp with time zone", true),
            ("updated_at", "timestamp with time zone", true),
        ],
    ),
    (
        "private_keys",
        &[
            ("id", "uuid", true),
            ("certificate_id", "uuid", true),
            ("request_id", "uuid", true),
            ("user_id", "uuid", true),
            ("encrypted_key", "text", true),
            ("encryption_algorithm", "character varying(50)", true),
            ("encryption_key_id", "character varying(255)", false),
            ("download_allowed", "boolean", false),
            ("downloaded", "boolean", false),
            ("download_count", "integer", false),
            ("first_downloaded_at", "timestamp with time zone", false),
            ("last_downloaded_at", "timestamp with time zone", false),
            ("created_at", "timestamp with time zone", true),
            ("deleted_at", "timestamp with time zone", false),
        ],
    ),
];

#[tokio::test]
async fn every_documented_table_has_exactly_the_documented_columns() {
    let db = TestDb::new().await;
    for (table, expected) in DOCUMENTED_COLUMNS {
        let rows = sqlx::query(
            "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS type, \
                    a.attnotnull AS not_null \
               FROM pg_attribute a \
              WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped \
              ORDER BY a.attnum",
        )
        .bind(table)
        .fetch_all(&db.pool)
        .await
        .expect("read the catalog");
        let actual: Vec<(String, String, bool)> = rows
            .iter()
            .map(|r| (r.get("name"), r.get("type"), r.get("not_null")))
            .collect();
        let expected: Vec<(String, String, bool)> = expected
            .iter()
            .map(|(n, t, nn)| ((*n).to_owned(), (*t).to_owned(), *nn))
            .collect();
        assert_eq!(actual, expected, "columns of {table}");
    }
}

#[tokio::test]
async fn information_schema_lists_the_documented_tables_and_views() {
    let db = TestDb::new().await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("tables");
    for (table, _) in DOCUMENTED_COLUMNS {
        assert!(tables.iter().any(|t| t == table), "missing table {table}");
    }
    for table in ["events", "snapshots"] {
        assert!(tables.iter().any(|t| t == table), "missing table {table}");
    }
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.views WHERE table_schema = 'public' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("views");
    assert_eq!(
        views,
        [
            "v_active_certificates",
            "v_pending_approvals",
            "v_request_summary"
        ]
    );
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns \
          WHERE table_schema = 'public' AND table_name = 'certificate_requests' ORDER BY ordinal_position",
    )
    .fetch_all(&db.pool)
    .await
    .expect("columns");
    let documented: Vec<&str> = DOCUMENTED_COLUMNS
        .iter()
        .find(|(t, _)| *t == "certificate_requests")
        .map(|(_, cols)| cols.iter().map(|c| c.0).collect())
        .unwrap_or_default();
    assert_eq!(columns, documented);
}

#[tokio::test]
async fn documented_defaults_are_applied() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    let row = sqlx::query(
        "SELECT role, is_active, created_at IS NOT NULL AS has_created, deleted_at IS NULL AS live \
           FROM users WHERE id = $1",
    )
    .bind(f.user)
    .fetch_one(&db.pool)
    .await
    .expect("user");
    assert_eq!(row.get::<String, _>("role"), "user");
    assert!(row.get::<bool, _>("is_active"));
    assert!(row.get::<bool, _>("has_created"));
    assert!(row.get::<bool, _>("live"));

    let row = sqlx::query(
        "SELECT status, retry_count, override_requested FROM certificate_requests WHERE id = $1",
    )
    .bind(f.request)
    .fetch_one(&db.pool)
    .await
    .expect("request");
    assert_eq!(row.get::<String, _>("status"), "draft");
    assert_eq!(row.get::<Option<i32>, _>("retry_count"), Some(0));
    assert_eq!(
        row.get::<Option<bool>, _>("override_requested"),
        Some(false)
    );

    let row = sqlx::query(
        "SELECT status, download_count, expiry_notification_sent, expiry_notifications::text AS history \
           FROM certificates WHERE id = $1",
    )
    .bind(f.certificate)
    .fetch_one(&db.pool)
    .await
    .expect("certificate");
    assert_eq!(row.get::<String, _>("status"), "active");
    assert_eq!(row.get::<Option<i32>, _>("download_count"), Some(0));
    assert_eq!(
        row.get::<Option<bool>, _>("expiry_notification_sent"),
        Some(false)
    );
    assert_eq!(row.get::<String, _>("history"), "[]");

    let (severity, channel, status): (String, String, String) = sqlx::query_as(
        "WITH a AS (INSERT INTO audit_logs (event_type, event_category, action, result) \
                    VALUES ('x', 'system', 'create', 'success') RETURNING severity), \
              n AS (INSERT INTO notifications (user_id, recipient_email, notification_type, subject, body) \
                    VALUES ($1, 'a@example.com', 'request_submitted', 's', 'b') RETURNING channel, status) \
         SELECT a.severity, n.channel, n.status FROM a, n",
    )
    .bind(f.user)
    .fetch_one(&db.pool)
    .await
    .expect("audit + notification");
    assert_eq!(
        (severity.as_str(), channel.as_str(), status.as_str()),
        ("info", "email", "pending")
    );
}

/// Rows every table can point at, and a way to try one insert with one column changed.
struct Fixture {
    pool: PgPool,
    user: Uuid,
    request: Uuid,
    certificate: Uuid,
}

impl Fixture {
    async fn new(pool: &PgPool) -> Self {
        let user: Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, display_name) VALUES ($1, 'Fixture User') RETURNING id",
        )
        .bind(format!("{}@example.com", Uuid::new_v4()))
        .fetch_one(pool)
        .await
        .expect("user");
        let request: Uuid = sqlx::query_scalar(&format!(
            "INSERT INTO certificate_requests ({}) VALUES ({}) RETURNING id",
            base_columns("certificate_requests", user, Uuid::nil(), Uuid::nil())
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", "),
            base_columns("certificate_requests", user, Uuid::nil(), Uuid::nil())
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ))
        .fetch_one(pool)
        .await
        .expect("request");
        let certificate: Uuid = sqlx::query_scalar(&format!(
            "INSERT INTO certificates ({}) VALUES ({}) RETURNING id",
            base_columns("certificates", user, request, Uuid::nil())
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", "),
            base_columns("certificates", user, request, Uuid::nil())
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        ))
        .fetch_one(pool)
        .await
        .expect("certificate");
        Self {
            pool: pool.clone(),
            user,
            request,
            certificate,
        }
    }

    /// Inserts one valid row into `table` with `column` set to `value`, inside a transaction
    /// that is rolled back. Returns the SQLSTATE and constraint name of a failure.
    async fn try_insert(
        &self,
        table: &str,
        column: &str,
        value: &str,
    ) -> Result<(), (String, String)> {
        let column_type: String = sqlx::query_scalar(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
              WHERE attrelid = $1::regclass AND attname = $2",
        )
        .bind(table)
        .bind(column)
        .fetch_one(&self.pool)
        .await
        .expect("column type");
        let mut columns = base_columns(table, self.user, self.request, self.certificate);
        match columns.iter_mut().find(|(c, _)| *c == column) {
            Some(entry) => entry.1 = format!("$1::text::{column_type}"),
            None => panic!("no base column {column} for {table}"),
        }
        let sql = format!(
            "INSERT INTO {table} ({}) VALUES ({})",
            columns
                .iter()
                .map(|(c, _)| *c)
                .collect::<Vec<_>>()
                .join(", "),
            columns
                .iter()
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        );
        let mut tx = self.pool.begin().await.expect("begin");
        let result = sqlx::query(&sql).bind(value).execute(&mut *tx).await;
        tx.rollback().await.expect("rollback");
        result.map(drop).map_err(|e| {
            let db = e.as_database_error().expect("a database error");
            (
                db.code().map(|c| c.into_owned()).unwrap_or_default(),
                db.constraint().unwrap_or_default().to_owned(),
            )
        })
    }
}

/// The smallest valid row of each table, as SQL expressions.
fn base_columns(
    table: &str,
    user: Uuid,
    request: Uuid,
    certificate: Uuid,
) -> Vec<(&'static str, String)> {
    let unique = || format!("'{}'", &Uuid::new_v4().simple().to_string()[..16]);
    let owned = |pairs: &[(&'static str, &str)]| {
        pairs
            .iter()
            .map(|(c, v)| (*c, (*v).to_owned()))
            .collect::<Vec<_>>()
    };
    match table {
        "users" => vec![
            ("email", format!("'{}@example.com'", Uuid::new_v4())),
            ("role", "'user'".to_owned()),
        ],
        "certificate_requests" => {
            let mut cols = vec![
                (
                    "request_number",
                    format!("'R{}'", &Uuid::new_v4().simple().to_string()[..18]),
                ),
                ("user_id", format!("'{user}'")),
            ];
            cols.extend(owned(&[
                ("common_name", "'app.example.com'"),
                ("certificate_type", "'web_server'"),
                ("key_algorithm", "'RSA_2048'"),
                ("validity_period_days", "365"),
                ("csr_type", "'generated'"),
                ("csr_content", "'-----BEGIN CERTIFICATE REQUEST-----'"),
                ("business_justification", "'testing'"),
                ("status", "'draft'"),
            ]));
            cols
        }
        "approvals" => vec![
            ("request_id", format!("'{request}'")),
            ("approver_id", format!("'{user}'")),
            ("status", "'pending'".to_owned()),
            ("decision", "NULL".to_owned()),
        ],
        "certificates" => {
            let mut cols = vec![
                ("request_id", format!("'{request}'")),
                ("user_id", format!("'{user}'")),
                ("serial_number", unique()),
            ];
            cols.extend(owned(&[
                ("common_name", "'app.example.com'"),
                ("subject_dn", "'CN=app.example.com'"),
                ("issuer_dn", "'CN=Issuing CA'"),
                ("valid_from", "now()"),
                ("valid_to", "now() + interval '365 days'"),
                ("key_algorithm", "'RSA_2048'"),
                ("key_size", "2048"),
                ("s3_bucket", "'local'"),
                ("s3_key_certificate", "'certs/x.pem'"),
                ("status", "'active'"),
            ]));
            cols
        }
        "certificate_revocations" => vec![
            ("certificate_id", format!("'{certificate}'")),
            ("user_id", format!("'{user}'")),
            ("reason_code", "'superseded'".to_owned()),
        ],
        "audit_logs" => owned(&[
            ("event_type", "'request_created'"),
            ("event_category", "'request'"),
            ("severity", "'info'"),
            ("action", "'create'"),
            ("result", "'success'"),
        ]),
        "notifications" => vec![
            ("user_id", format!("'{user}'")),
            ("recipient_email", "'a@example.com'".to_owned()),
            ("notification_type", "'request_submitted'".to_owned()),
            ("subject", "'s'".to_owned()),
            ("body", "'b'".to_owned()),
            ("channel", "'email'".to_owned()),
            ("status", "'pending'".to_owned()),
        ],
        "system_config" => vec![
            ("config_key", unique()),
            ("config_value", "'v'".to_owned()),
            ("value_type", "'string'".to_owned()),
        ],
        "private_keys" => vec![
            ("certificate_id", format!("'{certificate}'")),
            ("request_id", format!("'{request}'")),
            ("user_id", format!("'{user}'")),
            ("encrypted_key", "'ciphertext'".to_owned()),
            ("encryption_algorithm", "'AES-256-GCM'".to_owned()),
        ],
        other => panic!("no base row for {other}"),
    }
}

/// (table, column, constraint, documented values).
const CHECKED_COLUMNS: &[(&str, &str, &str, &[&str])] = &[
    (
        "users",
        "role",
        "valid_role",
        &["user", "approver", "admin", "auditor"],
    ),
    (
        "certificate_requests",
        "status",
        "valid_status",
        &[
            "draft",
            "pending_approval",
            "approved",
            "in_progress",
            "issued",
            "rejected",
            "failed",
            "cancelled",
            "revoked",
        ],
    ),
    (
        "certificate_requests",
        "certificate_type",
        "valid_cert_type",
        &[
            "web_server",
            "email",
            "code_signing",
            "vpn",
            "database",
            "user_auth",
            "other",
        ],
    ),
    (
        "certificate_requests",
        "key_algorithm",
        "valid_key_algo",
        &["RSA_2048", "RSA_4096", "ECC_P256", "ECC_P384"],
    ),
    (
        "certificate_requests",
        "csr_type",
        "valid_csr_type",
        &["generated", "uploaded"],
    ),
    (
        "approvals",
        "status",
        "valid_approval_status",
        &["pending", "approved", "rejected", "delegated"],
    ),
    (
        "approvals",
        "decision",
        "valid_decision",
        &["approve", "reject"],
    ),
    (
        "certificates",
        "status",
        "valid_cert_status",
        &["active", "revoked", "expired", "suspended"],
    ),
    (
        "certificate_revocations",
        "reason_code",
        "valid_reason_code",
        &[
            "unspecified",
            "key_compromise",
            "ca_compromise",
            "affiliation_changed",
            "superseded",
            "cessation_of_operation",
            "certificate_hold",
            "remove_from_crl",
        ],
    ),
    (
        "audit_logs",
        "severity",
        "valid_severity",
        &["debug", "info", "warning", "error", "critical"],
    ),
    (
        "audit_logs",
        "result",
        "valid_result",
        &["success", "failure", "partial"],
    ),
    (
        "notifications",
        "status",
        "valid_notification_status",
        &["pending", "sent", "failed", "bounced"],
    ),
    (
        "notifications",
        "channel",
        "valid_channel",
        &["email", "slack", "teams", "sms"],
    ),
    (
        "system_config",
        "value_type",
        "valid_value_type",
        &["string", "integer", "boolean", "json"],
    ),
];

#[tokio::test]
async fn every_check_constraint_accepts_the_documented_values_and_rejects_others() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    for (table, column, constraint, values) in CHECKED_COLUMNS {
        for value in *values {
            f.try_insert(table, column, value)
                .await
                .unwrap_or_else(|e| panic!("{table}.{column} = {value:?} refused: {e:?}"));
        }
        // Wrong case and plain nonsense are both refused, by the documented constraint.
        let upper = values[0].to_uppercase();
        let lower = values[0].to_lowercase();
        let wrong_case = if upper == values[0] { lower } else { upper };
        for bad in [wrong_case.as_str(), "bogus"] {
            let refused = f.try_insert(table, column, bad).await;
            assert_eq!(
                refused,
                Err(("23514".to_owned(), (*constraint).to_owned())),
                "{table}.{column} = {bad:?}"
            );
        }
    }
}

#[tokio::test]
async fn unique_keys_hold() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    let email: String = sqlx::query_scalar("SELECT email FROM users WHERE id = $1")
        .bind(f.user)
        .fetch_one(&db.pool)
        .await
        .expect("email");
    let number: String =
        sqlx::query_scalar("SELECT request_number FROM certificate_requests WHERE id = $1")
            .bind(f.request)
            .fetch_one(&db.pool)
            .await
            .expect("number");
    let serial: String = sqlx::query_scalar("SELECT serial_number FROM certificates WHERE id = $1")
        .bind(f.certificate)
        .fetch_one(&db.pool)
        .await
        .expect("serial");
    for (table, column, value, constraint) in [
        ("users", "email", email.as_str(), "users_email_key"),
        (
            "certificate_requests",
            "request_number",
            number.as_str(),
            "certificate_requests_request_number_key",
        ),
        (
            "certificates",
            "serial_number",
            serial.as_str(),
            "certificates_serial_number_key",
        ),
        (
            "system_config",
            "config_key",
            "approval.escalation.hours",
            "system_config_config_key_key",
        ),
    ] {
        assert_eq!(
            f.try_insert(table, column, value).await,
            Err(("23505".to_owned(), constraint.to_owned())),
            "{table}.{column}"
        );
    }
}

#[tokio::test]
async fn foreign_keys_refuse_rows_that_point_nowhere() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    let nowhere = Uuid::new_v4().to_string();
    for (table, column) in [
        ("certificate_requests", "user_id"),
        ("approvals", "request_id"),
        ("approvals", "approver_id"),
        ("certificates", "request_id"),
        ("certificates", "user_id"),
        ("certificate_revocations", "certificate_id"),
        ("notifications", "user_id"),
        ("private_keys", "certificate_id"),
        ("private_keys", "request_id"),
    ] {
        let refused = f.try_insert(table, column, &nowhere).await;
        assert!(
            matches!(&refused, Err((code, _)) if code == "23503"),
            "{table}.{column}: {refused:?}"
        );
    }
}

#[tokio::test]
async fn deleting_a_request_cascades_to_its_approvals_and_answers_only() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    let other = Fixture::new(&db.pool).await;
    for fixture in [&f, &other] {
        sqlx::query(
            "INSERT INTO approvals (request_id, approver_id, status) VALUES ($1, $2, 'pending')",
        )
        .bind(fixture.request)
        .bind(fixture.user)
        .execute(&db.pool)
        .await
        .expect("approval");
        sqlx::query(
            "INSERT INTO recommendation_answers (request_id, recommended_ca_type, recommendation_confidence) \
             VALUES ($1, 'internal', 0.85)",
        )
        .bind(fixture.request)
        .execute(&db.pool)
        .await
        .expect("answers");
    }
    // The certificate references the request without cascade, so remove it first.
    sqlx::query("DELETE FROM certificates WHERE request_id = $1")
        .bind(f.request)
        .execute(&db.pool)
        .await
        .expect("delete certificate");
    sqlx::query("DELETE FROM certificate_requests WHERE id = $1")
        .bind(f.request)
        .execute(&db.pool)
        .await
        .expect("delete request");
    let (approvals, answers): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM approvals), (SELECT count(*) FROM recommendation_answers)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("counts");
    assert_eq!((approvals, answers), (1, 1));
}

#[tokio::test]
async fn a_certificate_with_revocations_cannot_be_deleted_but_its_private_key_cascades() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    sqlx::query(
        "INSERT INTO private_keys (certificate_id, request_id, user_id, encrypted_key, encryption_algorithm) \
         VALUES ($1, $2, $3, 'c', 'AES-256-GCM')",
    )
    .bind(f.certificate)
    .bind(f.request)
    .bind(f.user)
    .execute(&db.pool)
    .await
    .expect("private key");
    sqlx::query("DELETE FROM certificates WHERE id = $1")
        .bind(f.certificate)
        .execute(&db.pool)
        .await
        .expect("delete certificate");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM private_keys")
        .fetch_one(&db.pool)
        .await
        .expect("count");
    assert_eq!(keys, 0);

    let g = Fixture::new(&db.pool).await;
    sqlx::query(
        "INSERT INTO certificate_revocations (certificate_id, user_id, reason_code) VALUES ($1, $2, 'superseded')",
    )
    .bind(g.certificate)
    .bind(g.user)
    .execute(&db.pool)
    .await
    .expect("revocation");
    let refused = sqlx::query("DELETE FROM certificates WHERE id = $1")
        .bind(g.certificate)
        .execute(&db.pool)
        .await
        .expect_err("revoked certificates keep their history");
    assert_eq!(
        refused
            .as_database_error()
            .and_then(|e| e.code())
            .as_deref(),
        Some("23503")
    );
}

#[tokio::test]
async fn updated_at_changes_on_every_update_of_the_five_documented_tables() {
    let db = TestDb::new().await;
    let f = Fixture::new(&db.pool).await;
    sqlx::query(
        "INSERT INTO approvals (request_id, approver_id, status) VALUES ($1, $2, 'pending')",
    )
    .bind(f.request)
    .bind(f.user)
    .execute(&db.pool)
    .await
    .expect("approval");
    for (table, set) in [
        ("users", "display_name = 'Renamed'"),
        ("certificate_requests", "status = 'pending_approval'"),
        ("approvals", "status = 'approved'"),
        ("certificates", "status = 'revoked'"),
        ("system_config", "config_value = '12'"),
    ] {
        sqlx::query(&format!(
            "UPDATE {table} SET updated_at = '2001-01-01T00:00:00Z'"
        ))
        .execute(&db.pool)
        .await
        .expect("backdate");
        // The trigger overwrites even an explicit backdate, so every row must now be recent.
        sqlx::query(&format!("UPDATE {table} SET {set}"))
            .execute(&db.pool)
            .await
            .expect("update");
        let stale: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE updated_at < now() - interval '1 minute'"
        ))
        .fetch_one(&db.pool)
        .await
        .expect("count");
        assert_eq!(stale, 0, "{table}.updated_at was not refreshed");
    }
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger WHERE tgname LIKE 'update\\_%\\_updated\\_at' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .expect("triggers");
    assert_eq!(
        triggers,
        [
            "update_approvals_updated_at",
            "update_certificate_requests_updated_at",
            "update_certificates_updated_at",
            "update_system_config_updated_at",
            "update_users_updated_at",
        ]
    );
}

#[tokio::test]
async fn the_seven_documented_configuration_rows_are_seeded() {
    let db = TestDb::new().await;
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT config_key, config_value, value_type FROM system_config \
          WHERE config_key IN ('adcs.server.endpoint', 'adcs.polling.interval_seconds', \
              'certificate.default_validity_days', 'notification.email.from', \
              'expiry.notification.days', 'approval.escalation.hours', 'session.timeout.minutes') \
          ORDER BY config_key",
    )
    .fetch_all(&db.pool)
    .await
    .expect("config");
    let expected = [
        ("adcs.polling.interval_seconds", "30", "integer"),
        (
            "adcs.server.endpoint",
            "https://adcs.internal.example.com",
            "string",
        ),
        ("approval.escalation.hours", "48", "integer"),
        ("certificate.default_validity_days", "365", "integer"),
        ("expiry.notification.days", "[90,60,30,14,7]", "json"),
        (
            "notification.email.from",
            "cert-assistant@example.com",
            "string",
        ),
        ("session.timeout.minutes", "480", "integer"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(k, v, t)| ((*k).to_owned(), (*v).to_owned(), (*t).to_owned()))
        .collect();
    assert_eq!(rows, expected);
}

#[tokio::test]
async fn documented_indexes_exist_with_their_predicates_and_methods() {
    let db = TestDb::new().await;
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT indexname::text, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    )
    .fetch_all(&db.pool)
    .await
    .expect("indexes");
    let def = |name: &str| {
        indexes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("missing index {name}"))
    };
    for name in [
        "idx_users_email",
        "idx_users_role",
        "idx_users_sso_user_id",
        "idx_users_deleted_at",
        "idx_requests_user_id",
        "idx_requests_approver_id",
        "idx_requests_status",
        "idx_requests_request_number",
        "idx_requests_common_name",
        "idx_requests_submitted_at",
        "idx_requests_deleted_at",
        "idx_recommendation_request_id",
        "idx_recommendation_ca_type",
        "idx_approvals_request_id",
        "idx_approvals_approver_id",
        "idx_approvals_status",
        "idx_approvals_decided_at",
        "idx_certificates_request_id",
        "idx_certificates_user_id",
        "idx_certificates_serial_number",
        "idx_certificates_common_name",
        "idx_certificates_status",
        "idx_certificates_valid_to",
        "idx_certificates_deleted_at",
        "idx_revocations_certificate_id",
        "idx_revocations_user_id",
        "idx_revocations_revoked_at",
        "idx_audit_logs_event_type",
        "idx_audit_logs_event_category",
        "idx_audit_logs_user_id",
        "idx_audit_logs_resource_type",
        "idx_audit_logs_resource_id",
        "idx_audit_logs_result",
        "idx_notifications_user_id",
        "idx_notifications_status",
        "idx_notifications_sent_at",
        "idx_notifications_notification_type",
        "idx_system_config_key",
        "idx_private_keys_certificate_id",
        "idx_private_keys_user_id",
    ] {
        def(name);
    }
    assert!(def("idx_audit_logs_timestamp").contains("\"timestamp\" DESC"));
    let expiring = def("idx_certificates_active_expiring");
    assert!(
        expiring.contains("(valid_to)")
            && expiring
                .contains("WHERE (((status)::text = 'active'::text) AND (deleted_at IS NULL))"),
        "{expiring}"
    );
    let failures = def("idx_audit_logs_failures");
    assert!(
        failures.contains("\"timestamp\" DESC")
            && failures.contains("WHERE ((result)::text = 'failure'::text)"),
        "{failures}"
    );
    assert!(def("idx_audit_logs_metadata").contains("USING gin (metadata)"));
    let pending = def("idx_notifications_pending");
    assert!(
        pending.contains("(created_at)")
            && pending.contains("WHERE ((status)::text = 'pending'::text)"),
        "{pending}"
    );
}
