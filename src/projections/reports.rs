//! What the dashboard shows, read from the documented tables: the overview (requests per
//! day by outcome, what waits for approval and how long, what expires when, recent
//! revocations and failures, the read side's health) and the list of requests, filtered and
//! paged, as rows any format can render ([`QueryResult`]).

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::{Arguments, PgPool, Row};

use super::catalog::QueryResult;

/// One day's requests by how they stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// The day (UTC).
    pub day: NaiveDate,
    /// Issued (and still so, or revoked since).
    pub issued: i64,
    /// Rejected or cancelled.
    pub refused: i64,
    /// Still open.
    pub open: i64,
    /// Failed at the CA.
    pub failed: i64,
}

/// The overview.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// The last 14 days, oldest first (days without requests included).
    pub days: Vec<Day>,
    /// Requests waiting for approval: number, common name, requester, hours waited.
    pub pending: Vec<(String, String, String, i64)>,
    /// Active certificates expiring within 7, 14, 30, 60 and 90 days (each bucket apart).
    pub expiring: Vec<(&'static str, i64)>,
    /// The latest revocations: serial, common name, reason, when.
    pub revocations: Vec<(String, String, String, DateTime<Utc>)>,
    /// The latest issuance failures: number, common name, when.
    pub failures: Vec<(String, String, DateTime<Utc>)>,
    /// Each consumer of the event feed, with how far behind it is.
    pub consumers: Vec<crate::feed::ConsumerStatus>,
    /// Streams a consumer parked.
    pub parked: i64,
    /// Background jobs given up.
    pub failed_jobs: i64,
}

