//! Traces: with `telemetry.otlp_endpoint` set, the service's spans go to an OpenTelemetry
//! collector over OTLP/HTTP (protobuf), through the tracing ecosystem's OpenTelemetry layer.
//!
//! One trace follows one person's action through the whole service: the chat request (its
//! root), the commands it ran, the feed batches that applied the events they appended, the
//! jobs those events queued and the CA calls the jobs made. Two things carry it across the
//! asynchronous hops:
//! - the **correlation id** in every event's metadata *is* the trace id (a v4 UUID, made by
//!   [`CorrelationIds`]), so the audit trail's session id names the trace;
//! - the event's and the job's **`traceparent`** (W3C Trace Context) names the span that
//!   appended or queued it, and the feed batch or job that follows continues from there.
//!
//! Without an endpoint nothing is exported and nothing is added to events: correlation ids
//! are fresh UUIDs, as they always were.
//!
//! Incoming HTTP requests never choose their trace: a chat platform does not send one, and a
//! `traceparent` header from anyone else would let them pick the correlation id that the
//! audit trail records.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceId, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{Bytes, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, Sampler, SdkTracerProvider};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use uuid::Uuid;

use crate::config::TelemetryConfig;

/// The metadata key (of events) and the column (of jobs) that carries a span's context.
pub const TRACEPARENT: &str = "traceparent";

/// How many traces one feed batch continues: a batch of many people's events gets a span in
/// each of the first this many traces and none in the rest (a bound on what one batch
/// exports; the events are applied all the same).
const TRACES_PER_BATCH: usize = 32;

/// Whether spans are exported (set once, by [`install`]); when not, the feed and the jobs
/// skip the spans that exist only to continue a trace.
static EXPORTING: OnceLock<()> = OnceLock::new();

/// The tracer provider, kept to flush it when the process stops.
#[derive(Debug, Default)]
#[must_use = "flush the spans at exit with Tracing::shutdown"]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Exports what is still buffered and stops exporting. Call it once, at exit.
    pub async fn shutdown(self) {
        let Some(provider) = self.provider else {
            return;
        };
        // The provider blocks while its exporter thread sends the last batch through this
        // runtime, so it must not block a thread the runtime needs.
        let stopped = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(error)) = stopped {
            tracing::warn!(%error, "traces: the last spans could not be exported");
        }
    }
}

/// The OpenTelemetry layer for `config`, with what flushes it; `None` without an endpoint.
/// Call it inside the Tokio runtime: the exporter sends through it.
pub fn layer<S>(
    config: &TelemetryConfig,
) -> anyhow::Result<Option<(impl tracing_subscriber::Layer<S> + use<S>, Tracing)>>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    let Some(endpoint) = config.traces_url() else {
        return Ok(None);
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Collector::new()?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(endpoint)
        .build()
        .context("traces: the OTLP exporter could not be built")?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(CorrelationIds)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            config.sample_ratio,
        ))))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
                .build(),
        )
        .build();
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("cert-assistant"))
        .with_tracked_inactivity(false)
        .with_threads(false);
    let _ = EXPORTING.set(());
    Ok(Some((
        layer,
        Tracing {
            provider: Some(provider),
        },
    )))
}

/// Whether spans are exported.
pub fn exporting() -> bool {
    EXPORTING.get().is_some()
}

/// The correlation id of work started now: the current trace's id, or a fresh UUID outside
/// a trace (or when nothing is exported).
pub fn correlation_id() -> Uuid {
    let context = Span::current().context();
    let span = context.span();
    let current = span.span_context();
    if current.is_valid() {
        Uuid::from_bytes(current.trace_id().to_bytes())
    } else {
        Uuid::new_v4()
    }
}

/// The current span's context in W3C form (`00-<trace>-<span>-<flags>`), to store with what
/// it causes; `None` outside a trace.
pub fn traceparent() -> Option<String> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    carrier.remove(TRACEPARENT)
}

/// Adds the current span's context to `metadata` (of the events about to be appended).
pub fn stamp(metadata: &mut HashMap<String, String>) {
    if let Some(traceparent) = traceparent() {
        metadata.insert(TRACEPARENT.to_owned(), traceparent);
    }
}

/// The span context a stored `traceparent` names, if it is a valid one.
fn remote(traceparent: &str) -> Option<SpanContext> {
    let carrier = HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())]);
    let context = TraceContextPropagator::new().extract(&carrier);
    let span = context.span().span_context().clone();
    span.is_valid().then_some(span)
}

/// Makes `span` continue the trace of the span `traceparent` names (a child of it); a
/// missing or unreadable one leaves `span` a root.
pub fn continue_from(span: &Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.and_then(remote) {
        let _ = span.set_parent(Context::new().with_remote_span_context(parent));
    }
}

