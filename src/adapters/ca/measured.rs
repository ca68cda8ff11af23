//! A certificate authority whose every call is timed and counted (by CA kind and operation,
//! failures by kind) in the process's instruments; it answers exactly what the CA it wraps
//! answers. The composition root wraps each configured CA in one.

use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument as _;

use super::{AtCa, CaError, CertificateAuthority, Order, Renewed, Submission, ValidationRecord};
use crate::domain::values::RevocationReason;
use crate::ports::BoxFuture;
use crate::telemetry::metrics::{CaFailureKind, instruments};

/// `inner`, measured under the label `kind` (`embedded`, `adcs`, `acm`).
#[derive(Debug, Clone)]
pub struct Measured {
    inner: Arc<dyn CertificateAuthority>,
    kind: &'static str,
    log: Arc<dyn CallLog>,
}

/// Where each call's outcome is kept beyond the process, for operators: when the CA last
/// worked and when it last failed, and why.
pub trait CallLog: Send + Sync + std::fmt::Debug {
    /// Call `operation` of CA `ca` ended, with `failure` when it failed. Must not wait.
    fn record(&self, ca: &'static str, operation: &'static str, failure: Option<String>);
}

impl Measured {
    /// Wraps `inner`, recording each call's outcome in `log`.
    pub fn wrap(
        kind: &'static str,
        inner: Arc<dyn CertificateAuthority>,
        log: Arc<dyn CallLog>,
    ) -> Arc<dyn CertificateAuthority> {
        Arc::new(Self { inner, kind, log })
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: BoxFuture<'_, Result<T, CaError>>,
    ) -> Result<T, CaError> {
        let span = tracing::info_span!(
            "ca call",
            otel.name = %format!("{} {operation}", self.kind),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            ca = self.kind,
            ca.operation = operation,
            error.type = tracing::field::Empty,
        );
        let started = Instant::now();
        let result = call.instrument(span.clone()).await;
        let failed = result.as_ref().err().map(|error| match error {
            CaError::Transient(_) => CaFailureKind::Unavailable,
            CaError::Permanent(_) => CaFailureKind::Refused,
        });
        if let Some(kind) = failed {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", kind.as_str());
        }
        instruments().ca_called(self.kind, operation, started.elapsed(), failed);
        self.log.record(
            self.kind,
            operation,
            result.as_ref().err().map(ToString::to_string),
        );
        result
    }
}

impl CertificateAuthority for Measured {
    fn submit<'a>(&'a self, order: Order<'a>) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(self.timed("submit", self.inner.submit(order)))
    }

    fn retrieve<'a>(
        &'a self,
        ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Submission, CaError>> {
        Box::pin(self.timed("retrieve", self.inner.retrieve(ca_request_id)))
    }

    fn ca_chain(&self) -> BoxFuture<'_, Result<String, CaError>> {
        Box::pin(self.timed("chain", self.inner.ca_chain()))
    }

    fn revoke<'a>(
        &'a self,
        certificate: AtCa<'a>,
        reason: RevocationReason,
    ) -> BoxFuture<'a, Result<(), CaError>> {
        Box::pin(self.timed("revoke", self.inner.revoke(certificate, reason)))
    }

    fn name(&self) -> String {
        self.inner.name()
    }

    fn resubmits_safely(&self) -> bool {
        self.inner.resubmits_safely()
    }

    fn renewal<'a>(
        &'a self,
        ca_request_id: &'a str,
        valid_to: chrono::DateTime<chrono::Utc>,
    ) -> BoxFuture<'a, Result<Option<Renewed>, CaError>> {
        Box::pin(self.timed("renewal", self.inner.renewal(ca_request_id, valid_to)))
    }

    fn validation_records<'a>(
        &'a self,
        ca_request_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<ValidationRecord>, CaError>> {
        Box::pin(self.timed(
            "validation_records",
            self.inner.validation_records(ca_request_id),
        ))
    }
}