/// The overview as the read model has it now.
pub async fn overview(pool: &PgPool) -> anyhow::Result<Overview> {
    let rows = sqlx::query(
        "SELECT d::date AS day, \
                count(r.status) FILTER (WHERE r.status IN ('issued', 'revoked')) AS issued, \
                count(r.status) FILTER (WHERE r.status IN ('rejected', 'cancelled')) AS refused, \
                count(r.status) FILTER (WHERE r.status IN ('draft', 'pending_approval', 'approved', 'in_progress')) AS open, \
                count(r.status) FILTER (WHERE r.status = 'failed') AS failed \
           FROM generate_series(date_trunc('day', now()) - interval '13 days', date_trunc('day', now()), interval '1 day') d \
           LEFT JOIN (SELECT date_trunc('day', created_at) AS day, status FROM certificate_requests \
                       WHERE created_at >= date_trunc('day', now()) - interval '13 days' \
                         AND deleted_at IS NULL) r ON r.day = d \
          GROUP BY d ORDER BY d",
    )
    .fetch_all(pool)
    .await?;
    let days = rows
        .iter()
        .map(|row| {
            Ok(Day {
                day: row.try_get("day")?,
                issued: row.try_get("issued")?,
                refused: row.try_get("refused")?,
                open: row.try_get("open")?,
                failed: row.try_get("failed")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    let pending = sqlx::query_as(
        "SELECT r.request_number, r.common_name, u.email, \
                floor(extract(epoch FROM now() - coalesce(r.submitted_at, r.created_at)) / 3600)::bigint \
           FROM certificate_requests r JOIN users u ON u.id = r.user_id \
          WHERE r.status = 'pending_approval' AND r.deleted_at IS NULL \
          ORDER BY coalesce(r.submitted_at, r.created_at) LIMIT 20",
    )
    .fetch_all(pool)
    .await?;
    let buckets = sqlx::query(
        "SELECT count(*) FILTER (WHERE valid_to < now() + interval '7 days') AS d7, \
                count(*) FILTER (WHERE valid_to >= now() + interval '7 days' AND valid_to < now() + interval '14 days') AS d14, \
                count(*) FILTER (WHERE valid_to >= now() + interval '14 days' AND valid_to < now() + interval '30 days') AS d30, \
                count(*) FILTER (WHERE valid_to >= now() + interval '30 days' AND valid_to < now() + interval '60 days') AS d60, \
                count(*) FILTER (WHERE valid_to >= now() + interval '60 days' AND valid_to < now() + interval '90 days') AS d90 \
           FROM certificates \
          WHERE status = 'active' AND deleted_at IS NULL AND valid_to >= now() \
            AND valid_to < now() + interval '90 days'",
    )
    .fetch_one(pool)
    .await?;
    let expiring = [
        ("within 7 days", "d7"),
        ("8 to 14 days", "d14"),
        ("15 to 30 days", "d30"),
        ("31 to 60 days", "d60"),
        ("61 to 90 days", "d90"),
    ]
    .into_iter()
    .map(|(label, column)| Ok((label, buckets.try_get(column)?)))
    .collect::<Result<_, sqlx::Error>>()?;
    let revocations = sqlx::query_as(
        "SELECT c.serial_number, c.common_name, v.reason_code, v.revoked_at \
           FROM certificate_revocations v JOIN certificates c ON c.id = v.certificate_id \
          ORDER BY v.revoked_at DESC LIMIT 10",
    )
    .fetch_all(pool)
    .await?;
    let failures = sqlx::query_as(
        "SELECT request_number, common_name, updated_at FROM certificate_requests \
          WHERE status = 'failed' AND deleted_at IS NULL ORDER BY updated_at DESC LIMIT 10",
    )
    .fetch_all(pool)
    .await?;
    let (parked, failed_jobs) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM parked_streams), \
                (SELECT count(*) FROM jobs WHERE state = 'failed')",
    )
    .fetch_one(pool)
    .await?;
    let consumers = crate::feed::consumer_status(pool).await?;
    Ok(Overview {
        days,
        pending,
        expiring,
        revocations,
        failures,
        consumers,
        parked,
        failed_jobs,
    })
}

/// What the request list is filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestFilter {
    /// One status (`pending_approval`, `issued`, …), or all.
    pub status: Option<String>,
    /// A part of the number, common name or requester's e-mail.
    pub text: Option<String>,
}

/// Requests per page.
pub const PAGE: i64 = 50;

/// The most rows an export holds.
pub const EXPORT_LIMIT: i64 = 100_000;

/// Matches are counted up to this many (a list says "10,000 or more" past it): counting
/// every row of a large store would cost more than the page.
pub const COUNTED: i64 = 10_000;

/// The requests a filter matches: `$1` a status, `$2` a `LIKE` pattern (each may be NULL).
const REQUESTS_MATCHING: &str = "FROM certificate_requests r JOIN users u ON u.id = r.user_id \
    WHERE r.deleted_at IS NULL AND ($1::text IS NULL OR r.status = $1) \
      AND ($2::text IS NULL OR r.request_number ILIKE $2 OR r.common_name ILIKE $2 \
           OR u.email ILIKE $2)";

/// Requests matching `filter`, newest first: `limit` of them after `offset`, and how many
/// match in all.
pub async fn requests(
    pool: &PgPool,
    filter: &RequestFilter,
    offset: i64,
    limit: i64,
) -> Result<(QueryResult, i64), sqlx::Error> {
    let text = filter.text.as_deref().map(anywhere);
    let bound = arguments(|a| {
        a.add(filter.status.as_deref())?;
        a.add(&text)
    })?;
    let (rows, total) = paged(
        pool,
        &format!(
            "SELECT r.request_number, r.common_name, r.status, u.email AS requester, \
                    r.certificate_type, r.recommended_ca_type AS recommended_ca, \
                    CASE WHEN r.override_requested THEN 'yes' ELSE 'no' END \
                        AS recommendation_overridden, \
                    to_char(r.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS created_utc \
               {REQUESTS_MATCHING} \
              ORDER BY r.created_at DESC, r.request_number DESC OFFSET $3 LIMIT $4"
        ),
        REQUESTS_MATCHING,
        bound,
        (offset, limit),
    )
    .await?;
    let columns = [
        "request_number",
        "common_name",
        "status",
        "requester",
        "certificate_type",
        "recommended_ca",
        "recommendation_overridden",
        "created_utc",
    ];
    Ok((table(&columns, &rows)?, total))
}

/// What the certificate list is filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertificateFilter {
    /// One status (`active`, `revoked`, `expired`), or all.
    pub status: Option<String>,
    /// Only those expiring within this many days from now.
    pub expiring_within_days: Option<i64>,
    /// A part of the serial, common name or owner's e-mail.
    pub text: Option<String>,
}

/// The certificates a filter matches: `$1` a status, `$2` days to expiry, `$3` a `LIKE`
/// pattern (each may be NULL).
const CERTIFICATES_MATCHING: &str = "FROM certificates c JOIN users u ON u.id = c.user_id \
    JOIN certificate_requests r ON r.id = c.request_id \
    WHERE c.deleted_at IS NULL AND ($1::text IS NULL OR c.status = $1) \
      AND ($2::int IS NULL OR (c.valid_to >= now() \
           AND c.valid_to < now() + make_interval(days => $2::int))) \
      AND ($3::text IS NULL OR c.serial_number ILIKE $3 OR c.common_name ILIKE $3 \
           OR u.email ILIKE $3)";