/// One span per trace that `traceparents` (of a batch's events, in feed order) continue, at
/// most [`TRACES_PER_BATCH`], each made by `span` and a child of that trace's span; empty
/// when nothing is exported.
pub fn per_trace<'a>(
    traceparents: impl IntoIterator<Item = Option<&'a str>>,
    span: impl Fn() -> Span,
) -> Vec<Span> {
    if !exporting() {
        return Vec::new();
    }
    let mut seen: Vec<TraceId> = Vec::new();
    let mut spans = Vec::new();
    for parent in traceparents.into_iter().flatten().filter_map(remote) {
        if seen.contains(&parent.trace_id()) {
            continue;
        }
        if seen.len() == TRACES_PER_BATCH {
            break;
        }
        seen.push(parent.trace_id());
        let child = span();
        let _ = child.set_parent(Context::new().with_remote_span_context(parent));
        spans.push(child);
    }
    spans
}

/// Spawns `work` inside the current span: work a request hands off (a chat answer that
/// outlives the request's acknowledgement) stays in its trace.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(tracing::Instrument::in_current_span(work))
}

/// Trace ids that are v4 UUIDs, so that a trace id read as a UUID is an ordinary
/// correlation id (and any correlation id can be looked up as a trace).
#[derive(Debug, Default)]
struct CorrelationIds;

impl IdGenerator for CorrelationIds {
    fn new_trace_id(&self) -> TraceId {
        TraceId::from_bytes(*Uuid::new_v4().as_bytes())
    }

    fn new_span_id(&self) -> SpanId {
        RandomIdGenerator::default().new_span_id()
    }
}

/// How long the collector has to take a batch.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The most of a collector's answer that is read (it is a short status).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Sends the exporter's requests with the service's own HTTP client, on the runtime that
/// made it: the SDK exports from a thread of its own, outside any runtime.
#[derive(Debug)]
struct Collector {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    /// Whether the last export failed, so a collector that is down is reported once (and
    /// its return once), not on every batch.
    failing: AtomicBool,
}

impl Collector {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .build()
                .context("traces: the HTTP client could not be built")?,
            runtime: tokio::runtime::Handle::try_current()
                .context("traces: set up inside the Tokio runtime")?,
            failing: AtomicBool::new(false),
        })
    }

    async fn send(
        client: reqwest::Client,
        request: Request<Bytes>,
    ) -> Result<Response<Bytes>, String> {
        let request =
            reqwest::Request::try_from(request).map_err(|e| e.without_url().to_string())?;
        let mut response = client
            .execute(request)
            .await
            .map_err(|e| e.without_url().to_string())?;
        let status = response.status();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| e.without_url().to_string())?
        {
            body.extend_from_slice(&chunk[..chunk.len().min(MAX_ANSWER_BYTES - body.len())]);
            if body.len() == MAX_ANSWER_BYTES {
                break;
            }
        }
        Response::builder()
            .status(status)
            .body(Bytes::from(body))
            .map_err(|e| e.to_string())
    }

    /// Says when exporting starts failing and when it works again (never the endpoint: its
    /// URL may carry credentials).
    fn report(&self, outcome: &Result<Response<Bytes>, String>) {
        let problem = match outcome {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the collector answered {}", response.status())),
            Err(error) => Some(error.clone()),
        };
        match problem {
            Some(problem) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                problem,
                "traces: the OTLP collector does not take spans; they are dropped until it does"
            ),
            None if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("traces: the OTLP collector takes spans again");
            }
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Collector {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let outcome = self
            .runtime
            .spawn(Self::send(self.client.clone(), request))
            .await
            .unwrap_or_else(|_| Err("the runtime stopped".to_owned()));
        self.report(&outcome);
        outcome.map_err(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Runs `check` with spans going to an OpenTelemetry layer (that exports nothing).
    fn traced(check: impl FnOnce()) {
        let provider = SdkTracerProvider::builder()
            .with_id_generator(CorrelationIds)
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, check);
    }

    #[test]
    fn inside_a_trace_the_correlation_id_is_the_trace_id_and_a_v4_uuid() {
        traced(|| {
            let span = tracing::info_span!("chat");
            let _entered = span.enter();
            let id = correlation_id();
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id, correlation_id(), "the same trace, the same id");
            let traceparent = traceparent().expect("a traceparent inside a span");
            assert!(
                traceparent.starts_with(&format!("00-{}-", id.simple())),
                "{traceparent}"
            );
        });
        assert_ne!(
            correlation_id(),
            correlation_id(),
            "fresh ids outside a trace"
        );
        assert_eq!(traceparent(), None);
    }

    #[test]
    fn a_span_continued_from_a_traceparent_is_in_its_trace_and_a_bad_one_starts_its_own() {
        traced(|| {
            let (trace, parent) = {
                let span = tracing::info_span!("command");
                let _entered = span.enter();
                (correlation_id(), traceparent().expect("traceparent"))
            };
            let batch = tracing::info_span!("feed batch");
            continue_from(&batch, Some(&parent));
            let _entered = batch.enter();
            assert_eq!(correlation_id(), trace);
            let parent_span = &parent[36..52];
            let own = traceparent().expect("traceparent");
            assert_ne!(&own[36..52], parent_span, "a span of its own");
            drop(_entered);

            for bad in [
                "",
                "00-zz-zz-01",
                "00-00000000000000000000000000000000-0000000000000000-01",
            ] {
                let job = tracing::info_span!("job");
                continue_from(&job, Some(bad));
                let _entered = job.enter();
                assert_ne!(correlation_id(), trace, "{bad:?} starts a trace of its own");
            }
        });
    }
}
