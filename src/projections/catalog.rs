//! The auditors' named, read-only queries (`projections/*.sql`), embedded in the binary.
//!
//! Each file starts with a header:
//! ```sql
//! -- name: expiring-certificates
//! -- purpose: Active certificates that expire within the next N days, soonest first.
//! -- param: days (integer, default 30): how many days ahead to look
//! ```
//! and uses `:name` for its parameters (cast in SQL, e.g. `(:days)::int`). Queries run in a
//! read-only transaction as the `cert_assistant_auditor` role, so even a faulty query
//! cannot write, nor read the event store or key material.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use sqlx::{Executor as _, PgPool, Row};

/// The role queries run as.
pub const AUDITOR_ROLE: &str = "cert_assistant_auditor";

/// Every file of `projections/`, embedded.
const FILES: &[(&str, &str)] = &[
    (
        "audit-trail.sql",
        include_str!("../../projections/audit-trail.sql"),
    ),
    (
        "certificates-by-owner.sql",
        include_str!("../../projections/certificates-by-owner.sql"),
    ),
    (
        "expiring-certificates.sql",
        include_str!("../../projections/expiring-certificates.sql"),
    ),
    (
        "failed-issuances.sql",
        include_str!("../../projections/failed-issuances.sql"),
    ),
    (
        "pending-approvals.sql",
        include_str!("../../projections/pending-approvals.sql"),
    ),
    (
        "request-summary.sql",
        include_str!("../../projections/request-summary.sql"),
    ),
    (
        "revocations.sql",
        include_str!("../../projections/revocations.sql"),
    ),
];

/// The file names the catalog embeds (tests compare them with the directory).
pub fn embedded_files() -> Vec<&'static str> {
    FILES.iter().map(|(file, _)| *file).collect()
}

/// A parameter of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name (`:name` in the SQL).
    pub name: String,
    /// Its SQL type, for people (`integer`, `date`, `text`).
    pub kind: String,
    /// The value used when none is given.
    pub default: Option<String>,
    /// What it means.
    pub description: String,
}

/// A named query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedQuery {
    /// Its name.
    pub name: String,
    /// What it answers.
    pub purpose: String,
    /// Its parameters, in order of first use.
    pub params: Vec<Param>,
    sql: String,
}

/// Why a query could not run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// No such name.
    #[error("there is no query {0:?}; the catalog has: {1}")]
    Unknown(String, String),
    /// A parameter without value or default.
    #[error("the query {query} needs --param {param}=... ({description})")]
    MissingParam {
        /// The query.
        query: String,
        /// The parameter.
        param: String,
        /// What it means.
        description: String,
    },
    /// A parameter the query does not have.
    #[error("the query {query} has no parameter {param:?}")]
    UnknownParam {
        /// The query.
        query: String,
        /// The parameter.
        param: String,
    },
    /// The database refused the query (a bad parameter value, a timeout).
    #[error("the query was refused: {0}")]
    Refused(String),
    /// The database failed.
    #[error("the query failed")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        match error.as_database_error() {
            Some(db) => Self::Refused(db.message().to_owned()),
            None => Self::Database(error),
        }
    }
}

/// The parsed catalog.
pub fn catalog() -> Vec<NamedQuery> {
    FILES.iter().filter_map(|(_, text)| parse(text)).collect()
}