/// Certificates matching `filter`, soonest expiry first: `limit` after `offset`, and how
/// many match in all.
pub async fn certificates(
    pool: &PgPool,
    filter: &CertificateFilter,
    offset: i64,
    limit: i64,
) -> Result<(QueryResult, i64), sqlx::Error> {
    let within = filter
        .expiring_within_days
        .and_then(|d| i32::try_from(d.clamp(0, 36_500)).ok());
    let text = filter.text.as_deref().map(anywhere);
    let bound = arguments(|a| {
        a.add(filter.status.as_deref())?;
        a.add(within)?;
        a.add(&text)
    })?;
    let (rows, total) = paged(
        pool,
        &format!(
            "SELECT c.serial_number, c.common_name, c.status, u.email AS owner, \
                    r.request_number, \
                    to_char(c.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS valid_from, \
                    to_char(c.valid_to AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS valid_to, \
                    c.key_algorithm \
               {CERTIFICATES_MATCHING} \
              ORDER BY c.valid_to, c.serial_number OFFSET $4 LIMIT $5"
        ),
        CERTIFICATES_MATCHING,
        bound,
        (offset, limit),
    )
    .await?;
    let columns = [
        "serial_number",
        "common_name",
        "status",
        "owner",
        "request_number",
        "valid_from",
        "valid_to",
        "key_algorithm",
    ];
    Ok((table(&columns, &rows)?, total))
}

/// A list filter's parameters, `$1` onwards, bound once for its page and its count.
fn arguments(
    add: impl FnOnce(&mut PgArguments) -> Result<(), sqlx::error::BoxDynError>,
) -> Result<PgArguments, sqlx::Error> {
    let mut arguments = PgArguments::default();
    add(&mut arguments).map_err(sqlx::Error::Encode)?;
    Ok(arguments)
}

/// One page of the rows a list's filter matches, and how many match (counted up to
/// [`COUNTED`] + 1: a list says "more than 10,000" past it). `filter` holds the filter's
/// `N` parameters, `$1` to `$N`; `page` selects the rows, taking the offset as `$N+1` and
/// the limit as `$N+2`; `matching` is the `FROM … WHERE …` the count reads.
async fn paged(
    pool: &PgPool,
    page: &str,
    matching: &str,
    filter: PgArguments,
    (offset, limit): (i64, i64),
) -> Result<(Vec<PgRow>, i64), sqlx::Error> {
    let after = filter.len() + 1;
    let mut arguments = filter.clone();
    arguments
        .add(offset.max(0))
        .and_then(|()| arguments.add(limit.clamp(1, EXPORT_LIMIT)))
        .map_err(sqlx::Error::Encode)?;
    let rows = sqlx::query_with(page, arguments).fetch_all(pool).await?;
    let mut arguments = filter;
    arguments.add(COUNTED + 1).map_err(sqlx::Error::Encode)?;
    let count = format!("SELECT count(*) FROM (SELECT 1 {matching} LIMIT ${after}) matching");
    let total = sqlx::query_scalar_with(&count, arguments)
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}

/// `rows` as text, `columns` read by name from each (NULL as `None`).
fn table(columns: &[&str], rows: &[PgRow]) -> Result<QueryResult, sqlx::Error> {
    let rows = rows
        .iter()
        .map(|row| {
            columns
                .iter()
                .map(|column| row.try_get::<Option<String>, _>(*column))
                .collect()
        })
        .collect::<Result<_, sqlx::Error>>()?;
    Ok(QueryResult {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        rows,
    })
}

/// `typed` as a `LIKE` pattern matching it anywhere, its wildcards taken literally.
fn anywhere(typed: &str) -> String {
    let typed: String = typed.trim().chars().take(100).collect();
    format!(
        "%{}%",
        typed
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
    )
}

