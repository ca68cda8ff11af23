//! cert-assistant: certificates on request from chat, every change an event.
//!
//! The map of the crate, from the composition root down to the domain (arrows point down
//! only; `tests/api/architecture.rs` checks it):
//!
//! - [`app`] — the composition root: one `Application::build` from the configuration, used by
//!   `serve` and by the integration tests. [`cli`] — the `cert-assistant` commands; `main.rs`
//!   only parses and calls it.
//! - [`chat`], [`http`] — the surfaces: Slack, Discord and Microsoft Teams over one
//!   platform-neutral core (the command table and parser, the chat service, neutral replies,
//!   shared decisions, and the outbound messages to every configured platform); health, the
//!   CA's CRL and chain, downloads.
//! - [`projections`], [`saga`] — consumers of the event feed: the documented tables and views,
//!   the audit trail, replay and retention; issuance, revocation at the CA, mail, and the
//!   expiry and escalation passes.
//! - [`commands`] — the application layer: who acts, validation of what people type, and the
//!   commands on the aggregates.
//! - [`feed`], [`eventstore`], [`jobs`] — the shared mechanisms: the event feed and its
//!   runner, typed lookups in the event store, the one job runtime.
//! - [`adapters`] and [`ports`] — the outside behind traits: CAs (embedded, ADCS), artifact
//!   stores (local, S3), mail (local, SES), the clock.
//! - [`pki`] — keys, CSRs, envelope encryption, the key file people download.
//! - [`domain`] — aggregates, commands, events and value types; no I/O.
//! - [`config`] — one typed configuration, from defaults, an optional file and the
//!   environment; [`db`] — PostgreSQL: connecting (to `DATABASE_URL` or a private cluster the
//!   service runs itself) and the migrations; [`telemetry`] — logging.
//! - [`dev`] — the certsrv emulator and demo data.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod app;
pub mod chat;
pub mod cli;
pub mod commands;
pub mod config;
pub mod db;
pub mod dev;
pub mod domain;
pub mod eventstore;
pub mod feed;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod jobs;
pub mod pki;
pub mod ports;
pub mod projections;
pub mod saga;
pub mod telemetry;
