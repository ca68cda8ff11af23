//! `GET /metrics`: the service in the Prometheus exposition format (OpenMetrics text when
//! the scraper asks for it, as Prometheus does; the classic text format otherwise, as curl
//! gets). Each scrape reads what the database holds — every active certificate's expiry,
//! counts by status, each feed consumer's lag, parked streams, the job backlog — and adds
//! the process's own instruments (chat answers, refusals, CA calls, job runs), the
//! connection pool, the runtime and the process. Every label is a closed set, except the
//! certificate series, of which there is one per active certificate.
//!
//! [`track`] is the middleware that times the chat platforms' routes.

use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};
use sqlx::PgPool;

use std::sync::Arc;

use axum::body::Bytes;

use super::AppState;
use crate::feed::ConsumerStatus;
use crate::jobs::Backlog;
use crate::projections::gauges::{Active, ActiveCertificate, ActiveCertificates, ReadModelGauges};
use crate::telemetry::metrics::{ChatRoute, instruments};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What scrapes keep between them: the active certificates (in memory while they follow
/// the read model) and their series as last encoded, per format.
#[derive(Debug)]
pub struct Scrapes {
    certificates: Arc<ActiveCertificates>,
    encoded: std::sync::Mutex<[Option<(u64, Bytes)>; 2]>,
}

impl Scrapes {
    /// Scrapes of the read model in `pool`, whose active certificates are loaded into memory
    /// at once (and followed from then on). After the certificates change, their series are
    /// encoded again in the background (in the formats scraped so far), so the next scrape
    /// usually finds them ready.
    pub fn new(pool: PgPool) -> Arc<Self> {
        let scrapes = Arc::new(Self {
            certificates: ActiveCertificates::new(pool),
            encoded: std::sync::Mutex::new([None, None]),
        });
        tokio::spawn(encode_ahead(
            Arc::downgrade(&scrapes),
            scrapes.certificates.changes(),
        ));
        scrapes.certificates.start();
        scrapes
    }

    /// The certificates' series in `format`: as encoded last time unless they changed since.
    fn certificate_series(
        &self,
        active: &Active,
        format: Format,
    ) -> Result<Bytes, std::fmt::Error> {
        let slot = format as usize;
        if let Some(version) = active.version
            && let Some((at, bytes)) = &self.lock()[slot]
            && *at == version
        {
            return Ok(bytes.clone());
        }
        let mut registry = Registry::with_prefix("cert_assistant");
        registry.register_collector(Box::new(CertificateSeries(active.certificates.clone())));
        let bytes = Bytes::from(format.encode(&registry)?);
        if let Some(version) = active.version {
            self.lock()[slot] = Some((version, bytes.clone()));
        }
        Ok(bytes)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, [Option<(u64, Bytes)>; 2]> {
        self.encoded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How long after a change the series are encoded again: changes that come together (an
/// issuance burst, a rebuild) are encoded once.
const SETTLE: std::time::Duration = std::time::Duration::from_millis(100);

/// Encodes the certificates' series again after each change, until `scrapes` is dropped.
async fn encode_ahead(
    scrapes: std::sync::Weak<Scrapes>,
    mut changes: tokio::sync::watch::Receiver<u64>,
) {
    while changes.changed().await.is_ok() {
        tokio::time::sleep(SETTLE).await;
        changes.mark_unchanged();
        let Some(scrapes) = scrapes.upgrade() else {
            return;
        };
        let Ok(active) = scrapes.certificates.now().await else {
            continue;
        };
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let scraped_in_it = scrapes.lock()[format as usize].is_some();
            if scraped_in_it && let Err(error) = scrapes.certificate_series(&active, format) {
                tracing::error!(%error, "metrics: encoding failed");
            }
        }
    }
}

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// The classic text format (what curl gets).
    Prometheus = 0,
    /// OpenMetrics text (what Prometheus asks for).
    OpenMetrics = 1,
}

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Self::OpenMetrics => OPENMETRICS,
        }
    }

    /// `registry`'s families, without the end-of-exposition marker.
    fn encode(self, registry: &Registry) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        match self {
            Self::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
            }
            Self::OpenMetrics => {
                prometheus_client::encoding::text::encode_registry(&mut out, registry)?;
            }
        }
        Ok(out)
    }
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let scrapes = &state.scrapes;
    let read = tokio::try_join!(Scraped::read(&state.pool), async {
        Ok(scrapes.certificates.now().await?)
    });
    let (scraped, active) = match read {
        Ok(read) => read,
        Err(error) => {
            // The reason is logged, not returned: connection errors can name hosts and users.
            tracing::warn!(
                error = format!("{error:#}"),
                "metrics: the database did not answer"
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "the database did not answer; see the service log",
            )
                .into_response();
        }
    };
    let format = if headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"))
    {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    };
    let body = scrapes
        .certificate_series(&active, format)
        .and_then(|certificates| render(scraped, &certificates, format));
    match body {
        Ok(body) => ([(header::CONTENT_TYPE, format.content_type())], body).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics: encoding failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// The whole exposition: the certificates' series as encoded (in `format`), `scraped`, the
/// process's instruments and the process.
fn render(
    scraped: Scraped,
    certificates: &Bytes,
    format: Format,
) -> Result<Bytes, std::fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Process));
    let service = registry.sub_registry_with_prefix("cert_assistant");
    instruments().register(service);
    service.register_collector(Box::new(scraped));
    let rest = format.encode(&registry)?;
    let mut body = Vec::with_capacity(rest.len() + certificates.len() + 8);
    body.extend_from_slice(certificates);
    body.extend_from_slice(rest.as_bytes());
    if format == Format::OpenMetrics {
        let mut eof = String::new();
        prometheus_client::encoding::text::encode_eof(&mut eof)?;
        body.extend_from_slice(eof.as_bytes());
    }
    Ok(Bytes::from(body))
}