/// One certificate as the read model has it, for its page.
#[derive(Debug, Clone)]
pub struct CertificateDetail {
    /// Its id.
    pub id: uuid::Uuid,
    /// Label and value of every field shown.
    pub fields: Vec<(&'static str, String)>,
    /// Its request's number.
    pub request_number: String,
}

/// The certificate with `serial`, if there is one.
pub async fn certificate(
    pool: &PgPool,
    serial: &str,
) -> Result<Option<CertificateDetail>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "SELECT c.id, c.serial_number, c.common_name, c.subject_dn, c.issuer_dn, \
                array_to_string(c.subject_alternative_names, ', ') AS sans, \
                to_char(c.valid_from AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS valid_from, \
                to_char(c.valid_to AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS valid_to, \
                c.key_algorithm, c.signature_algorithm, c.thumbprint_sha256, c.status, \
                u.email AS owner, r.request_number, v.reason_code, \
                to_char(v.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS revoked_at \
           FROM certificates c JOIN users u ON u.id = c.user_id \
           JOIN certificate_requests r ON r.id = c.request_id \
           LEFT JOIN certificate_revocations v ON v.certificate_id = c.id \
          WHERE c.serial_number = $1 AND c.deleted_at IS NULL",
    )
    .bind(serial)
    .fetch_optional(pool)
    .await?
    else {
        return Ok(None);
    };
    let text = |column: &str| -> Result<String, sqlx::Error> {
        Ok(row
            .try_get::<Option<String>, _>(column)?
            .unwrap_or_default())
    };
    let mut fields = vec![
        ("Serial", text("serial_number")?),
        ("Common name", text("common_name")?),
        ("Status", text("status")?),
        ("Owner", text("owner")?),
        ("Subject", text("subject_dn")?),
        ("Issuer", text("issuer_dn")?),
        ("DNS names", text("sans")?),
        ("Valid from (UTC)", text("valid_from")?),
        ("Valid to (UTC)", text("valid_to")?),
        ("Key", text("key_algorithm")?),
        ("Signature", text("signature_algorithm")?),
        ("SHA-256 thumbprint", text("thumbprint_sha256")?),
    ];
    if let Some(reason) = row.try_get::<Option<String>, _>("reason_code")? {
        fields.push((
            "Revoked (UTC)",
            format!("{} ({reason})", text("revoked_at")?),
        ));
    }
    Ok(Some(CertificateDetail {
        id: row.try_get("id")?,
        request_number: text("request_number")?,
        fields,
    }))
}

/// The revocations a reason filter matches: `$1` an RFC 5280 reason (or NULL).
const REVOCATIONS_MATCHING: &str = "FROM certificate_revocations v \
    JOIN certificates c ON c.id = v.certificate_id JOIN users u ON u.id = v.user_id \
    LEFT JOIN users a ON a.id = v.approver_id \
    WHERE ($1::text IS NULL OR v.reason_code = $1)";

/// Revocations, newest first: `limit` after `offset`, with their reason (`reason`, or all),
/// who asked, who approved, and whether the CA's CRL lists them; and how many match.
pub async fn revocations(
    pool: &PgPool,
    reason: Option<&str>,
    offset: i64,
    limit: i64,
) -> Result<(QueryResult, i64), sqlx::Error> {
    let (rows, total) = paged(
        pool,
        &format!(
            "SELECT c.serial_number, c.common_name, v.reason_code, u.email AS revoked_by, \
                    a.email AS approved_by, \
                    to_char(v.revoked_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS revoked, \
                    to_char(v.crl_updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS in_crl \
               {REVOCATIONS_MATCHING} \
              ORDER BY v.revoked_at DESC, c.serial_number OFFSET $2 LIMIT $3"
        ),
        REVOCATIONS_MATCHING,
        arguments(|a| a.add(reason))?,
        (offset, limit),
    )
    .await?;
    let columns = [
        "serial_number",
        "common_name",
        "reason_code",
        "revoked_by",
        "approved_by",
        "revoked",
        "in_crl",
    ];
    Ok((table(&columns, &rows)?, total))
}

/// What the audit trail is filtered by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// One category (`authentication`, `authorization`, `request`, `approval`,
    /// `certificate`, `system`), or all.
    pub category: Option<String>,
    /// `success` or `failure` (refusals), or both.
    pub result: Option<String>,
    /// Who acted (e-mail), what happened (event type) or which resource (request number,
    /// serial, e-mail, setting): a whole e-mail address, request number or serial names it
    /// exactly; anything else is a part of one.
    pub text: Option<String>,
    /// From this instant on.
    pub from: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// The audit rows a filter matches: `$1` a category, `$2` a result, `$3` a `LIKE` pattern,