/// Finds a query by name.
pub fn find(name: &str) -> Result<NamedQuery, QueryError> {
    let all = catalog();
    all.iter().find(|q| q.name == name).cloned().ok_or_else(|| {
        QueryError::Unknown(
            name.to_owned(),
            all.iter()
                .map(|q| q.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        )
    })
}

fn parse(text: &str) -> Option<NamedQuery> {
    let mut name = None;
    let mut purpose = String::new();
    let mut params = Vec::new();
    for line in text.lines() {
        let Some(header) = line.strip_prefix("--") else {
            continue;
        };
        let header = header.trim();
        if let Some(value) = header.strip_prefix("name:") {
            name = Some(value.trim().to_owned());
        } else if let Some(value) = header.strip_prefix("purpose:") {
            purpose = value.trim().to_owned();
        } else if let Some(value) = header.strip_prefix("param:") {
            params.push(parse_param(value.trim())?);
        }
    }
    Some(NamedQuery {
        name: name?,
        purpose,
        params,
        sql: text.to_owned(),
    })
}

/// `days (integer, default 30): how many days ahead`
fn parse_param(text: &str) -> Option<Param> {
    let (name, rest) = text.split_once('(')?;
    let (inside, description) = rest.split_once(')')?;
    let mut parts = inside.split(',').map(str::trim);
    let kind = parts.next()?.to_owned();
    let default = parts
        .next()
        .and_then(|d| d.strip_prefix("default"))
        .map(|d| d.trim().to_owned());
    Some(Param {
        name: name.trim().to_owned(),
        kind,
        default,
        description: description.trim_start_matches(':').trim().to_owned(),
    })
}

impl NamedQuery {
    /// The SQL with `:name` replaced by `$n`, and the parameter names in `$n` order.
    fn positional(&self) -> (String, Vec<String>) {
        let mut sql = String::with_capacity(self.sql.len());
        let mut order: Vec<String> = Vec::new();
        let chars: Vec<char> = self.sql.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            // Comments are copied as they are (the header mentions `:name`).
            if c == '-' && chars.get(i + 1) == Some(&'-') {
                while i < chars.len() && chars[i] != '\n' {
                    sql.push(chars[i]);
                    i += 1;
                }
                continue;
            }
            let starts_param = c == ':'
                && chars.get(i + 1).is_some_and(|n| n.is_ascii_alphabetic())
                && (i == 0 || chars[i - 1] != ':');
            if starts_param {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let name: String = chars[i + 1..j].iter().collect();
                let index = match order.iter().position(|n| *n == name) {
                    Some(index) => index,
                    None => {
                        order.push(name);
                        order.len() - 1
                    }
                };
                let _ = write!(sql, "${}", index + 1);
                i = j;
                continue;
            }
            sql.push(c);
            i += 1;
        }
        (sql, order)
    }

    /// Runs the query with `values` (name → value) as the auditor role, read-only, with a
    /// statement timeout. Every value comes back as text (NULL as `None`).
    pub async fn run(
        &self,
        pool: &PgPool,
        values: &BTreeMap<String, String>,
    ) -> Result<QueryResult, QueryError> {
        for name in values.keys() {
            if !self.params.iter().any(|p| &p.name == name) {
                return Err(QueryError::UnknownParam {
                    query: self.name.clone(),
                    param: name.clone(),
                });
            }
        }
        let (sql, order) = self.positional();
        let mut bound = Vec::new();
        for name in &order {
            let param = self.params.iter().find(|p| &p.name == name);
            let value = values
                .get(name)
                .cloned()
                .or_else(|| param.and_then(|p| p.default.clone()));
            match value {
                Some(value) => bound.push(value),
                None => {
                    return Err(QueryError::MissingParam {
                        query: self.name.clone(),
                        param: name.clone(),
                        description: param.map(|p| p.description.clone()).unwrap_or_default(),
                    });
                }
            }
        }
        let mut tx = pool.begin().await?;
        sqlx::query("SET TRANSACTION READ ONLY")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!("SET LOCAL ROLE {AUDITOR_ROLE}"))
            .execute(&mut *tx)
            .await?;
        sqlx::query(&format!(
            "SET LOCAL statement_timeout = {}",
            Duration::from_secs(30).as_millis()
        ))
        .execute(&mut *tx)
        .await?;
        let inner = sql.trim().trim_end_matches(';');
        let described = (&mut *tx).describe(inner).await?;
        let columns: Vec<String> = described
            .columns()
            .iter()
            .map(|c| sqlx::Column::name(c).to_owned())
            .collect();
        let select: Vec<String> = columns
            .iter()
            .map(|c| format!("q.\"{}\"::text", c.replace('"', "\"\"")))
            .collect();
        let wrapped = format!("SELECT {} FROM ({inner}) q", select.join(", "));
        let mut query = sqlx::query(&wrapped);
        for value in &bound {
            query = query.bind(value);
        }
        let rows = query.fetch_all(&mut *tx).await?;
        tx.rollback().await?;
        let rows = rows
            .iter()
            .map(|row| {
                (0..columns.len())
                    .map(|i| row.try_get::<Option<String>, _>(i))
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(QueryResult { columns, rows })
    }
}

/// Rows as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    /// Column names.
    pub columns: Vec<String>,
    /// Values, NULL as `None`.
    pub rows: Vec<Vec<Option<String>>>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal or a chat code block.
    Table,
    /// RFC 4180 CSV with a header row.
    Csv,
    /// A JSON array of objects, keys in column order.
    Json,
}