/// Every active certificate's expiry, labelled as certificate exporters label theirs.
#[derive(Debug)]
struct CertificateSeries(Arc<Vec<Arc<ActiveCertificate>>>);

impl Collector for CertificateSeries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        gauges(
            &mut encoder,
            "certificate_expiration_timestamp_seconds",
            "When each active certificate expires (its notAfter), seconds since the epoch",
            None,
            self.0.iter().map(|c| (labels(c), c.not_after)),
        )
    }
}

/// What one scrape read from the database and the running service.
#[derive(Debug)]
pub struct Scraped {
    read_model: ReadModelGauges,
    consumers: Vec<ConsumerStatus>,
    parked: Vec<(String, i64)>,
    jobs: Vec<Backlog>,
    pool: PoolState,
    runtime: Option<RuntimeState>,
}

#[derive(Debug, Clone, Copy)]
struct PoolState {
    open: u32,
    idle: usize,
    max: u32,
}

#[derive(Debug, Clone, Copy)]
struct RuntimeState {
    workers: usize,
    alive_tasks: usize,
    global_queue_depth: usize,
}

impl Scraped {
    /// Reads everything, the queries side by side.
    pub async fn read(pool: &PgPool) -> anyhow::Result<Self> {
        let (read_model, consumers, parked, jobs) = tokio::try_join!(
            async { Ok::<_, anyhow::Error>(crate::projections::gauges::read(pool).await?) },
            crate::feed::consumer_status(pool),
            async { Ok(crate::feed::parking::counts(pool).await?) },
            async { Ok(crate::jobs::backlog(pool).await?) },
        )?;
        let runtime = tokio::runtime::Handle::try_current().ok().map(|handle| {
            let metrics = handle.metrics();
            RuntimeState {
                workers: metrics.num_workers(),
                alive_tasks: metrics.num_alive_tasks(),
                global_queue_depth: metrics.global_queue_depth(),
            }
        });
        Ok(Self {
            read_model,
            consumers,
            parked,
            jobs,
            pool: PoolState {
                open: pool.size(),
                idle: pool.num_idle(),
                max: pool.options().get_max_connections(),
            },
            runtime,
        })
    }
}

/// Writes one gauge family: `series` as (labels, value).
fn gauges<'a, L, V>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = (L, V)>,
) -> Result<(), std::fmt::Error>
where
    L: prometheus_client::encoding::EncodeLabelSet + 'a,
    V: prometheus_client::encoding::EncodeGaugeValue,
{
    // A family with no series is left out, as the registry leaves out its own.
    let mut series = series.into_iter().peekable();
    if series.peek().is_none() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    for (labels, value) in series {
        family.encode_family(&labels)?.encode_gauge(&value)?;
    }
    Ok(())
}

