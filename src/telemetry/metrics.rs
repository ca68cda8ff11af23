//! The service's own instruments: what only the running process knows (how long chat
//! answers take, refusals, overload answers, CA calls, job outcomes), counted where it
//! happens and read by `/metrics`. Values that the database already holds (certificates,
//! requests, lag, queues) are not counted here; `/metrics` reads them at scrape time.
//!
//! One set per process, like the log subscriber: every part of the service counts into it
//! without being handed it, and a test that runs several services in one process sees their
//! sum. Every label is a closed set (platforms, route templates, CA kinds, job kinds,
//! outcomes), so no input can grow the number of series.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// A chat route: the platform and the route template it matched (`/slack/commands`, ...).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChatRoute {
    /// `slack`, `discord`, `teams`.
    pub platform: &'static str,
    /// The route template.
    pub route: String,
}

/// A chat request's outcome class, for the request counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChatAnswer {
    platform: &'static str,
    route: String,
    /// `2xx`, `4xx`, `5xx`.
    status: &'static str,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Refused {
    platform: &'static str,
    /// `signature` (the platform's signature or token did not verify), `authorization`
    /// (the person may not do what they asked).
    reason: &'static str,
}

/// A chat platform.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OnPlatform {
    platform: &'static str,
}

/// A call to a certificate authority.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaCall {
    /// `embedded`, `adcs`, `acm`.
    ca: &'static str,
    /// `submit`, `retrieve`, `chain`, `revoke`, `renewal`, `validation_records`.
    operation: &'static str,
}

/// A failed call to a certificate authority.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CaFailure {
    ca: &'static str,
    operation: &'static str,
    /// `unavailable` (worth retrying: connection, timeout, 5xx) or `refused`.
    kind: &'static str,
}

/// What became of one run of a job.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobRun {
    /// The job's kind (`issuance`, `mail`, ...).
    kind: &'static str,
    /// `done`, `later` (waits on someone else), `retry` (failed, will be retried),
    /// `failed` (given up).
    outcome: &'static str,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// Chat answers: from a few milliseconds to Slack's three-second limit and past it.
fn answer_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0,
    ])
}

/// CA calls: an embedded CA signs in milliseconds, ADCS and ACM take up to tens of seconds.
fn ca_buckets() -> Histogram {
    Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0])
}

/// Every instrument of the process.
#[derive(Debug)]
pub struct Instruments {
    chat_requests: Family<ChatAnswer, Counter>,
    chat_answer_seconds: Timings<ChatRoute>,
    refusals: Family<Refused, Counter>,
    chat_busy: Family<OnPlatform, Counter>,
    ca_call_seconds: Timings<CaCall>,
    ca_failures: Family<CaFailure, Counter>,
    job_runs: Family<JobRun, Counter>,
}

static INSTRUMENTS: LazyLock<Instruments> = LazyLock::new(|| Instruments {
    chat_requests: Family::default(),
    chat_answer_seconds: Family::new_with_constructor(answer_buckets),
    refusals: Family::default(),
    chat_busy: Family::default(),
    ca_call_seconds: Family::new_with_constructor(ca_buckets),
    ca_failures: Family::default(),
    job_runs: Family::default(),
});

/// The process's instruments.
pub fn instruments() -> &'static Instruments {
    &INSTRUMENTS
}

impl Instruments {
    /// A chat platform answered a request on `route` with `status` after `took`.
    pub fn chat_answered(&self, route: &ChatRoute, status: u16, took: Duration) {
        let class = match status {
            200..=299 => "2xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "other",
        };
        self.chat_requests
            .get_or_create(&ChatAnswer {
                platform: route.platform,
                route: route.route.clone(),
                status: class,
            })
            .inc();
        self.chat_answer_seconds
            .get_or_create(route)
            .observe(took.as_secs_f64());
    }

    /// A request from `platform` was refused because its signature or token did not verify.
    pub fn signature_refused(&self, platform: &'static str) {
        self.refused(platform, "signature");
    }

    /// A person on `platform` asked for something they may not do.
    pub fn authorization_refused(&self, platform: &'static str) {
        self.refused(platform, "authorization");
    }

    fn refused(&self, platform: &'static str, reason: &'static str) {
        self.refusals
            .get_or_create(&Refused { platform, reason })
            .inc();
    }

    /// A chat command from `platform` was answered busy (every place was taken).
    pub fn chat_busy(&self, platform: &'static str) {
        self.chat_busy.get_or_create(&OnPlatform { platform }).inc();
    }

    /// A call to the CA `ca` took `took`; `failed` says how it failed, if it did.
    pub fn ca_called(
        &self,
        ca: &'static str,
        operation: &'static str,
        took: Duration,
        failed: Option<CaFailureKind>,
    ) {
        self.ca_call_seconds
            .get_or_create(&CaCall { ca, operation })
            .observe(took.as_secs_f64());
        if let Some(kind) = failed {
            let kind = kind.as_str();
            self.ca_failures
                .get_or_create(&CaFailure {
                    ca,
                    operation,
                    kind,
                })
                .inc();
        }
    }

    /// A job of `kind` ran, with `outcome`.
    pub fn job_ran(&self, kind: &'static str, outcome: JobOutcome) {
        let outcome = match outcome {
            JobOutcome::Done => "done",
            JobOutcome::Later => "later",
            JobOutcome::Retry => "retry",
            JobOutcome::Failed => "failed",
        };
        self.job_runs.get_or_create(&JobRun { kind, outcome }).inc();
    }

    /// Registers every instrument in `registry` (whose prefix names the service).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "chat_requests",
            "Requests from the chat platforms, by platform, route and status class",
            self.chat_requests.clone(),
        );
        // Histograms carry their unit in the name only: not every OpenMetrics parser
        // accepts a UNIT line on them.
        registry.register(
            "chat_answer_seconds",
            "How long the service took to answer a chat platform's request",
            self.chat_answer_seconds.clone(),
        );
        registry.register(
            "refusals",
            "Requests refused, by platform and reason: a signature or token that did not \
             verify, or a person asking for what they may not do",
            self.refusals.clone(),
        );
        registry.register(
            "chat_busy_answers",
            "Chat commands answered busy because every place was taken (nothing was done), by \
             platform",
            self.chat_busy.clone(),
        );
        registry.register(
            "ca_request_seconds",
            "Calls to a certificate authority, by CA and operation",
            self.ca_call_seconds.clone(),
        );
        registry.register(
            "ca_errors",
            "Calls to a certificate authority that failed, by CA, operation and kind",
            self.ca_failures.clone(),
        );
        registry.register(
            "job_runs",
            "Runs of background jobs, by kind and outcome",
            self.job_runs.clone(),
        );
    }
}

/// How a CA call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaFailureKind {
    /// Worth retrying: connection, timeout, 5xx.
    Unavailable,
    /// The CA said no.
    Refused,
}

impl CaFailureKind {
    /// As the `kind` label (and a span's `error.type`) shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Refused => "refused",
        }
    }
}

/// What became of one run of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// It is done.
    Done,
    /// It waits on someone else and runs again later.
    Later,
    /// It failed and will be retried.
    Retry,
    /// It was given up.
    Failed,
}
