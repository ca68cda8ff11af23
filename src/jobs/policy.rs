//! Every job kind's policy, in one place: how long a claim is reserved, how many are
//! claimed at once, when a failure is given up, and how the retries back off.
//!
//! | kind | lease | batch | gives up after | backoff | too old after |
//! |---|---|---|---|---|---|
//! | issuance | 120 s | 5 | 20 failed attempts (the CA's own retries are counted by the request: `issuance.max_retries`) | 2 s · 2ⁿ, at most 10 min | never |
//! | mail | 60 s | 10 | 8 attempts | 2 s · 2ⁿ, at most 10 min | 3 days |
//! | revocation | 60 s | 10 | 10 attempts, then an operator task | 2 s · 2ⁿ, at most 10 min | never |
//! | chat (per platform) | 60 s | 10, in order per request | 8 attempts | 2 s · 2ⁿ, at most 5 min | 24 hours |
//!
//! Every backoff is jittered by ±25 %, so jobs that failed together do not retry together.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// How one kind of job is claimed, retried and given up.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// How long a claimed job is reserved for its worker (a crashed worker's jobs are
    /// claimable again after it).
    pub lease: Duration,
    /// At most this many jobs per claim.
    pub batch: i64,
    /// A transient failure on this attempt gives the job up.
    pub max_attempts: i32,
    /// The first retry's delay; each further one doubles it.
    pub backoff_base: Duration,
    /// The longest delay between two attempts.
    pub backoff_cap: Duration,
    /// Jobs older than this are given up unrun (a message nobody wants a day late).
    pub expires_after: Option<Duration>,
    /// Whether jobs sharing an ordering key are queued (the worker steps one at a time).
    pub ordered: bool,
}

const MINUTE: Duration = Duration::from_secs(60);

/// The issuance saga: submit to the CA, poll, store, record.
pub const ISSUANCE: Policy = Policy {
    lease: Duration::from_secs(120),
    batch: 5,
    max_attempts: 20,
    backoff_base: Duration::from_secs(2),
    backoff_cap: Duration::from_secs(10 * 60),
    expires_after: None,
    ordered: false,
};

/// E-mail delivery.
pub const MAIL: Policy = Policy {
    lease: MINUTE,
    batch: 10,
    max_attempts: 8,
    backoff_base: Duration::from_secs(2),
    backoff_cap: Duration::from_secs(10 * 60),
    expires_after: Some(Duration::from_secs(3 * 24 * 60 * 60)),
    ordered: false,
};

/// Carrying a revocation to the CA.
pub const REVOCATION: Policy = Policy {
    lease: MINUTE,
    batch: 10,
    max_attempts: 10,
    backoff_base: Duration::from_secs(2),
    backoff_cap: Duration::from_secs(10 * 60),
    expires_after: None,
    ordered: false,
};

/// Chat delivery, one kind per platform, in event order per request.
pub const CHAT: Policy = Policy {
    lease: MINUTE,
    batch: 10,
    max_attempts: 8,
    backoff_base: Duration::from_secs(2),
    backoff_cap: Duration::from_secs(5 * 60),
    expires_after: Some(Duration::from_secs(24 * 60 * 60)),
    ordered: true,
};

impl Policy {
    /// The delay after failed attempt `attempts` (from 1), with `unit` in [0, 1) as jitter.
    pub fn backoff(&self, attempts: i32, unit: f64) -> Duration {
        let doublings = attempts.clamp(1, 20) - 1;
        let base = self.backoff_base.as_secs_f64() * 2_f64.powi(doublings);
        let capped = base.min(self.backoff_cap.as_secs_f64());
        Duration::from_secs_f64(capped * (0.75 + unit.clamp(0.0, 1.0) / 2.0))
    }

    /// Whether a job queued at `created_at` is too old to run.
    pub fn expired(&self, created_at: DateTime<Utc>) -> bool {
        self.expires_after.is_some_and(|limit| {
            (Utc::now() - created_at)
                .to_std()
                .is_ok_and(|age| age > limit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_a_quarter_of_jitter() {
        let at = |attempts, unit| CHAT.backoff(attempts, unit).as_secs_f64();
        assert!((at(1, 0.5) - 2.0).abs() < 1e-9);
        assert!((at(2, 0.5) - 4.0).abs() < 1e-9);
        assert!((at(5, 0.5) - 32.0).abs() < 1e-9);
        assert!((at(30, 0.5) - 300.0).abs() < 1e-9, "capped at five minutes");
        assert!((at(1, 0.0) - 1.5).abs() < 1e-9, "jitter down to -25 %");
        assert!(at(1, 0.999) < 2.5 && at(1, 0.999) > 2.49, "and up to +25 %");
    }

    #[test]
    fn only_kinds_with_a_limit_expire() {
        let old = Utc::now() - chrono::Duration::days(2);
        assert!(CHAT.expired(old));
        assert!(!MAIL.expired(old));
        assert!(!ISSUANCE.expired(Utc::now() - chrono::Duration::days(400)));
    }
}