/// Writes one gauge without labels.
fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: impl prometheus_client::encoding::EncodeGaugeValue,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?)
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let e = &mut encoder;
        gauges(
            e,
            "certificates",
            "Certificates in the read model, by status",
            None,
            by_status(&self.read_model.certificates),
        )?;
        gauges(
            e,
            "requests",
            "Certificate requests in the read model, by status",
            None,
            by_status(&self.read_model.requests),
        )?;
        gauges(
            e,
            "approvals",
            "Approvals in the read model, by status (decided ones by their outcome)",
            None,
            by_status(&self.read_model.approvals),
        )?;
        gauge(
            e,
            "pending_approval_oldest_age",
            "How long the oldest pending approval has waited (0 when none is pending)",
            Some(&Unit::Seconds),
            self.read_model
                .oldest_pending_approval_seconds
                .unwrap_or(0.0),
        )?;

        gauges(
            e,
            "feed_consumer_lag_events",
            "Events in the store that each feed consumer has not applied yet",
            None,
            self.consumers.iter().map(|c| (consumer(c), c.lag_events)),
        )?;
        gauges(
            e,
            "feed_consumer_lag",
            "The age of the oldest event each feed consumer has not applied (0 when caught up)",
            Some(&Unit::Seconds),
            self.consumers
                .iter()
                .map(|c| (consumer(c), c.lag_seconds.unwrap_or(0.0))),
        )?;
        if !self.consumers.is_empty() {
            let mut applied = e.encode_descriptor(
                "feed_consumer_events_applied",
                "Events each feed consumer has applied",
                None,
                MetricType::Counter,
            )?;
            for c in &self.consumers {
                ConstCounter::new(u64::try_from(c.events_applied).unwrap_or(0))
                    .encode(applied.encode_family(&consumer(c))?)?;
            }
        }
        // Every consumer gets a series, 0 when nothing is parked, so alerts see it.
        gauges(
            e,
            "feed_parked_streams",
            "Streams each feed consumer parked because it could not apply them",
            None,
            self.consumers.iter().map(|c| {
                let parked = self
                    .parked
                    .iter()
                    .find(|(name, _)| *name == c.name)
                    .map_or(0, |(_, n)| *n);
                (consumer(c), parked)
            }),
        )?;

        gauges(
            e,
            "jobs",
            "Background jobs not done, by kind and state (queued or failed)",
            None,
            self.jobs.iter().map(|b| (job(b), b.jobs)),
        )?;
        gauges(
            e,
            "job_oldest_due_age",
            "How long the oldest due queued job of each kind has waited",
            Some(&Unit::Seconds),
            self.jobs.iter().filter_map(|b| {
                b.oldest_due_seconds
                    .map(|age| ([("kind", b.kind.as_str())], age))
            }),
        )?;

        gauges(
            e,
            "db_pool_connections",
            "Connections of the database pool, by state",
            None,
            [
                (
                    [("state", "idle")],
                    u64::try_from(self.pool.idle).unwrap_or(0),
                ),
                (
                    [("state", "in_use")],
                    u64::from(self.pool.open).saturating_sub(self.pool.idle as u64),
                ),
            ],
        )?;
        gauge(
            e,
            "db_pool_max_connections",
            "The most connections the database pool opens",
            None,
            self.pool.max,
        )?;
        if let Some(runtime) = self.runtime {
            gauge(
                e,
                "runtime_workers",
                "Worker threads of the async runtime",
                None,
                runtime.workers as u64,
            )?;
            gauge(
                e,
                "runtime_alive_tasks",
                "Tasks alive in the async runtime",
                None,
                runtime.alive_tasks as u64,
            )?;
            gauge(
                e,
                "runtime_global_queue_depth",
                "Tasks waiting in the async runtime's global queue",
                None,
                runtime.global_queue_depth as u64,
            )?;
        }
        Ok(())
    }
}

