//! cert-assistant: certificates on request from chat, every change an event.
//!
//! The map of the crate (data flows top to bottom):
//!
//! - [`cli`] — the `cert-assistant` commands (serve, operators' commands, `bench`); `main.rs`
//!   only parses and calls it.
//! - [`config`] — one typed configuration, from defaults, an optional file and the environment.
//! - [`app`] and [`http`] — the running service: listener, routes, graceful shutdown.
//! - [`chat`] — Slack, Discord and Microsoft Teams over one platform-neutral core: the command
//!   table and parser, the chat service, neutral replies, shared decisions, and the chat
//!   outbox with its notifier.
//! - [`commands`] — the application layer: who acts, validation of what people type, and the
//!   commands on the aggregates.
//! - [`domain`] — aggregates, commands, events and value types; no I/O.
//! - [`projections`] — the documented tables and views built from the event feed, the audit
//!   trail, replay and retention.
//! - [`saga`] — background work: issuance, revocation at the CA, mail, expiry, escalation.
//! - [`adapters`] — the outside: CAs (embedded, ADCS), artifact stores (local, S3), mail
//!   (local, SES), the clock.
//! - [`pki`] — keys, CSRs, envelope encryption, the key file people download.
//! - [`db`] — PostgreSQL: connecting (to `DATABASE_URL` or a private cluster the service runs
//!   itself) and the migrations.
//! - [`dev`] — the certsrv emulator and demo data; [`telemetry`] — logging.

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
