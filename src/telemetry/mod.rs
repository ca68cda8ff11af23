//! What operators see: logs with `tracing` (readable lines by default, JSON lines for log
//! shippers), the process's [`metrics`] instruments, and [`trace`]s exported over OTLP.

pub mod metrics;
pub mod trace;

use std::io::IsTerminal;

use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::config::{LogFormat, TelemetryConfig};

pub use trace::Tracing;

/// Installs the global subscriber: logs to stderr (so that command output on stdout stays
/// clean for scripts) filtered by `filter` (`RUST_LOG`, when set, overrides it), and, with
/// an OTLP endpoint configured, the service's own spans to the collector whatever the log
/// filter says. Call it inside the Tokio runtime, and [`Tracing::shutdown`] at exit.
pub fn init(
    format: LogFormat,
    filter: &str,
    telemetry: &TelemetryConfig,
) -> anyhow::Result<Tracing> {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let logs = match format {
        LogFormat::Human => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    };
    let (spans, tracing) = match trace::layer(telemetry)? {
        Some((layer, tracing)) => (Some(layer), tracing),
        None => (None, Tracing::default()),
    };
    // A second init (tests, embedding) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans.with_filter(Targets::new().with_target("cert_assistant", tracing::Level::INFO)))
        .try_init();
    Ok(tracing)
}