/// A certificate's labels, named as certificate exporters name them.
fn labels(c: &ActiveCertificate) -> [(&'static str, &str); 5] {
    [
        ("serial_number", c.serial_number.as_str()),
        ("common_name", c.common_name.as_str()),
        ("issuer", c.issuer.as_str()),
        ("type", c.certificate_type.as_str()),
        ("department", c.department.as_str()),
    ]
}

fn consumer(c: &ConsumerStatus) -> [(&'static str, &str); 1] {
    [("consumer", c.name.as_str())]
}

fn job(b: &Backlog) -> [(&'static str, &str); 2] {
    [("kind", b.kind.as_str()), ("state", b.state.as_str())]
}

fn by_status(counts: &[(String, i64)]) -> impl Iterator<Item = ([(&str, &str); 1], i64)> {
    counts
        .iter()
        .map(|(status, n)| ([("status", status.as_str())], *n))
}

/// The process, as every Prometheus client library reports it (`process_*`), from `/proc`.
#[derive(Debug)]
struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        #[cfg(target_os = "linux")]
        {
            let Ok(me) = procfs::process::Process::myself() else {
                return Ok(());
            };
            let ticks = procfs::ticks_per_second() as f64;
            if let Ok(stat) = me.stat() {
                ConstCounter::new((stat.utime + stat.stime) as f64 / ticks).encode(
                    encoder.encode_descriptor(
                        "process_cpu",
                        "User and system CPU time spent",
                        Some(&Unit::Seconds),
                        MetricType::Counter,
                    )?,
                )?;
                gauge(
                    &mut encoder,
                    "process_resident_memory",
                    "Resident memory size",
                    Some(&Unit::Bytes),
                    stat.rss * procfs::page_size(),
                )?;
                gauge(
                    &mut encoder,
                    "process_virtual_memory",
                    "Virtual memory size",
                    Some(&Unit::Bytes),
                    stat.vsize,
                )?;
                gauge(
                    &mut encoder,
                    "process_threads",
                    "OS threads",
                    None,
                    stat.num_threads,
                )?;
                if let Ok(boot) = procfs::boot_time_secs() {
                    gauge(
                        &mut encoder,
                        "process_start_time",
                        "When the process started, seconds since the epoch",
                        Some(&Unit::Seconds),
                        boot as f64 + stat.starttime as f64 / ticks,
                    )?;
                }
            }
            if let Ok(fds) = me.fd_count() {
                gauge(
                    &mut encoder,
                    "process_open_fds",
                    "Open file descriptors",
                    None,
                    fds as u64,
                )?;
            }
            if let Ok(limits) = me.limits()
                && let procfs::process::LimitValue::Value(max) = limits.max_open_files.soft_limit
            {
                gauge(
                    &mut encoder,
                    "process_max_fds",
                    "The most file descriptors the process may open",
                    None,
                    max,
                )?;
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = encoder;
        Ok(())
    }
}

/// Times and counts the requests of `platform`'s routes (by route template and status),
/// and counts the ones refused for a signature or token that did not verify. Each request
/// is the root span of its trace: the commands it runs, and what they cause, follow it.
pub async fn track(State(platform): State<&'static str>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let (response, route) = super::traced::in_root_span(platform, request, next).await;
    let status = response.status();
    instruments().chat_answered(
        &ChatRoute { platform, route },
        status.as_u16(),
        started.elapsed(),
    );
    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
        instruments().signature_refused(platform);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::*;
    use crate::projections::gauges::ActiveCertificate;
    use crate::telemetry::metrics::{CaFailureKind, JobOutcome};

    /// A scrape in which every family has a series: one of everything.
    fn everything() -> String {
        let i = instruments();
        let route = ChatRoute {
            platform: "slack",
            route: "/slack/commands".to_owned(),
        };
        i.chat_answered(&route, 200, Duration::from_millis(12));
        i.signature_refused("slack");
        i.chat_busy("slack");
        i.ca_called(
            "adcs",
            "submit",
            Duration::from_millis(40),
            Some(CaFailureKind::Unavailable),
        );
        i.job_ran("issuance", JobOutcome::Done);
        let scraped = Scraped {
            read_model: ReadModelGauges {
                certificates: vec![("active".to_owned(), 1)],
                requests: vec![("issued".to_owned(), 1)],
                approvals: vec![("approved".to_owned(), 1)],
                oldest_pending_approval_seconds: Some(5.0),
            },
            consumers: vec![ConsumerStatus {
                name: "read_model".to_owned(),
                events_applied: 3,
                last_global_seq: 3,
                lag_events: 0,
                lag_seconds: None,
                updated_at: chrono::Utc::now(),
            }],
            parked: vec![("read_model".to_owned(), 1)],
            jobs: vec![Backlog {
                kind: "issuance".to_owned(),
                state: "queued".to_owned(),
                jobs: 2,
                oldest_due_seconds: Some(1.5),
            }],
            pool: PoolState {
                open: 3,
                idle: 1,
                max: 10,
            },
            runtime: Some(RuntimeState {
                workers: 2,
                alive_tasks: 9,
                global_queue_depth: 0,
            }),
        };
        let certificates = Arc::new(vec![Arc::new(ActiveCertificate {
            serial_number: "0A".to_owned(),
            common_name: "a \"quoted\" name\\".to_owned(),
            issuer: "CN=Corp CA".to_owned(),
            certificate_type: "web_server".to_owned(),
            department: "Ops\nnight".to_owned(),
            not_after: 2.0e9,
        })]);
        let mut registry = Registry::with_prefix("cert_assistant");
        registry.register_collector(Box::new(CertificateSeries(certificates)));
        let series = Bytes::from(Format::Prometheus.encode(&registry).expect("encoded"));
        let body = render(scraped, &series, Format::Prometheus).expect("encoded");
        String::from_utf8(body.to_vec()).expect("text")
    }

    /// The names of the samples in an exposition (`…_bucket`, `…_total`, ...).
    fn sample_names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter(|line| !line.starts_with('#') && !line.is_empty())
            .map(|line| line.split(['{', ' ']).next().unwrap_or_default().to_owned())
            .collect()
    }

    /// The series a PromQL expression names (ours and the process's).
    fn series_in(expr: &str) -> BTreeSet<String> {
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .filter(|word| word.starts_with("cert_assistant_") || word.starts_with("process_"))
            .map(str::to_owned)
            .collect()
    }

    fn monitoring(file: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("monitoring")
                .join(file),
        )
        .expect("the monitoring file")
    }

    #[test]
    fn label_values_are_escaped_so_no_name_can_forge_a_series() {
        let text = everything();
        assert!(
            text.contains(r#"common_name="a \"quoted\" name\\""#),
            "{text}"
        );
        assert!(text.contains(r#"department="Ops\nnight""#), "{text}");
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("cert_assistant_certificate_expiration"))
                .count(),
            1
        );
    }

    #[test]
    fn the_alert_rules_and_the_dashboard_name_only_series_the_service_exports() {
        let exported = sample_names(&everything());
        let rules = yaml_rust2::YamlLoader::load_from_str(&monitoring("prometheus-rules.yaml"))
            .expect("YAML");
        let mut exprs = Vec::new();
        for group in rules[0]["groups"].as_vec().expect("groups") {
            for rule in group["rules"].as_vec().expect("rules") {
                let name = rule["alert"].as_str().expect("an alert name");
                assert!(
                    rule["labels"]["severity"].as_str().is_some()
                        && rule["annotations"]["summary"].as_str().is_some(),
                    "{name} has a severity and a summary"
                );
                exprs.push((
                    name.to_owned(),
                    rule["expr"].as_str().expect("expr").to_owned(),
                ));
            }
        }
        assert!(exprs.len() >= 5, "{exprs:?}");
        let dashboard: serde_json::Value =
            serde_json::from_str(&monitoring("grafana-dashboard.json")).expect("JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        let mut ids = BTreeSet::new();
        for panel in panels {
            assert!(
                ids.insert(panel["id"].as_i64().expect("an id")),
                "ids are unique"
            );
            for target in panel["targets"].as_array().into_iter().flatten() {
                exprs.push((
                    panel["title"].as_str().unwrap_or_default().to_owned(),
                    target["expr"].as_str().expect("expr").to_owned(),
                ));
            }
        }
        for (what, expr) in &exprs {
            let named = series_in(expr);
            assert!(
                !named.is_empty() || expr.contains("ALERTS"),
                "{what}: {expr}"
            );
            for series in named {
                assert!(
                    exported.contains(&series),
                    "{what} uses {series}, which /metrics does not export: {exported:?}"
                );
            }
        }
    }
}