impl QueryResult {
    /// Renders the result.
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Csv => self.csv(),
            Format::Json => self.json(),
        }
    }

    fn table(&self) -> String {
        let cell = |v: &Option<String>| v.clone().unwrap_or_default().replace('\n', " ");
        let mut widths: Vec<usize> = self.columns.iter().map(|c| c.chars().count()).collect();
        for row in &self.rows {
            for (i, value) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell(value).chars().count());
            }
        }
        let line = |values: Vec<String>| {
            values
                .iter()
                .enumerate()
                .map(|(i, v)| format!("{v:<width$}", width = widths[i]))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let mut out = String::new();
        out.push_str(&line(self.columns.clone()));
        out.push('\n');
        out.push_str(&line(widths.iter().map(|w| "-".repeat(*w)).collect()));
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(row.iter().map(cell).collect()));
            out.push('\n');
        }
        let _ = writeln!(out, "({} rows)", self.rows.len());
        out
    }

    fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(&self.columns);
        for row in &self.rows {
            let cells = row.iter().map(|v| inert(v.as_deref().unwrap_or("")));
            let _ = writer.write_record(cells.map(|cell| cell.into_owned()));
        }
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn json(&self) -> String {
        let objects: Vec<String> = self
            .rows
            .iter()
            .map(|row| {
                let fields: Vec<String> = self
                    .columns
                    .iter()
                    .zip(row)
                    .map(|(column, value)| {
                        format!(
                            "{}:{}",
                            serde_json::Value::from(column.as_str()),
                            value
                                .as_deref()
                                .map_or(serde_json::Value::Null, serde_json::Value::from)
                        )
                    })
                    .collect();
                format!("{{{}}}", fields.join(","))
            })
            .collect();
        format!("[{}]\n", objects.join(",\n"))
    }
}

/// A CSV cell a spreadsheet shows as text: one that would start a formula (`=`, `+`, `-`,
/// `@`, or a tab or carriage return before one) gets a leading `'`, as OWASP advises for CSV
/// injection. Numbers (`-5`, `+1.5`) are left alone: they cannot be formulas.
fn inert(value: &str) -> std::borrow::Cow<'_, str> {
    let starts_formula = value.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if starts_formula && value.parse::<f64>().is_err() {
        std::borrow::Cow::Owned(format!("'{value}"))
    } else {
        std::borrow::Cow::Borrowed(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_that_would_be_formulas_are_text() {
        let hostile = [
            "=HYPERLINK(\"https://evil.example\",\"open\")",
            "+cmd|' /C calc'!A0",
            "-2+3",
            "@SUM(A1:A9)",
            "\t=1+1",
            "\r=1+1",
        ];
        for value in hostile {
            assert_eq!(inert(value), format!("'{value}"), "{value:?}");
        }
        for value in ["-5", "+1.5", "app.example.com", "", "a=b", "2026-12-02"] {
            assert_eq!(inert(value), value, "{value:?}");
        }
    }

    #[test]
    fn every_file_has_a_name_a_purpose_and_well_formed_params() {
        let queries = catalog();
        assert_eq!(queries.len(), FILES.len(), "a file failed to parse");
        for query in &queries {
            assert!(!query.purpose.is_empty(), "{} has no purpose", query.name);
            let (_, used) = query.positional();
            let declared: Vec<&str> = query.params.iter().map(|p| p.name.as_str()).collect();
            let mut used_sorted: Vec<&str> = used.iter().map(String::as_str).collect();
            used_sorted.sort_unstable();
            let mut declared_sorted = declared.clone();
            declared_sorted.sort_unstable();
            assert_eq!(
                used_sorted, declared_sorted,
                "{}: params used vs declared",
                query.name
            );
        }
    }

    #[test]
    fn named_parameters_become_positional_and_casts_stay() {
        let query = parse(
            "-- name: t\n-- purpose: p\n-- param: a (integer): x\n-- param: b (text, default z): y\n\
             SELECT (:a)::int, :b, :a, '2026-01-01'::date",
        )
        .expect("parses");
        let (sql, order) = query.positional();
        assert!(
            sql.ends_with("SELECT ($1)::int, $2, $1, '2026-01-01'::date"),
            "{sql}"
        );
        assert_eq!(order, ["a", "b"]);
        assert_eq!(query.params[1].default.as_deref(), Some("z"));
    }

    #[test]
    fn results_render_in_three_formats() {
        let result = QueryResult {
            columns: vec!["name".to_owned(), "note".to_owned()],
            rows: vec![
                vec![Some("a".to_owned()), Some("x, \"y\"".to_owned())],
                vec![Some("bb".to_owned()), None],
            ],
        };
        assert_eq!(
            result.render(Format::Table),
            "name  note\n----  ------\na     x, \"y\"\nbb\n(2 rows)\n"
        );
        assert_eq!(
            result.render(Format::Csv),
            "name,note\na,\"x, \"\"y\"\"\"\nbb,\n"
        );
        assert_eq!(
            result.render(Format::Json),
            "[{\"name\":\"a\",\"note\":\"x, \\\"y\\\"\"},\n{\"name\":\"bb\",\"note\":null}]\n"
        );
    }
}
