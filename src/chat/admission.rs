//! How much chat work one replica takes on at once. Slack and Discord give an answer 3 s;
//! past what the database and the cores can answer in that time, more work only makes
//! every answer late. A command that finds every place taken, and none freed within a short
//! wait, is answered at once that the service is busy, and nothing is done for it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a person is told when their command was not taken on.
pub const BUSY: &str = "cert-assistant is busy right now and did nothing with this; \
                        please try again in a few seconds.";

/// The gate chat commands pass; one per process, shared by every platform.
#[derive(Debug, Clone)]
pub struct Admission {
    places: Arc<Semaphore>,
    wait: Duration,
    busy: Arc<AtomicU64>,
}

/// A command's place; it is given back when dropped.
#[derive(Debug)]
pub struct Admitted {
    _place: OwnedSemaphorePermit,
}

/// The command was not taken on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{BUSY}")]
pub struct Busy;

impl Admission {
    /// At most `in_flight` commands at once; one that waits longer than `wait` for a place
    /// is answered busy.
    pub fn new(in_flight: usize, wait: Duration) -> Self {
        Self {
            places: Arc::new(Semaphore::new(in_flight.max(1))),
            wait,
            busy: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A place for one command, or [`Busy`].
    pub async fn admit(&self, platform: &'static str) -> Result<Admitted, Busy> {
        let place = match self.places.clone().try_acquire_owned() {
            Ok(place) => Some(place),
            Err(_) => tokio::time::timeout(self.wait, self.places.clone().acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
        };
        if let Some(place) = place {
            return Ok(Admitted { _place: place });
        }
        let total = self.busy.fetch_add(1, Ordering::Relaxed) + 1;
        crate::telemetry::metrics::instruments().chat_busy(platform);
        tracing::warn!(
            platform,
            busy_answers = total,
            "a chat command was answered busy: every place was taken"
        );
        Err(Busy)
    }

    /// Commands answered busy since the start.
    pub fn busy_answers(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }
}

impl Default for Admission {
    /// 32 commands at once, 500 ms of waiting for a place.
    fn default() -> Self {
        Self::new(32, Duration::from_millis(500))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_command_without_a_place_is_answered_busy_and_counted() {
        let gate = Admission::new(2, Duration::from_millis(20));
        let first = gate.admit("test").await.expect("a place");
        let _second = gate.admit("test").await.expect("a place");
        assert_eq!(gate.admit("test").await.expect_err("no place"), Busy);
        assert_eq!(gate.busy_answers(), 1);
        drop(first);
        let _third = gate.admit("test").await.expect("a freed place");
        assert_eq!(gate.busy_answers(), 1);
    }

    #[tokio::test]
    async fn a_place_freed_within_the_wait_is_taken() {
        let gate = Admission::new(1, Duration::from_secs(5));
        let held = gate.admit("test").await.expect("a place");
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.admit("test").await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(held);
        assert_eq!(waiting.await.expect("joined"), Ok(()));
        assert_eq!(gate.busy_answers(), 0);
    }
}
