//! Memory kept current by `LISTEN`: a [`Follower`] loads everything once it listens, then
//! follows each batch of notifications (a trigger names what changed, on every replica's
//! commit). Notifications sent while no connection listens are lost, so a follower must not
//! answer from memory until [`Follower::load_all`] has run on the current connection, and
//! stops answering the moment the connection is lost or a change cannot be followed.
//! [`Following`] is what every such memory keeps for it, and [`follow`] the loop, written
//! once for all of them.

use std::future::Future;
use std::ops::ControlFlow::{self, Break, Continue};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

/// How long to wait before reconnecting after a failure.
const RECONNECT_AFTER: Duration = Duration::from_secs(2);

/// Most notifications followed in one batch.
const BATCH: usize = 1000;

/// Something kept in memory from the database and current by notifications.
pub trait Follower: Send + Sync + 'static {
    /// What it is, for the log.
    const WHAT: &'static str;

    /// The database it follows.
    fn pool(&self) -> &PgPool;

    /// Its listener's state.
    fn following(&self) -> &Following;

    /// Loads everything (memory answers once this returns).
    fn load_all(&self) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// Follows the payloads of a batch of notifications, in the order they were sent.
    fn follow(&self, payloads: &[String]) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// A follower's listener: the channel, whether it was started, whether memory answers, and
/// the handle whose drop (with the follower) stops it.
#[derive(Debug)]
pub struct Following {
    channel: &'static str,
    started: AtomicBool,
    answering: AtomicBool,
    alive: watch::Sender<()>,
}

impl Following {
    /// A listener on `channel`, not started.
    pub fn new(channel: &'static str) -> Self {
        Self {
            channel,
            started: AtomicBool::new(false),
            answering: AtomicBool::new(false),
            alive: watch::channel(()).0,
        }
    }

    /// Starts following for `follower`, once (later calls do nothing).
    pub fn start<F: Follower>(&self, follower: &Arc<F>) {
        if !self.started.swap(true, Ordering::AcqRel) {
            tokio::spawn(follow(Arc::downgrade(follower), self.alive.subscribe()));
        }
    }

    /// Whether memory answers now: loaded on the current connection, nothing missed since.
    pub fn answering(&self) -> bool {
        self.answering.load(Ordering::Acquire)
    }

    fn answer(&self, answering: bool) {
        self.answering.store(answering, Ordering::Release);
    }
}

/// Follows `follower`'s channel until it is dropped or `alive`'s sender is: reconnects
/// (and reloads) after a lost connection or a change it could not follow.
async fn follow<F: Follower>(follower: Weak<F>, mut alive: watch::Receiver<()>) {
    loop {
        let Some((pool, channel)) = follower
            .upgrade()
            .map(|f| (f.pool().clone(), f.following().channel))
        else {
            return;
        };
        match super::listen(&pool, channel).await {
            Ok(listener) => {
                if listening(&follower, listener, &mut alive).await.is_break() {
                    return;
                }
            }
            Err(error) => tracing::warn!(
                %error,
                what = F::WHAT,
                "LISTEN failed; reading from the database for now"
            ),
        }
        tokio::select! {
            _ = alive.changed() => return,
            () = tokio::time::sleep(RECONNECT_AFTER) => {}
        }
    }
}

/// Loads everything, then follows notifications until the connection is lost (`Continue`:
/// reconnect) or the follower is gone (`Break`).
async fn listening<F: Follower>(
    follower: &Weak<F>,
    mut listener: PgListener,
    alive: &mut watch::Receiver<()>,
) -> ControlFlow<()> {
    {
        let Some(follower) = follower.upgrade() else {
            return Break(());
        };
        if let Err(error) = follower.load_all().await {
            tracing::warn!(
                error = format!("{error:#}"),
                what = F::WHAT,
                "could not load"
            );
            return Continue(());
        }
        follower.following().answer(true);
    }
    loop {
        // The sender never sends: `changed` completes only when it is dropped.
        let received = tokio::select! {
            _ = alive.changed() => return Break(()),
            received = listener.try_recv() => received,
        };
        let Some(follower) = follower.upgrade() else {
            return Break(());
        };
        let first = match received {
            Ok(Some(notification)) => notification,
            Ok(None) | Err(_) => {
                follower.following().answer(false);
                tracing::warn!(what = F::WHAT, "lost the LISTEN connection; reconnecting");
                return Continue(());
            }
        };
        // What else has arrived already goes with it, so a burst is followed at once.
        let mut payloads = vec![first.payload().to_owned()];
        while payloads.len() < BATCH {
            match listener.next_buffered() {
                Some(notification) => payloads.push(notification.payload().to_owned()),
                None => break,
            }
        }
        if let Err(error) = follower.follow(&payloads).await {
            // What changed is not known here: nothing answers from memory until reloaded.
            follower.following().answer(false);
            tracing::warn!(
                error = format!("{error:#}"),
                what = F::WHAT,
                "could not follow a change; reloading"
            );
            return Continue(());
        }
    }
}