/// `$4`..`$5` a time range, `$6` a whole identifier (each may be NULL).
const AUDIT_MATCHING: &str = "FROM audit_logs a \
    WHERE ($1::text IS NULL OR a.event_category = $1) AND ($2::text IS NULL OR a.result = $2) \
      AND ($3::text IS NULL OR a.user_email ILIKE $3 OR a.event_type ILIKE $3 \
           OR a.resource_identifier ILIKE $3) \
      AND ($4::timestamptz IS NULL OR a.\"timestamp\" >= $4) \
      AND ($5::timestamptz IS NULL OR a.\"timestamp\" < $5) \
      AND ($6::text IS NULL OR lower(a.user_email) = $6 OR a.resource_identifier = $6)";

/// The identifier `typed` names whole, as the audit rows hold it: an e-mail address, a
/// request number, or a serial of 16 hexadecimal digits or more. Such a filter is matched
/// through the trail's indexes; anything else is a substring, which reads the whole trail.
fn whole_identifier(typed: &str) -> Option<String> {
    use crate::domain::values::{Email, RequestNumber, SerialNumber};
    let typed = typed.trim();
    if let Ok(email) = Email::parse(typed) {
        return Some(email.to_string().to_lowercase());
    }
    if let Ok(number) = RequestNumber::parse(typed) {
        return Some(number.to_string());
    }
    SerialNumber::parse(typed)
        .ok()
        .map(|serial| serial.to_string())
        .filter(|serial| serial.len() >= 16)
}

/// The audit trail, newest first: `limit` rows after `offset` matching `filter`, each with
/// whether the hash chain vouches for it; and how many match.
pub async fn audit_trail(
    pool: &PgPool,
    filter: &AuditFilter,
    offset: i64,
    limit: i64,
) -> Result<(QueryResult, i64), sqlx::Error> {
    use super::audit::{VOUCHING_COLUMNS, VOUCHING_JOINS, vouched};
    let exact = filter.text.as_deref().and_then(whole_identifier);
    let text = match exact {
        Some(_) => None,
        None => filter.text.as_deref().map(anywhere),
    };
    let bound = arguments(|a| {
        a.add(filter.category.as_deref())?;
        a.add(filter.result.as_deref())?;
        a.add(&text)?;
        a.add(filter.from)?;
        a.add(filter.until)?;
        a.add(&exact)
    })?;
    let (rows, total) = paged(
        pool,
        &format!(
            "SELECT to_char(a.\"timestamp\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') \
                        AS at_utc, \
                    a.event_type, a.event_category AS category, a.action, a.result, \
                    a.user_email AS who, a.user_role AS role, \
                    a.metadata ->> 'platform' AS platform, \
                    a.resource_type, a.resource_identifier, a.error_message, {VOUCHING_COLUMNS} \
               FROM ({PAGE_OF_ROWS}) page \
               JOIN audit_logs a ON a.id = page.id AND a.\"timestamp\" = page.\"timestamp\" \
               {VOUCHING_JOINS} \
              ORDER BY a.\"timestamp\" DESC, a.id DESC",
            PAGE_OF_ROWS = format_args!(
                "SELECT a.id, a.\"timestamp\" {AUDIT_MATCHING} \
                  ORDER BY a.\"timestamp\" DESC, a.id DESC OFFSET $7 LIMIT $8"
            ),
        ),
        AUDIT_MATCHING,
        bound,
        (offset, limit),
    )
    .await?;
    let columns = [
        "at_utc",
        "event_type",
        "category",
        "action",
        "result",
        "who",
        "role",
        "platform",
        "resource_type",
        "resource_identifier",
        "error_message",
    ];
    // Whether the chain vouches for the row, beside its result.
    const VERDICT_AT: usize = 5;
    let mut result = table(&columns, &rows)?;
    result.columns.insert(VERDICT_AT, "hash_chain".to_owned());
    for (cells, row) in result.rows.iter_mut().zip(&rows) {
        let verdict = vouched(row)?.err();
        cells.insert(
            VERDICT_AT,
            Some(verdict.unwrap_or_else(|| "vouched for".to_owned())),
        );
    }
    Ok((result, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_identifier_is_matched_exactly_and_a_part_of_one_as_a_substring() {
        assert_eq!(
            whole_identifier(" Jane@Example.com "),
            Some("jane@example.com".to_owned())
        );
        assert_eq!(
            whole_identifier("REQ-20261208-00001"),
            Some("REQ-20261208-00001".to_owned())
        );
        assert_eq!(
            whole_identifier("61:dd:ac:b2:a8:2f:f9:12:02:9a"),
            Some("61DDACB2A82FF912029A".to_owned())
        );
        for part in ["jane", "approval", "REQ-2026", "abc", "61DD"] {
            assert_eq!(whole_identifier(part), None, "{part}");
        }
    }
}
