//! The people and settings commands consult on every call, kept in memory: who each
//! registered user is and their role, who may be asked to approve, and the settings in
//! force. They are read from the events once and kept current by `LISTEN directory` (a
//! trigger names each user or setting that changed, on every replica's commit), and by this
//! process after each of its own changes, before the command that made it returns.
//!
//! Memory answers only while the listener is connected and has loaded everything since it
//! connected ([`crate::db::follow`]): until then, and after a lost connection (notifications
//! sent meanwhile are lost), every lookup goes to the database, as it would without the cache.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::PgPool;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::policy::Settings;
use super::{CommandError, Side};
use crate::db::follow::{Follower, Following};
use crate::domain::actor::{Actor, Role};
use crate::domain::user::User;

/// The channel the trigger notifies (`events_notify_directory`).
const CHANNEL: &str = "directory";

/// How many people are asked to approve at most (the first by e-mail).
const APPROVERS_ASKED: usize = 50;

/// People and settings, from memory while listening (see the module documentation).
pub(super) struct Directory {
    pool: PgPool,
    /// Loads one user the way every command does.
    users: Side<User>,
    /// Its listener, started on first use (so a one-shot CLI command that never asks
    /// starts nothing); dropped with the directory, which stops it.
    following: Following,
    /// Held while memory is (re)loaded, so a load that began after a change is stored
    /// after every load that began before it.
    loading: Mutex<()>,
    memory: RwLock<Memory>,
}

#[derive(Default)]
struct Memory {
    settings: Arc<Settings>,
    people: HashMap<Uuid, Actor>,
}

impl Directory {
    pub(super) fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            users: Side::new(&pool, None),
            pool,
            following: Following::new(CHANNEL),
            loading: Mutex::new(()),
            memory: RwLock::new(Memory::default()),
        })
    }

    /// The settings in force.
    pub(super) async fn settings(self: &Arc<Self>) -> Result<Arc<Settings>, CommandError> {
        if self.answers_from_memory() {
            return Ok(self.read().settings.clone());
        }
        Ok(Arc::new(Settings::load(&self.pool).await?))
    }

    /// Registered user `id` with their role, when memory answers and knows them (`None`:
    /// ask the store; they may be new, or registered by another replica a moment ago).
    pub(super) fn remembered_person(self: &Arc<Self>, id: Uuid) -> Option<Actor> {
        if !self.answers_from_memory() {
            return None;
        }
        self.read().people.get(&id).cloned()
    }

    /// The people to ask for approvals: approvers and admins, the first 50 by e-mail.
    pub(super) async fn approvers(self: &Arc<Self>) -> Result<Vec<Actor>, CommandError> {
        if !self.answers_from_memory() {
            return super::people::approvers(&self.pool).await;
        }
        let mut approvers: Vec<Actor> = self
            .read()
            .people
            .values()
            .filter(|actor| matches!(actor.role, Role::Approver | Role::Admin))
            .cloned()
            .collect();
        approvers.sort_by(|a, b| a.email.as_ref().cmp(b.email.as_ref()));
        approvers.truncate(APPROVERS_ASKED);
        Ok(approvers)
    }

    /// Records `actor` as this process just wrote them (registered, or a new role).
    pub(super) async fn changed_person(&self, actor: Actor) {
        let _loading = self.loading.lock().await;
        self.write().people.insert(actor.user_id, actor);
    }

    /// Reloads the settings after this process changed one.
    pub(super) async fn changed_settings(&self) -> Result<(), CommandError> {
        let _loading = self.loading.lock().await;
        let settings = Settings::load(&self.pool).await?;
        self.write().settings = Arc::new(settings);
        Ok(())
    }

    /// Whether memory answers now (without starting the listener).
    pub(super) fn remembers(&self) -> bool {
        self.following.answering()
    }

    fn answers_from_memory(self: &Arc<Self>) -> bool {
        self.following.start(self);
        self.following.answering()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Memory> {
        self.memory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Memory> {
        self.memory
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Follows one notification: `User <id>` or `Config <id>`.
    async fn follow_one(&self, payload: &str) -> Result<(), CommandError> {
        match payload.split_once(' ') {
            Some(("User", id)) => {
                let Ok(id) = id.parse::<Uuid>() else {
                    return Ok(());
                };
                let _loading = self.loading.lock().await;
                let user = self
                    .users
                    .load(id)
                    .await
                    .map_err(|e| CommandError::from_aggregate("the user", e))?;
                if let Some(actor) = user.actor() {
                    self.write().people.insert(id, actor.clone());
                }
                Ok(())
            }
            Some(("Config", _)) => self.changed_settings().await,
            _ => Ok(()),
        }
    }
}

impl Follower for Directory {
    const WHAT: &'static str = "people and settings";

    fn pool(&self) -> &PgPool {
        &self.pool
    }

    fn following(&self) -> &Following {
        &self.following
    }

    /// Loads everything.
    async fn load_all(&self) -> anyhow::Result<()> {
        let _loading = self.loading.lock().await;
        let settings = Settings::load(&self.pool).await?;
        let people = crate::eventstore::users(&self.pool)
            .await?
            .iter()
            .filter_map(User::actor)
            .map(|actor| (actor.user_id, actor.clone()))
            .collect();
        *self.write() = Memory {
            settings: Arc::new(settings),
            people,
        };
        Ok(())
    }

    async fn follow(&self, payloads: &[String]) -> anyhow::Result<()> {
        for payload in payloads {
            self.follow_one(payload).await?;
        }
        Ok(())
    }
}
